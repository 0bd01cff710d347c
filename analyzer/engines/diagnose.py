"""Findings: the contract's diagnosis codes, each from evidence in the packets and/or the dumps.

Every finding names what was observed, where (``node``), the evidence (packet numbers per file,
rule/route/FDB lines) and a concrete fix. A suspicion that only the dumps could confirm, when no
dumps were given, is reported with ``checkable=False`` and severity ``info``; nothing is presented
as fact without evidence. Signatures follow ``../shared/design/landscape.md`` section 3.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from analyzer.engines.classify import in_cidr, node_of, role_of, service_at, unnatted_replies
from analyzer.engines.explain import finding_text
from analyzer.engines.paths import describe, sighting_text
from analyzer.model.explain import Evidence, Finding, PathHop, Sighting, StitchedFlow, Topology
from analyzer.model.flow import endpoint_text
from analyzer.model.refs import SourceRef

if TYPE_CHECKING:  # the dumps' model and engines: imported where dumps are read
    from analyzer.engines import netfilter as nf
    from analyzer.model.node import NodeSnapshot, RouteDecision

ADMIN_PROHIBITED = {(3, 9), (3, 10), (3, 13)}
FRAG_NEEDED = (3, 4)
MAX_EVIDENCE = 6


def _ev_packet(s: Sighting, text: str = "") -> Evidence:
    return Evidence(file=s.record.file, packet=s.record.frame, text=text or _describe(s))


def _ev_line(ref: SourceRef) -> Evidence:
    return Evidence(file=ref.file, line=ref.line, text=ref.text)


def _describe(s: Sighting) -> str:
    r = s.record
    if r.quoted is not None and r.icmp_type is not None:
        q = r.quoted
        inner = f" (VXLAN {q.inner_src} > {q.inner_dst})" if q.tunnel and q.inner_src else ""
        port = f":{q.dport}" if q.dport is not None else ""
        mtu = f" mtu {r.icmp_mtu}" if r.icmp_mtu else ""
        return f"ICMP {r.icmp_type}/{r.icmp_code}{mtu} from {r.src} about {q.src} > {q.dst}{port}{inner}"
    return sighting_text(s)


def _make(code: str, severity: str, node: str | None, params: Mapping[str, object], evidence: Sequence[Evidence],
          *, checkable: bool = True, flow: str | None = None) -> Finding:
    msg, msg_zh, fix, fix_zh = finding_text(code, params)
    if not checkable:
        severity = "info"
        msg = "Suspected: " + msg
        msg_zh = "疑似：" + msg_zh
    return Finding(code=code, severity=severity, node=node, message=msg, message_zh=msg_zh, fix=fix, fix_zh=fix_zh,
                   evidence=tuple(evidence[:MAX_EVIDENCE]), checkable=checkable, flow=flow)


# ----------------------------------------------------------------------------- a small rule walker


@dataclass(frozen=True, slots=True)
class Verdict:
    """A hook's DROP/REJECT for a packet: the rule (or policy line) that decided, and whether other
    ways through the hook (rules on fields the caller did not know) let the packet pass."""

    target: str
    ref: SourceRef | None
    uncertain: bool = False


def hook_verdict(node: NodeSnapshot | None, hook: str, src: str | None, dst: str | None, proto: str | int | None,
                 sport: int | None, dport: int | None) -> Verdict | None:
    """The DROP/REJECT that netfilter's ``hook`` on ``node`` gives a first packet, walked by the netfilter
    engine (every table, jumps, marks, addrtype); None when no way through the hook drops it or the dumps
    do not say. ``uncertain``: other ways through the hook (rules on unknown fields) let it pass."""
    from analyzer.engines import netfilter as nf  # (the dumps' engines: imported when dumps are read)
    from analyzer.engines.simulate import node_addresses, ruleset_for
    num = nf.proto_number(proto)
    if node is None or src is None or dst is None or num is None:
        return None
    try:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    except ValueError:
        return None
    ruleset = ruleset_for(node, s.version)
    if ruleset is None:
        return None
    engine = nf.engine_for(ruleset, node_addresses(node, ()))
    packet = nf.PacketState(s, d, num, sport, dport, in_known=False, out_known=False)
    branches = engine.walk_hook(hook, packet)
    blocked = [b for b in branches if b.verdict in (nf.Verdict.DROP, nf.Verdict.REJECT)]
    if not blocked:
        return None
    b = max(blocked, key=lambda b: b.probability)
    if b.decided_by is not None:
        ref = b.decided_by.source
    else:  # a chain's policy: the ":CHAIN POLICY" line
        last = b.steps[-1] if b.steps else None
        chain = ruleset.chain(last.table, last.chain) if last is not None else None
        ref = chain.source if chain is not None else None
    return Verdict(b.verdict.value.upper(), ref, len(blocked) < len(branches))


# ----------------------------------------------------------------------------- per-flow diagnosis


@dataclass(slots=True)
class Context:
    flow: StitchedFlow
    path: Sequence[PathHop]
    status: str
    kind: str
    topo: Topology
    nodes: Mapping[str, NodeSnapshot]
    sim: object | None = None  # engines.simulate.SimOutcome: the dumps' view of the first packet

    def hops(self, kind: str, action: str | None = None) -> list[PathHop]:
        return [h for h in self.path if h.kind == kind and (action is None or h.action == action)]


def _cluster(topo: Topology) -> str:
    return topo.cluster_cidr or "10.244.0.0/16"


def diagnose_flow(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for check in (_overlay_blocked, _no_endpoints, _no_local_endpoints, _mtu, _masquerade, _sender_tables,
                  _forward_blocked, _ip_forward_off, _rp_filter, _hairpin, _bridge_nf_off, _dns_race, _refused,
                  _retransmissions):
        out.extend(check(ctx))
    if any(f.checkable and f.severity == "error" and f.code != "IP_FORWARD_DISABLED" for f in out):
        # a proven cause (FORWARD_BLOCKED, MISSING_ROUTE...) outranks the packets-only suspicion
        out = [f for f in out if f.code != "IP_FORWARD_DISABLED" or f.checkable]
    explained = {"OVERLAY_PORT_BLOCKED", "FORWARD_BLOCKED", "MTU_EXCEEDED", "IP_FORWARD_DISABLED", "RP_FILTER_DROP"}
    if not ctx.flow.errors and not any(f.code in explained and f.checkable for f in out):
        out.extend(_bad_checksum(ctx))
    out.extend(_dumps_disagree(ctx, out))
    return out


def _dumps_disagree(ctx: Context, found: Sequence[Finding]) -> list[Finding]:
    """DUMPS_DISAGREE: the captures show the packet stop on a node whose dumps, walked like the
    kernel, let it through, and no finding explains the stop. Said as such, with the place and the
    packets, instead of leaving a drop without a reason or guessing one."""
    sim, flow = ctx.sim, ctx.flow
    if sim is None or ctx.status not in ("dropped", "no-reply") or flow.errors:
        return []
    if getattr(sim, "status", None) not in ("forwarded", "local"):
        return []
    if any(f.checkable and f.severity in ("error", "warning") and f.code != "RETRANSMISSIONS" for f in found):
        return []
    failed = next((h for h in ctx.path if h.failed), None)
    if failed is None or failed.node is None or ctx.nodes.get(failed.node) is None:
        return []
    node = failed.node
    seen = [s for s in flow.sightings if s.direction == "fwd" and s.node == node] or \
        [s for s in flow.sightings if s.direction == "fwd"]
    passed = [h for h in getattr(sim, "hops", ()) if h.node == node and h.action in ("ACCEPTED", "POLICY", "ROUTED",
                                                                                    "DELIVERED")]
    ev = [_ev_packet(s) for s in seen[-2:]] + [_ev_line(ref) for h in passed[-2:] for ref in h.evidence[:1]]
    snap = ctx.nodes[node]
    from analyzer.engines.backends import backend_split
    split = backend_split(snap)
    if split is not None:
        hidden = _hidden_verdict(snap, split.hidden_rules, failed, flow)
        found = found_zh = ""
        if hidden is not None and hidden.ref is not None:
            text = hidden.ref.text.strip()
            found = f" The bundle's {split.save_command} shows it: `{text}` ({hidden.target})."
            found_zh = f"包中的 {split.save_command} 给出了它：`{text}`（{hidden.target}）。"
        return [_make("IPTABLES_BACKEND_SPLIT", "warning", node, {
            "node": node, "where": describe(failed), "shown": split.shown, "hidden": split.hidden_words,
            "tell": "; ".join(r.text.strip() for r in split.refs[:2]), "save": split.save_command,
            "cmd": split.save_command.removesuffix("-save"), "found": found, "found_zh": found_zh,
            "outcome": sim.explanation.rstrip("."), "outcome_zh": _outcome_zh(sim),
        }, ([_ev_line(hidden.ref)] if hidden is not None and hidden.ref is not None else [])
            + [_ev_line(r) for r in split.refs[:2]] + ev, flow=flow.id)]
    return [_make("DUMPS_DISAGREE", "warning", node, {
        "node": node, "where": describe(failed),
        "when": f" (taken {snap.collected_at})" if snap.collected_at else "",
        "when_zh": f"（收集于 {snap.collected_at}）" if snap.collected_at else "",
        "outcome": sim.explanation.rstrip("."), "outcome_zh": _outcome_zh(sim),
    }, ev, flow=flow.id)]


def _hidden_verdict(snap: NodeSnapshot, rules: nf.RuleSet | None, failed: PathHop,
                    flow: StitchedFlow) -> Verdict | None:
    """What the other backend's tables (collected) do to the flow's first packet at the hook where it
    stopped: the deciding DROP/REJECT rule or policy line, or None."""
    hook = {"forward": "FORWARD", "prerouting": "PREROUTING", "input": "INPUT", "local-input": "INPUT",
            "output": "OUTPUT"}.get(failed.action or "") if failed.kind == "netfilter" else None
    if rules is None or hook is None:
        return None
    src, dst, proto, sport, dport = flow.client[0], flow.real_server[0], flow.proto, flow.client[1], flow.real_server[1]
    if failed.action == "input":  # the tunnel packet addressed to the node, not the flow's own
        outer = next((s.record for s in flow.sightings if s.direction == "fwd" and s.record.outer_dst), None)
        if outer is None:
            return None
        src, dst, proto, sport, dport = outer.outer_src, outer.outer_dst, 17, outer.outer_sport, outer.outer_dport
    return hook_verdict(replace(snap, ruleset=rules), hook, src, dst, proto, sport, dport)


def _outcome_zh(sim: object) -> str:
    """The simulator's outcome in Chinese, from its fields (its explanation is English prose)."""
    status, node = getattr(sim, "status", ""), getattr(sim, "node", "")
    packet, out = getattr(sim, "packet", None), getattr(sim, "out_interface", None)
    dst = packet.endpoint("dst") if packet is not None else "?"
    if status == "forwarded" and str(getattr(sim, "delivered_to", "") or "").startswith("pod "):
        return f"送达 {node} 上的 Pod {dst}" + (f"（经 {out}）" if out else "")
    if status == "forwarded":
        hop = getattr(sim, "next_hop", None)
        return f"{node} 将其从 {out or '?'} 转发出去" + (f"，下一跳 {hop}" if hop else "")
    return f"{node} 本机接收，目的地址 {dst}"


def _overlay_blocked(ctx: Context) -> list[Finding]:
    flow, topo = ctx.flow, ctx.topo
    port = topo.overlay_port or 8472
    out: list[Finding] = []
    errs = [e for e in flow.errors if (e.record.icmp_type, e.record.icmp_code) in ADMIN_PROHIBITED | {(3, 3)}
            and e.record.quoted is not None
            and (e.record.quoted.tunnel is not None or (e.record.quoted.proto == 17 and e.record.quoted.dport == port))]
    if errs:
        e = errs[0].record
        q = e.quoted
        assert q is not None
        node = node_of(e.src, topo) or node_of(q.dst, topo)
        port = q.dport or port
        ev = [_ev_packet(x) for x in errs[:3]]
        vx = [s for s in flow.sightings if s.record.tunnel and s.record.outer_dst == q.dst]
        ev += [_ev_packet(s) for s in vx[:1]]
        ref = _input_rule(ctx.nodes.get(node or ""), q.src, q.dst, port)
        if ref is not None:
            ev.insert(0, _ev_line(ref))
        how = f"rejected with ICMP {e.icmp_type}/{e.icmp_code}"
        out.append(_make("OVERLAY_PORT_BLOCKED", "error", node, {
            "port": port, "peer": q.src, "node_ip": q.dst, "node": node or q.dst, "how": how,
            "how_zh": f"以 ICMP {e.icmp_type}/{e.icmp_code} 拒绝",
            "observed": f"{len(errs)} ICMP error(s) from {e.src} quote the VXLAN packets",
            "observed_zh": f"{e.src} 发出 {len(errs)} 个引用这些 VXLAN 包的 ICMP 差错报文",
            **_nft_first(ctx.nodes.get(node or ""), ref, port),
        }, ev, flow=flow.id))
        return out
    if ctx.status not in ("dropped", "no-reply"):
        return out
    # silent drop: seen on the receiving NIC, absent after it
    rx = ctx.hops("nic", "receive")
    decap = ctx.hops("vtep", "decap")
    tx = ctx.hops("nic", "transmit")
    if rx and decap and rx[0].observed is True and decap[0].observed is False:
        node = rx[0].node
        snap = ctx.nodes.get(node or "")
        vx = [s for s in flow.sightings if s.record.tunnel and s.node == node]
        if not vx:
            return out
        src_ip, dst_ip = vx[0].record.outer_src, vx[0].record.outer_dst
        ev = [_ev_packet(s) for s in vx[:2]]
        ref = _input_rule(snap, src_ip, dst_ip, port)
        if ref is not None:
            ev.insert(0, _ev_line(ref))
        params = {"port": port, "peer": src_ip, "node_ip": dst_ip, "node": node, "how": "dropped", "how_zh": "丢弃",
                  "observed": f"they reach {rx[0].interface} but never {decap[0].interface}",
                  "observed_zh": f"它们到达 {rx[0].interface} 却从未出现在 {decap[0].interface}",
                  **_nft_first(snap, ref, port)}
        if snap is not None and (snap.ruleset is not None or snap.nft is not None):
            if ref is not None:
                out.append(_make("OVERLAY_PORT_BLOCKED", "error", node, params, ev, flow=flow.id))
        else:
            out.append(_make("OVERLAY_PORT_BLOCKED", "info", node, params, ev, checkable=False, flow=flow.id))
    elif tx and rx and tx[0].observed is True and rx[0].observed is False:
        node = rx[0].node
        vx = [s for s in flow.sightings if s.record.tunnel]
        if vx:
            params = {"port": port, "peer": vx[0].record.outer_src, "node_ip": vx[0].record.outer_dst, "node": node,
                      "how": "lost on the underlay before reaching", "how_zh": "在底层网络中丢失，未能到达",
                      "observed": f"sent by {tx[0].node} {tx[0].interface}, absent from {node} {rx[0].interface}",
                      "observed_zh": f"{tx[0].node} {tx[0].interface} 已发出，{node} {rx[0].interface} 未收到"}
            out.append(_make("OVERLAY_PORT_BLOCKED", "warning", node, params, [_ev_packet(s) for s in vx[:2]],
                             flow=flow.id))
    return out


def _input_rule(snap: NodeSnapshot | None, src: str | None, dst: str | None, port: int) -> SourceRef | None:
    """The INPUT rule (or policy) that drops/rejects UDP ``port`` from ``src`` on ``snap``: in
    iptables-save, else in the nftables tables iptables-save does not show (firewalld's zones)."""
    if snap is None:
        return None
    v = hook_verdict(snap, "INPUT", src, dst, "udp", None, port) if snap.ruleset is not None else None
    if v is not None:
        return v.ref
    if snap.nft is None or src is None or dst is None:
        return None
    owner = snap.interface_of_address(dst)  # the NIC it arrives on (firewalld picks the zone by it)
    from analyzer.engines.nft_walk import NftPacket
    from analyzer.engines.nft_walk import hook_verdict as nft_hook_verdict
    nv = nft_hook_verdict(snap.nft, "input", NftPacket(src, dst, "udp", None, port,
                                                       iif=owner.name if owner is not None else None))
    return nv.rule if nv is not None and nv.verdict in ("drop", "reject") else None


def _nft_first(snap: NodeSnapshot | None, ref: SourceRef | None, port: int) -> dict[str, str]:
    """When the blocking rule is in an nftables table iptables-save does not show (firewalld's),
    the fix starts there: iptables rules cannot override another table's reject."""
    if snap is None or snap.nft is None or ref is None or ref.file != snap.nft.file:
        return {"first": "", "first_zh": ""}
    return {
        "first": f"The rule is in an nftables table iptables-save does not show ({ref.file}:{ref.line}): an iptables "
                 f"ACCEPT cannot override its reject; open the port there, with firewalld `firewall-cmd --permanent "
                 f"--add-port={port}/udp && firewall-cmd --reload`. ",
        "first_zh": f"拦截规则位于 iptables-save 看不到的 nftables 表中（{ref.file}:{ref.line}）：iptables 的 ACCEPT "
                    f"无法推翻它的拒绝；请在那里放行该端口，firewalld 用 `firewall-cmd --permanent --add-port={port}/udp "
                    f"&& firewall-cmd --reload`。",
    }


def _service_rules(snap: NodeSnapshot | None, ip: str, phrase: str) -> list[SourceRef]:
    if snap is None or snap.ruleset is None:
        return []
    return [rule.source for rule in snap.ruleset.rules() if phrase in (rule.comment or "") and (
        in_cidr(ip, rule.dst.value) if rule.dst is not None else phrase == "has no local endpoints")]


def _no_endpoints(ctx: Context) -> list[Finding]:
    flow, topo = ctx.flow, ctx.topo
    if ctx.kind not in ("pod-to-service", "external-to-service") or ctx.status not in ("rejected", "dropped", "no-reply"):
        return []
    s_ip, s_port = flow.server
    first = next((h.node for h in ctx.path if h.node), None)
    snap = ctx.nodes.get(first or "")
    refs = _service_rules(snap, s_ip, "has no endpoints")
    if snap is not None:  # kube-proxy's nftables mode: the service's @no-endpoint-services element
        from analyzer.engines.nft_lower import no_endpoint_elements
        refs += no_endpoint_elements(snap.nft, s_ip, s_port)
    svc = service_at(s_ip, s_port, topo)
    # kube-proxy's REJECT answers from the service address or from the node itself (its cni0/eth0)
    errs = [e for e in flow.errors if (e.record.icmp_type, e.record.icmp_code) == (3, 3)
            and (e.record.src == s_ip or role_of(e.record.src, topo) == "node")]
    dnat = any(n.type == "dnat" for n in flow.nats)
    if not (refs or (svc is not None and svc.no_endpoints) or (errs and not dnat)):
        return []
    if errs and first is None:
        first = node_of(errs[0].record.src, topo)
    name = (svc.name if svc and svc.name else None) or (refs[0].text.split('"')[1].split(" has")[0] if refs and '"' in refs[0].text else None)
    ns, _, rest = (name or "?/?").partition("/")
    ev = [_ev_line(r) for r in refs[:2]] + [_ev_packet(e) for e in errs[:2]]
    if not ev:
        ev = [_ev_packet(s) for s in flow.sightings[:1]]
    who = errs[0].record.src if errs else s_ip
    who_en = f"{s_ip} itself" if who == s_ip else f"{who} (the node, in the service's name)"
    who_zh = f"{s_ip} 本身" if who == s_ip else f"{who}（节点代服务回应）"
    observed = (f"the SYN was answered by ICMP port unreachable from {who_en}" if errs else
                "the connection got no answer")
    observed_zh = f"SYN 收到来自 {who_zh} 的 ICMP 端口不可达" if errs else "连接没有得到应答"
    # without dumps or kubectl the address is only assumed to be a service: a suspicion
    checkable = bool(refs) or (svc is not None and (svc.no_endpoints or svc.name is not None))
    return [_make("SERVICE_NO_ENDPOINTS", "error", first, {
        "service": name or s_ip, "addr": f"{s_ip}:{s_port}", "namespace": ns, "name": rest.split(":")[0] or "?",
        "observed": observed, "observed_zh": observed_zh}, ev, checkable=checkable, flow=flow.id)]


def _no_local_endpoints(ctx: Context) -> list[Finding]:
    flow = ctx.flow
    if ctx.kind != "external-to-service" or ctx.status == "delivered":
        return []
    node = next((h.node for h in ctx.path if h.node), None)
    snap = ctx.nodes.get(node or "")
    refs = [r for r in _service_rules(snap, flow.server[0], "has no local endpoints")]
    if not refs:
        return []
    name = refs[0].text.split('"')[1].split(" has")[0] if '"' in refs[0].text else flow.server[0]
    ev = [_ev_line(refs[0])] + [_ev_packet(s) for s in flow.sightings[:2]]
    return [_make("NO_LOCAL_ENDPOINTS", "error", node, {
        "service": name, "addr": f"{flow.server[0]}:{flow.server[1]}", "node": node,
        "observed": "the SYN arrived and got no answer", "observed_zh": "SYN 已到达但没有应答"}, ev, flow=flow.id)]


def _mtu(ctx: Context) -> list[Finding]:
    flow, topo = ctx.flow, ctx.topo
    errs = [e for e in flow.errors if (e.record.icmp_type, e.record.icmp_code) == FRAG_NEEDED
            or (e.record.proto == 58 and e.record.icmp_type == 2)]
    if not errs:
        return []
    out = []
    by_node: dict[str | None, list[Sighting]] = {}
    for e in errs:
        by_node.setdefault(node_of(e.record.src, topo), []).append(e)
    for node, group in by_node.items():
        mtu = next((e.record.icmp_mtu for e in group if e.record.icmp_mtu), None)
        sizes = [s.record.ip_total_len or 0 for s in flow.sightings if s.record.quoted is None
                 and (s.record.src, s.record.dst) == (group[0].record.quoted.src, group[0].record.quoted.dst)  # type: ignore[union-attr]
                 and not s.record.tunnel]
        size = max(sizes) if sizes else "?"
        sev = "warning" if ctx.status == "delivered" else "error"
        out.append(_make("MTU_EXCEEDED", sev, node, {
            "size": size, "mtu": mtu or "?", "node": node or group[0].record.src, "where": "",
            "observed": f"{len(group)} ICMP fragmentation-needed (MTU {mtu}) from {group[0].record.src}",
            "observed_zh": f"{group[0].record.src} 发出 {len(group)} 个 ICMP“需要分片”（MTU {mtu}）",
        }, [_ev_packet(e) for e in group[:4]], flow=flow.id))
    return out


def _masquerade(ctx: Context) -> list[Finding]:
    flow, topo = ctx.flow, ctx.topo
    if ctx.kind != "pod-to-external" or any(n.type in ("snat", "masquerade") for n in flow.nats):
        return []
    tx = [h for h in ctx.hops("nic", "transmit") if h.observed is True]
    if not tx:
        return []
    hop = tx[0]
    leaving = [s for s in flow.sightings if s.direction == "fwd" and s.node == hop.node and s.record.src == flow.client[0]
               and any(s.record.file == f and s.record.frame == p for f, p, _ in hop.packets)]
    if not leaving:
        return []
    snap = ctx.nodes.get(hop.node or "")
    ev = [_ev_packet(s) for s in leaving[:2]]
    sev = "warning" if ctx.status == "delivered" else "error"
    if snap is not None and snap.ruleset is not None:
        post = snap.ruleset.chain("nat", "POSTROUTING")
        if post is not None and post.source is not None:
            ev.append(_ev_line(post.source))
    return [_make("MISSING_MASQUERADE", sev, hop.node, {
        "pod": flow.client[0], "node": hop.node, "dst": flow.real_server[0], "cluster": _cluster(topo),
        "observed": f"seen leaving {hop.interface} with source {flow.client[0]}",
        "observed_zh": f"以源地址 {flow.client[0]} 离开 {hop.interface}",
    }, ev, flow=flow.id)]


def _sender_tables(ctx: Context) -> list[Finding]:
    """MISSING_ROUTE / MISSING_NEIGH / MISSING_FDB on the node that should encapsulate or route."""
    flow, topo = ctx.flow, ctx.topo
    if ctx.status == "delivered" or ctx.kind not in ("pod-to-pod-cross-node", "pod-to-service", "external-to-service",
                                                     "node-to-pod"):
        return []
    route_hops = ctx.hops("route")
    if not route_hops:
        return []
    node = route_hops[0].node
    snap = ctx.nodes.get(node or "")
    if snap is None or not snap.routes:
        return _encap_suspect(ctx, node)
    tx = ctx.hops("nic", "transmit")
    if tx and tx[0].observed is True:
        return []  # the packet left the node: its tables did their job
    dst = flow.real_server[0]
    peer = node_of(dst, topo)
    if peer is None or peer == node:
        return []
    peer_facts = topo.node_named(peer)
    cidr = peer_facts.pod_cidr if peer_facts and peer_facts.pod_cidr else f"{dst}/32"
    vtep = snap.overlay_device()
    dev = vtep.name if vtep else "flannel.1"
    gw = cidr.split("/")[0]
    observed = "the packet never left the node" if tx and tx[0].observed is False else "no reply came back"
    observed_zh = "数据包从未离开该节点" if tx and tx[0].observed is False else "没有收到回包"
    bridge = _bridge(ctx.path, node)
    decision = _lookup(snap, dst, flow.client[0], bridge)
    seen_ev = [_ev_packet(s) for s in flow.sightings if s.direction == "fwd" and s.node == node][:1]
    from analyzer.engines.routing import forwarding_off
    if decision is None or decision.kind == "rp-filter" or (decision.dropped and forwarding_off(snap, bridge)):
        return []  # a route exists: the input device's forwarding or rp_filter refused it (their own findings)
    chosen = decision.chosen
    pod_route = chosen is not None and chosen.dst.prefixlen > 0 and (
        in_cidr(dst, str(chosen.dst)) and chosen.dst.prefixlen >= 16)
    if decision.dropped or chosen is None or not pod_route:
        text = f"; it would use `{chosen.source.text}`" if chosen is not None else ""
        ev = [_ev_line(chosen.source)] if chosen is not None else [Evidence(file=snap.files.get("ip-route", "ip-route"),
                                                                          text=f"no route covers {dst}")]
        return [_make("MISSING_ROUTE", "error", node, {
            "node": node, "dst": dst, "cidr": cidr, "chosen": text, "chosen_zh": text.replace("; it would use", "；将使用"),
            "peer": peer or "?", "gw": gw, "dev": dev, "observed": observed, "observed_zh": observed_zh,
        }, ev + seen_ev, flow=flow.id)]
    out_dev = chosen.dev
    iface = snap.interface(out_dev) if out_dev else None
    if iface is None or not (iface.vxlan is not None or iface.kind == "vxlan"):
        return []
    via = str(chosen.via) if chosen.via else dst
    neigh = next((n for n in snap.neigh if str(n.ip) == via and n.dev == out_dev), None)
    if neigh is None or not neigh.lladdr or "FAILED" in neigh.states or "INCOMPLETE" in neigh.states:
        ev = [_ev_line(chosen.source)] + ([_ev_line(neigh.source)] if neigh else []) + seen_ev
        return [_make("MISSING_NEIGH", "error", node, {
            "node": node, "cidr": str(chosen.dst), "gw": via, "dev": out_dev, "peer": peer or "?",
            "observed": observed, "observed_zh": observed_zh}, ev, flow=flow.id)]
    mac = neigh.lladdr.lower()
    fdb = next((f for f in snap.fdb if f.mac.lower() == mac and f.dev == out_dev and f.dst is not None), None)
    if fdb is None:
        ev = [_ev_line(chosen.source), _ev_line(neigh.source)] + seen_ev
        return [_make("MISSING_FDB", "error", node, {
            "node": node, "dev": out_dev, "mac": mac, "gw": via, "peer_ip": topo.node_ip(peer) or "<node address>",
            "observed": observed, "observed_zh": observed_zh}, ev, flow=flow.id)]
    return []


def _encap_suspect(ctx: Context, node: str | None) -> list[Finding]:
    """Without dumps: seen on the VXLAN device, never on the NIC it should leave by (a capture
    was taken there): the device had no FDB/neighbour entry to send it with. A suspicion."""
    vtep = next((h for h in ctx.hops("vtep", "encap") if h.node == node), None)
    tx = next((h for h in ctx.hops("nic", "transmit") if h.node == node), None)
    if vtep is None or tx is None or vtep.observed is not True or tx.observed is not False:
        return []
    peer = node_of(ctx.flow.real_server[0], ctx.topo)
    facts = ctx.topo.node_named(peer)
    # flannel gives each node's VTEP the first address of its pod subnet (10.244.2.0 for 10.244.2.0/24)
    gw = facts.pod_cidr.split("/")[0] if facts is not None and facts.pod_cidr else "the remote VTEP address"
    ev = [Evidence(file=f, packet=p, text=f"seen on {vtep.interface}") for f, p, _ in vtep.packets[:2]]
    return [_make("MISSING_FDB", "info", node, {
        "node": node, "dev": vtep.interface, "mac": "<VTEP MAC of " + (peer or "the peer") + ">", "gw": gw,
        "peer_ip": ctx.topo.node_ip(peer) or "<node address>",
        "observed": f"seen on {vtep.interface}, never on {tx.interface} (a missing neighbour entry looks the same)",
        "observed_zh": f"出现在 {vtep.interface}，从未出现在 {tx.interface}（缺少邻居表项时表现相同）"},
        ev, checkable=False, flow=ctx.flow.id)]


def _bridge(path: Sequence[PathHop], node: str | None) -> str:
    """The pod bridge of ``node`` as the path names it (the dumps', else the captures'), else cni0."""
    return next((h.interface for h in path if h.kind == "bridge" and h.node == node and h.interface), "cni0")


def _lookup(snap: NodeSnapshot, dst: str, src: str, iif: str) -> RouteDecision | None:
    """The route lookup of a pod's packet, arriving from the pod bridge ``iif``."""
    try:
        from analyzer.engines.routing import lookup_route
        return lookup_route(snap, dst, src=src, iif=iif)
    except (ValueError, TypeError, AttributeError):
        return None


def _hairpin(ctx: Context) -> list[Finding]:
    """HAIRPIN: a pod reaching itself through its service, DNATed back out the bridge port it came
    from while that port's hairpin mode is off (the dumps' walk ends at the bridge; the captures show
    the packet going in and never coming back out)."""
    sim, flow = ctx.sim, ctx.flow
    if sim is None or ctx.status not in ("dropped", "no-reply", "incomplete") or not sim.hops:
        return []
    last = sim.hops[-1]
    if sim.status != "dropped" or last.kind != "bridge" or "hairpin" not in last.explanation:
        return []
    # the client is the server: its veth is the port the frame came in on and must leave by
    dev = next((h.interface for h in ctx.path if h.kind == "veth" and h.interface), None) or "the pod's veth"
    seen = [s for s in flow.sightings if s.direction == "fwd" and s.node == last.node]
    ev = [_ev_line(ref) for ref in last.evidence] + [_ev_packet(s) for s in seen[:2]]
    return [_make("HAIRPIN", "error", last.node, {
        "node": last.node, "pod": flow.client[0], "service": f"{flow.server[0]}:{flow.server[1]}",
        "dev": dev, "bridge": last.interface or "cni0",
        "observed": "the DNATed packet goes back toward the pod itself and never leaves the bridge",
        "observed_zh": "DNAT 后的数据包要回到 pod 自身，却始终没有离开网桥"}, ev, flow=flow.id)]


def _bridge_nf_off(ctx: Context) -> list[Finding]:
    """BRIDGE_NF_CALL_DISABLED: the answer of a DNATed flow reaches the client from the real
    server's address: it crossed the bridge without iptables (br_netfilter not loaded or
    ``net.bridge.bridge-nf-call-iptables = 0``), so conntrack never undid the DNAT. Checked against
    the node's sysctl dump when given; from the packets alone it is reported as suspected."""
    flow = ctx.flow
    if ctx.status != "dropped":
        return []  # (a good answer reached the client too)
    replies, resets = unnatted_replies(flow, node_of(flow.client[0], ctx.topo))
    if not replies:
        return []
    node = replies[0].node
    snap = ctx.nodes.get(node or "")
    key = "net.bridge.bridge-nf-call-iptables" if ":" not in flow.client[0] else "net.bridge.bridge-nf-call-ip6tables"
    value = snap.sysctl.get(key) if snap is not None else None
    if value == "1":
        return []  # br_netfilter is on: the answer went around conntrack some other way
    ev = [_ev_packet(s) for s in replies[:2]] + [_ev_packet(s) for s in resets[:1]]
    ref = snap.sysctl_sources.get(key) if snap is not None else None
    if ref is not None:
        ev.insert(0, _ev_line(ref))
    if value == "0":
        setting, setting_zh = f"{key} = 0", f"{key} = 0"
    else:
        setting = f"{key} is absent: br_netfilter is not loaded" if snap is not None and snap.sysctl else \
            "no sysctl dump says whether br_netfilter is on"
        setting_zh = f"没有 {key}：br_netfilter 未加载" if snap is not None and snap.sysctl else "没有 sysctl 转储能说明 br_netfilter 是否开启"
    bridge = _bridge(ctx.path, node)
    svc = flow.server
    real = flow.real_server
    return [_make("BRIDGE_NF_CALL_DISABLED", "error", node, {
        "client": flow.client[0], "service": endpoint_text(*svc), "real": endpoint_text(*real), "node": node or "?", "bridge": bridge,
        "setting": setting, "setting_zh": setting_zh,
        "reacts": "resets it" if resets else "drops it", "reacts_zh": "于是重置连接" if resets else "于是丢弃它",
        "observed": f"{len({s.key for s in replies})} answer(s) from {endpoint_text(*real)} captured at {replies[0].interface}.",
        "observed_zh": f"在 {replies[0].interface} 抓到 {len({s.key for s in replies})} 个来自 {endpoint_text(*real)} 的应答。",
    }, ev, checkable=value is not None or (snap is not None and bool(snap.sysctl)), flow=flow.id)]


def _ip_forward_off(ctx: Context) -> list[Finding]:
    """IP_FORWARD_DISABLED: the packet reached a node that had to route it on (decapsulated on
    flannel.1, or from a pod on cni0) and died at that node's route/forward step without an ICMP
    error. With the node's sysctl dump it is checked the kernel's way (``routing.forwarding_off``:
    the input device's ``conf.<if>.forwarding``, which ``net.ipv4.ip_forward`` sets for all); from
    the packets alone it is a suspicion that names the other cause with the same signature, a
    FORWARD chain that drops (FORWARD_BLOCKED), and only where a capture shows the packet absent
    on the way out."""
    flow, path = ctx.flow, ctx.path
    if ctx.status not in ("dropped", "no-reply") or flow.errors or ":" in flow.client[0]:
        return []
    failed = next((i for i, h in enumerate(path) if h.failed), None)
    if failed is None:
        return []
    hop = path[failed]
    if not (hop.kind == "route" or (hop.kind == "netfilter" and hop.action == "forward")) or hop.node is None:
        return []
    node = hop.node
    came = [h for h in path[:failed] if h.node == node and h.capturable and h.observed is True]
    if not came or came[-1].kind not in ("vtep", "bridge", "nic", "veth"):
        return []
    entry = came[-1]
    # the device the kernel routes it from: the bridge for a packet from a pod's veth
    iif = entry.interface if entry.kind != "veth" else _bridge(path[:failed], node)
    if not iif:
        return []
    after = next((h for h in path[failed + 1:] if h.node == node and h.capturable), None)
    gone = after is not None and after.observed is False
    snap = ctx.nodes.get(node)
    keys = {(f, p) for h in came for f, p, _ in h.packets}
    seen = [s for s in flow.sightings if s.direction == "fwd" and s.node == node and (s.record.file, s.record.frame) in keys]
    first_per_point: dict[tuple, Sighting] = {}
    for s in sorted(seen, key=lambda s: s.ts):
        first_per_point.setdefault((bool(s.record.tunnel),), s)  # the outer packet, the decapsulated one
    ev = [_ev_packet(s) for s in list(first_per_point.values())[:3]]
    n_copies = len({(s.record.seq, s.record.payload_hash, s.record.ip_id) for s in seen if s.interface == entry.interface
                    or s.record.tunnel is None})
    out_if = after.interface if after is not None and after.interface else "its way out"
    src, dst = endpoint_text(*flow.client), endpoint_text(*flow.real_server)
    observed = (f"{n_copies} packet(s) seen on {entry.interface or iif} of {node}, none on {out_if}, no ICMP error."
                if gone else f"{n_copies} packet(s) seen on {entry.interface or iif} of {node}, no ICMP error.")
    observed_zh = (f"在 {node} 的 {entry.interface or iif} 上看到 {n_copies} 个包，{out_if} 上一个也没有，也没有 ICMP 差错。"
                   if gone else f"在 {node} 的 {entry.interface or iif} 上看到 {n_copies} 个包，没有 ICMP 差错。")
    params = {"node": node, "src": src, "dst": dst, "iif": iif, "observed": observed, "observed_zh": observed_zh}
    if snap is not None and snap.sysctl:
        from analyzer.engines.routing import forwarding_off
        off = forwarding_off(snap, iif)
        if off is None:
            return []  # forwarding is on: some other cause (FORWARD_BLOCKED, MISSING_ROUTE...)
        setting, refs = off
        own = f"net.ipv4.conf.{iif}.forwarding"
        # the kernel's own test is the device's; net.ipv4.ip_forward is what people set (and sets them all)
        shown = [r for r in refs if "conf.all." not in r.text] or list(refs)
        setting = ", ".join(r.text.strip() for r in shown) or setting  # as the dump writes it (flannel/1)
        device_only = snap.sysctl.get("net.ipv4.ip_forward", "").strip() == "1"
        command = (f"sysctl -w {own.replace('conf.' + iif, 'conf.' + iif.replace('.', '/'))}=1" if device_only
                   else "sysctl -w net.ipv4.ip_forward=1")
        return [_make("IP_FORWARD_DISABLED", "error", node, {
            **params, "setting": setting, "command": command,
            "cause": f"IPv4 forwarding is off on {node} ({setting}): the kernel routes packets between interfaces "
                     f"only when the device they came in on forwards, so the route lookup for {flow.real_server[0]} "
                     "fails and the packet is dropped silently, before the FORWARD chain (no ICMP error; "
                     "`nstat` counts it as IpInAddrErrors).",
            "cause_zh": f"{node} 关闭了 IPv4 转发（{setting}）：只有收到该包的设备开启转发时，内核才会在接口之间路由，"
                        f"因此对 {flow.real_server[0]} 的路由查找失败，数据包在 FORWARD 链之前被静默丢弃"
                        "（没有 ICMP 差错；`nstat` 计入 IpInAddrErrors）。",
        }, [_ev_line(r) for r in shown[:2]] + ev, flow=flow.id)]
    if not gone:
        return []
    return [_make("IP_FORWARD_DISABLED", "info", node, {
        **params, "setting": "net.ipv4.ip_forward", "command": "sysctl -w net.ipv4.ip_forward=1",
        "cause": f"Either IPv4 forwarding is off on {node} (net.ipv4.ip_forward = 0) or its FORWARD chain drops "
                 "the packet (FORWARD_BLOCKED), or a strict reverse-path filter does because the route back to the "
                 "source leaves by another interface (RP_FILTER_DROP): all drop silently at this step and the "
                 f"packets alone cannot tell them apart; {node}'s sysctl, iptables-save and ip-route dumps can.",
        "cause_zh": f"要么 {node} 关闭了 IPv4 转发（net.ipv4.ip_forward = 0），要么其 FORWARD 链丢弃了该包"
                    "（FORWARD_BLOCKED），要么因回程路由走另一个接口而被严格反向路径过滤丢弃（RP_FILTER_DROP）："
                    f"它们都在这一步静默丢包，仅凭数据包无法区分；{node} 的 sysctl、iptables-save 和 ip-route 转储可以区分。",
    }, ev, checkable=False, flow=flow.id)]


def _rp_filter(ctx: Context) -> list[Finding]:
    """RP_FILTER_DROP: the dumps' walk of the flow's first packet, entering where the captures saw it
    arrive, ends at a route lookup the reverse-path filter refuses (strict ``rp_filter`` and a route
    back to the source through another interface: a second NIC, asymmetric routing). Needs the
    sysctl and route dumps; the packets alone look like IP_FORWARD_DISABLED's suspicion, which names it."""
    flow, sim = ctx.flow, ctx.sim
    if sim is None or ctx.status not in ("dropped", "no-reply") or flow.errors:
        return []
    hop = next((h for h in getattr(sim, "hops", ()) if h.kind == "route" and h.action == "DROPPED"
                and "reverse-path filter" in h.explanation), None)
    p = getattr(sim, "packet", None)
    snap = ctx.nodes.get(hop.node) if hop is not None else None
    if hop is None or p is None or snap is None or not p.in_interface:
        return []
    node, iif = hop.node, p.in_interface
    from analyzer.engines.routing import lookup_route, rp_filter_mode
    mode, refs = rp_filter_mode(snap, iif)
    back = lookup_route(snap, p.src, src=p.dst)  # the kernel's reverse lookup (from lo, no mark)
    if not mode or back.kind != "unicast" or back.out_interface == iif:
        return []
    came = [h for h in ctx.path if h.node == node and h.capturable and h.observed is True
            and h.interface == iif]
    keys = {(f, n) for h in came for f, n, _ in h.packets}
    seen = [s for s in flow.sightings if s.direction == "fwd" and (s.record.file, s.record.frame) in keys]
    # one copy of each packet (the first SYN, its retransmission), from the capture of that interface first
    one: dict[float, Sighting] = {}
    for s in sorted(seen, key=lambda s: (s.record.file.endswith(f"/{iif}.pcap") is False, s.ts)):
        if not any(abs(s.ts - t) < 0.001 for t in one):
            one[s.ts] = s
    seen = sorted(one.values(), key=lambda s: s.ts)
    gone = [h for h in ctx.path if h.node == node and h.capturable and h.observed is False]
    n_copies = len(seen)
    nowhere = f", none on {gone[0].interface}" if gone and gone[0].interface else ""
    nowhere_zh = f"，{gone[0].interface} 上一个也没有" if gone and gone[0].interface else ""
    gw = next((str(n.ip) for n in snap.neigh if n.dev == iif and n.lladdr and n.ip.version == 4), "<gateway on " + iif + ">")
    try:
        client_net = str(ipaddress.ip_network(f"{p.src}/24", strict=False))
    except ValueError:
        client_net = str(p.src)
    setting = ", ".join(r.text.strip() for r in refs) or f"rp_filter {mode}"
    back_line = back.chosen.source.text.strip() if back.chosen is not None else f"the route back to {p.src}"
    ev = [_ev_line(r) for r in refs[:2]]
    if back.chosen is not None:
        ev.append(_ev_line(back.chosen.source))
    ev += [_ev_packet(s) for s in seen[:2]]
    dnat = f" (DNATed to {p.endpoint('dst')})" if (str(p.dst), p.dport) != flow.server else ""
    return [_make("RP_FILTER_DROP", "error", node, {
        "node": node, "src": endpoint_text(*flow.client), "dst": endpoint_text(*flow.server), "dnat": dnat,
        "dnat_zh": f"（DNAT 到 {p.endpoint('dst')}）" if dnat else "", "iif": iif, "mode": mode,
        "words": "strict" if mode == 1 else "loose", "words_zh": "严格" if mode == 1 else "宽松",
        "setting": setting, "client": str(p.src), "back_dev": back.out_interface, "back_line": back_line,
        "gw": gw, "client_net": client_net,
        "observed": f"{n_copies} packet(s) seen arriving on {iif}{nowhere}, no ICMP error.",
        "observed_zh": f"在 {iif} 上看到 {n_copies} 个到达的包{nowhere_zh}，没有 ICMP 差错。",
    }, ev, flow=flow.id)]


def _forward_blocked(ctx: Context) -> list[Finding]:
    flow, topo = ctx.flow, ctx.topo
    if ctx.status not in ("dropped", "rejected", "no-reply"):
        return []
    failed = next((h for h in ctx.path if h.failed), None)
    errs = [e for e in flow.errors if (e.record.icmp_type, e.record.icmp_code) in ADMIN_PROHIBITED
            and e.record.quoted is not None and e.record.quoted.tunnel is None and e.record.quoted.dport != topo.overlay_port]
    cands = [failed] if failed is not None and failed.kind == "netfilter" and failed.action == "forward" else []
    if errs:
        node = node_of(errs[0].record.src, topo)
        cands = [h for h in ctx.path if h.kind == "netfilter" and h.action == "forward" and h.node == node] or cands
    for hop in cands:
        snap = ctx.nodes.get(hop.node or "")
        v = hook_verdict(snap, "FORWARD", flow.client[0], flow.real_server[0], flow.proto, flow.client[1],
                         flow.real_server[1])
        if v is not None and v.ref is not None and "endpoints" in v.ref.text:
            return []  # kube-proxy's service REJECT/DROP: SERVICE_NO_ENDPOINTS / NO_LOCAL_ENDPOINTS
        ev = [_ev_packet(e) for e in errs[:2]]
        if v is not None and v.target in ("DROP", "REJECT"):
            ev.insert(0, _ev_line(v.ref) if v.ref else Evidence(file="iptables-save", text="FORWARD policy"))
            how = "rejects" if v.target == "REJECT" else "drops"
            return [_make("FORWARD_BLOCKED", "error", hop.node, {
                "node": hop.node, "how": how, "how_zh": "拒绝" if how == "rejects" else "丢弃",
                "src": flow.client[0], "dst": flow.real_server[0], "cluster": _cluster(topo),
                "observed": "the packet stops at the FORWARD chain" + (" (a rule we cannot fully evaluate was passed)"
                                                                       if v.uncertain else ""),
                "observed_zh": "数据包止于 FORWARD 链"}, ev, flow=flow.id)]
        if errs and snap is None:
            return [_make("FORWARD_BLOCKED", "info", hop.node, {
                "node": hop.node, "how": "rejects", "how_zh": "拒绝", "src": flow.client[0], "dst": flow.real_server[0],
                "cluster": _cluster(topo), "observed": f"ICMP {errs[0].record.icmp_type}/{errs[0].record.icmp_code} "
                                                       f"from {errs[0].record.src}",
                "observed_zh": f"来自 {errs[0].record.src} 的 ICMP {errs[0].record.icmp_type}/{errs[0].record.icmp_code}"},
                ev, checkable=False, flow=flow.id)]
    return []


def _bad_checksum(ctx: Context) -> list[Finding]:
    """Only when the packets were then lost: a veth or offloading sender leaves the checksum to
    hardware, so a capture may show a wrong one on packets the receiver accepted."""
    flow = ctx.flow
    decap = ctx.hops("vtep", "decap")
    if ctx.status == "delivered" or (decap and decap[0].observed is True):
        return []
    rx_keys = {(f, p) for h in ctx.path if h.kind == "nic" and h.action == "receive" for f, p, _ in h.packets}
    rx_nodes = {h.node for h in ctx.path if h.kind == "nic" and h.action == "receive"}
    bad = [s for s in flow.sightings if s.record.tunnel and s.record.outer_udp_csum_ok is False
           and ((s.record.file, s.record.frame) in rx_keys
                or (s.node in rx_nodes and node_of(s.record.outer_dst, ctx.topo) == s.node))]
    if not bad:
        return []
    node = bad[0].node
    return [_make("BAD_OVERLAY_CHECKSUM", "error", node, {
        "count": len(bad), "node": node, "peer": bad[0].record.outer_src,
        "observed": "receiver-side capture of the underlay", "observed_zh": "底层网络接收端抓包"},
        [_ev_packet(s, _describe(s) + " bad UDP checksum") for s in bad[:4]], flow=flow.id)]


def _dns_race(ctx: Context) -> list[Finding]:
    flow = ctx.flow
    if flow.proto != 17 or flow.server[1] != 53:
        return []
    queries: dict[tuple, Sighting] = {}
    first_point = None
    for s in flow.sightings:
        if s.direction != "fwd":
            continue
        point = (s.node, s.interface, s.record.file)
        if first_point is None:
            first_point = point
        if point != first_point:
            continue
        queries.setdefault((s.record.payload_hash, s.record.payload_len, s.record.ip_id), s)
    qs = sorted(queries.values(), key=lambda s: s.ts)
    for i, a in enumerate(qs):
        for b in qs[i + 1:]:
            if b.ts - a.ts > 0.05:
                break
            if b.record.payload_hash == a.record.payload_hash:
                continue
            for c in qs:
                delay = c.ts - b.ts
                if c.record.payload_hash in (a.record.payload_hash, b.record.payload_hash) and 4.0 <= delay <= 6.0:
                    first = next((s for s in qs if s.ts < c.ts and s.record.payload_hash == c.record.payload_hash), a)
                    return [_make("CONNTRACK_DNS_RACE", "warning", node_of(flow.client[0], ctx.topo), {
                        "client": flow.client[0], "port": flow.client[1], "delay": c.ts - first.ts,
                        "observed": "two queries within 50 ms, one of them sent again 5 s later",
                        "observed_zh": "50 毫秒内两个查询，其中一个 5 秒后重发"},
                        [_ev_packet(a), _ev_packet(b), _ev_packet(c)], flow=flow.id)]
    return []


def _refused(ctx: Context) -> list[Finding]:
    flow, topo = ctx.flow, ctx.topo
    if ctx.status != "refused":
        return []
    rst = [s for s in flow.sightings if s.direction == "rev" and s.record.proto == 6 and (s.record.tcp_flags or 0) & 0x04]
    unreach = [e for e in flow.errors if (e.record.icmp_type, e.record.icmp_code) == (3, 3)]
    ev = [_ev_packet(s) for s in (rst or unreach)[:2]]
    how = "with a TCP reset" if rst else "with ICMP port unreachable"
    return [_make("CONNECTION_REFUSED", "warning", node_of(flow.real_server[0], topo), {
        "server": f"{flow.real_server[0]}:{flow.real_server[1]}", "how": how,
        "how_zh": "TCP RST" if rst else "ICMP 端口不可达", "port": flow.real_server[1]}, ev, flow=flow.id)]


def retransmission_findings(ctx: Context) -> list[Finding]:
    """RETRANSMISSIONS alone (``ctx.flow.retransmissions``), for a flow nothing else can be said of."""
    return _retransmissions(ctx)


def _retransmissions(ctx: Context) -> list[Finding]:
    flow = ctx.flow
    if not flow.retransmissions:
        return []
    where = sorted({f"{s.node} {s.interface or s.record.file}" if s.node else s.interface or s.record.file
                    for s in flow.retransmissions})
    # one resent segment shows up at every capture point it crosses: count segments, not copies
    segments = {(s.direction, s.record.seq, s.record.payload_len, (s.record.tcp_flags or 0) & 0x03, round(s.ts, 1))
                for s in flow.retransmissions}
    return [_make("RETRANSMISSIONS", "warning", flow.retransmissions[0].node, {
        "count": len(segments), "where": ", ".join(where[:3])},
        [_ev_packet(s) for s in flow.retransmissions[:4]], flow=flow.id)]

