"""Lower an nftables table with NAT chains (kube-proxy's nftables mode, ``table ip kube-proxy``) into
the netfilter simulator's rule model, so the simulator walks it next to iptables' tables with the
same branches, probabilities, NAT, marks and evidence.

Each nft rule becomes one or more ``Rule`` records whose ``source`` is the nft-ruleset line:

* matches map onto the iptables matches with the same kernel semantics (``ip daddr X`` -> ``-d X``,
  ``ct state new`` -> ``-m conntrack --ctstate NEW``, ``meta mark & M == V`` -> ``-m mark --mark V/M``,
  ``fib daddr type local`` -> ``-m addrtype --dst-type LOCAL``); set lookups and address or port
  lists become an ``nft`` match the engine evaluates against the listed elements;
* a verdict map (``ip daddr . meta l4proto . th dport vmap @service-ips``) becomes one rule per
  element, citing the element's line: the packet takes the first (the only) element it matches,
  and a packet no element matches goes on with the next rule, as the kernel does;
* ``numgen random mod N vmap { 0 : goto a, 1 : goto b }`` becomes N rules with
  ``-m statistic --mode random --probability`` 1/N, 1/(N-1), ..., 1: each element gets 1/N, as
  iptables' KUBE-SVC chains spell the same choice;
* statements become targets: ``meta mark set meta mark | 0x4000`` -> ``MARK --or-mark 0x4000``,
  ``^`` -> ``--xor-mark``, ``dnat to A:P`` -> ``DNAT --to-destination A:P``, ``masquerade
  fully-random`` -> ``MASQUERADE --random-fully``, ``jump``/``goto``/``accept``/``drop``/``reject``
  keep their meaning (an ``accept`` ends only its base chain: the engine runs every base chain of a
  hook as its own unit, by priority);
* what has no equivalent becomes an ``nft-unknown`` match: the walk ends ``unknown`` there, naming
  the rule, unless a known part of the rule already fails.

A set filled at run time (kube-proxy's session-affinity sets, ``update @set``) is not a property of
the rules: a lookup in it is decided by the entries the dump lists (those of the moment it was
taken; they expire), and the outcome says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from analyzer.model.netfilter import Chain, Match, Option, Rule, RuleSet, Selector, Table
from analyzer.model.nft import NftElement, NftMatch, NftRule, NftRuleset, NftTable
from analyzer.model.refs import SourceRef

#: nft hook -> the iptables hook name the engine uses
HOOKS = {"prerouting": "PREROUTING", "input": "INPUT", "forward": "FORWARD", "output": "OUTPUT",
         "postrouting": "POSTROUTING"}
_ADDR_KEYS = {"ip saddr": ("src", 4), "ip daddr": ("dst", 4), "ip6 saddr": ("src", 6), "ip6 daddr": ("dst", 6)}
_PROTO_KEYS = ("meta l4proto", "ip protocol", "ip6 nexthdr")
_REJECT_WITH = {
    ("icmp", "port-unreachable"): "icmp-port-unreachable", ("icmp", "host-unreachable"): "icmp-host-unreachable",
    ("icmp", "net-unreachable"): "icmp-net-unreachable", ("icmp", "prot-unreachable"): "icmp-proto-unreachable",
    ("icmp", "host-prohibited"): "icmp-host-prohibited", ("icmp", "net-prohibited"): "icmp-net-prohibited",
    ("icmp", "admin-prohibited"): "icmp-admin-prohibited", ("tcp", "reset"): "tcp-reset",
    ("icmpv6", "port-unreachable"): "icmp6-port-unreachable", ("icmpv6", "admin-prohibited"): "icmp6-adm-prohibited",
}


@dataclass(frozen=True, slots=True)
class BaseChain:
    """A base chain of an nft table the simulator runs at ``hook`` (iptables' name), by priority."""

    hook: str
    priority: int
    table: str  # "ip kube-proxy"
    chain: str
    nat: bool  # a ``type nat`` chain: only a connection's first packet, and only until a NAT is chosen


@dataclass(frozen=True, slots=True)
class Lowered:
    tables: dict[str, Table]
    chains: tuple[BaseChain, ...]
    no_iptables: RuleSet  # what a node without iptables-save of this family walks beside them (one object: engines are cached by it)


def kube_proxy_names(chain: str) -> tuple[str, str | None] | None:
    """("ns/name:port", "ip:port" or None) from kube-proxy's nftables chain names
    ``service-HASH-ns/name/proto/port`` and ``endpoint-HASH-ns/name/proto/port__IP/PORT`` (an IPv6
    endpoint's colons written as dots); None for other chains."""
    kind, _, rest = chain.partition("-")
    if kind not in ("service", "endpoint", "external") or "-" not in rest:
        return None
    spn, _, ep = rest.split("-", 1)[1].partition("__")
    parts = spn.split("/")
    if len(parts) != 4:
        return None
    svc = f"{parts[0]}/{parts[1]}:{parts[3]}" if parts[3] else f"{parts[0]}/{parts[1]}"  # an unnamed port
    if not ep or "/" not in ep:
        return svc, None
    ip, _, port = ep.rpartition("/")
    if ip.count(".") != 3:  # IPv6: kube-proxy wrote its colons as dots
        ip = f"[{ip.replace('.', ':')}]"
    return svc, f"{ip}:{port}"


def no_endpoint_elements(nft: NftRuleset | None, ip: str, port: int | None = None) -> list[SourceRef]:
    """The lines of kube-proxy's ``@no-endpoint-services`` elements for service address ``ip`` (and
    ``port``) that send it to ``reject-chain``: what the iptables mode writes as a "has no endpoints"
    REJECT rule. A ``drop`` element is a service with endpoints, none of them for this traffic
    (internal or external traffic policy Local): not one of these."""
    out: list[SourceRef] = []
    for t in nft.own_tables() if nft is not None else ():
        s = t.set("no-endpoint-services") if t.has_nat else None
        for el in s.elements if s is not None else ():
            if el.key[0] == ip and (port is None or el.key[-1] == str(port)) and "reject" in (el.value or ""):
                out.append(el.source)
    return out


def cut_note(nft: NftRuleset | None) -> str | None:
    """What a walk cannot see when the nft-ruleset dump ends inside a table iptables-save does not
    show: its chains after that line (base chains among them: the kernel runs those at their hooks)."""
    for t in nft.own_tables() if nft is not None else ():
        if t.cut_at is not None:
            return (f"{nft.file} is cut off at line {t.cut_at} inside table {t.family} {t.name}: the chains after "
                    "that line are not in the dump, and the kernel runs its base chains at their hooks too")
    return None


class _Never(Exception):
    """The rule can never match a packet of this family (``ip daddr`` in an inet table for IPv6)."""


_CACHE: dict[tuple[int, int], tuple[NftRuleset, Lowered | None]] = {}


def engine_tables(nft: NftRuleset | None, family: int) -> Lowered | None:
    """The tables of ``nft`` the simulator runs (those with NAT base chains) for ``family``; the same
    object for the same ruleset (so the simulator's compiled engines are reused)."""
    if nft is None:
        return None
    hit = _CACHE.get((id(nft), family))
    if hit is not None and hit[0] is nft:
        return hit[1]
    if len(_CACHE) > 32:
        _CACHE.clear()
    lowered = _lower(nft, family)
    _CACHE[(id(nft), family)] = (nft, lowered)
    return lowered


def _lower(nft: NftRuleset, family: int) -> Lowered | None:
    tables: dict[str, Table] = {}
    bases: list[BaseChain] = []
    for t in nft.own_tables():
        if not t.has_nat or t.family not in ("inet", "ip" if family == 4 else "ip6"):
            continue
        key = f"{t.family} {t.name}"
        for c in t.chains:
            if c.hook in HOOKS and c.type in ("filter", "nat", "route"):
                bases.append(BaseChain(HOOKS[c.hook], c.priority, key, c.name, c.type == "nat"))
        tables[key] = Table(key, _LazyChains(t, key, family), t.source)
    if not tables:
        return None
    return Lowered(tables, tuple(bases), RuleSet(source=nft.file, family="ipv4" if family == 4 else "ipv6"))


class _LazyChains(Mapping[str, Chain]):
    """The lowered chains of one table, each lowered when the walk first reaches it (kube-proxy
    writes three chains per service: a walk reaches a handful)."""

    def __init__(self, table: NftTable, key: str, family: int) -> None:
        self._table, self._key, self._family = table, key, family
        self._names = [c.name for c in table.chains]
        self._done: dict[str, Chain] = {}

    def __getitem__(self, name: str) -> Chain:
        got = self._done.get(name)
        if got is None:
            c = self._table.chain(name)
            if c is None:
                raise KeyError(name)
            rules: list[Rule] = []
            for r in c.rules:
                rules.extend(lower_rule(self._table, self._key, c.name, r, self._family, len(rules) + 1))
            if c.cut:  # the dump ends inside this chain: a packet its listed rules let by meets the missing ones
                rules.append(Rule(self._key, c.name, len(rules) + 1, _cut_ref(self._table),
                                  matches=(_unknown(f"the dump is cut off (line {self._table.cut_at}) inside chain "
                                                    f"{c.name}: the rules after it are missing"),)))
            got = self._done[name] = Chain(c.name, self._key, c.policy.upper() if c.hook else None, c.source,
                                           tuple(rules))
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._table.chain(name) is not None


def lower_rule(table: NftTable, key: str, chain: str, rule: NftRule, family: int, index: int) -> list[Rule]:
    """The engine rules for one nft rule (none when it can never match this family)."""
    try:
        fields = _matches(table, rule, family)
    except _Never:
        return []
    unknown = list(rule.unknown)
    unknown.extend(_retested(rule))
    variants: list[tuple[dict, SourceRef, str | None]] = [({}, rule.source, None)]  # (extra fields, source, verdict)
    vm = rule.vmap
    if vm is not None:
        if vm.numgen is not None:
            variants = _numgen(vm.numgen, vm.elements, unknown)
        else:
            elements: Sequence[NftElement] = vm.elements
            if vm.set_name is not None:
                found = table.set(vm.set_name)
                if found is None:
                    unknown.append(f"vmap @{vm.set_name} (no such map in the dump)")
                    elements = ()
                else:
                    elements = found.elements
            variants = []
            for el in elements:
                try:
                    extra = _key_fields(vm.keys, el.key, family)
                except _Never:
                    continue
                if el.comment:  # kube-proxy names the service there ("default/empty:http")
                    extra["matches"] = (*extra["matches"], Match("comment", (Option("comment", (el.comment,)),)))
                variants.append((extra, el.source, _inline(table, el.value)))
    out: list[Rule] = []
    for extra, source, verdict_text in variants:
        f = _merge(fields, extra)
        if unknown:
            f["matches"] = (*f.get("matches", ()), Match("nft-unknown", (Option("what", (", ".join(unknown),)),)))
        if rule.comment:
            f["matches"] = (*f.get("matches", ()), Match("comment", (Option("comment", (rule.comment,)),)))
        targets = [_statement(s, family) for s in rule.statements if s.kind != "update"]
        verdict, target = rule.verdict, rule.target
        if verdict_text is not None:
            words = verdict_text.split()
            verdict, target = (words[0] if words else None), (words[1] if len(words) > 1 else None)
        final = _verdict(verdict, target, rule.reject_with, family)
        if final is not None:
            targets.append(final)
        if not targets:
            targets.append({})
        for t in targets:
            out.append(Rule(key, chain, index + len(out), source, **f, **t))
    return out


#: the selectors a statement that lets the rule go on changes (a NAT statement ends the rule: the
#: kernel's nft_nat_eval sets the verdict, so nothing after it is tested again)
_CHANGES = {"mark": ("meta mark",)}


def _retested(rule: NftRule) -> list[str]:
    """The kernel tests a rule's matches once and then runs its statements in order; the lowering gives
    each statement (and the verdict) a rule of its own with the same matches. That is the same unless a
    statement changes what the rule tests and something follows it: then the rule cannot be decided."""
    stmts = [st for st in rule.statements if st.kind != "update"]
    follows = len(stmts) - 1 + (rule.verdict not in (None, "continue") or rule.vmap is not None)
    keys = [m.key for m in rule.matches] + [k for lk in rule.lookups for k in lk.keys] + list(
        rule.vmap.keys if rule.vmap is not None else ())
    out = []
    for st in stmts[:follows]:
        hit = next((k for k in keys if k in _CHANGES.get(st.kind, ())), None)
        if hit is not None:
            out.append(f"the {st.kind} statement changes {hit}, which the rule tests, before what follows it")
    return out


def _unknown(what: str) -> Match:
    return Match("nft-unknown", (Option("what", (what,)),))


def _cut_ref(table: NftTable) -> SourceRef:
    """The last line of a dump that ends inside ``table``."""
    file = table.source.file if table.source is not None else ""
    return SourceRef(file, table.cut_at or 0, "")


def _inline(table: NftTable, value: str | None) -> str | None:
    """A map element's ``goto reject-chain`` as ``reject`` when the chain is nothing but that verdict
    (kube-proxy's helper): the element's line, which names the service, then decides."""
    words = (value or "").split()
    if len(words) != 2 or words[0] not in ("goto", "jump"):
        return value
    chain = table.chain(words[1])
    if chain is None or len(chain.rules) != 1:
        return value
    (r,) = chain.rules
    plain = not (r.matches or r.lookups or r.vmap or r.statements or r.unknown)
    if plain and r.verdict in ("accept", "drop") or (plain and r.verdict == "reject" and r.reject_with is None):
        return r.verdict
    return value


def _numgen(numgen: tuple[str, int, int], elements: Sequence[NftElement], unknown: list[str]
            ) -> list[tuple[dict, SourceRef, str | None]]:
    mode, mod, offset = numgen
    weights: list[tuple[int, NftElement]] = []
    for el in elements:
        lo, _, hi = el.key[0].partition("-")
        try:
            a, b = int(lo) - offset, int(hi or lo) - offset
        except ValueError:
            unknown.append(f"numgen element {el.key[0]!r}")
            return [({}, el.source, el.value)]
        n = max(0, min(b, mod - 1) - max(a, 0) + 1)
        if n:
            weights.append((n, el))
    out = []
    left = mod
    for n, el in weights:
        p = n / left
        left -= n
        if mode == "inc":
            opts = (Option("mode", ("nth",)), Option("every", (str(round(1 / p)) if p else "0",)),
                    Option("packet", ("0",)))
        else:
            opts = (Option("mode", ("random",)), Option("probability", (f"{p:.11f}",)))
        matches: tuple[Match, ...] = (Match("statistic", opts),) if p < 1 else ()
        names = kube_proxy_names((el.value or "").split()[-1]) if el.value else None
        if names is not None and names[1] is not None:  # what iptables' KUBE-SVC rules say in their comment
            matches = (*matches, Match("comment", (Option("comment", (f"{names[0]} -> {names[1]}",)),)))
        out.append(({"matches": matches}, el.source, el.value))
    return out


_AS_OPTION = {"src": "src-in", "dst": "dst-in", "protocol": "l4proto-in", "in_interface": "in_interface-in",
              "out_interface": "out_interface-in"}


def _merge(a: dict, b: dict) -> dict:
    """Fields ``a`` and ``b`` together; a second selector on one field becomes an ``nft`` match."""
    out = dict(a)
    for k, v in b.items():
        if k == "matches":
            out["matches"] = (*out.get("matches", ()), *v)
        elif k in out:
            if out[k] != v:
                extra = Match("nft", (Option(_AS_OPTION[k], (v.value,), v.negated),))
                out["matches"] = (*out.get("matches", ()), extra)
        else:
            out[k] = v
    return out


def _matches(table: NftTable, rule: NftRule, family: int) -> dict:
    fields: dict = {"matches": ()}
    for m in rule.matches:
        fields = _merge(fields, _match_fields(m, family))
    for lk in rule.lookups:
        if lk.set_name is not None:
            s = table.set(lk.set_name)
            if s is None:
                fields["matches"] = (*fields["matches"], Match("nft-unknown", (
                    Option("what", (f"{' . '.join(lk.keys)} @{lk.set_name} (no such set in the dump)",)),)))
                continue
            elements = s.elements
            if s.dynamic:  # filled by the packets (session affinity): the dump lists the entries of its moment
                values = [" . ".join(el.key) for el in elements if len(el.key) == len(lk.keys)]
                fields["matches"] = (*fields["matches"], Match("nft", (
                    Option("dynamic-lookup", (" . ".join(lk.keys), lk.set_name, *values), lk.op == "!="),)))
                continue
        else:
            elements = lk.elements
        # an element of another shape than the key (a mangled dump) stays: the engine calls it unknown
        values = [" . ".join(el.key) for el in elements]
        fields["matches"] = (*fields["matches"], Match("nft", (
            Option("lookup", (" . ".join(lk.keys), *values), lk.op == "!="),)))
    return fields


def _match_fields(m: NftMatch, family: int) -> dict:  # noqa: PLR0911, PLR0912
    neg = m.op == "!="
    values = m.values
    key = m.key
    if key in _ADDR_KEYS:
        which, fam = _ADDR_KEYS[key]
        if fam != family:
            raise _Never
        if len(values) == 1 and "-" not in values[0]:
            return {which: Selector(values[0], neg)}
        return {"matches": (Match("nft", (Option(f"{which}-in", values, neg),)),)}
    if key in _PROTO_KEYS:
        if len(values) == 1 and values[0].isdigit() or len(values) == 1 and values[0] in ("tcp", "udp", "sctp"):
            return {"protocol": Selector(values[0], neg)}
        return {"matches": (Match("nft", (Option("l4proto-in", values, neg),)),)}
    if key.split()[0] in ("tcp", "udp", "sctp", "th") and key.split()[1] in ("dport", "sport"):
        return {"matches": (Match("nft", (Option(key.replace(" ", "-"), values, neg),)),)}
    if key in ("iifname", "oifname", "iif", "oif"):
        which = "in_interface" if key.startswith("i") else "out_interface"
        if len(values) == 1:
            return {which: Selector(values[0].replace("*", "+"), neg)}
        return {"matches": (Match("nft", (Option(f"{which}-in", values, neg),)),)}
    if key == "ct state":
        return {"matches": (Match("conntrack", (Option("ctstate", (",".join(v.upper() for v in values),), neg),)),)}
    if key == "ct status" and set(values) <= {"dnat", "snat"}:
        return {"matches": (Match("conntrack", (Option("ctstate", (",".join(v.upper() for v in values),), neg),)),)}
    if key == "meta mark" and len(values) == 1:
        mask = m.mask or "0xffffffff"
        return {"matches": (Match("mark", (Option("mark", (f"{values[0]}/{mask}",), neg),)),)}
    if key in ("fib daddr type", "fib saddr type"):
        opt = "dst-type" if key.startswith("fib daddr") else "src-type"
        return {"matches": (Match("addrtype", (Option(opt, (",".join(v.upper() for v in values),), neg),)),)}
    if key == "meta nfproto":
        if ("ipv4" if family == 4 else "ipv6") in values:
            if neg:
                raise _Never
            return {}
        if neg:
            return {}
        raise _Never
    if key in ("icmp type", "icmpv6 type", "meta pkttype"):
        if key == "icmpv6 type" and family == 4 or key == "icmp type" and family == 6:
            raise _Never  # the selector implies its protocol, which this family does not carry
        return {"matches": (Match("nft", (Option(key.replace(" ", "-"), values, neg),)),)}
    what = f"{key}{' & ' + m.mask if m.mask else ''} {m.op} {', '.join(values)}"
    return {"matches": (Match("nft-unknown", (Option("what", (what,)),)),)}


def _key_fields(keys: Sequence[str], parts: Sequence[str], family: int) -> dict:
    """The fields of ``keys == parts`` (one concatenated element of a verdict map); an element of
    another shape than the key (a mangled dump: nft never prints one) cannot be decided."""
    if len(keys) != len(parts):
        what = f"{' . '.join(parts)} has {len(parts)} parts where the key {' . '.join(keys)} has {len(keys)}"
        return {"matches": (Match("nft-unknown", (Option("what", (what,)),)),)}
    out: dict = {"matches": ()}
    for k, v in zip(keys, parts):
        out = _merge(out, _match_fields(NftMatch(k, "==", (v,)), family))
    return out


def _statement(s, family: int) -> dict:  # noqa: ANN001 - NftStatement
    if s.kind == "mark":
        op, value = s.args
        name = {"|": "or-mark", "^": "xor-mark", "&": "and-mark", "=": "set-mark"}[op]
        return {"target": "MARK", "target_options": (Option(name, (value,)),)}
    if s.kind == "dnat":
        return {"target": "DNAT", "target_options": (Option("to-destination", (s.args[0],)),)}
    if s.kind == "snat":
        return {"target": "SNAT", "target_options": (Option("to-source", (s.args[0],)),)}
    if s.kind in ("masquerade", "redirect"):
        opts = []
        for a in s.args:
            if a == "fully-random":
                opts.append(Option("random-fully"))
            elif a in ("random", "persistent"):
                opts.append(Option(a))
            elif a.startswith("to "):
                opts.append(Option("to-ports", (a[3:].lstrip(":"),)))
        return {"target": s.kind.upper(), "target_options": tuple(opts)}
    return {"matches": (Match("nft-unknown", (Option("what", (f"the {s.kind} statement",)),)),)}


def _verdict(verdict: str | None, target: str | None, reject_with: str | None, family: int) -> dict | None:
    if verdict is None or verdict == "continue":
        return None
    if verdict in ("jump", "goto"):
        return {"target": target, "goto": verdict == "goto"}
    if verdict == "reject":
        if reject_with is None:
            kind = "icmp-port-unreachable" if family == 4 else "icmp6-port-unreachable"
        else:
            proto, _, what = reject_with.partition(" ")
            if proto == "icmpx":
                proto = "icmp" if family == 4 else "icmpv6"
            kind = _REJECT_WITH.get((proto, what), reject_with)
        return {"target": "REJECT", "target_options": (Option("reject-with", (kind,)),)}
    return {"target": verdict.upper()}
