"""The cluster's shape from packets (and dumps), and each flow's kind, roles and status.

``infer_topology`` reads what the packets show when there are no dumps: VXLAN outer headers
name the nodes' underlay addresses and the overlay's port and VNI, the inner addresses of VXLAN
packets give each node's pod /24, ARP gives more node addresses. Dump-derived ``NodeFacts``
always win over inferred ones. ``flow_kind`` and ``flow_status`` implement the contract's
``kind`` and ``status`` values.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from analyzer.engines.explain import ICMP_MEANING
from analyzer.model.explain import (
    ANY_INTERFACE,
    CapturePoint,
    NodeFacts,
    Service,
    Sighting,
    StitchedFlow,
    Topology,
)
from analyzer.model.flow import endpoint_text
from analyzer.model.record import PacketRecord

#: kube-apiserver's default service range; used only for addresses never seen answering themselves.
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
#: flannel's default network; assumed only when nothing else says and packets use addresses in it.
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
TCP_SYN, TCP_RST, TCP_ACK = 0x02, 0x04, 0x10

_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4096)
@lru_cache(maxsize=4096)
def _net(cidr: str | None) -> _Net | None:
    if not cidr:
        return None
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=1 << 16)
def _addr(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


@lru_cache(maxsize=1 << 16)
def _in(ip: str | None, cidr: str | None) -> bool:
    net = _net(cidr)
    if ip is None or net is None:
        return False
    addr = _addr(ip)
    return addr is not None and addr in net


@lru_cache(maxsize=1 << 16)
def _slash24(ip: str) -> str | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version != 4:
        return None
    return str(ipaddress.ip_network(f"{ip}/24", strict=False))


def _is_underlay_candidate(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not (addr.is_multicast or addr.is_unspecified or addr.is_loopback)


@dataclass(slots=True)
class TopoCounts:
    """What ``infer_topology`` counts over the sampled records, each dict (and each dict in a dict)
    in the order the records first show its keys: tunnel ports and VNIs, tunnel types per
    underlay address, the inner addresses behind each underlay address, the underlay addresses
    per file and the tunnelled records per file; and the addresses seen as sources, as
    destinations and on pod-side interfaces."""

    ports: dict[int, int]
    vnis: dict[int, int]
    tunnel_of: dict[str, dict[str, int]]
    pod_of_underlay: dict[str, dict[str, int]]
    file_outer: dict[str, dict[str, int]]
    file_count: dict[str, int]
    srcs: set[str]
    dsts: set[str]
    pod_side: set[str]


#: the interfaces whose packets are a pod's (its veth, the bridge, the VTEP): their addresses are pods'
POD_SIDE_PREFIXES = ("cni", "veth", "cbr", "flannel")


def topology_counts(records: Iterable[PacketRecord], ports: Collection[int],
                    weights: Mapping[int, int] | None = None) -> TopoCounts:
    """``TopoCounts`` of ``records`` (``ports``: the UDP ports taken as VXLAN; ``weights``:
    ``id(record)`` -> the sampled records it stands for, one where absent)."""
    pou: dict[str, dict[str, int]] = {}  # underlay address -> inner addresses behind it
    tun: dict[str, dict[str, int]] = {}  # underlay address -> tunnel types
    ports_n: dict[int, int] = {}
    vnis_n: dict[int, int] = {}
    f_outer: dict[str, dict[str, int]] = {}
    f_count: dict[str, int] = {}
    dsts: set[str] = set()
    srcs: set[str] = set()
    pod_side_addrs: set[str] = set()
    wget = weights.get if weights else None
    for r in records:
        w = wget(id(r), 1) if wget is not None else 1
        tunnel, osrc, odst, quoted, src = r.tunnel, r.outer_src, r.outer_dst, r.quoted, r.src
        if tunnel and osrc and odst:
            oport = r.outer_dport
            if oport is not None and (tunnel == "vxlan" or oport in ports):
                ports_n[oport] = ports_n.get(oport, 0) + w
            if r.vni is not None:
                vnis_n[r.vni] = vnis_n.get(r.vni, 0) + w
            c = tun.get(osrc)
            if c is None:
                c = tun[osrc] = {}
            c[tunnel] = c.get(tunnel, 0) + w
            c = tun.get(odst)
            if c is None:
                c = tun[odst] = {}
            c[tunnel] = c.get(tunnel, 0) + w
            if src and quoted is None:
                c = pou.get(osrc)
                if c is None:
                    c = pou[osrc] = {}
                c[src] = c.get(src, 0) + w
            dst = r.dst
            if dst and quoted is None:
                c = pou.get(odst)
                if c is None:
                    c = pou[odst] = {}
                c[dst] = c.get(dst, 0) + w
            c = f_outer.get(r.file)
            if c is None:
                c = f_outer[r.file] = {}
            c[osrc] = c.get(osrc, 0) + w
            c[odst] = c.get(odst, 0) + w
            f_count[r.file] = f_count.get(r.file, 0) + w
        if src and quoted is None and r.ip_version:
            srcs.add(src)
            if r.dst:
                dsts.add(r.dst)
            iface = r.interface or ""
            if iface.startswith(POD_SIDE_PREFIXES):
                pod_side_addrs.add(src)
                pod_side_addrs.add(r.dst or src)
    return TopoCounts(ports_n, vnis_n, tun, pou, f_outer, f_count, srcs, dsts, pod_side_addrs)


def infer_topology(
    records: Iterable[PacketRecord],
    points: Mapping[str, CapturePoint],
    known: Sequence[NodeFacts] = (),
    *,
    services: Sequence[Service] = (),
    cluster_cidr: str | None = None,
    service_cidr: str | None = None,
    pod_names: Mapping[str, str] | None = None,
    vxlan_ports: Iterable[int] = (8472, 4789),
    counts: TopoCounts | None = None,
) -> Topology:
    """Combine node facts from dumps with what the packets show.

    ``counts``: what ``topology_counts`` gives of the records, counted already (the plain lane
    counts its flows' sampled packets from columns); ``records`` is not read then."""
    ports = set(vxlan_ports)
    has_dumps = any(n.from_dumps for n in known)
    addr_owner: dict[str, str] = {}
    for n in known:
        for a in n.addresses:
            addr_owner[a] = n.name
    if counts is None:
        counts = topology_counts(records, ports)
    pou, tun, ports_n, vnis_n = counts.pod_of_underlay, counts.tunnel_of, counts.ports, counts.vnis
    f_outer, f_count = counts.file_outer, counts.file_count
    srcs, dsts, pod_side_addrs = counts.srcs, counts.dsts, counts.pod_side
    pod_of_underlay: dict[str, Counter[str]] = defaultdict(Counter, ((k, Counter(v)) for k, v in pou.items()))
    tunnel_of: dict[str, Counter[str]] = defaultdict(Counter, ((k, Counter(v)) for k, v in tun.items()))
    overlay_ports: Counter[int] = Counter(ports_n)
    vnis: Counter[int] = Counter(vnis_n)
    file_outer: dict[str, Counter[str]] = defaultdict(Counter, ((k, Counter(v)) for k, v in f_outer.items()))
    file_count: Counter[str] = Counter(f_count)
    inferred: list[str] = []
    tunnelled: set[str] = set()  # nodes known only from tunnel headers
    # nodes seen as VXLAN endpoints
    nodes: dict[str, NodeFacts] = {n.name: n for n in known}
    for underlay, inner in sorted(pod_of_underlay.items()):
        if not _is_underlay_candidate(underlay):
            continue
        cidrs: Counter[str] = Counter()  # (each /24 in the order its first address came)
        for ip, k in inner.items():
            if k > 0 and (c := _slash24(ip)):
                cidrs[c] += k
        pod_cidr = cidrs.most_common(1)[0][0] if cidrs else None
        owner = addr_owner.get(underlay)
        if owner is not None:
            n = nodes[owner]
            if n.pod_cidr is None and pod_cidr:
                nodes[owner] = replace(n, pod_cidr=pod_cidr)
            if n.backend == "unknown":
                nodes[owner] = replace(nodes[owner], backend="vxlan")
            continue
        # a node from the dumps that owns the pod subnet behind this address (its ip-addr lacked
        # the VXLAN details that name the underlay address): the same node, not a second one
        name = next((n.name for n in nodes.values()
                     if n.from_dumps and pod_cidr and _in(pod_cidr.split("/")[0], n.pod_cidr)), None)
        if name is not None:
            n = nodes[name]
            nodes[name] = replace(n, addresses=tuple(dict.fromkeys((*n.addresses, underlay))),
                                  backend="vxlan" if n.backend == "unknown" else n.backend)
            addr_owner[underlay] = name
            inferred.append(f"node {name}: underlay address {underlay} from VXLAN headers (pod subnet {n.pod_cidr})")
            continue
        # a capture taken on a named (bundle) node whose every VXLAN packet carries this address
        for f, c in file_outer.items():
            pt = points.get(f)
            if pt and pt.node and pt.node not in nodes and c.get(underlay, 0) == file_count[f]:
                name = pt.node
                break
        if name is None:
            name = underlay
        if name in nodes:
            n = nodes[name]
            nodes[name] = replace(n, addresses=tuple(sorted(set(n.addresses) | {underlay})))
        else:
            seen = tunnel_of[underlay].most_common(1)
            backend = _BACKEND_OF_TUNNEL.get(seen[0][0], "unknown") if seen else "vxlan"
            nodes[name] = NodeFacts(name=name, addresses=(underlay,), pod_cidr=pod_cidr, backend=backend)
            tunnelled.add(name)
        addr_owner[underlay] = name
        inferred.append(f"node {name}: underlay address {underlay} and pod CIDR {pod_cidr} from tunnel headers")
    pod_hosts = _split_shared_subnets(nodes, pod_of_underlay, addr_owner, tunnelled, inferred)
    # named captures whose node is still unknown (host-gw, same-node captures)
    for pt in points.values():
        if pt.node and pt.node not in nodes:
            nodes[pt.node] = NodeFacts(name=pt.node)
    node_list = tuple(sorted(nodes.values(), key=lambda n: n.name))
    pod_cidrs = [n.pod_cidr for n in node_list if n.pod_cidr]
    if cluster_cidr is None and pod_cidrs:
        nets = [_net(c) for c in pod_cidrs]
        first = nets[0]
        if first is not None and first.version == 4:
            sixteen = first.supernet(new_prefix=min(16, first.prefixlen))
            if all(n is not None and n.subnet_of(sixteen) for n in nets):
                cluster_cidr = str(sixteen)
                inferred.append(f"cluster CIDR {cluster_cidr} (the /16 holding every pod subnet seen)")
    if cluster_cidr is None and pod_side_addrs:
        # no overlay traffic: pods are the addresses seen on pod-side interfaces
        svc_range = service_cidr or DEFAULT_SERVICE_CIDR
        c24 = Counter(c for a in sorted(pod_side_addrs) if not _in(a, svc_range) and (c := _slash24(a)))
        if c24:
            first = ipaddress.ip_network(c24.most_common(1)[0][0])
            cluster_cidr = str(first.supernet(new_prefix=16))
            inferred.append(f"cluster CIDR {cluster_cidr} (addresses seen on pod-side interfaces)")
    if cluster_cidr is None and any(_in(a, DEFAULT_CLUSTER_CIDR) for a in srcs | dsts):
        cluster_cidr = DEFAULT_CLUSTER_CIDR
        inferred.append(f"cluster CIDR assumed to be flannel's default {DEFAULT_CLUSTER_CIDR} (addresses inside it seen)")
    svc = list(services)
    if service_cidr is None:
        service_cidr = DEFAULT_SERVICE_CIDR
        if not has_dumps:
            inferred.append(f"service range assumed to be Kubernetes' default {DEFAULT_SERVICE_CIDR}")
    known_svc = {s.ip for s in svc}
    for d in sorted(dsts - srcs):
        if d not in known_svc and _in(d, service_cidr) and not _in(d, cluster_cidr):
            svc.append(Service(ip=d, port=None, name=None))
            known_svc.add(d)
    overlay = None
    overlay_port = overlay_ports.most_common(1)[0][0] if overlay_ports else None
    if overlay_port is not None:
        overlay = "vxlan"
    else:
        backends = {n.backend for n in node_list} - {"unknown", "none"}
        overlay = backends.pop() if len(backends) == 1 else None
    return Topology(
        nodes=node_list,
        cluster_cidr=cluster_cidr,
        service_cidr=service_cidr,
        services=tuple(svc),
        overlay=overlay,
        overlay_port=overlay_port,
        vni=vnis.most_common(1)[0][0] if vnis else None,
        pod_names=dict(pod_names or {}),
        has_dumps=has_dumps,
        inferred=tuple(inferred),
        pod_hosts=pod_hosts,
    )


#: the contract's backend for a node seen only as the endpoint of this tunnel
_BACKEND_OF_TUNNEL = {"vxlan": "vxlan", "ipip": "ipip", "ip6in4": "ipip", "geneve": "geneve", "flannel-udp": "udp"}


def _split_shared_subnets(nodes: dict[str, NodeFacts], pod_of_underlay: Mapping[str, Counter[str]],
                          addr_owner: Mapping[str, str], tunnelled: set[str], inferred: list[str]
                          ) -> dict[str, str]:
    """One /24 behind several tunnel endpoints is no node's pod subnet (flannel gives each node its
    own; Calico's /26 blocks of one /24 sit on different nodes): those nodes lose the guessed
    subnet, and each inner address is placed on the node whose tunnel header carried it."""
    claims: dict[str, list[str]] = defaultdict(list)
    for name in sorted(tunnelled):
        cidr = nodes[name].pod_cidr
        if cidr is not None:
            claims[cidr].append(name)
    shared = {cidr: names for cidr, names in claims.items() if len(names) > 1}
    if not shared:
        return {}
    for cidr, names in sorted(shared.items()):
        for name in names:
            nodes[name] = replace(nodes[name], pod_cidr=None)
        inferred.append(f"pod subnet {cidr} is seen behind several nodes ({', '.join(names)}): not one node's "
                        "subnet; each pod address is placed on the node whose tunnel header carried it")
    hosts: dict[str, set[str]] = defaultdict(set)
    for underlay, inner in pod_of_underlay.items():
        owner = addr_owner.get(underlay)
        if owner is None:
            continue
        for ip in inner:
            if any(_in(ip, cidr) for cidr in shared):
                hosts[ip].add(owner)
    return {ip: next(iter(owners)) for ip, owners in sorted(hosts.items()) if len(owners) == 1}


_MEMO: list = [None, {}, {}]  # the last topology seen, node_of and role_of answers for it


def _memo(topo: Topology) -> tuple[dict, dict]:
    """Per-topology answer caches (a topology is immutable; thousands of flows ask the same)."""
    if _MEMO[0] is not topo:
        _MEMO[0], _MEMO[1], _MEMO[2] = topo, {}, {}
    return _MEMO[1], _MEMO[2]


def node_of(ip: str | None, topo: Topology) -> str | None:
    """The node owning ``ip``: as one of its addresses, or inside its pod CIDR."""
    if ip is None:
        return None
    cache = _memo(topo)[0]
    if ip in cache:
        return cache[ip]
    cache[ip] = found = _node_of(ip, topo)
    return found


def _node_of(ip: str, topo: Topology) -> str | None:
    for n in topo.nodes:
        if ip in n.addresses:
            return n.name
    for n in topo.nodes:
        if _in(ip, n.pod_cidr):
            return n.name
    return topo.pod_hosts.get(ip)


def service_at(ip: str | None, port: int | None, topo: Topology) -> Service | None:
    """The service at ``ip:port``: a ClusterIP/external IP, or a NodePort on any node address."""
    best = None
    if port is not None and role_of(ip, topo) == "node":
        nodeport = next((s for s in topo.services if s.ip == "*" and s.port == port), None)
        if nodeport is not None:
            return nodeport
    for s in topo.services:
        if s.ip == ip:
            if s.port == port:
                return s
            if best is None or s.port is None:
                best = best or s
    return best


def role_of(ip: str | None, topo: Topology) -> str:
    """Contract role: pod, service, node, external or unknown."""
    if ip is None:
        return "unknown"
    cache = _memo(topo)[1]
    if ip in cache:
        return cache[ip]
    cache[ip] = found = _role_of(ip, topo)
    return found


def _role_of(ip: str, topo: Topology) -> str:
    for n in topo.nodes:
        if ip in n.addresses:
            return "node"
    if any(s.ip == ip for s in topo.services):
        return "service"
    for n in topo.nodes:
        if _in(ip, n.pod_cidr):
            # x.x.x.0 (flannel.1) and x.x.x.1 (cni0) belong to the node itself
            return "node" if ip.endswith((".0", ".1")) and n.pod_cidr and n.pod_cidr.endswith("/24") else "pod"
    if _in(ip, topo.cluster_cidr) or ip in topo.pod_hosts:
        return "pod"
    if _in(ip, topo.service_cidr):
        return "service"
    if not topo.nodes and topo.cluster_cidr is None:
        return "unknown"
    return "external"


def is_pod(ip: str | None, topo: Topology) -> bool:
    return role_of(ip, topo) == "pod"


def flow_kind(flow: StitchedFlow, topo: Topology) -> str:
    c_ip, s_ip, r_ip = flow.client[0], flow.server[0], flow.real_server[0]
    c_role, s_role, r_role = role_of(c_ip, topo), role_of(s_ip, topo), role_of(r_ip, topo)
    dnat = any(n.type == "dnat" for n in flow.nats)
    if s_role == "node" and service_at(s_ip, flow.server[1], topo) is not None:
        s_role = "service"  # a NodePort
    if c_role == "pod":
        if s_role == "service" or (dnat and r_role == "pod" and s_role != "pod"):
            return "pod-to-service"
        if s_role == "pod":
            if c_ip == s_ip:
                return "same-pod"
            cn, sn = node_of(c_ip, topo), node_of(s_ip, topo)
            if cn is not None and sn is not None:
                return "pod-to-pod-same-node" if cn == sn else "pod-to-pod-cross-node"
            same24 = _slash24(c_ip) == _slash24(s_ip)
            return "pod-to-pod-same-node" if same24 else "pod-to-pod-cross-node"
        if s_role == "external":
            return "pod-to-external"
        if s_role == "node":
            return "pod-to-node"
        return "other"
    if c_role in ("external", "unknown") and (s_role == "service" or (dnat and r_role == "pod")):
        return "external-to-service"
    if c_role == "node" and s_role == "pod":
        return "node-to-pod"
    return "other"


def _is_plain_reply(r: PacketRecord) -> bool:
    if r.quoted is not None:
        return False
    if r.proto == 6:
        return not (r.tcp_flags or 0) & TCP_RST
    if r.proto in (1, 58):
        return r.icmp_type in (0, 129)
    return True


def unnatted_replies(flow: StitchedFlow, client_node: str | None = None) -> tuple[list[Sighting], list[Sighting]]:
    """Answers that reach the client still from the DNATed address, and the client's resets to it.

    Only where the captures show the client's side: a point (node and a named interface) where the
    forward packets still carry the address the client used. There a healthy answer comes from
    that address (conntrack undid the DNAT); one from the real server means the reply bypassed
    conntrack (bridged with br_netfilter off, or routed around the node that DNATed).
    """
    if flow.server == flow.real_server:
        return [], []
    client_side = {(s.node, s.interface) for s in flow.sightings
                   if s.direction == "fwd" and s.interface and s.interface != ANY_INTERFACE
                   and (s.record.dst, s.record.dport) == flow.server}

    def at_client(s: Sighting, outgoing: bool) -> bool:
        if (s.node, s.interface) in client_side:
            return True
        # a cooked capture without interface names: the client's node sending to (outgoing) or
        # receiving from (not outgoing) the client pod itself is the client's side
        return (client_node is not None and s.node == client_node and s.interface in (None, ANY_INTERFACE)
                and s.record.sll_pkttype is not None and (s.record.sll_pkttype == 4) is outgoing)

    replies = [s for s in flow.sightings if s.direction == "rev" and at_client(s, True)
               and (s.record.src, s.record.sport) == flow.real_server and s.record.dst == flow.client[0]]
    if not replies:
        return [], []
    resets = [s for s in flow.sightings if s.direction == "fwd" and at_client(s, False)
              and (s.record.dst, s.record.dport) == flow.real_server and s.record.proto == 6
              and (s.record.tcp_flags or 0) & TCP_RST]
    return replies, resets


def answer_status(flow: StitchedFlow, topo: Topology | None = None) -> tuple[str | None, str]:
    """Status decided by the packets alone: delivered/refused/rejected, or (None, why).

    Port unreachable from the addressed server is the server refusing, unless that address is a
    service's (a ClusterIP has no socket: kube-proxy's REJECT answers in its name), given ``topo``.
    """
    rev = [s for s in flow.sightings if s.direction == "rev"]
    fwd = [s for s in flow.sightings if s.direction == "fwd"]
    wrong, resets = unnatted_replies(flow, node_of(flow.client[0], topo) if topo is not None else None)
    if wrong:
        bad = {id(s) for s in wrong}
        at_client = {(s.node, s.interface, s.record.sll_pkttype) for s in wrong}
        if not any(_is_plain_reply(s.record) and id(s) not in bad
                   and (s.node, s.interface, s.record.sll_pkttype) in at_client for s in rev):
            reason = (f"the answer reached the client from {endpoint_text(*flow.real_server)}, not from "
                      f"{endpoint_text(*flow.server)} (not un-DNATed)")
            return "dropped", reason + (", and the client reset it" if resets else "")
    if any(_is_plain_reply(s.record) for s in rev):
        return "delivered", "the server answered"
    server_ips = {flow.server[0], flow.real_server[0]}
    if any(s.record.proto == 6 and (s.record.tcp_flags or 0) & TCP_RST for s in rev):
        return "refused", "the server reset the connection"
    hard_errors = [e for e in flow.errors if not (e.record.icmp_type == 3 and e.record.icmp_code == 4)]
    if hard_errors:
        e = hard_errors[0].record
        if e.icmp_type == 3 and e.icmp_code == 3 and e.src in server_ips and flow.real_server == flow.server \
                and (topo is None or role_of(flow.server[0], topo) != "service"):
            return "refused", "the destination answered port unreachable"
        meaning = ICMP_MEANING.get((e.icmp_type, e.icmp_code)) if e.ip_version == 4 else None
        return "rejected", f"ICMP {e.icmp_type}/{e.icmp_code} from {e.src}" + (f" ({meaning[0]})" if meaning else "")
    if not fwd and not flow.errors:  # (an ICMP error alone still says what happened to the packet)
        return "incomplete", "no packet from the client was captured"
    return None, "nothing came back"



def in_cidr(ip: str | None, cidr: str | None) -> bool:
    """``ip`` lies inside ``cidr`` (False when either is missing or malformed)."""
    return _in(ip, cidr)


def slash24(ip: str) -> str | None:
    """The /24 holding an IPv4 address (flannel's default per-node pod subnet size)."""
    return _slash24(ip)
