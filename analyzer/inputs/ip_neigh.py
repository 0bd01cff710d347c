"""``ip neigh show`` (text and ``ip -j neigh``) -> ``NeighEntry``."""

from __future__ import annotations

import json
from typing import Any

from analyzer.inputs.ip_route import iter_lines, json_array, parse_ip
from analyzer.model.node import NeighEntry
from analyzer.model.refs import SourceRef

STATES = frozenset({"PERMANENT", "NOARP", "REACHABLE", "STALE", "DELAY", "PROBE", "FAILED", "INCOMPLETE",
                    "NONE"})


def parse_ip_neigh(text: str, source: str) -> tuple[tuple[NeighEntry, ...], tuple[str, ...]]:
    if text.lstrip().startswith("["):
        return _parse_json(text, source)
    entries: list[NeighEntry] = []
    warnings: list[str] = []
    for number, line in iter_lines(text):
        words = line.split()
        try:
            ip = parse_ip(words[0])
        except ValueError:
            warnings.append(f"{source}:{number}: unrecognised neighbour line: {line.strip()}")
            continue
        fields: dict[str, Any] = {}
        states: set[str] = set()
        i = 1
        while i < len(words):
            key = words[i]
            value = words[i + 1] if i + 1 < len(words) else None
            if key in ("dev", "lladdr") and value is not None:
                fields[key] = value.lower() if key == "lladdr" else value
                i += 2
            elif key in ("proto", "vrf", "nud") and value is not None:
                i += 2
            elif key.upper() in STATES:
                states.add(key.upper())
                i += 1
            elif key in ("router", "proxy"):
                fields[key] = True
                i += 1
            elif key in ("extern_learn", "offload", "managed", "used"):
                i += 1
            else:
                warnings.append(f"{source}:{number}: unrecognised neighbour token {key!r} (ignored)")
                i += 1
        entries.append(NeighEntry(ip=ip, source=SourceRef(source, number, line.rstrip()),
                                  states=frozenset(states), **fields))
    return tuple(entries), tuple(warnings)


def _parse_json(text: str, source: str) -> tuple[tuple[NeighEntry, ...], tuple[str, ...]]:
    items, warnings = json_array(text, source)
    entries: list[NeighEntry] = []
    for index, line, item in items:
        try:
            entries.append(
                NeighEntry(
                    ip=parse_ip(item["dst"]),
                    source=SourceRef(source, line, json.dumps(item, separators=(",", ":"))),
                    dev=item.get("dev"),
                    lladdr=str(item["lladdr"]).lower() if item.get("lladdr") else None,
                    states=frozenset(str(s).upper() for s in item.get("state", []) or []),
                    router="router" in item,
                    proxy="proxy" in item,
                )
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            warnings.append(f"{source}:{line}: unrecognised neighbour entry #{index + 1} ({exc})")
    return tuple(entries), tuple(warnings)
