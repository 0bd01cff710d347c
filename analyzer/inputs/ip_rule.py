"""``ip rule show`` (text) and ``ip -j rule show`` -> ``IpRule`` (policy routing)."""

from __future__ import annotations

import json
import re

from analyzer.inputs.ip_route import iter_lines, json_array, parse_dst
from analyzer.model.node import IpRule, table_name
from analyzer.model.refs import SourceRef

_LINE = re.compile(r"^(\d+):\s+(.*)$")
_DROP_ACTIONS = frozenset({"blackhole", "unreachable", "prohibit", "nop"})


def default_rules(source: str = "(kernel default rules)") -> tuple[IpRule, ...]:
    """The three rules every Linux kernel starts with (used when no ``ip rule`` dump is given)."""
    return (
        IpRule(0, SourceRef(source, 1, "0:\tfrom all lookup local"), table="local"),
        IpRule(32766, SourceRef(source, 2, "32766:\tfrom all lookup main"), table="main"),
        IpRule(32767, SourceRef(source, 3, "32767:\tfrom all lookup default"), table="default"),
    )


def parse_ip_rule(text: str, source: str) -> tuple[tuple[IpRule, ...], tuple[str, ...]]:
    if text.lstrip().startswith("["):
        return _parse_json(text, source)
    rules: list[IpRule] = []
    warnings: list[str] = []
    for number, line in iter_lines(text):
        ref = SourceRef(source, number, line.rstrip())
        match = _LINE.match(line.strip())
        if not match:
            warnings.append(f"{source}:{number}: unrecognised rule line: {line.strip()}")
            continue
        try:
            rule, problems = _parse_tokens(int(match.group(1)), match.group(2).split(), ref)
        except (ValueError, IndexError) as exc:
            warnings.append(f"{source}:{number}: unrecognised rule line ({exc}): {line.strip()}")
            continue
        warnings.extend(f"{source}:{number}: {p}" for p in problems)
        rules.append(rule)
    return tuple(rules), tuple(warnings)


def _parse_tokens(pref: int, tokens: list[str], ref: SourceRef) -> tuple[IpRule, list[str]]:
    fields: dict[str, object] = {}
    problems: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        arg = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok == "not":
            fields["invert"] = True
            i += 1
        elif tok in ("from", "to") and arg is not None:
            if arg != "all":
                net = parse_dst(arg)
                fields["src" if tok == "from" else "dst"] = net
                if net.version == 6:
                    fields["family"] = 6
            i += 2
        elif tok in ("iif", "oif") and arg is not None:
            fields[tok] = arg
            i += 2
            if i < len(tokens) and tokens[i] == "[detached]":
                i += 1
        elif tok == "fwmark" and arg is not None:
            mark, _, mask = arg.partition("/")
            fields["fwmark"] = int(mark, 0)
            if mask:
                fields["fwmask"] = int(mask, 0)
            i += 2
        elif tok in ("tos", "dsfield") and arg is not None:
            fields["tos"] = int(arg, 16) if not arg.isdigit() else int(arg)
            i += 2
        elif tok in ("lookup", "table") and arg is not None:
            fields["action"] = "table"
            fields["table"] = table_name(arg)
            i += 2
        elif tok == "goto" and arg is not None:
            fields["action"] = "goto"
            fields["goto"] = int(arg)
            i += 2
        elif tok in _DROP_ACTIONS:
            fields["action"] = tok
            i += 1
        elif tok == "suppress_prefixlength" and arg is not None:
            fields["suppress_prefixlength"] = int(arg)
            i += 2
        elif tok in ("proto", "protocol", "realms", "ipproto", "sport", "dport", "uidrange", "l3mdev",
                     "priority", "pref", "preference", "suppress_ifgroup", "nat", "map-to") and arg is not None:
            if tok not in ("proto", "protocol"):
                problems.append(f"rule selector {tok!r} is not modelled (treated as matching)")
            i += 2
        elif tok in ("[detached]", "unresolved", "l3mdev"):
            i += 1
        else:
            problems.append(f"unrecognised rule token {tok!r} (ignored)")
            i += 1
    return IpRule(pref=pref, source=ref, **fields), problems  # type: ignore[arg-type]


def _parse_json(text: str, source: str) -> tuple[tuple[IpRule, ...], tuple[str, ...]]:
    items, warnings = json_array(text, source)
    rules: list[IpRule] = []
    for index, line, item in items:
        ref = SourceRef(source, line, json.dumps(item, separators=(",", ":")))
        try:
            tokens: list[str] = []
            if "not" in item:
                tokens.append("not")
            for key, word in (("src", "from"), ("dst", "to")):
                if key in item and item[key] != "all":
                    length = item.get(f"{key}len")
                    tokens += [word, f"{item[key]}/{length}" if length is not None else item[key]]
            for key, word in (("iif", "iif"), ("iifname", "iif"), ("oif", "oif"), ("oifname", "oif")):
                if key in item:
                    tokens += [word, item[key]]
            if "fwmark" in item:
                tokens += ["fwmark", f"{item['fwmark']}/{item['fwmask']}" if "fwmask" in item else item["fwmark"]]
            if "table" in item:
                tokens += ["lookup", str(item["table"])]
            if "target" in item:
                tokens += ["goto", str(item["target"])]
            if item.get("action") in _DROP_ACTIONS:
                tokens.append(item["action"])
            if "suppress_prefixlen" in item:
                tokens += ["suppress_prefixlength", str(item["suppress_prefixlen"])]
            rule, problems = _parse_tokens(int(item["priority"]), tokens, ref)
            warnings.extend(f"{source}:{line}: {p}" for p in problems)
            rules.append(rule)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            warnings.append(f"{source}:{line}: unrecognised rule entry #{index + 1} ({exc})")
    return tuple(rules), tuple(warnings)
