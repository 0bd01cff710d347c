"""``ip route show [table all]`` (text, any iproute2 version) and ``ip -j route`` -> ``Route``."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Iterator
from typing import Any

from analyzer.model.node import ROUTE_TYPES, IPAddress, IPNetwork, Route, table_name
from analyzer.model.refs import SourceRef

#: options that take one argument (value ignored unless the model keeps it)
_ARG_OPTIONS = frozenset(
    {"dev", "via", "table", "proto", "protocol", "scope", "src", "metric", "preference", "mtu", "tos",
     "dsfield", "pref", "expires", "error", "realm", "realms", "advmss", "window", "rtt", "rttvar",
     "ssthresh", "cwnd", "initcwnd", "initrwnd", "hoplimit", "reordering", "features", "quickack",
     "congctl", "fastopen_no_cookie", "nhid", "weight", "rto_min", "from", "iif", "uid", "mark",
     "cache", "ipid", "age", "used", "users"}
)
_FLAGS = frozenset(
    {"onlink", "linkdown", "dead", "pervasive", "offload", "trap", "notify", "rt_offload",
     "rt_trap", "offload_failed", "rt_offload_failed", "lock", "cloned"}
)


def iter_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for every non-blank line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def json_item_lines(text: str) -> list[int]:
    """1-based line of each element of a top-level JSON array (``ip -j -p`` spreads them over lines)."""
    lines: list[int] = []
    depth = 0
    line = 1
    expecting = False  # at depth 1, after "[" or ",": the next non-blank character starts an element
    in_string = escaped = False
    for char in text:
        if char == "\n":
            line += 1
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if depth == 1 and expecting and not char.isspace() and char not in ",]":
            lines.append(line)
            expecting = False
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth == 1:
                expecting = True
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 1:
            expecting = True
    return lines


def json_array(text: str, source: str) -> tuple[list[tuple[int, int, Any]], list[str]]:
    """The elements of an ``ip -j`` array as (0-based index, 1-based line, element), and the
    one-line warning when the text is not JSON at all."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [f"{source}:{exc.lineno}: unrecognised JSON ({exc.msg})"]
    at = json_item_lines(text)
    items = data if isinstance(data, list) else []
    return [(i, at[i] if i < len(at) else 1, item) for i, item in enumerate(items)], []


def parse_ip(value: str) -> IPAddress:
    return ipaddress.ip_address(value.split("%", 1)[0])


def parse_dst(value: str, family: int | None = None) -> IPNetwork:
    if value == "default" or value == "all":
        return ipaddress.ip_network("::/0" if family == 6 else "0.0.0.0/0")
    return ipaddress.ip_network(value, strict=False)


def parse_ip_route(text: str, source: str) -> tuple[tuple[Route, ...], tuple[str, ...]]:
    """Parse ``ip route`` text, or ``ip -j route`` JSON (recognised by its leading ``[``)."""
    if text.lstrip().startswith("["):
        return _parse_json(text, source)
    routes: list[Route] = []
    warnings: list[str] = []
    for number, line in iter_lines(text):
        ref = SourceRef(source, number, line.rstrip())
        stripped = line.strip()
        if line[:1].isspace() and stripped.startswith("nexthop"):
            if not routes:
                warnings.append(f"{source}:{number}: unrecognised route line (nexthop without a route): {stripped}")
                continue
            hop = _parse_nexthop(stripped.split()[1:])
            last = routes[-1]
            hops = last.nexthops + (hop,)
            routes[-1] = dataclasses.replace(
                last, nexthops=hops, via=last.via or hop[0], dev=last.dev or hop[1]
            )
            continue
        if stripped.startswith("cache"):
            continue
        if stripped.startswith(("Error", "RTNETLINK", "Cannot ")):
            warnings.append(f"{source}:{number}: the command reported an error here: {stripped}")
            continue
        try:
            route, problems = _parse_line(stripped, ref)
        except ValueError as exc:
            warnings.append(f"{source}:{number}: unrecognised route line ({exc}): {stripped}")
            continue
        warnings.extend(f"{source}:{number}: {p}" for p in problems)
        routes.append(route)
    return tuple(routes), tuple(warnings)


def _parse_nexthop(tokens: list[str]) -> tuple[IPAddress | None, str | None]:
    via: IPAddress | None = None
    dev: str | None = None
    i = 0
    while i < len(tokens):
        if tokens[i] == "via" and i + 1 < len(tokens):
            j = i + 2 if tokens[i + 1] in ("inet", "inet6") else i + 1
            via = parse_ip(tokens[j])
            i = j + 1
            continue
        if tokens[i] == "dev" and i + 1 < len(tokens):
            dev = tokens[i + 1]
            i += 2
            continue
        i += 1
    return via, dev


def _parse_line(line: str, ref: SourceRef) -> tuple[Route, list[str]]:
    tokens = line.split()
    problems: list[str] = []
    rtype = "unicast"
    if tokens[0] in ROUTE_TYPES:
        rtype = tokens.pop(0)
    if not tokens:
        raise ValueError("no destination")
    dst_text = tokens.pop(0)
    if not (dst_text == "default" or re.match(r"^[0-9a-fA-F:.]+(/\d+)?$", dst_text)):
        raise ValueError(f"bad destination {dst_text!r}")
    fields: dict[str, object] = {}
    hint6 = ":" in dst_text
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _FLAGS:
            if tok == "onlink":
                fields["onlink"] = True
            i += 1
            continue
        if tok in _ARG_OPTIONS and i + 1 < len(tokens):
            value = tokens[i + 1]
            i += 2
            if tok == "via":
                if value in ("inet", "inet6") and i < len(tokens):
                    value = tokens[i]
                    i += 1
                fields["via"] = parse_ip(value)
                hint6 = hint6 or ":" in value
            elif tok == "dev":
                fields["dev"] = value
            elif tok == "table":
                fields["table"] = table_name(value)
            elif tok in ("proto", "protocol"):
                fields["proto"] = value
            elif tok == "scope":
                fields["scope"] = value
            elif tok == "src":
                fields["src"] = parse_ip(value)
                hint6 = hint6 or ":" in value
            elif tok in ("metric", "preference"):
                fields["metric"] = int(value)
            elif tok == "mtu":
                if value == "lock" and i < len(tokens):
                    value = tokens[i]
                    i += 1
                fields["mtu"] = int(value)
            elif tok in ("tos", "dsfield"):
                fields["tos"] = int(value, 0)
            elif tok == "pref":
                hint6 = True
            elif tok in ("expires", "hoplimit"):
                hint6 = True if tok == "hoplimit" else hint6
            continue
        problems.append(f"unrecognised route option {tok!r} (ignored)")
        i += 1
    dst = parse_dst(dst_text, 6 if hint6 else 4)
    return Route(dst=dst, source=ref, type=rtype, **fields), problems  # type: ignore[arg-type]


def _parse_json(text: str, source: str) -> tuple[tuple[Route, ...], tuple[str, ...]]:
    items, warnings = json_array(text, source)
    routes: list[Route] = []
    for index, line, item in items:
        ref = SourceRef(source, line, json.dumps(item, separators=(",", ":")))
        try:
            gateway = item.get("gateway")
            prefsrc = item.get("prefsrc")
            hint6 = any(":" in str(v) for v in (item.get("dst", ""), gateway or "", prefsrc or ""))
            mtu = None
            for metric in item.get("metrics", []) or []:
                if isinstance(metric, dict) and "mtu" in metric:
                    mtu = int(metric["mtu"])
            nexthops = tuple(
                (parse_ip(h["gateway"]) if h.get("gateway") else None, h.get("dev"))
                for h in item.get("nexthops", []) or []
            )
            via = parse_ip(gateway) if gateway else (nexthops[0][0] if nexthops else None)
            routes.append(
                Route(
                    dst=parse_dst(str(item["dst"]), 6 if hint6 else 4),
                    source=ref,
                    table=table_name(item.get("table", "main")),
                    type=item.get("type", "unicast"),
                    dev=item.get("dev") or (nexthops[0][1] if nexthops else None),
                    via=via,
                    metric=int(item.get("metric", 0)),
                    src=parse_ip(prefsrc) if prefsrc else None,
                    scope=item.get("scope"),
                    proto=item.get("protocol"),
                    onlink="onlink" in (item.get("flags") or []),
                    mtu=mtu,
                    nexthops=nexthops,
                )
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            warnings.append(f"{source}:{line}: unrecognised route entry #{index + 1} ({exc})")
    return tuple(routes), tuple(warnings)
