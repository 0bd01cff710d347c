"""``sysctl -a`` (or ``sysctl key ...``) output -> {key: value} with the line of each key."""

from __future__ import annotations

import re

from analyzer.inputs.ip_route import iter_lines
from analyzer.model.refs import SourceRef

_LINE = re.compile(r"^([A-Za-z0-9_.\-/]+)\s*=\s*(.*)$")


def parse_sysctl(text: str, source: str) -> tuple[dict[str, str], dict[str, SourceRef], tuple[str, ...]]:
    values: dict[str, str] = {}
    refs: dict[str, SourceRef] = {}
    warnings: list[str] = []
    for number, line in iter_lines(text):
        match = _LINE.match(line.strip())
        if not match:
            if line.startswith("sysctl:"):  # "sysctl: permission denied on key ..." / "cannot stat"
                continue
            warnings.append(f"{source}:{number}: unrecognised sysctl line: {line.strip()}")
            continue
        key = match.group(1).replace("/", ".")
        values[key] = match.group(2).strip()
        refs[key] = SourceRef(source, number, line.rstrip())
    return values, refs, tuple(warnings)
