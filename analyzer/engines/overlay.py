"""How a routed packet enters the overlay, and which node an overlay packet came from.

flannel's VXLAN backend programs, per remote node, one route (``10.244.2.0/24 via 10.244.2.0 dev
flannel.1 onlink``), one permanent neighbour entry (``10.244.2.0 lladdr <VTEP MAC>``) and one FDB
entry (``<VTEP MAC> dst <node IP> self permanent``). ``resolve_overlay`` follows the same chain
the kernel follows (route -> neighbour -> FDB -> UDP to the remote node) and says which link is
missing. host-gw is plain routing to the remote node's address on the uplink; IPIP sends the
packet inside an outer IPv4 header (protocol 4) to the route's gateway.
"""

from __future__ import annotations

import ipaddress

from analyzer.engines.routing import lookup_route
from analyzer.model.node import (
    FdbEntry,
    Interface,
    IPAddress,
    NeighEntry,
    NodeSnapshot,
    OverlayDecision,
    OverlayStep,
    RouteDecision,
    VtepMapping,
)
from analyzer.model.refs import SourceRef

ZERO_MAC = "00:00:00:00:00:00"
#: outer headers added by each encapsulation (IPv4 underlay): VXLAN 14+20+8+8, IPIP 20
ENCAP_OVERHEAD = {"vxlan": 50, "ipip": 20, "udp": 28, "host-gw": 0}


def resolve_overlay(node: NodeSnapshot, decision: RouteDecision) -> OverlayDecision | None:
    """The overlay hop behind a unicast route decision, or None when the route is not an overlay
    route (local delivery, a pod on this node's bridge, the Internet via the default gateway)."""
    if decision.kind != "unicast" or decision.chosen is None or decision.out_interface is None:
        return None
    route = decision.chosen
    dev_name = decision.out_interface
    iface = node.interface(dev_name)
    route_step = OverlayStep("route", decision.explanation, tuple(decision.evidence))
    if iface is None:
        if node.interfaces and (dev_name.startswith(("flannel", "vxlan", "tunl")) or _in_cluster(node, decision.dst)):
            kind = "ipip" if dev_name.startswith("tunl") else "vxlan"
            text = (f"The route sends {decision.dst} into device {dev_name}, but the node has no such device "
                    "(ip link shows none): the kernel cannot send it; flanneld did not create it or it was deleted.")
            return OverlayDecision(type=kind, status="missing-device", explanation=text, device=dev_name,
                                   next_hop=decision.next_hop,
                                   steps=(route_step, OverlayStep("device", text, (route.source,), ok=False)),
                                   evidence=(route.source,))
        return None
    if iface.is_vxlan:
        return _vxlan(node, decision, iface, route_step)
    if iface.is_ipip:
        return _ipip(node, decision, iface, route_step)
    if iface.kind == "tun" and iface.name.startswith("flannel"):
        return _flannel_udp(node, decision, iface, route_step)
    if route.via is not None and _looks_like_host_gw(node, decision):
        return _host_gw(node, decision, iface, route_step)
    return None


def _in_cluster(node: NodeSnapshot, ip: IPAddress) -> bool:
    cluster = node.cluster_cidr
    return cluster is not None and ip.version == cluster.version and ip in cluster


def _looks_like_host_gw(node: NodeSnapshot, decision: RouteDecision) -> bool:
    route = decision.chosen
    assert route is not None
    if route.is_default:
        return False
    pod = node.pod_cidr
    if pod is not None and pod.version == decision.dst.version and decision.dst in pod:
        return False
    if _in_cluster(node, decision.dst):
        return True
    if node.kube is not None and node.kube.pod_by_ip(decision.dst) is not None:
        return True
    return node.cluster_cidr is None and node.backend == "host-gw"


def _device_down(iface: Interface) -> str | None:
    if iface.flags and not iface.up:
        return f"device {iface.name} is down (no UP flag): the kernel drops what is routed into it"
    return None


def _neigh_for(node: NodeSnapshot, ip: IPAddress, dev: str) -> NeighEntry | None:
    entries = [n for n in node.neigh if n.ip == ip and (n.dev == dev or n.dev is None)]
    usable = [n for n in entries if n.usable]
    return (usable or entries or [None])[0]


def _vxlan(node: NodeSnapshot, decision: RouteDecision, iface: Interface, route_step: OverlayStep) -> OverlayDecision:
    info = iface.vxlan
    vni = info.vni if info is not None else None
    port = info.udp_port if info is not None else None
    local = (info.local if info is not None else None) or node.node_ip
    dev_ev: tuple[SourceRef, ...] = (info.source,) if info is not None else (iface.source,)
    steps = [route_step]
    evidence = list(decision.evidence) + [r for r in dev_ev if r not in decision.evidence]
    common = dict(type="vxlan", device=iface.name, next_hop=decision.next_hop, local=local, vni=vni, port=port,
                  outer_proto=17, mtu=iface.mtu)
    down = _device_down(iface)
    if down:
        steps.append(OverlayStep("device", down, (iface.source,), ok=False))
        return OverlayDecision(status="device-down", explanation=down, steps=tuple(steps),
                               evidence=tuple(evidence + [iface.source]), **common)  # type: ignore[arg-type]
    steps.append(OverlayStep(
        "device",
        f"{iface.name} is a VXLAN device: VNI {vni}, UDP port {port}, outer source {local}"
        + (", no MAC learning (flannel programs every entry)" if info is not None and not info.learning else "")
        + ".",
        dev_ev,
    ))
    hop = decision.next_hop
    neigh = _neigh_for(node, hop, iface.name) if hop is not None else None
    if neigh is None or not neigh.usable:
        state = f" (state {'/'.join(sorted(neigh.states))})" if neigh is not None else ""
        text = (f"No usable neighbour entry for next hop {hop} on {iface.name}{state}: the kernel does not know "
                f"the remote VTEP MAC, so it cannot build the inner Ethernet header and drops the packet. "
                f"flanneld programs this entry when it sees the remote node's lease.")
        ev = (neigh.source,) if neigh is not None else ()
        steps.append(OverlayStep("neigh", text, ev, ok=False))
        return OverlayDecision(status="missing-neigh", explanation=text, neigh=neigh, steps=tuple(steps),
                               evidence=tuple(evidence + list(ev)), **common)  # type: ignore[arg-type]
    mac = neigh.lladdr
    steps.append(OverlayStep(
        "neigh", f"Neighbour entry: next hop {hop} on {iface.name} is VTEP MAC {mac} "
                 f"({'/'.join(sorted(neigh.states)) or 'no state'}).", (neigh.source,)))
    evidence.append(neigh.source)
    fdb = _fdb_for(node, mac, iface.name)
    if fdb is None:
        text = (f"No FDB entry on {iface.name} for VTEP MAC {mac}: the kernel does not know which node owns "
                "it and drops the packet (flanneld adds '<mac> dst <node IP> self permanent').")
        steps.append(OverlayStep("fdb", text, (), ok=False))
        return OverlayDecision(status="missing-fdb", explanation=text, vtep_mac=mac, neigh=neigh,
                               steps=tuple(steps), evidence=tuple(evidence), **common)  # type: ignore[arg-type]
    flood = " (the all-zeros default entry: sent to this remote for every unknown MAC)" if fdb.mac == ZERO_MAC else ""
    remote = fdb.dst
    if fdb.port is not None:
        common["port"] = fdb.port
    if fdb.vni is not None:
        common["vni"] = fdb.vni
    steps.append(OverlayStep("fdb", f"FDB entry: VTEP MAC {mac} lives at remote node {remote}{flood}.", (fdb.source,)))
    evidence.append(fdb.source)
    status = "ok"
    assert remote is not None
    under = lookup_route(node, remote)
    if under.dropped:
        status = "no-underlay-route"
        steps.append(OverlayStep("underlay", f"Underlay: {under.explanation}", tuple(under.evidence), ok=False))
    else:
        steps.append(OverlayStep("underlay", f"Underlay: {under.explanation}", tuple(under.evidence)))
        for mtu in (_mtu_step(node, iface, ENCAP_OVERHEAD["vxlan"], under), _ingress_mtu_step(node, decision, iface)):
            if mtu is not None:
                steps.append(mtu)
    evidence.extend(r for r in under.evidence if r not in evidence)
    explanation = (f"{decision.dst} goes into VXLAN: {iface.name} wraps it in UDP {common['port']} "
                   f"from {local} to node {remote} (VNI {common['vni']}, inner destination MAC {mac}).")
    if status != "ok":
        explanation = f"{decision.dst} would go into VXLAN to node {remote}, but {under.explanation}"
    return OverlayDecision(status=status, explanation=explanation, vtep_mac=mac, remote=remote, neigh=neigh,
                           fdb=fdb, steps=tuple(steps), evidence=tuple(evidence), **common)  # type: ignore[arg-type]


def _mtu_step(node: NodeSnapshot, iface: Interface, overhead: int, under: RouteDecision) -> OverlayStep | None:
    """Does a full-size packet of the tunnel device still fit the underlay device once wrapped?"""
    if under.kind != "unicast" or under.out_interface is None or iface.mtu is None:
        return None
    uplink = node.interface(under.out_interface)
    if uplink is None or uplink.mtu is None:
        return None
    if under.dst.version == 6:
        overhead += 20
    total = iface.mtu + overhead
    if total <= uplink.mtu:
        return OverlayStep("mtu", f"MTU: {iface.name} {iface.mtu} + {overhead} bytes of outer headers = {total} "
                                  f"fits {uplink.name} MTU {uplink.mtu}.", (iface.source, uplink.source))
    return OverlayStep(
        "mtu", f"MTU: {iface.name} {iface.mtu} + {overhead} bytes of outer headers = {total} exceeds {uplink.name} "
               f"MTU {uplink.mtu}: full-size packets are dropped (or fragmented) after encapsulation; "
               f"{iface.name} should have MTU {uplink.mtu - overhead}.", (iface.source, uplink.source), ok=False)


def _ingress_mtu_step(node: NodeSnapshot, decision: RouteDecision, iface: Interface) -> OverlayStep | None:
    """Packets arriving on a device with a larger MTU than the tunnel's (pods at 1500 over a 1450
    VXLAN device) are too big for the tunnel: DF ones get ICMP fragmentation-needed, others split."""
    if decision.iif in (None, "lo") or iface.mtu is None:
        return None
    inbound = node.interface(decision.iif)
    if inbound is None or inbound.mtu is None or inbound.mtu <= iface.mtu:
        return None
    return OverlayStep(
        "mtu", f"MTU: packets arrive on {inbound.name} with up to {inbound.mtu} bytes but {iface.name} carries only "
               f"{iface.mtu}: larger packets with DF set are answered with ICMP fragmentation-needed (MTU "
               f"{iface.mtu}), the others are fragmented; the pods' MTU should be {iface.mtu}.",
        (inbound.source, iface.source), ok=False)


def _fdb_for(node: NodeSnapshot, mac: str | None, dev: str) -> FdbEntry | None:
    if mac is None:
        return None
    entries = [f for f in node.fdb if f.dev == dev and f.dst is not None]
    exact = [f for f in entries if f.mac == mac.lower()]
    if exact:
        return exact[0]
    flood = [f for f in entries if f.mac == ZERO_MAC]
    return flood[0] if flood else None


def _ipip(node: NodeSnapshot, decision: RouteDecision, iface: Interface, route_step: OverlayStep) -> OverlayDecision:
    tunnel = iface.tunnel
    route = decision.chosen
    assert route is not None
    remote = tunnel.remote if tunnel is not None and tunnel.remote is not None else route.via
    local = (tunnel.local if tunnel is not None else None) or node.node_ip
    dev_ev = (tunnel.source,) if tunnel is not None else (iface.source,)
    steps = [route_step, OverlayStep(
        "device", f"{iface.name} is an IPIP tunnel: the packet gets an outer IPv4 header (protocol 4) "
                  f"from {local if local is not None else 'the underlay address'}.", dev_ev)]
    evidence = list(decision.evidence) + [r for r in dev_ev if r not in decision.evidence]
    common = dict(type="ipip", device=iface.name, next_hop=decision.next_hop, local=local, remote=remote,
                  outer_proto=4, mtu=iface.mtu)
    down = _device_down(iface)
    if down:
        steps.append(OverlayStep("device", down, (iface.source,), ok=False))
        return OverlayDecision(status="device-down", explanation=down, steps=tuple(steps),
                               evidence=tuple(evidence), **common)  # type: ignore[arg-type]
    if remote is None:
        text = (f"The route into {iface.name} has no gateway and the tunnel has no fixed remote: the kernel "
                "has no outer destination and drops the packet.")
        steps.append(OverlayStep("route", text, (route.source,), ok=False))
        return OverlayDecision(status="no-remote", explanation=text, steps=tuple(steps), evidence=tuple(evidence),
                               **common)  # type: ignore[arg-type]
    under = lookup_route(node, remote)
    steps.append(OverlayStep("underlay", f"Underlay: {under.explanation}", tuple(under.evidence), ok=not under.dropped))
    evidence.extend(r for r in under.evidence if r not in evidence)
    if under.dropped:
        return OverlayDecision(status="no-underlay-route", steps=tuple(steps), evidence=tuple(evidence),
                               explanation=f"{decision.dst} would go over IPIP to node {remote}, but "
                                           f"{under.explanation}", **common)  # type: ignore[arg-type]
    for mtu in (_mtu_step(node, iface, ENCAP_OVERHEAD["ipip"], under), _ingress_mtu_step(node, decision, iface)):
        if mtu is not None:
            steps.append(mtu)
    return OverlayDecision(
        status="ok", steps=tuple(steps), evidence=tuple(evidence),
        explanation=f"{decision.dst} goes into IPIP: {iface.name} wraps it in an outer IPv4 header (protocol 4) "
                    f"from {local} to node {remote}.", **common)  # type: ignore[arg-type]


def _host_gw(node: NodeSnapshot, decision: RouteDecision, iface: Interface, route_step: OverlayStep) -> OverlayDecision:
    via = decision.next_hop
    assert via is not None
    steps = [route_step]
    evidence = list(decision.evidence)
    common = dict(type="host-gw", device=iface.name, next_hop=via, local=node.node_ip, remote=via, mtu=iface.mtu)
    neigh = _neigh_for(node, via, iface.name)
    if neigh is not None and not neigh.usable:
        text = (f"host-gw: next hop {via} (the remote node) on {iface.name} is {'/'.join(sorted(neigh.states))}: "
                "it does not answer ARP, so the kernel drops the packet. host-gw needs every node on one L2 segment.")
        steps.append(OverlayStep("neigh", text, (neigh.source,), ok=False))
        return OverlayDecision(status="missing-neigh", explanation=text, neigh=neigh, steps=tuple(steps),
                               evidence=tuple(evidence + [neigh.source]), **common)  # type: ignore[arg-type]
    if neigh is not None:
        steps.append(OverlayStep("neigh", f"Neighbour entry: node {via} on {iface.name} is {neigh.lladdr} "
                                          f"({'/'.join(sorted(neigh.states))}).", (neigh.source,)))
        evidence.append(neigh.source)
    else:
        steps.append(OverlayStep("neigh", f"No neighbour entry for {via} yet: the kernel ARPs for it on "
                                          f"{iface.name} before sending."))
    return OverlayDecision(
        status="ok", neigh=neigh, vtep_mac=neigh.lladdr if neigh is not None else None, steps=tuple(steps),
        evidence=tuple(evidence),
        explanation=f"host-gw: {decision.dst} is routed unencapsulated to node {via} on {iface.name}; that node "
                    "forwards it to the pod.", **common)  # type: ignore[arg-type]


FLANNEL_UDP_PORT = 8285


def _flannel_udp(node: NodeSnapshot, decision: RouteDecision, iface: Interface,
                 route_step: OverlayStep) -> OverlayDecision:
    """flannel's old ``udp`` backend: flanneld reads the packet from the TUN device and sends it in
    UDP 8285 to the node owning the destination's subnet (known only to flanneld, or kubectl)."""
    remote: IPAddress | None = None
    evidence = list(decision.evidence)
    owner = ""
    if node.kube is not None:
        for kn in node.kube.nodes:
            if kn.pod_cidr is not None and kn.pod_cidr.version == decision.dst.version and decision.dst in kn.pod_cidr:
                public = kn.annotations.get("flannel.alpha.coreos.com/public-ip") or kn.internal_ip
                if public:
                    remote = ipaddress.ip_address(public)
                    owner = f" (node {kn.name}, podCIDR {kn.pod_cidr})"
                    evidence.append(kn.source)
                break
    where = f"node {remote}{owner}" if remote is not None else "the node owning that subnet (only flanneld knows which)"
    steps = (route_step, OverlayStep(
        "device", f"{iface.name} is flannel's TUN device (udp backend): flanneld, in user space, wraps the packet "
                  f"in UDP {FLANNEL_UDP_PORT} to {where}.", (iface.source,)))
    return OverlayDecision(
        type="udp", status="ok", device=iface.name, next_hop=decision.next_hop, local=node.node_ip, remote=remote,
        port=FLANNEL_UDP_PORT, outer_proto=17, mtu=iface.mtu, steps=steps, evidence=tuple(evidence),
        explanation=f"{decision.dst} goes to flanneld through {iface.name} (udp backend) and leaves in UDP "
                    f"{FLANNEL_UDP_PORT} to {where}.")


def reverse_lookup_vtep(node: NodeSnapshot, outer_src_ip: str | IPAddress) -> VtepMapping | None:
    """Which pod subnet sits behind remote node ``outer_src_ip`` (the outer source of a VXLAN or IPIP
    packet, or a host-gw next hop), from this node's FDB, neighbours and routes (or kubectl nodes)."""
    remote = ipaddress.ip_address(str(outer_src_ip))
    for fdb in node.fdb:
        if fdb.dst != remote or fdb.mac == ZERO_MAC:
            continue
        neighs = [n for n in node.neigh if n.lladdr == fdb.mac and (fdb.dev is None or n.dev == fdb.dev)]
        for neigh in neighs:
            routes = [r for r in node.routes if r.via == neigh.ip and r.dev == neigh.dev and not r.is_default]
            if routes:
                route = routes[0]
                return VtepMapping(
                    remote=remote, subnet=route.dst, vtep_mac=fdb.mac, device=fdb.dev,
                    explanation=f"Node {remote} owns VTEP MAC {fdb.mac} (FDB), which is next hop {neigh.ip} "
                                f"(neighbour entry) of route {route.dst}: its pods are {route.dst}.",
                    evidence=(fdb.source, neigh.source, route.source))
        if neighs:
            neigh = neighs[0]
            return VtepMapping(
                remote=remote, subnet=None, vtep_mac=fdb.mac, device=fdb.dev,
                explanation=f"Node {remote} owns VTEP MAC {fdb.mac} ({neigh.ip} on {neigh.dev}), but no route "
                            "uses it: its pod subnet is unknown.",
                evidence=(fdb.source, neigh.source))
        return VtepMapping(remote=remote, subnet=None, vtep_mac=fdb.mac, device=fdb.dev,
                           explanation=f"Node {remote} owns VTEP MAC {fdb.mac} (FDB) but no neighbour entry "
                                       "maps an address to it: its pod subnet is unknown.",
                           evidence=(fdb.source,))
    for route in node.routes:
        if route.via == remote and not route.is_default and route.type == "unicast" and route.table == "main":
            iface = node.interface(route.dev) if route.dev else None
            if iface is not None and iface.is_vxlan:
                continue
            how = "IPIP" if iface is not None and iface.is_ipip else "host-gw"
            return VtepMapping(remote=remote, subnet=route.dst, device=route.dev,
                               explanation=f"Route {route.dst} goes via node {remote} ({how}): its pods are "
                                           f"{route.dst}.", evidence=(route.source,))
    if node.kube is not None:
        for kn in node.kube.nodes:
            if any(addr == str(remote) for _, addr in kn.addresses) and kn.pod_cidr is not None:
                return VtepMapping(remote=remote, subnet=kn.pod_cidr,
                                   explanation=f"kubectl: node {kn.name} has address {remote} and podCIDR "
                                               f"{kn.pod_cidr}.", evidence=(kn.source,))
    return None


def overlay_health(node: NodeSnapshot) -> tuple[OverlayStep, ...]:
    """Audit one node's overlay as flanneld should have programmed it, without any packet.

    Returns one step per finding, ``ok=False`` for what breaks traffic (a route into the tunnel
    with no neighbour or FDB entry, an FDB entry pointing two ways, a VXLAN ``local`` address the
    node does not own, subnet.env disagreeing with cni0, MTUs that do not fit, forwarding off) and
    ``ok=True`` for harmless leftovers worth knowing (an FDB entry no route uses).
    """
    found: list[OverlayStep] = []
    vx = {i.name: i for i in node.vxlan_devices()}
    # every route into a VXLAN/IPIP device must resolve all the way to a remote node
    for route in node.routes:
        if route.table != "main" or route.type != "unicast" or route.dev is None or route.is_default:
            continue
        iface = node.interface(route.dev)
        if iface is None or not (iface.is_vxlan or iface.is_ipip):
            continue
        probe = route.dst.network_address + (1 if route.dst.num_addresses > 1 else 0)
        decision = lookup_route(node, probe)
        if decision.chosen is not route:
            continue
        result = resolve_overlay(node, decision)
        if result is not None and not result.ok:
            found.append(OverlayStep(result.steps[-1].what if result.steps else "route",
                                     f"Route {route.dst}: {result.explanation}", tuple(result.evidence), ok=False))
    # FDB entries on VXLAN devices: ambiguous MACs and leftovers
    by_mac: dict[tuple[str | None, str], list[FdbEntry]] = {}
    for fdb in node.fdb:
        if fdb.dev in vx and fdb.dst is not None:
            by_mac.setdefault((fdb.dev, fdb.mac), []).append(fdb)
    used = {(n.dev, n.lladdr) for n in node.neigh if n.lladdr}
    for (dev, mac), entries in by_mac.items():
        remotes = sorted({str(e.dst) for e in entries})
        if len(remotes) > 1 and mac != ZERO_MAC:
            found.append(OverlayStep("fdb", f"VTEP MAC {mac} on {dev} has FDB entries towards {', '.join(remotes)}: "
                                            "the kernel sends to each, but only one node owns the MAC (a stale entry "
                                            "from a re-created node?).", tuple(e.source for e in entries), ok=False))
        if mac != ZERO_MAC and (dev, mac) not in used:
            found.append(OverlayStep("fdb", f"FDB entry {mac} -> {remotes[0]} on {dev} is not used by any neighbour "
                                            "entry (a leftover of a node that left the cluster).",
                                     tuple(e.source for e in entries)))
    # the VXLAN source address must be one of the node's own
    local_ips = set(node.local_addresses())
    for iface in vx.values():
        if iface.vxlan is not None and iface.vxlan.local is not None and node.interfaces \
                and iface.vxlan.local not in local_ips:
            found.append(OverlayStep("device", f"{iface.name} sends from local {iface.vxlan.local}, which is no "
                                               "longer an address of this node: remote nodes drop or misroute its "
                                               "VXLAN packets (restart flanneld after changing the node IP).",
                                     (iface.vxlan.source,), ok=False))
    env = node.subnet_env
    cni = node.interface("cni0")
    if env is not None and env.subnet is not None and cni is not None:
        v4 = [(a, r) for a, r in zip(cni.addresses, cni.address_sources or (cni.source,) * len(cni.addresses))
              if a.version == env.subnet.version]
        if v4 and all(a.network != env.subnet.network for a, _ in v4):
            ref = env.lines.get("FLANNEL_SUBNET", env.source)
            found.append(OverlayStep("subnet", f"cni0 has {v4[0][0]} but subnet.env says FLANNEL_SUBNET="
                                               f"{env.subnet}: the node's lease changed and cni0 kept the old "
                                               "subnet (the CNI plugin fails with 'cni0 already has an IP address "
                                               "different from ...'); delete cni0 so it is re-created.",
                                     (v4[0][1], ref), ok=False))
    overlay_dev = node.overlay_device()
    if env is not None and env.mtu is not None and overlay_dev is not None and overlay_dev.mtu is not None \
            and overlay_dev.mtu != env.mtu:
        ref = env.lines.get("FLANNEL_MTU", env.source)
        found.append(OverlayStep("mtu", f"subnet.env says FLANNEL_MTU={env.mtu} but {overlay_dev.name} has MTU "
                                        f"{overlay_dev.mtu}: pods are configured for a different MTU than the tunnel "
                                        "carries.", (ref, overlay_dev.source), ok=env.mtu < overlay_dev.mtu))
    if overlay_dev is not None and overlay_dev.mtu is not None and cni is not None and cni.mtu is not None \
            and cni.mtu > overlay_dev.mtu and node.backend in ("vxlan", "ipip", "udp"):
        found.append(OverlayStep("mtu", f"cni0 has MTU {cni.mtu} but {overlay_dev.name} only {overlay_dev.mtu}: "
                                        "full-size packets from pods to other nodes get ICMP fragmentation-needed "
                                        "or are fragmented.", (cni.source, overlay_dev.source), ok=False))
    forward = node.sysctl.get("net.ipv4.ip_forward")
    if forward is not None and forward.strip() == "0":
        found.append(OverlayStep("sysctl", "net.ipv4.ip_forward = 0: the node does not route between pods, the "
                                           "overlay and the uplink; every cross-node and external pod packet is "
                                           "dropped.", _sysctl_ref(node, "net.ipv4.ip_forward"), ok=False))
    nf_call = node.sysctl.get("net.bridge.bridge-nf-call-iptables")
    if nf_call is not None and nf_call.strip() == "0" and cni is not None:
        found.append(OverlayStep("sysctl", "net.bridge.bridge-nf-call-iptables = 0: packets between pods on the "
                                           "same cni0 bridge skip iptables, so kube-proxy's service DNAT and its "
                                           "replies' un-DNAT break for same-node endpoints.",
                                 _sysctl_ref(node, "net.bridge.bridge-nf-call-iptables"), ok=False))
    return tuple(found)


def _sysctl_ref(node: NodeSnapshot, key: str) -> tuple[SourceRef, ...]:
    ref = node.sysctl_sources.get(key)
    return (ref,) if ref is not None else ()
