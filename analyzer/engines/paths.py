"""Each flow's expected path, overlaid with what the captures saw, as hops, a graph and a ladder.

The expected path comes from the cluster's shape (``Topology``: which node owns which pod subnet,
which backend carries traffic between nodes, the interface names from the dumps or the capture
file names) and the NATs seen or simulated: pod -> veth -> cni0 -> netfilter -> route ->
flannel.1 -> eth0 -> underlay -> eth0 -> netfilter INPUT -> flannel.1 -> netfilter -> cni0 ->
veth -> pod for VXLAN, shorter for the other kinds. Then every forward copy of the flow's
packets is placed on a hop, which gives each hop its contract ``observed`` value:

* ``True``: a capture taken there holds a forward packet of the flow;
* ``False``: a capture was taken there (a file of that node and interface, or a ``-i any``
  capture of that node) and holds none;
* ``None``: nothing was captured there (pods, netfilter, routing, the underlay): inferred.

Copies from captures that do not name their interface (``-i any`` without interface names) are
placed by order: the i-th copy of one packet on a node is the i-th capture point the path crosses
on that node (the kernel hands the copies to the capture in path order).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import TYPE_CHECKING

from analyzer.engines.classify import node_of, role_of
from analyzer.engines.explain import hop_explanation, reason_zh
from analyzer.model.explain import (
    ANY_INTERFACE,
    CapturePoint,
    Evidence,
    NodeFacts,
    ObservedNat,
    PathHop,
    Sighting,
    StitchedFlow,
    Topology,
)
from analyzer.model.flow import endpoint_text, proto_name

if TYPE_CHECKING:  # (networkx is imported when a graph is first needed)
    import networkx as nx

CAPTURABLE = frozenset({"veth", "bridge", "vtep", "nic", "underlay"})
#: tunnels carried directly in IP (no UDP port): their IP protocol number
TUNNEL_IP_PROTOCOLS = {"ipip": 4, "ip6in4": 41, "gre": 47}
DEFAULT_IFACES = {"bridge": "cni0", "vtep": "flannel.1", "nic": "eth0"}
MAX_HOP_PACKETS = 5


def input_label(port: int | None, ipproto: int | None) -> str:
    """The receiving node's INPUT check of the overlay: ``INPUT udp/8472`` or ``INPUT ipencap`` (IPIP)."""
    if port is None and ipproto is not None:
        return f"INPUT {proto_name(ipproto)}"  # as iptables-save names it: ipencap for IPIP (4)
    return f"INPUT udp/{port if port is not None else '?'}"


def _int_or_none(v: str | None) -> int | None:
    return int(v) if v is not None and v.isdigit() else None


def node_interfaces(node: str | None, topo: Topology, points: Mapping[str, CapturePoint]) -> dict[str, str]:
    """Role -> interface name on ``node``: dumps first, then the capture file names, then defaults."""
    out = dict(DEFAULT_IFACES)
    names = sorted({p.interface for p in points.values() if p.node == node and p.interface and not p.is_any})
    for name in names:
        if name.startswith(("flannel", "vxlan")):
            out["vtep"] = name
        elif name.startswith(("cni", "cbr", "docker", "br")):
            out["bridge"] = name
        elif name.startswith(("eth", "ens", "enp", "eno", "bond", "em")):
            out["nic"] = name
    facts = topo.node_named(node)
    if facts is not None:
        if facts.vtep_interface:
            out["vtep"] = facts.vtep_interface
        if facts.bridge_interface:
            out["bridge"] = facts.bridge_interface
        if facts.underlay_interface:
            out["nic"] = facts.underlay_interface
    return out


def _gateway(facts: NodeFacts | None) -> str | None:
    if facts is None or not facts.pod_cidr or "/" not in facts.pod_cidr:
        return None
    base = facts.pod_cidr.split("/")[0]
    parts = base.split(".")
    if len(parts) != 4:
        return None
    return ".".join(parts[:3] + [str(int(parts[3]) + 1)])


_HOP_ORDER = ("id", "node", "interface", "kind", "action", "label", "observed", "capturable", "evidence", "packets",
              "failed", "edge_label", "edge_kind", "facts")  # as _Builder.add passes them
if tuple(f.name for f in dataclass_fields(PathHop)) != _HOP_ORDER:  # pragma: no cover - PathHop changed
    raise ImportError("analyzer.engines.paths: PathHop's fields changed; update _Builder.add")


class _Builder:
    def __init__(self, flow_id: str) -> None:
        self.flow_id = flow_id
        self.hops: list[PathHop] = []

    def add(self, node: str | None, interface: str | None, kind: str, action: str, label: str,
            **facts: object) -> None:
        hops = self.hops
        # positional, in PathHop's field order (id ... label, observed, capturable, evidence, packets,
        # failed, edge_label, edge_kind, facts): ten hops per flow, tens of thousands of flows
        hops.append(PathHop(f"{self.flow_id}.{len(hops) + 1}", node, interface, kind, action, label, None,
                            kind in CAPTURABLE, (), (), False, "", "plain",
                            tuple([(k, str(v)) for k, v in facts.items() if v is not None])))

    def edge(self, label: str, kind: str = "plain") -> None:
        """Label the edge leaving the last hop."""
        if self.hops:
            self.hops[-1] = replace(self.hops[-1], edge_label=label, edge_kind=kind)


def _veth_name(flow: StitchedFlow, node: str | None, ip: str, outgoing: bool, topo: Topology | None = None
               ) -> str | None:
    """The host-side veth of pod ``ip``: from the captures, else from the dumps.

    A forward packet between two pods of one node crosses two veths with identical headers (the
    bridge rewrites nothing), so the captures tell the two apart only by time: the same packet
    enters on the client's veth before it leaves on the server's. When only one such veth was
    captured, the dumps (bridge neighbour + FDB port) decide.
    """
    facts = topo.node_named(node) if topo is not None else None
    known = facts.pod_veths.get(ip) if facts is not None else None
    first_seen: dict[str, float] = {}
    # with DNAT, the client's own veth carries its packets to the service address; a reset it sends
    # to the real server (an answer that was not un-DNATed) does not make it the server's veth
    client_veths = {s.interface for s in flow.sightings if s.direction == "fwd" and s.node == node
                    and (s.record.dst, s.record.dport) == flow.server} if flow.server != flow.real_server else set()
    for s in flow.sightings:
        if s.node != node or s.direction != "fwd" or not s.interface or not s.interface.startswith("veth"):
            continue
        if outgoing and s.interface in client_veths:
            continue
        r = s.record
        if (r.src == ip and not outgoing) or (r.dst == ip and outgoing):
            first_seen[s.interface] = min(first_seen.get(s.interface, s.ts), s.ts)
    if len(first_seen) >= 2:
        ordered = sorted(first_seen, key=lambda name: (first_seen[name], name))
        return ordered[-1] if outgoing else ordered[0]
    if known is not None:
        return known
    return next(iter(first_seen), None)


def _arrival_nic(flow: StitchedFlow, node: str | None, fi: Mapping[str, str]) -> str:
    """The NIC an outside client's packets came in by on ``node``: the interface of the first capture
    of them still addressed to ``flow.server`` (a second NIC's address arrives there, not on the
    underlay NIC); else the underlay NIC."""
    skip = {fi["bridge"], fi["vtep"], ANY_INTERFACE}
    first = min((s for s in flow.sightings if s.direction == "fwd" and s.node == node and s.interface
                 and s.interface not in skip and not s.interface.startswith("veth") and not s.record.tunnel
                 and s.record.dst == flow.server[0]), key=lambda s: s.ts, default=None)
    return first.interface if first is not None and first.interface else fi["nic"]


def expected_path(flow: StitchedFlow, topo: Topology, points: Mapping[str, CapturePoint]) -> list[PathHop]:
    """The forward path the flow's packets should take, in order (observations not yet applied)."""
    b = _Builder(flow.id)
    c_ip, c_port = flow.client
    s_ip, s_port = flow.server
    r_ip, r_port = flow.real_server
    c_role, _s_role, r_role = role_of(c_ip, topo), role_of(s_ip, topo), role_of(r_ip, topo)
    dnats = [n for n in flow.nats if n.type == "dnat"]
    snats = [n for n in flow.nats if n.type in ("snat", "masquerade")]
    # the node where the packet enters the cluster's nodes
    if c_role == "pod" or c_role == "node":
        first = node_of(c_ip, topo)
    else:  # external client: the node addressed (NodePort), else the node that DNATs
        first = node_of(s_ip, topo) if role_of(s_ip, topo) == "node" else None
        if first is None and dnats:
            first = dnats[0].node
        if first is None:
            first = next((s.node for s in flow.sightings if s.direction == "fwd" and s.node), None)
    last = node_of(r_ip, topo) if r_role in ("pod", "node") else None
    fi = node_interfaces(first, topo, points)
    first_facts = topo.node_named(first)
    dnat_text = ", ".join(f"DNAT {n.before} -> {n.after}" for n in dnats if n.node in (first, None)) or ""
    # --- the sender
    if c_role == "pod":
        b.add(first, "eth0", "pod", "send", f"pod {endpoint_text(c_ip, c_port)}", ip=c_ip)
        b.add(first, _veth_name(flow, first, c_ip, False, topo), "veth", "enter", "veth (host side)")
        b.add(first, fi["bridge"], "bridge", "bridge", fi["bridge"], gateway=_gateway(first_facts))
        b.add(first, None, "netfilter", "prerouting", "PREROUTING",
              what=(dnat_text + ".") if dnat_text else "no service address here, nothing rewritten.",
              what_zh=(dnat_text + "。") if dnat_text else "这里没有服务地址，不做改写。")
    elif c_role == "node":
        b.add(first, None, "host", "send", f"node {endpoint_text(c_ip, c_port)}", ip=c_ip)
        b.add(first, None, "netfilter", "output", "OUTPUT",
              what=(dnat_text + ".") if dnat_text else "nothing rewritten.",
              what_zh=(dnat_text + "。") if dnat_text else "不做改写。")
    else:
        b.add(None, None, "external", "send", f"{c_role} {endpoint_text(c_ip, c_port)}", ip=c_ip)
        nic_in = _arrival_nic(flow, first, fi)
        b.add(first, nic_in, "nic", "receive", nic_in)
        b.add(first, None, "netfilter", "prerouting", "PREROUTING",
              what=(dnat_text + ".") if dnat_text else "nothing rewritten.",
              what_zh=(dnat_text + "。") if dnat_text else "不做改写。")
    if dnat_text:
        b.edge(dnat_text, "nat")
    same_node = last is not None and last == first
    # --- routing on the first node
    if not (c_role == "pod" and same_node and r_role == "pod"):
        b.add(first, None, "route", "route", "route lookup", dst=r_ip)
    snat_text = ", ".join(f"{n.type.upper()} {n.before} -> {n.after}" for n in snats)
    if r_role == "pod" and same_node:
        b.add(first, None, "netfilter", "forward", "FORWARD / POSTROUTING",
              what=(snat_text + ".") if snat_text else "")
        if snat_text:
            b.edge(snat_text, "nat")
        if c_role == "pod":
            # pod to pod on one bridge: the frame is switched, not routed (with br_netfilter also
            # after a DNAT to a pod of the same bridge), so it crosses the bridge once
            i = max(j for j, h in enumerate(b.hops) if h.kind == "bridge")
            b.hops[i] = replace(b.hops[i], action="switch")
        else:
            b.add(first, fi["bridge"], "bridge", "exit", fi["bridge"])
        b.add(first, _veth_name(flow, first, r_ip, True, topo), "veth", "exit", "veth (host side)")
        b.add(first, "eth0", "pod", "deliver", f"pod {endpoint_text(r_ip, r_port)}", ip=r_ip)
        return b.hops
    if r_role == "node" and same_node:
        b.add(first, None, "netfilter", "local-input", "INPUT")
        b.add(first, None, "host", "deliver", f"node {endpoint_text(r_ip, r_port)}", ip=r_ip)
        return b.hops
    b.add(first, None, "netfilter", "forward" if c_role != "node" else "postrouting",
          "FORWARD / POSTROUTING" if c_role != "node" else "POSTROUTING",
          what=(snat_text + ".") if snat_text else "")
    if snat_text:
        b.edge(snat_text, "nat")
    if r_role not in ("pod", "node") or last is None:
        b.add(first, fi["nic"], "nic", "transmit", fi["nic"])
        b.add(None, None, "external", "deliver", f"{r_role} {endpoint_text(r_ip, r_port)}", ip=r_ip)
        return b.hops
    # --- across the underlay to the last node
    li = node_interfaces(last, topo, points)
    backend = (first_facts.backend if first_facts and first_facts.backend != "unknown" else None) or topo.overlay
    encap = [s.record for s in flow.sightings if s.direction == "fwd" and s.record.tunnel]
    if encap or backend == "vxlan":
        port = encap[0].outer_dport if encap else topo.overlay_port or 8472
        vni = encap[0].vni if encap else topo.vni
        src_ip = encap[0].outer_src if encap else topo.node_ip(first)
        dst_ip = encap[0].outer_dst if encap else topo.node_ip(last)
        tunnel = encap[0].tunnel if encap else "vxlan"
        ipproto = TUNNEL_IP_PROTOCOLS.get(tunnel)
        if ipproto is not None:
            port = None  # an IP-protocol tunnel (IPIP, GRE...): no UDP port
        vni_text = f" vni {vni}" if vni is not None else ""
        port_text = f":{port}" if port is not None else ""
        outer = f"{tunnel.upper()}{vni_text} {src_ip or '?'} -> {dst_ip or '?'}{port_text}"
        b.add(first, fi["vtep"], "vtep", "encap", fi["vtep"], port=port, vni=vni, peer=dst_ip, tunnel=tunnel.upper(),
              ipproto=ipproto)
        b.edge(outer, "encap")
        b.add(first, fi["nic"], "nic", "transmit", fi["nic"], outer=f" inside {outer}", outer_zh=f"（{outer}）")
        b.add(None, None, "underlay", "carry", "underlay", outer=outer)
        b.add(last, li["nic"], "nic", "receive", li["nic"], outer=f" inside {outer}", outer_zh=f"（{outer}）")
        b.add(last, None, "netfilter", "input", input_label(port, ipproto), port=port, tunnel=tunnel.upper(),
              ipproto=ipproto)
        b.add(last, li["vtep"], "vtep", "decap", li["vtep"])
        b.edge(f"decapsulated {tunnel.upper()}{vni_text}", "decap")
    else:
        b.add(first, fi["nic"], "nic", "transmit", fi["nic"])
        b.add(None, None, "underlay", "carry", "underlay", outer="no encapsulation")
        b.add(last, li["nic"], "nic", "receive", li["nic"])
    if r_role == "node":
        b.add(last, None, "netfilter", "local-input", "INPUT")
        b.add(last, None, "host", "deliver", f"node {endpoint_text(r_ip, r_port)}", ip=r_ip)
        return b.hops
    b.add(last, None, "netfilter", "forward", "FORWARD / POSTROUTING")
    b.add(last, li["bridge"], "bridge", "exit", li["bridge"])
    b.add(last, _veth_name(flow, last, r_ip, True, topo), "veth", "exit", "veth (host side)")
    b.add(last, "eth0", "pod", "deliver", f"pod {endpoint_text(r_ip, r_port)}", ip=r_ip)
    return b.hops


# ----------------------------------------------------------------------------- observations


#: (kind, forward action) -> the action of the same place on the way back
_REVERSE = {("pod", "send"): "deliver", ("pod", "deliver"): "send", ("veth", "enter"): "exit", ("veth", "exit"): "enter",
            ("bridge", "bridge"): "exit", ("bridge", "exit"): "bridge", ("vtep", "encap"): "decap",
            ("vtep", "decap"): "encap", ("nic", "transmit"): "receive", ("nic", "receive"): "transmit",
            ("external", "send"): "deliver", ("external", "deliver"): "send", ("host", "send"): "deliver",
            ("host", "deliver"): "send"}


def reply_path(path: Sequence[PathHop], flow_id: str) -> list[PathHop]:
    """The places of the forward path in reverse order, as the reply crosses them.

    Netfilter hops keep their place (conntrack undoes the forward NATs there), route lookups too;
    the VXLAN devices swap encapsulation and decapsulation, the NICs transmit and receive.
    """
    out: list[PathHop] = []
    back = []
    for h in reversed(path):
        if h.kind == "netfilter" and h.action == "input":
            continue  # the overlay's INPUT check belongs to the receiving node: re-placed below
        if h.kind == "vtep" and h.action == "encap":  # becomes a decap: the reply's receiver checks INPUT
            f = dict(h.facts)
            back.append(replace(h, kind="netfilter", action="input",
                                label=input_label(_int_or_none(f.get("port")), _int_or_none(f.get("ipproto"))),
                                capturable=False, interface=None, edge_label="", edge_kind="plain"))
        back.append(h)
    fwd_encap = next((x for x in path if x.kind == "vtep" and x.action == "encap"), None)
    for i, h in enumerate(back):
        action = _REVERSE.get((h.kind, h.action), h.action)
        nxt = back[i + 1] if i + 1 < len(back) else None
        edge, kind = "", "plain"
        if h.kind == "vtep" and action == "encap" and nxt is not None:
            label = fwd_encap.edge_label if fwd_encap is not None else ""
            edge, kind = (_swap_outer(label), "encap") if label else ("", "encap")
        elif h.kind == "vtep" and action == "decap":
            edge, kind = "decapsulated", "decap"
        elif h.kind == "netfilter" and h.edge_kind == "nat":
            edge, kind = "conntrack undoes " + h.edge_label, "nat"
        facts = h.facts
        if h.kind == "vtep" and action == "encap":
            peer = fwd_encap.facts if fwd_encap is not None else ()
            facts = tuple((k, v) for k, v in peer if k != "peer")
        out.append(PathHop(id=f"{flow_id}.r{i + 1}", node=h.node, interface=h.interface, kind=h.kind, action=action,
                           label=h.label, capturable=h.capturable, edge_label=edge, edge_kind=kind, facts=facts))
    return out


def _swap_outer(label: str) -> str:
    """`VXLAN vni 1 A -> B:8472` on the way back: `VXLAN vni 1 B -> A:8472`."""
    head, sep, rest = label.rpartition(" -> ")
    if not sep or " " not in head:
        return label
    prefix, _, src = head.rpartition(" ")
    dst, colon, port = rest.rpartition(":")
    if not colon:
        return label
    return f"{prefix} {dst} -> {src}:{port}"


def covered(hop: PathHop, points: Mapping[str, CapturePoint]) -> bool:
    """True when some capture was taken where ``hop`` is (so absence there means something)."""
    if not hop.capturable or hop.node is None:
        return False
    if hop.kind == "bridge" and hop.action == "switch":
        return False  # a bridge device sees switched frames only in promiscuous mode: absence proves nothing
    for p in points.values():
        if p.node != hop.node:
            continue
        if p.is_any:
            return True
        if hop.interface is not None and p.interface == hop.interface:
            return True
    return False


def _place(path: Sequence[PathHop], flow: StitchedFlow, points: Mapping[str, CapturePoint],
           direction: str = "fwd") -> dict[int, list[Sighting]]:
    """Sightings of one direction per hop index."""
    hits: dict[int, list[Sighting]] = defaultdict(list)
    named: dict[tuple[str | None, str], list[int]] = defaultdict(list)
    for i, h in enumerate(path):
        if h.capturable and h.interface:
            named[(h.node, h.interface)].append(i)
    unnamed: dict[tuple[str | None, tuple], list[Sighting]] = defaultdict(list)
    underlay = next((i for i, h in enumerate(path) if h.kind == "underlay"), None)
    for s in flow.sightings:
        if s.direction != direction:
            continue
        pt = points.get(s.record.file)
        if pt is not None and pt.is_underlay:
            if underlay is not None:  # taken between the nodes: only the underlay hop can show it
                hits[underlay].append(s)
            continue
        if s.interface and not (pt is not None and pt.is_any and s.interface == pt.interface):
            same = named.get((s.node, s.interface), [])
            # one NIC can be crossed twice (NodePort in, VXLAN out): the tunnelled copy is the later
            i = (same[-1] if s.record.tunnel else same[0]) if same else None
            if i is None and s.interface.startswith("veth"):
                # the veth of the path whose name was not known: the pod side of that node
                cands = [j for j, h in enumerate(path) if h.kind == "veth" and h.node == s.node and h.interface is None]
                want_src = s.record.src == (flow.client[0] if direction == "fwd" else flow.real_server[0])
                if cands:
                    i = cands[0] if want_src or len(cands) == 1 else cands[-1]
            if i is not None:
                hits[i].append(s)
            continue
        unnamed[(s.node, s.key)].append(s)
    for (node, _key), copies in unnamed.items():
        copies.sort(key=lambda s: (s.ts, s.record.file, s.record.frame))
        tunnelled = [c for c in copies if c.record.tunnel]
        plain = [c for c in copies if not c.record.tunnel]
        on_node = [j for j, h in enumerate(path) if h.capturable and h.node == node and h.kind != "underlay"]
        wrapped = [j for j in on_node if _carries_tunnel(path, j)]
        bare = [j for j in on_node if j not in wrapped]
        for group, cands in ((tunnelled, wrapped), (plain, bare)):
            if not cands:
                continue
            for n, c in enumerate(group):
                hits[cands[min(n, len(cands) - 1)]].append(c)
    return hits


def _carries_tunnel(path: Sequence[PathHop], i: int) -> bool:
    """A NIC hop right after the node's VTEP encapsulates, or right before it decapsulates."""
    h = path[i]
    if h.kind != "nic":
        return False
    same = [j for j, x in enumerate(path) if x.node == h.node and x.capturable]
    pos = same.index(i)
    if h.action == "transmit" and pos > 0:
        prev = path[same[pos - 1]]
        return prev.kind == "vtep" and prev.action == "encap"
    if h.action == "receive" and pos + 1 < len(same):
        nxt = path[same[pos + 1]]
        return nxt.kind == "vtep" and nxt.action == "decap"
    return False


def observe(path: Sequence[PathHop], flow: StitchedFlow, points: Mapping[str, CapturePoint],
            direction: str = "fwd") -> list[PathHop]:
    """Apply the captures to the expected path: ``observed`` and the packets of each hop."""
    hits = _place(path, flow, points, direction)
    nat_seen = {(n.node, n.type) for n in flow.nats if n.evidence}
    out = []
    for i, h in enumerate(path):
        seen = hits.get(i, [])
        if seen:
            seen = sorted(seen, key=lambda s: (s.ts, s.record.file, s.record.frame))
            observed: bool | None = True
            packets = tuple((s.record.file, s.record.frame, round(s.ts, 6)) for s in seen[:MAX_HOP_PACKETS])
            evidence = tuple(
                Evidence(file=s.record.file, packet=s.record.frame, text=sighting_text(s)) for s in seen[:3]
            )
            name = h.interface
            if h.kind == "veth" and name is None:
                name = next((s.interface for s in seen if s.interface and s.interface.startswith("veth")), None)
            h = replace(h, observed=observed, packets=packets, evidence=evidence, interface=name)
        elif h.capturable:
            absent = False if covered(h, points) else None
            if absent is not h.observed:
                h = replace(h, observed=absent)
        elif h.kind == "netfilter" and (
            (h.node, "dnat") in nat_seen and h.action in ("prerouting", "output")
            or any((h.node, t) in nat_seen for t in ("snat", "masquerade")) and h.action in ("forward", "postrouting")
        ):
            nats = [n for n in flow.nats if n.node == h.node and n.evidence]
            ev = tuple(dict.fromkeys(Evidence(file=f, packet=p, text=f"{n.type} {n.before} -> {n.after}")
                                     for n in nats for f, p in n.evidence))
            h = replace(h, observed=True, evidence=ev[:4])
        out.append(h)
    return out


def sighting_text(s: Sighting) -> str:
    """One packet for evidence: inner endpoints, flags or type, and the tunnel it travelled in."""
    r = s.record
    text = f"{endpoint_text(r.src or '?', r.sport)} > {endpoint_text(r.dst or '?', r.dport)} {packet_label(s)}"
    if r.tunnel:
        port = f":{r.outer_dport}" if r.outer_dport is not None else ""
        text += f" in {r.tunnel.upper()} {r.outer_src} > {r.outer_dst}{port}"
    return text


def packet_label(s: Sighting) -> str:
    r = s.record
    if r.proto == 6:
        flags = r.tcp_flags or 0
        names = [n for bit, n in ((0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH")) if flags & bit]
        if flags & 0x10:
            names.append("ACK")
        text = "/".join(names) if names else "TCP"
        if flags & 0x12 == 0x12:
            text = "SYN/ACK"
        if r.payload_len:
            text += f" len={r.payload_len}"
        return text
    if r.proto in (1, 58):
        return f"ICMP {r.icmp_type}/{r.icmp_code}"
    if r.proto == 17:
        return f"UDP len={r.payload_len or 0}"
    return f"{proto_name(r.proto or 0)} len={r.payload_len or 0}"


def last_seen_index(path: Sequence[PathHop]) -> int | None:
    seen = [i for i, h in enumerate(path) if h.observed is True and h.capturable]
    return seen[-1] if seen else None


def missing_after(path: Sequence[PathHop]) -> int | None:
    """Index of the first hop after the last place the packet was seen where a capture shows it absent."""
    last = last_seen_index(path)
    start = 0 if last is None else last + 1
    for i in range(start, len(path)):
        if path[i].observed is False:
            return i
    return None


def failure_index(path: Sequence[PathHop], *, error_node: str | None = None, frag_needed: bool = False,
                  last: int | None = -1) -> int | None:
    """The hop where the packet died: between the last sighting and the first absence.

    The last inferred (uncapturable) hop before the absence is preferred (netfilter and routing
    decide drops); without one, the last hop that saw the packet is where it stopped. With an
    ICMP error, the netfilter hop of the node that sent it (its route lookup for "fragmentation
    needed": the output device's MTU is a routing decision).
    """
    if last == -1:
        last = last_seen_index(path)
    if error_node is not None and frag_needed:
        route = [i for i, h in enumerate(path) if h.node == error_node and h.kind == "route"]
        if route:
            return route[0]
    if error_node is not None:
        start = 0 if last is None else last
        cands = [i for i in range(start, len(path)) if path[i].node == error_node and path[i].kind in ("netfilter", "route")]
        filters = [i for i in cands if path[i].kind == "netfilter"
                   and path[i].action in ("forward", "input", "local-input", "output")]
        if filters:  # REJECT targets live in the filter table
            return filters[0]
        if cands:
            return cands[0]
        cands = [i for i in range(len(path)) if path[i].node == error_node and path[i].kind in ("netfilter", "route")]
        if cands:
            return cands[-1] if last is None or cands[-1] <= last else cands[0]
    miss = missing_after(path)
    if miss is None:
        return None
    lo = 0 if last is None else last + 1
    inferred = [i for i in range(lo, miss) if not path[i].capturable and path[i].kind in ("netfilter", "route")]
    if inferred:
        return inferred[-1]
    return last if last is not None else miss


def mark_failed(path: Sequence[PathHop], index: int | None) -> list[PathHop]:
    out = list(path)
    if index is not None and 0 <= index < len(out):
        out[index] = replace(out[index], failed=True, edge_kind="drop")
    return out


def describe(hop: PathHop) -> str:
    """`node interface` or `node label` for sentences."""
    where = hop.interface if hop.capturable and hop.interface else hop.label
    return f"{hop.node} {where}" if hop.node else where


# ----------------------------------------------------------------------------- graph and ladder


def path_graph(path: Sequence[PathHop]) -> nx.DiGraph:
    import networkx as nx  # (imported by the first flow that needs a graph)

    g = nx.DiGraph()
    for i, h in enumerate(path):
        g.add_node(h.id, label=h.label, kind=h.kind, node=h.node, interface=h.interface,
                   observed=h.observed, failed=h.failed, hop=i)
    for a, b in zip(path, path[1:], strict=False):
        g.add_edge(a.id, b.id, label=a.edge_label, kind=a.edge_kind if a.edge_kind != "drop" or a.failed else "plain")
    return g


def graph_json(g: nx.DiGraph) -> dict:
    order = sorted(g.nodes, key=lambda n: g.nodes[n]["hop"])
    nodes = [{"id": n, **{k: g.nodes[n][k] for k in ("label", "kind", "node", "interface", "observed", "failed", "hop")}}
             for n in order]
    pos = {n: i for i, n in enumerate(order)}
    edges = [{"src": a, "dst": b, "label": d["label"], "kind": d["kind"]}
             for a, b, d in sorted(g.edges(data=True), key=lambda e: pos[e[0]])]
    return {"nodes": nodes, "edges": edges}


def path_graph_json(path: Sequence[PathHop]) -> dict:
    """``graph_json(path_graph(path))`` without building the networkx graph (same dict): a path
    is a chain, so its graph's nodes and edges are the hops and their successors in order."""
    nodes = [{"id": h.id, "label": h.label, "kind": h.kind, "node": h.node, "interface": h.interface,
              "observed": h.observed, "failed": h.failed, "hop": i} for i, h in enumerate(path)]
    edges = [{"src": a.id, "dst": b.id, "label": a.edge_label,
              "kind": a.edge_kind if a.edge_kind != "drop" or a.failed else "plain"}
             for a, b in zip(path, path[1:], strict=False)]
    return {"nodes": nodes, "edges": edges}


_LAST_SEEN: dict[tuple, int | None] = {}


def last_seen_on_path(path: Sequence[PathHop]) -> str | None:
    """``last_seen_on_graph(path_graph(path))``, the graph walked once per distinct path shape
    (hop kinds and observations; hop ids differ between flows, so the answer is kept as an index)."""
    shape = tuple((h.kind, h.observed) for h in path)
    if shape not in _LAST_SEEN:
        if len(_LAST_SEEN) > 4096:
            _LAST_SEEN.clear()
        found = last_seen_on_graph(path_graph(path))
        _LAST_SEEN[shape] = next((i for i, h in enumerate(path) if h.id == found), None)
    i = _LAST_SEEN[shape]
    return path[i].id if i is not None else None


def last_seen_on_graph(g: nx.DiGraph) -> str | None:
    """The graph node farthest along the path where the packet was captured."""
    import networkx as nx

    seen = [n for n in nx.topological_sort(g) if g.nodes[n]["observed"] is True and g.nodes[n]["kind"] in CAPTURABLE]
    return seen[-1] if seen else None


def ladder(flow: StitchedFlow, points: Mapping[str, CapturePoint], *, limit: int = 200) -> dict:
    lanes: dict[tuple[str | None, str | None], str] = {}
    events = []
    allsight = sorted(list(flow.sightings) + list(flow.errors), key=lambda s: (s.ts, s.record.file, s.record.frame))
    t0 = allsight[0].ts if allsight else 0.0
    for s in allsight[:limit]:
        pt = points.get(s.record.file)
        iface = s.interface or (pt.interface if pt else None)
        key = (s.node, iface)
        if key not in lanes:
            lanes[key] = f"L{len(lanes) + 1}"
        r = s.record
        outer = f"{r.tunnel.upper()} vni {r.vni}" if r.tunnel and r.vni is not None else (r.tunnel.upper() if r.tunnel else None)
        events.append({
            "lane": lanes[key],
            "ts": round(s.ts, 6),
            "rel": round(s.ts - t0, 6),
            "file": r.file,
            "packet": r.frame,
            "dir": s.direction,
            "label": packet_label(s),
            "outer": outer,
        })
    lane_list = [
        {"id": lid, "label": " ".join(x for x in (node, iface) if x) or "capture", "node": node, "interface": iface}
        for (node, iface), lid in lanes.items()
    ]
    return {"lanes": lane_list, "events": events}


def _action(h: PathHop) -> str:
    """The contract's ``action``: what the hop does, with the rewrite or encapsulation it applies."""
    base = {"pod": {"send": "send", "deliver": "deliver"}, "external": {"send": "send", "deliver": "deliver"},
            "host": {"send": "send", "deliver": "deliver"}}.get(h.kind, {}).get(h.action, h.label)
    if h.edge_label and h.edge_kind in ("nat", "encap", "decap"):
        return f"{base}: {h.edge_label}"
    return base


_HOP_WORDS: dict[tuple, tuple[str, dict]] = {}


def _hop_words(h: PathHop) -> tuple[str, dict]:
    """The contract action and the learner's explanation of a hop: the same for every flow that
    crosses the same place the same way, so worked out once per distinct hop. The explanation
    dict is shared by those hops (documents are read-only; thousands of flows, one copy)."""
    key = (h.kind, h.action, h.node, h.interface, h.label, h.edge_label, h.edge_kind, h.facts)
    words = _HOP_WORDS.get(key)
    if words is None:
        if len(_HOP_WORDS) > 65536:
            _HOP_WORDS.clear()
        words = _HOP_WORDS[key] = (_action(h), hop_explanation(h))
    return words


def hop_json(h: PathHop) -> dict:
    action, explanation = _hop_words(h)
    return {
        "node": h.node,
        "interface": h.interface,
        "kind": h.kind,
        "action": action,
        "observed": h.observed,
        "evidence": [e.to_json() for e in h.evidence],
        "id": h.id,
        "explanation": explanation,
        "packets": [{"file": f, "packet": p, "ts": t} for f, p, t in h.packets],
        "failed": h.failed,
    }


def nat_list(nats: Sequence[ObservedNat]) -> list[ObservedNat]:
    return sorted(nats, key=lambda n: 0 if n.type == "dnat" else 1)


# ----------------------------------------------------------------------------- the simulator's view

#: my netfilter hop action -> the hooks of the simulator's walk it covers
HOOKS = {"prerouting": ("PREROUTING",), "forward": ("FORWARD", "POSTROUTING"), "input": ("INPUT",),
         "local-input": ("INPUT",),
         "output": ("OUTPUT",), "postrouting": ("POSTROUTING",)}
#: simulator actions worth showing as evidence (jumps and returns are the plumbing between them)
DECISIVE = {"DNAT", "SNAT", "MASQUERADED", "ACCEPTED", "DROPPED", "REJECTED", "POLICY", "ROUTED", "ENCAPSULATED",
            "LOOKED-UP", "DELIVERED", "MARKED", "REDIRECTED", "TRANSMITTED"}
MAX_SIM_EVIDENCE = 6


def _sim_targets(path: Sequence[PathHop], sim_hop) -> list[int]:  # noqa: ANN001 - engines.simulate.SimHop
    """Indices of the path hops a simulator step belongs to."""
    out = []
    for i, h in enumerate(path):
        if h.node != sim_hop.node:
            continue
        if sim_hop.kind == "netfilter" and h.kind == "netfilter" and sim_hop.hook in HOOKS.get(h.action, ()) or sim_hop.kind == "route" and h.kind == "route" or sim_hop.kind == "overlay" and h.kind == "vtep" and h.action == "encap":
            out.append(i)
        elif sim_hop.kind == "deliver" and h.kind in ("bridge", "veth", "host") and h.action in ("exit", "deliver"):
            out.append(i)
            break
    if not out and sim_hop.kind == "bridge":  # the bridge's own decision: its last crossing on that node
        out = [i for i, h in enumerate(path) if h.node == sim_hop.node and h.kind == "bridge"
               and h.interface == sim_hop.interface][-1:]
    return out[:1]


def _with_route_hops(path: Sequence[PathHop], sim_hops: Sequence) -> list[PathHop]:
    """The route lookup the dumps say dropped the packet on a node whose expected path shows none
    (the receiving node: forwarding off, a strict rp_filter), inserted before that node's FORWARD hop,
    where the kernel makes that decision; hop ids renumbered."""
    out = list(path)
    for sh in sim_hops:
        if sh.kind != "route" or sh.action != "DROPPED" or any(h.node == sh.node and h.kind == "route" for h in out):
            continue
        at = next((i for i, h in enumerate(out) if h.node == sh.node and h.kind == "netfilter"
                   and h.action == "forward"), None)
        if at is None:
            continue
        dst = next((v for h in reversed(out) for k, v in h.facts if k == "ip"), None)
        out.insert(at, PathHop(id="", node=sh.node, interface=None, kind="route", action="route",
                               label="route lookup", facts=(("dst", dst),) if dst else ()))
    if len(out) == len(path):
        return out
    flow_id = path[0].id.rsplit(".", 1)[0]
    return [replace(h, id=f"{flow_id}.{i + 1}") for i, h in enumerate(out)]


def attach_simulation(path: Sequence[PathHop], sim_hops: Sequence) -> list[PathHop]:
    """Add the dump lines behind each hop (rules matched, routes, FDB and neighbour entries)."""
    out = _with_route_hops(path, sim_hops)
    extra: dict[int, list[Evidence]] = defaultdict(list)
    for sh in sim_hops:
        if sh.action not in DECISIVE or not sh.evidence:
            continue
        for i in _sim_targets(out, sh):
            for ref in sh.evidence:
                ev = Evidence(file=ref.file, line=ref.line, text=ref.text)
                if ev not in extra[i] and ev not in out[i].evidence:
                    extra[i].append(ev)
    for i, evs in extra.items():
        out[i] = replace(out[i], evidence=out[i].evidence + tuple(evs[:MAX_SIM_EVIDENCE]))
    for sh in sim_hops:  # a route lookup that drops: its reason in the hop's explanation
        if sh.kind == "route" and sh.action == "DROPPED" and sh.explanation:
            why = sh.explanation.rstrip(".")
            why = why[0].lower() + why[1:] if why.startswith("The ") else why
            for i in _sim_targets(out, sh):
                out[i] = replace(out[i], facts=out[i].facts + (("route", ": " + why),
                                                               ("route_zh", "：" + reason_zh(why).rstrip("。"))))
    return out


def sim_failure_index(path: Sequence[PathHop], sim_hops: Sequence) -> int | None:
    """The hop of the simulator's DROPPED/REJECTED step (or a route/overlay that failed)."""
    for sh in sim_hops:
        if sh.action in ("DROPPED", "REJECTED") or (sh.kind in ("route", "overlay") and sh.action in
                                                     ("UNREACHABLE", "BLACKHOLE", "PROHIBIT", "NO-ROUTE", "FAILED")):
            idx = _sim_targets(path, sh)
            if idx:
                return idx[0]
    return None
