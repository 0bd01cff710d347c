"""``conntrack -L`` (plain or ``-o extended``) -> ``ConntrackEntry``.

A line is ``PROTO PROTONUM TIMEOUT [STATE] src= dst= [sport= dport= | type= code= id=] [flags]
src= dst= ... [ASSURED] [mark=N] [zone=N] use=N``: the first key set is the original direction,
the second the reply direction.
"""

from __future__ import annotations

import re
from typing import Any

from analyzer.inputs.ip_route import iter_lines, parse_ip
from analyzer.model.node import ConntrackEntry, ConntrackTuple
from analyzer.model.refs import SourceRef

_SUMMARY = re.compile(r"^conntrack v[\d.]+ .*flow entries have been shown", re.I)
_TUPLE_KEYS = {"src", "dst", "sport", "dport", "type", "code", "id"}


def parse_conntrack(text: str, source: str) -> tuple[tuple[ConntrackEntry, ...], tuple[str, ...]]:
    entries: list[ConntrackEntry] = []
    warnings: list[str] = []
    for number, line in iter_lines(text):
        stripped = line.strip()
        if _SUMMARY.match(stripped):
            continue
        try:
            entries.append(_parse_line(stripped, SourceRef(source, number, line.rstrip())))
        except (ValueError, IndexError) as exc:
            warnings.append(f"{source}:{number}: unrecognised conntrack line ({exc}): {stripped}")
    return tuple(entries), tuple(warnings)


def _parse_line(line: str, ref: SourceRef) -> ConntrackEntry:
    words = line.split()
    fields: dict[str, Any] = {}
    if words[0] in ("ipv4", "ipv6"):  # -o extended: "ipv4 2 tcp 6 ..."
        fields["family"] = words[0]
        words = words[2:]
    proto = words[0]
    if not words[1].isdigit():
        raise ValueError("no protocol number")
    fields["protonum"] = int(words[1])
    rest = words[2:]
    if rest and rest[0].isdigit():
        fields["timeout"] = int(rest[0])
        rest = rest[1:]
    tuples: list[dict[str, str]] = []
    for word in rest:
        key, sep, value = word.partition("=")
        if sep and key in _TUPLE_KEYS:
            if key == "src" or not tuples:
                tuples.append({})
            tuples[-1][key] = value
        elif sep and key in ("mark", "zone", "use"):
            fields[key] = int(value, 0)
        elif sep:
            continue  # secctx=, labels=, helper=, delta-time=, packets=, bytes=, timestamp ...
        elif word == "[ASSURED]":
            fields["assured"] = True
        elif word == "[UNREPLIED]":
            fields["unreplied"] = True
        elif word.startswith("["):  # [OFFLOAD], [HW_OFFLOAD] and other status words
            continue
        elif word.isupper() and not tuples:
            fields["state"] = word
        else:
            raise ValueError(f"unexpected {word!r}")
    if len(tuples) < 1:
        raise ValueError("no src=/dst= tuple")
    fields["orig"] = _tuple(tuples[0])
    if len(tuples) > 1:
        fields["reply"] = _tuple(tuples[1])
    return ConntrackEntry(proto=proto, source=ref, **fields)


def _tuple(values: dict[str, str]) -> ConntrackTuple:
    def num(key: str) -> int | None:
        return int(values[key]) if key in values else None

    return ConntrackTuple(
        src=parse_ip(values["src"]), dst=parse_ip(values["dst"]), sport=num("sport"), dport=num("dport"),
        icmp_type=num("type"), icmp_code=num("code"), icmp_id=num("id"),
    )
