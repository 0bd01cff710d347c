"""``nft list ruleset`` (text, as nft prints it) -> ``NftRuleset``.

Tables, chains (with ``type ... hook ... priority ...; policy ...;``), named sets and maps (with
their elements, each on the line nft printed it, ``elements = { ... }`` spanning lines), and each
rule with its 1-based line. A rule is split into match expressions (``selector [!=] value|{ set }``,
``meta mark & M == V``), set lookups (``ip daddr @cluster-ips``, concatenations
``ip daddr . meta l4proto . th dport``), a verdict map (``vmap @service-ips``, ``numgen random mod N
vmap { ... }``), statements (``meta mark set meta mark | 0x4000``, ``dnat to``, ``masquerade``,
``snat to``, ``redirect to``) and its verdict: the kube-proxy nftables mode in full. Statements this
reader does not evaluate (``limit``, ``ct mark set``, data maps...) are kept in ``unknown`` so a walk
can say it cannot decide there. Lines it cannot read become warnings ``file:line: ...`` and are
skipped.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from analyzer.inputs.dumpfile import read_dump_text
from analyzer.model.nft import (
    NftChain,
    NftElement,
    NftLookup,
    NftMatch,
    NftRule,
    NftRuleset,
    NftSet,
    NftStatement,
    NftTable,
    NftVmap,
)
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
    "ct direction", "icmp type", "icmpv6 type", "icmp code", "fib daddr type", "fib saddr type", "iifname",
    "oifname", "iif", "oif", "l4proto", "mark",
)
_SELECTOR_WORDS = tuple((s, tuple(s.split())) for s in _SELECTORS)
_ALIASES = {"meta iifname": "iifname", "meta oifname": "oifname", "meta iif": "iif", "meta oif": "oif",
            "l4proto": "meta l4proto", "mark": "meta mark"}
_NAT_FLAGS = {"random", "fully-random", "persistent"}
_VERDICTS = {"accept", "drop", "reject", "return", "continue", "queue"}
_IGNORED = {"counter", "notrack"}  # statements without effect on the verdict


def parse_nft_ruleset(text: str, file: str) -> NftRuleset:
    tables: list[NftTable] = []
    warnings: list[str] = []
    table: dict | None = None
    chain: dict | None = None
    warned_xt = False
    skip = 0  # depth inside a table-level block that is not a chain, set or map (flowtable, counter...)
    nset: dict | None = None  # the set or map being read
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if nset is not None:
            if _set_line(nset, line, SourceRef(file, n, line), warnings) and table is not None:
                table["sets"].append(_set(nset))
                nset = None
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
                     "source": SourceRef(file, n, raw.rstrip()), "sets": []}
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
            m = re.fullmatch(r"(set|map)\s+(\S+)\s*\{", line)
            if m:
                nset = {"kind": m.group(1), "name": m.group(2), "source": SourceRef(file, n, raw.rstrip()),
                        "type": (), "value": None, "flags": (), "elements": [], "timeout": False, "in": False}
                continue
            # stateful objects, flowtables: their bodies (which may span lines) are not read
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
        chain["rules"].append(parse_rule(line, SourceRef(file, n, line)))
    last = len(text.splitlines())
    if chain is not None or table is not None or nset is not None:
        inside = (f"chain {chain['name']}" if chain else f"{nset['kind']} {nset['name']}" if nset
                  else f"table {table['name'] if table else ''}")
        warnings.append(f"{file}: the ruleset ends inside {inside}: cut off? (what follows line {last} is missing)")
        if table is not None:
            if chain is not None:
                rules = chain["rules"]
                if rules and rules[-1].source.line == last and not text.endswith("\n"):
                    # the line the dump ends in may have lost its end (as iptables-save's last line)
                    rules[-1] = replace(rules[-1], unknown=(*rules[-1].unknown, "a line the dump is cut off in "
                                                            "(its end may be missing)"))
                table["chains"].append(_chain(chain, cut=True))
            table["cut_at"] = last
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


def _chain(c: dict, cut: bool = False) -> NftChain:
    return NftChain(name=c["name"], hook=c["hook"], type=c["type"], priority=c["priority"], policy=c["policy"],
                    rules=tuple(c["rules"]), source=c["source"], cut=cut)


def _table(t: dict) -> NftTable:
    chains = tuple(t["chains"])
    xt = t["xt"] or (t["family"] in ("ip", "ip6") and t["name"] in _IPTABLES_TABLES
                     and all(c.name in _XT_CHAINS for c in chains if c.hook is not None))
    return NftTable(family=t["family"], name=t["name"], chains=chains, by_iptables=xt, source=t["source"],
                    sets=tuple(t["sets"]), cut_at=t.get("cut_at"))


def _set(d: dict) -> NftSet:
    return NftSet(name=d["name"], kind=d["kind"], key_type=d["type"], value_type=d["value"], flags=d["flags"],
                  elements=tuple(d["elements"]), source=d["source"], timeout=d["timeout"])


def _set_line(d: dict, line: str, source: SourceRef, warnings: list[str]) -> bool:
    """Read one line of a set or map body into ``d``; True when the line closes the set."""
    if not d["in"] and line == "}":
        return True
    if d["in"] or line.startswith("elements"):  # "elements = { ... }", or a line inside it
        body = line
        if not d["in"]:
            body = line.split("=", 1)[1].strip() if "=" in line else ""
            body = body[1:] if body.startswith("{") else body
        body, closed = _strip_close(body)
        for el in parse_elements(body, source):
            if d["type"] and len(el.key) != len(d["type"]):  # the walk calls a lookup of it unknown
                warnings.append(f"{source.file}:{source.line}: element {' . '.join(el.key)} of {d['kind']} "
                                f"{d['name']} has {len(el.key)} parts, its type {' . '.join(d['type'])} has "
                                f"{len(d['type'])}")
            d["elements"].append(el)
        d["in"] = not closed
        return False
    if line.startswith("type ") or line.startswith("typeof "):
        spec = line.split(None, 1)[1].rstrip(";")
        key, _, value = spec.partition(" : ")
        d["type"] = tuple(k.strip() for k in key.split(" . "))
        d["value"] = value.strip() or None
    elif line.startswith("flags "):
        d["flags"] = tuple(f.strip() for f in line[6:].rstrip(";").split(","))
    elif line.startswith("timeout "):
        d["timeout"] = True
    elif not line.startswith(("comment ", "size ", "policy ", "auto-merge", "counter", "gc-interval")):
        warnings.append(f"{source}: unread line in {d['kind']} {d['name']}: {line[:80]}")
    return False


def _strip_close(text: str) -> tuple[str, bool]:
    """``text`` without the ``}`` that closes an element list (outside quotes), and whether it had one."""
    quoted = False
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c == "}" and not quoted:
            return text[:i], True
    return text, False


def _split_top(text: str, sep: str = ",") -> list[str]:
    out, cur, quoted = [], [], False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return [p.strip() for p in out if p.strip()]


def parse_elements(text: str, source: SourceRef) -> list[NftElement]:
    """``10.96.0.100 . tcp . 80 : goto service-X, 10.96.0.10 . udp . 53 : goto service-Y comment "dns"``."""
    out = []
    for part in _split_top(text):
        comment = None
        m = re.search(r'\s*comment\s+"([^"]*)"', part)
        if m:
            comment = m.group(1)
            part = part[: m.start()] + part[m.end():]
        part = re.sub(r"\s+(timeout|expires)\s+\S+", "", part)
        part = re.sub(r"\s+counter\s+packets\s+\d+\s+bytes\s+\d+", "", part).strip()
        key, sep, value = part.partition(" : ")
        out.append(NftElement(tuple(k.strip().strip('"') for k in key.split(" . ")), value.strip() if sep else None,
                              source, comment))
    return out


_TOKEN = re.compile(r'\{[^}]*(?:\}|$)|"[^"]*(?:"|$)|\S+')


def _tokens(text: str) -> list[str]:
    """Words, with ``{ a, b }`` sets and ``"quoted"`` strings kept whole."""
    return _TOKEN.findall(text)


def _values(token: str) -> tuple[str, ...]:
    if token.startswith("{"):
        inner = token.strip("{} ")
        return tuple(v.strip().strip('"') for v in inner.split(",") if v.strip())
    return tuple(v.strip('"') for v in token.split(","))


_BY_FIRST: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}
for _sel, _words in _SELECTOR_WORDS:
    _BY_FIRST[_words[0]] = (*_BY_FIRST.get(_words[0], ()), (_sel, _words))


def _selector(toks: list[str], i: int) -> str | None:
    for sel, words in _BY_FIRST.get(toks[i], ()) if i < len(toks) else ():
        if tuple(toks[i : i + len(words)]) == words:
            return sel
    return None


def parse_rule(text: str, source: SourceRef) -> NftRule:  # noqa: C901, PLR0912, PLR0915
    comment = None
    m = re.search(r'\s+comment\s+"([^"]*)"\s*$', text)
    if m:
        comment = m.group(1)
        text = text[: m.start()]
    toks = _tokens(text)
    matches: list[NftMatch] = []
    lookups: list[NftLookup] = []
    statements: list[NftStatement] = []
    unknown: list[str] = []
    vmap: NftVmap | None = None
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
        if t == "numgen" and len(toks) >= i + 6 and toks[i + 2] == "mod" and toks[i + 3].isdigit():
            mode, mod, j = toks[i + 1], int(toks[i + 3]), i + 4
            offset = 0
            if toks[j : j + 1] == ["offset"] and j + 1 < len(toks) and toks[j + 1].isdigit():
                offset, j = int(toks[j + 1]), j + 2
            if toks[j : j + 1] == ["vmap"] and j + 1 < len(toks) and toks[j + 1].startswith("{"):
                vmap = NftVmap((f"numgen {mode} mod {mod}",), None, tuple(parse_elements(toks[j + 1][1:-1], source)),
                               (mode, mod, offset))
                i = j + 2
                continue
            unknown.append(" ".join(toks[i:j + 1]))
            i = j + 1
            continue
        if t in ("dnat", "snat"):
            j = i + 1
            if toks[j : j + 1] in (["ip"], ["ip6"]):
                j += 1
            if toks[j : j + 1] == ["to"] and j + 1 < len(toks) and toks[j + 2 : j + 3] != ["map"]:
                statements.append(NftStatement(t, (toks[j + 1],)))
                j += 2
                while j < len(toks) and toks[j] in _NAT_FLAGS:
                    j += 1
                i = j
                continue
            unknown.append(" ".join(toks[i:]))
            break
        if t in ("masquerade", "redirect"):
            j, args = i + 1, []
            while j < len(toks) and (toks[j] in _NAT_FLAGS or toks[j] == "to"):
                if toks[j] == "to" and j + 1 < len(toks):
                    args.append("to " + toks[j + 1])
                    j += 2
                else:
                    args.append(toks[j])
                    j += 1
            statements.append(NftStatement(t, tuple(args)))
            i = j
            continue
        if t == "ct" and toks[i + 2 : i + 3] == ["set"]:  # ct mark set 0x1, ct helper set "ftp"
            unknown.append(" ".join(toks[i : i + 4]))
            i += 4
            continue
        if t == "limit" and toks[i + 1 : i + 2] == ["rate"] and toks[i + 2 : i + 3] != ["over"]:
            # a rate limit lets a packet through while the traffic stays under it: a single packet does
            i += 3
            if toks[i : i + 1] == ["burst"]:
                i += 3
            continue
        if t in ("update", "add") and i + 2 < len(toks) and toks[i + 1].startswith("@"):
            statements.append(NftStatement("update", (toks[i + 1], toks[i + 2])))
            i += 3
            continue
        sel = _selector(toks, i)
        if sel is not None:
            keys = [_ALIASES.get(sel, sel)]
            j = i + len(sel.split())
            while toks[j : j + 1] == ["."]:
                nxt = _selector(toks, j + 1)
                if nxt is None:
                    break
                keys.append(_ALIASES.get(nxt, nxt))
                j += 1 + len(nxt.split())
            if toks[j : j + 1] == ["."]:
                unknown.append(" ".join(toks[i:]))
                break
            if keys == ["meta mark"] and toks[j : j + 1] == ["set"]:
                expr = toks[j + 1 :]
                if expr[:2] in (["meta", "mark"], ["mark"]) or expr[:1] == ["mark"]:
                    expr = expr[2:] if expr[:2] == ["meta", "mark"] else expr[1:]
                    if len(expr) >= 2 and expr[0] in ("|", "^", "&", "or", "xor", "and"):
                        op = {"or": "|", "xor": "^", "and": "&"}.get(expr[0], expr[0])
                        statements.append(NftStatement("mark", (op, expr[1])))
                        i = len(toks) - len(expr) + 2
                        continue
                elif expr:
                    statements.append(NftStatement("mark", ("=", expr[0])))
                    i = j + 2
                    continue
                unknown.append(" ".join(toks[i:]))
                break
            mask = None
            if len(keys) == 1 and toks[j : j + 1] == ["&"] and j + 1 < len(toks):
                mask, j = toks[j + 1], j + 2
            op = "=="
            if j < len(toks) and toks[j] in ("!=", "=="):
                op = toks[j]
                j += 1
            if j >= len(toks):
                unknown.append(" ".join(toks[i:]))
                break
            value = toks[j]
            if value == "vmap" and j + 1 < len(toks):
                ref = toks[j + 1]
                if ref.startswith("@"):
                    vmap = NftVmap(tuple(keys), ref[1:])
                else:
                    vmap = NftVmap(tuple(keys), None, tuple(parse_elements(ref.strip("{}"), source)))
                i = j + 2
                continue
            if value in ("map", "set") or value.startswith(("<", ">")) or op not in ("==", "!="):
                unknown.append(" ".join(toks[i : j + 2]))
                i = j + 2
                continue
            if value.startswith("@"):
                lookups.append(NftLookup(tuple(keys), op, value[1:]))
            elif len(keys) > 1:
                if value.startswith("{"):
                    lookups.append(NftLookup(tuple(keys), op, None, tuple(parse_elements(value[1:-1], source))))
                else:
                    parts = [toks[j]]
                    while toks[j + 1 : j + 2] == ["."] and j + 2 < len(toks):
                        parts.append(toks[j + 2])
                        j += 2
                    el = NftElement(tuple(p.strip('"') for p in parts), None, source)
                    lookups.append(NftLookup(tuple(keys), op, None, (el,)))
            else:
                matches.append(NftMatch(keys[0], op, _values(value), mask))
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
                   unknown=tuple(unknown), lookups=tuple(lookups), vmap=vmap, statements=tuple(statements),
                   comment=comment)


def read_nft_ruleset(path: str | Path, display: str | None = None) -> NftRuleset:
    """Read and parse an ``nft list ruleset`` file; an unreadable or binary file raises ``InputError``."""
    name, text = read_dump_text(path, display, "`nft list ruleset`")
    return parse_nft_ruleset(text, name)
