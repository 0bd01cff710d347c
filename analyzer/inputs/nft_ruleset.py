"""``nft list ruleset`` (text, as nft prints it) -> ``NftRuleset``.

Tables, chains (with ``type ... hook ... priority ...; policy ...;``), and each rule with its
1-based line. A rule is split into match expressions (``selector [!=] value|{ set }``) and its
verdict; statements this reader does not evaluate (``log``, ``limit``, ``meta mark set``, maps,
named sets) are kept in ``unknown`` so a walk can say it cannot decide there. Lines it cannot read
become warnings ``file:line: ...`` and are skipped.
"""

from __future__ import annotations

import re

from analyzer.model.nft import NftChain, NftMatch, NftRule, NftRuleset, NftTable
from analyzer.model.refs import SourceRef

#: priority names nft prints (``priority filter + 10``)
_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100, "out": 100}
_IPTABLES_TABLES = {"filter", "nat", "mangle", "raw", "security"}
_XT_CHAINS = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}
#: selectors of one or two words whose value follows (the longest are tried first)
_SELECTORS = (
    "ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr", "ip protocol", "ip6 nexthdr", "meta l4proto", "meta nfproto",
    "meta iifname", "meta oifname", "meta iif", "meta oif", "meta pkttype", "meta mark", "tcp dport", "tcp sport",
    "udp dport", "udp sport", "th dport", "th sport", "sctp dport", "sctp sport", "ct state", "ct status",
    "ct direction", "icmp type", "icmpv6 type", "icmp code", "fib daddr type", "iifname", "oifname", "iif", "oif",
    "l4proto", "mark",
)
_VERDICTS = {"accept", "drop", "reject", "return", "continue", "queue"}
_IGNORED = {"counter", "notrack"}  # statements without effect on the verdict


def parse_nft_ruleset(text: str, file: str) -> NftRuleset:
    tables: list[NftTable] = []
    warnings: list[str] = []
    table: dict | None = None
    chain: dict | None = None
    warned_xt = False
    skip = 0  # depth inside a table-level block that is not a chain (set, map...)
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if skip > 0:
            skip += line.count("{") - line.count("}")
            continue
        if line.startswith("#"):
            warned_xt = warned_xt or "managed by iptables-nft" in line
            continue
        m = re.fullmatch(r"table\s+(\w+)\s+(\S+)\s*\{", line)
        if m:
            if table is not None:
                warnings.append(f"{file}:{n}: table {m.group(2)} starts before table {table['name']} ends")
            table = {"family": m.group(1), "name": m.group(2), "chains": [], "xt": warned_xt,
                     "source": SourceRef(file, n, raw.rstrip())}
            warned_xt = False
            continue
        if table is None:
            warnings.append(f"{file}:{n}: outside any table: {line[:80]}")
            continue
        m = re.fullmatch(r"chain\s+(\S+)\s*\{(\s*\})?", line)
        if m:
            chain = {"name": m.group(1), "hook": None, "type": None, "priority": 0, "policy": "accept", "rules": [],
                     "source": SourceRef(file, n, raw.rstrip())}
            if m.group(2):  # "chain x { }" on one line
                table["chains"].append(_chain(chain))
                chain = None
            continue
        if line == "}":
            if chain is not None:
                table["chains"].append(_chain(chain))
                chain = None
            else:
                tables.append(_table(table))
                table = None
            continue
        if chain is None:
            # named sets, maps and stateful objects: their bodies (which may span lines) are not read
            skip = line.count("{") - line.count("}")
            continue
        if line.startswith("type "):
            m = re.match(r"type\s+(\w+)\s+hook\s+(\w+)(?:\s+device\s+\S+)?\s+priority\s+([^;]+);(?:\s*policy\s+(\w+);)?",
                         line)
            if m is None:
                warnings.append(f"{file}:{n}: unreadable chain header: {line[:80]}")
                continue
            chain["type"], chain["hook"], chain["priority"] = m.group(1), m.group(2), _priority(m.group(3))
            chain["policy"] = m.group(4) or "accept"
            continue
        if line.startswith("policy "):
            chain["policy"] = line.split()[1].rstrip(";")
            continue
        if line.startswith(("comment ", "devices ")):
            continue
        chain["rules"].append(parse_rule(line, SourceRef(file, n, raw.rstrip())))
    if chain is not None or table is not None:
        warnings.append(f"{file}: the ruleset ends inside {'chain ' + chain['name'] if chain else 'table'}: cut off?")
        if table is not None:
            if chain is not None:
                table["chains"].append(_chain(chain))
            tables.append(_table(table))
    return NftRuleset(file=file, tables=tuple(tables), warnings=tuple(warnings))


def _priority(text: str) -> int:
    text = text.strip()
    m = re.fullmatch(r"(-?\w+)\s*(?:([+-])\s*(\d+))?", text)
    if m is None:
        return 0
    base = m.group(1)
    value = _PRIORITIES.get(base)
    if value is None:
        try:
            value = int(base)
        except ValueError:
            value = 0
    if m.group(2):
        value += int(m.group(3)) * (1 if m.group(2) == "+" else -1)
    return value


def _chain(c: dict) -> NftChain:
    return NftChain(name=c["name"], hook=c["hook"], type=c["type"], priority=c["priority"], policy=c["policy"],
                    rules=tuple(c["rules"]), source=c["source"])


def _table(t: dict) -> NftTable:
    chains = tuple(t["chains"])
    xt = t["xt"] or (t["family"] in ("ip", "ip6") and t["name"] in _IPTABLES_TABLES
                     and all(c.name in _XT_CHAINS for c in chains if c.hook is not None))
    return NftTable(family=t["family"], name=t["name"], chains=chains, by_iptables=xt, source=t["source"])


def _tokens(text: str) -> list[str]:
    """Words, with ``{ a, b }`` sets and ``"quoted"`` strings kept whole."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "{":
            j = text.find("}", i)
            j = n - 1 if j < 0 else j
            out.append(text[i : j + 1])
            i = j + 1
        elif c == '"':
            j = text.find('"', i + 1)
            j = n - 1 if j < 0 else j
            out.append(text[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            out.append(text[i:j])
            i = j
    return out


def _values(token: str) -> tuple[str, ...]:
    if token.startswith("{"):
        inner = token.strip("{} ")
        return tuple(v.strip().strip('"') for v in inner.split(",") if v.strip())
    return tuple(v.strip('"') for v in token.split(","))


def parse_rule(text: str, source: SourceRef) -> NftRule:
    body = re.sub(r'\s+comment\s+"[^"]*"\s*$', "", text)
    toks = _tokens(body)
    matches: list[NftMatch] = []
    unknown: list[str] = []
    verdict = target = reject_with = None
    i = 0
    while i < len(toks):
        t = toks[i]
        if t in _IGNORED:
            i += 1
            if t == "counter" and toks[i : i + 1] == ["packets"]:
                i += 4  # counter packets N bytes M
            continue
        if t in ("jump", "goto") and i + 1 < len(toks):
            verdict, target = t, toks[i + 1]
            i += 2
            continue
        if t == "reject":
            verdict = "reject"
            i += 1
            if toks[i : i + 1] == ["with"]:
                # "with icmpx admin-prohibited", "with tcp reset"; nft before 1.0 printed
                # "with icmpx type admin-prohibited" (RHEL 8's firewalld)
                kind = toks[i + 1 : i + 2]
                i += 2
                if toks[i : i + 1] == ["type"]:
                    i += 1
                reject_with = " ".join(kind + toks[i : i + 1])
                i += 1
            continue
        if t in _VERDICTS:
            verdict = t
            i += 1
            continue
        sel = next((s for s in _SELECTORS if toks[i : i + len(s.split())] == s.split()), None)
        if sel is not None:
            j = i + len(sel.split())
            op = "=="
            if j < len(toks) and toks[j] in ("!=", "=="):
                op = toks[j]
                j += 1
            if j >= len(toks):
                unknown.append(" ".join(toks[i:]))
                break
            value = toks[j]
            if value.startswith("@"):  # a named set: its elements are not in this reader
                unknown.append(f"{sel} {op} {value}")
            else:
                key = {"meta iifname": "iifname", "meta oifname": "oifname", "meta iif": "iif", "meta oif": "oif",
                       "l4proto": "meta l4proto", "mark": "meta mark"}.get(sel, sel)
                matches.append(NftMatch(key, op, _values(value)))
            i = j + 1
            continue
        if t == "log":  # log [prefix "..."] [level x] [flags ...]: no verdict
            i += 1
            while i < len(toks) and toks[i] in ("prefix", "level", "flags", "group") and i + 1 < len(toks):
                i += 2
            continue
        unknown.append(t)
        i += 1
    return NftRule(source=source, matches=tuple(matches), verdict=verdict, target=target, reject_with=reject_with,
                   unknown=tuple(unknown))
