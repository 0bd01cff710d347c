"""``bridge fdb show`` (text and ``bridge -j fdb show``) -> ``FdbEntry``."""

from __future__ import annotations

import json
import re
from typing import Any

from analyzer.inputs.ip_route import iter_lines, json_array, parse_ip
from analyzer.model.node import FdbEntry
from analyzer.model.refs import SourceRef

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_ARGS = frozenset({"dev", "dst", "vlan", "master", "port", "vni", "via", "src_vni", "nhid", "state"})
_FLAGS = frozenset({"self", "permanent", "static", "extern_learn", "sticky", "offload", "router",
                    "used", "master", "dynamic", "local", "added_by_user", "locked", "blackhole", "norefresh"})


def parse_bridge_fdb(text: str, source: str) -> tuple[tuple[FdbEntry, ...], tuple[str, ...]]:
    if text.lstrip().startswith("["):
        return _parse_json(text, source)
    entries: list[FdbEntry] = []
    warnings: list[str] = []
    for number, line in iter_lines(text):
        words = line.split()
        if not _MAC.match(words[0]):
            warnings.append(f"{source}:{number}: unrecognised fdb line: {line.strip()}")
            continue
        fields: dict[str, Any] = {}
        i = 1
        problem = None
        while i < len(words):
            key = words[i]
            value = words[i + 1] if i + 1 < len(words) else None
            if key in _ARGS and value is not None and not (key == "master" and value in _FLAGS):
                try:
                    _set(fields, key, value)
                except ValueError as exc:
                    problem = f"bad {key} {value!r} ({exc})"
                i += 2
            elif key in _FLAGS:
                _set(fields, key, None)
                i += 1
            else:
                problem = f"unrecognised fdb token {key!r} (ignored)"
                i += 1
        if problem:
            warnings.append(f"{source}:{number}: {problem}")
        entries.append(FdbEntry(mac=words[0].lower(), source=SourceRef(source, number, line.rstrip()), **fields))
    return tuple(entries), tuple(warnings)


#: ``key value`` words kept on ``FdbEntry`` (same field name) and how each value is read
_VALUES = {"dev": str, "dst": parse_ip, "vlan": int, "master": str, "port": int, "vni": int, "via": str}
#: flag words kept on ``FdbEntry`` -> field (set to True)
_FLAG_FIELDS = {"self": "is_self", "permanent": "permanent", "static": "static", "extern_learn": "extern_learn"}


def _set(fields: dict[str, Any], key: str, value: str | None) -> None:
    if value is None:
        if key in _FLAG_FIELDS:
            fields[_FLAG_FIELDS[key]] = True
    elif key in _VALUES:
        fields[key] = _VALUES[key](value)
    elif key == "state" and value in ("permanent", "static"):
        fields[value] = True


def _parse_json(text: str, source: str) -> tuple[tuple[FdbEntry, ...], tuple[str, ...]]:
    items, warnings = json_array(text, source)
    entries: list[FdbEntry] = []
    for index, line, item in items:
        try:
            fields: dict[str, Any] = {}
            for key, field in (("ifname", "dev"), ("dst", "dst"), ("vlan", "vlan"), ("master", "master"),
                               ("port", "port"), ("vni", "vni"), ("via", "via")):
                if item.get(key) is not None:
                    _set(fields, field, str(item[key]))
            for flag in item.get("flags", []) or []:
                _set(fields, flag, None)
            if item.get("state"):
                _set(fields, item["state"], None)
            ref = SourceRef(source, line, json.dumps(item, separators=(",", ":")))
            entries.append(FdbEntry(mac=str(item["mac"]).lower(), source=ref, **fields))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            warnings.append(f"{source}:{line}: unrecognised fdb entry #{index + 1} ({exc})")
    return tuple(entries), tuple(warnings)
