"""Stitch captured frames from every capture point into flows.

The same packet is recognised wherever it was captured (pod veth, ``cni0``, ``flannel.1``, the
underlay NIC inside VXLAN, the other node) by its *identity*: IP ID, TCP seq/ack/flags, payload
length and a hash of the first payload bytes. None of those change through encapsulation or
NAT, so the identity also finds the NAT'd twin of a packet: the same identity under another
address tuple is a DNAT, SNAT or MASQUERADE, learnt from the packets themselves.

Clock offsets between nodes come from packets seen on two nodes (NTP style: the minimum one-way
delta in each direction); every timestamp is corrected before it is used for ordering.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from analyzer.engines.classify import TCP_ACK, TCP_RST, TCP_SYN, is_pod, node_of, role_of
from analyzer.model.explain import (
    ANY_INTERFACE,
    CapturePoint,
    ClockOffset,
    ObservedNat,
    Sighting,
    StitchedFlow,
    Topology,
)
from analyzer.model.record import PacketRecord

#: seconds within which two copies with one identity under different addresses are one packet
#: rewritten (NAT twins are microseconds to milliseconds apart once the clocks are aligned)
NAT_TWIN_WINDOW = 1.0

Endpoint = tuple[str, int | None]
ConvKey = tuple[int, Endpoint, Endpoint]
Warn = Callable[[str], None]


def packet_identity(r: PacketRecord) -> tuple | None:
    """What stays the same for one packet through encapsulation and NAT; None when too weak."""
    if r.proto is None or r.src is None:
        return None
    strong = (r.ip_id or 0) != 0 or r.seq is not None or r.payload_hash is not None
    if not strong:
        return None
    flags = r.tcp_flags if r.proto == 6 else None
    return (r.proto, r.ip_id, r.seq, r.ack, flags, r.payload_len, r.payload_hash, r.icmp_type)


def conv_key(r: PacketRecord) -> ConvKey | None:
    if r.src is None or r.dst is None or r.proto is None:
        return None
    return conv_key_of(r.proto, (r.src, r.sport), (r.dst, r.dport))


def conv_key_of(proto: int, a: Endpoint, b: Endpoint) -> ConvKey:
    """The direction-free key of a conversation between endpoints ``a`` and ``b``."""
    lo, hi = (a, b) if (a[0], a[1] or 0) <= (b[0], b[1] or 0) else (b, a)
    return (proto, lo, hi)


def point_of(r: PacketRecord, points: Mapping[str, CapturePoint]) -> tuple[str | None, str | None]:
    """(node, interface) where this copy was captured."""
    pt = points.get(r.file)
    node = pt.node if pt else None
    iface = r.interface if r.interface and r.interface != ANY_INTERFACE else None
    if iface is None and pt is not None:
        iface = pt.interface
    return node, iface


def _sender_node(r: PacketRecord, topo: Topology) -> str | None:
    if r.tunnel and r.outer_src:
        n = node_of(r.outer_src, topo)
        if n:
            return n
    return node_of(r.src, topo)


# ----------------------------------------------------------------------------- clock offsets


def estimate_offsets(
    records: Sequence[PacketRecord], points: Mapping[str, CapturePoint], topo: Topology
) -> list[ClockOffset]:
    """Per node, the seconds to add to its timestamps to align it with the reference node."""
    nodes = sorted({p.node for p in points.values() if p.node})
    if len(nodes) < 2:  # captures of one node (or of none known): nothing to align
        return []
    seen: dict[tuple, dict[str, float]] = defaultdict(dict)  # earliest copy per node
    last: dict[tuple, dict[str, float]] = defaultdict(dict)  # latest copy per node (closest to the wire when sent)
    sender: dict[tuple, str | None] = {}
    for r in records:
        if r.quoted is not None:
            continue
        ident = packet_identity(r)
        ck = conv_key(r)
        node = points[r.file].node if r.file in points else None
        if ident is None or ck is None or node is None:
            continue
        key = (ck, r.src, ident)
        prev = seen[key].get(node)
        if prev is None or r.ts < prev:
            seen[key][node] = r.ts
        prev = last[key].get(node)
        if prev is None or r.ts > prev:
            last[key][node] = r.ts
        if key not in sender:
            sender[key] = _sender_node(r, topo)
    # deltas[(a, b)] = list of t_b - t_a for packets sent by a
    deltas: dict[tuple[str, str], list[float]] = defaultdict(list)
    undirected: dict[tuple[str, str], list[float]] = defaultdict(list)
    for key, per_node in seen.items():
        if len(per_node) < 2:
            continue
        s = sender.get(key)
        for a in per_node:
            for b, tb in per_node.items():
                if a == b:
                    continue
                ta = last[key][a]  # the sender's last copy (its NIC) to the receiver's first
                if s == a:
                    deltas[(a, b)].append(tb - ta)
                elif (s is None or s not in per_node) and a < b:  # sent from elsewhere: no direction
                    undirected[(a, b)].append(tb - per_node[a])
    # pairwise estimate of o_b - o_a (b's clock minus a's clock)
    pair: dict[tuple[str, str], tuple[float, str, int]] = {}
    for a in nodes:
        for b in nodes:
            if a >= b:
                continue
            ab, ba = deltas.get((a, b), []), deltas.get((b, a), [])
            if ab and ba:
                est = (min(ab) - min(ba)) / 2
                basis = f"{len(ab) + len(ba)} packets seen on both nodes, both directions (NTP-style)"
                n = len(ab) + len(ba)
            elif ab:
                est, basis, n = min(ab), f"{len(ab)} packets {a} -> {b} seen on both nodes (minimum one-way delta)", len(ab)
            elif ba:
                est, basis, n = -min(ba), f"{len(ba)} packets {b} -> {a} seen on both nodes (minimum one-way delta)", len(ba)
            elif undirected.get((a, b)):
                u = sorted(undirected[(a, b)])
                est, basis, n = u[len(u) // 2], f"{len(u)} packets seen on both nodes (median delta)", len(u)
            else:
                continue
            pair[(a, b)] = (est, basis, n)
            pair[(b, a)] = (-est, basis, n)
    # breadth-first from the reference node (the one with the most links, then by name)
    links: dict[str, int] = defaultdict(int)
    for a, _b in pair:
        links[a] += 1
    ref = max(nodes, key=lambda n: (links.get(n, 0), -nodes.index(n)))
    clock = {ref: (0.0, "reference clock", 0)}
    queue = [ref]
    while queue:
        a = queue.pop(0)
        for b in nodes:
            if b not in clock and (a, b) in pair:
                est, basis, n = pair[(a, b)]
                clock[b] = (clock[a][0] + est, basis, n)
                queue.append(b)
    out = []
    for n in nodes:
        if n in clock:
            skew, basis, count = clock[n]
            out.append(ClockOffset(node=n, offset=round(-skew, 6) + 0.0, basis=basis, samples=count))
        else:
            out.append(ClockOffset(node=n, offset=0.0, basis="no packet seen on this node and another", samples=0))
    return out


# ----------------------------------------------------------------------------- flows


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[ConvKey, ConvKey] = {}

    def find(self, x: ConvKey) -> ConvKey:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: ConvKey, b: ConvKey) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _initiator(recs: list[PacketRecord], ts: Callable[[PacketRecord], float], topo: Topology) -> Endpoint:
    syns = [r for r in recs if r.proto == 6 and (r.tcp_flags or 0) & (TCP_SYN | TCP_ACK) == TCP_SYN]
    if syns:
        r = min(syns, key=ts)
        return (r.src, r.sport)  # type: ignore[return-value]
    synacks = [r for r in recs if r.proto == 6 and (r.tcp_flags or 0) & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK]
    if synacks:
        r = min(synacks, key=ts)
        return (r.dst, r.dport)  # type: ignore[return-value]
    echo = [r for r in recs if r.icmp_type in (8, 128)]
    if echo:
        r = min(echo, key=ts)
        return (r.src, r.sport)  # type: ignore[return-value]
    first = min(recs, key=ts)
    a, b = (first.src, first.sport), (first.dst, first.dport)
    # a well-known (low) port is the server's
    if a[1] is not None and b[1] is not None and a[1] < 1024 <= b[1]:
        return b  # type: ignore[return-value]
    return a  # type: ignore[return-value]


def _fmt(ep: Endpoint) -> str:
    ip, port = ep
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _nat_type(before: Endpoint, after: Endpoint, topo: Topology) -> str:
    """A pod source rewritten to a node address is kube-proxy's/flannel's MASQUERADE; a pod
    source rewritten to anything outside the pod network is too (those are the only source NATs
    they install); other rewrites are plain SNAT."""
    if role_of(after[0], topo) == "node":
        return "masquerade"
    if is_pod(before[0], topo) and not is_pod(after[0], topo):
        return "masquerade"
    return "snat"


def stitch_flows(
    records: Iterable[PacketRecord],
    points: Mapping[str, CapturePoint],
    topo: Topology,
    offsets: Sequence[ClockOffset] = (),
    *,
    warn: Warn | None = None,
    crowded: Collection[tuple] = (),
) -> list[StitchedFlow]:
    """Group every copy of every packet into flows, through encapsulation and NAT.

    ``crowded``: packet identities known to be shared by more than four conversations, of which
    ``records`` may hold only some (the explain lane's flows are not stitched): they link nothing,
    as they would with every conversation present."""
    shift = {o.node: o.offset for o in offsets}
    file_shift = {f: shift.get(pt.node if pt else None, 0.0) for f, pt in points.items()}
    other_shift = shift.get(None, 0.0)
    idents: dict[int, tuple | None] = {}  # id(record) -> packet_identity (asked again below)
    file_node = {f: pt.node if pt else None for f, pt in points.items()}

    def ts(r: PacketRecord) -> float:
        return r.ts + file_shift.get(r.file, other_shift)

    convs: dict[ConvKey, list[PacketRecord]] = defaultdict(list)
    errors: list[PacketRecord] = []
    by_ident: dict[tuple, list[tuple[ConvKey, float, str | None, str, str]]] = defaultdict(list)
    # nodes whose clock is aligned with the others (the reference, or an offset from shared packets)
    aligned = {o.node for o in offsets if o.samples > 0 or o.basis == "reference clock"}

    def near(a: tuple, b: tuple) -> bool:
        """Two copies close enough in time to be one packet before and after a rewrite (an IP ID
        wraps every 65,536 packets: a repeated payload under a reused ID minutes apart is not a
        twin), and told apart by a rewrite Kubernetes makes (``nat_plausible``). Copies on two
        nodes whose clocks could not be aligned are not compared in time."""
        if not nat_plausible(a[3], a[4], b[3], b[4], topo):
            return False
        if a[2] != b[2] and not (a[2] in aligned and b[2] in aligned):
            return True
        return abs(a[1] - b[1]) <= NAT_TWIN_WINDOW
    for r in records:
        if r.ip_version == 0 or r.src is None:
            continue
        if r.quoted is not None:
            errors.append(r)
            continue
        if r.dst is None or r.proto is None:  # (conv_key's None)
            continue
        a, b = (r.src, r.sport), (r.dst, r.dport)
        ck = (r.proto, a, b) if (r.src, r.sport or 0) <= (r.dst, r.dport or 0) else (r.proto, b, a)  # conv_key
        convs[ck].append(r)
        ident = idents[id(r)] = packet_identity(r)
        if ident is not None:
            by_ident[ident].append((ck, r.ts + file_shift.get(r.file, other_shift), file_node.get(r.file),  # ts(r)
                                    r.src, r.dst))
    uf = _UnionFind()
    for ck in convs:
        uf.find(ck)
    linked: set[tuple[ConvKey, ConvKey]] = set()
    for ident, hits in by_ident.items():
        if len(hits) < 2:  # (an identity seen once links nothing)
            continue
        cks = {h[0] for h in hits}
        if len(cks) > 1 and not (crowded and ident in crowded):
            ordered = sorted(cks)
            for other in ordered[1:]:
                if len(cks) <= 4 and any(near(a, b) for a in hits if a[0] == ordered[0] for b in hits if b[0] == other):
                    # (more would be a weak identity shared by unrelated flows)
                    uf.union(ordered[0], other)
                    linked.add((ordered[0], other))
    groups: dict[ConvKey, list[ConvKey]] = defaultdict(list)
    for ck in convs:
        groups[uf.find(ck)].append(ck)

    # each conversation's direction (initiator -> responder)
    directed: dict[ConvKey, tuple[Endpoint, Endpoint]] = {}
    for ck, recs in convs.items():
        init = _initiator(recs, ts, topo)
        other = ck[2] if ck[1] == init else ck[1]
        directed[ck] = (init, other)

    flows: list[StitchedFlow] = []
    conv_flow: dict[ConvKey, StitchedFlow] = {}
    place: dict[tuple[str, str | None], tuple[str | None, str | None]] = {}  # (file, interface) -> point_of
    for members in groups.values():
        # the original conversation: the one holding the earliest client packet
        # (a lone conversation is its own original and real server: nothing to order)
        first_of = {ck: min(ts(r) for r in convs[ck]) for ck in members} if len(members) > 1 else {}
        if len(members) > 1:
            # prefer the variant addressed to a non-pod (service/node) from a pod: pre-DNAT, pre-SNAT
            def pre_score(ck: ConvKey, first_of: dict[ConvKey, float] = first_of) -> tuple:
                (c, _), (s, _) = directed[ck]
                return (
                    0 if is_pod(c, topo) or role_of(c, topo) == "external" else 1,
                    0 if not is_pod(s, topo) else 1,
                    first_of[ck],
                )

            original = min(members, key=pre_score)
        else:
            original = members[0]
        client, server = directed[original]
        # the real server: the variant whose responder is a pod/other than the service address
        real = server
        for ck in sorted(members, key=lambda k: first_of[k]) if len(members) > 1 else ():
            _, s = directed[ck]
            if s != server and (is_pod(s[0], topo) or role_of(server[0], topo) != "pod"):
                real = s
                break
        proto = original[0]
        flow = StitchedFlow(
            id="",
            proto=proto,
            client=client,
            server=server,
            real_server=real,
        )
        # NATs: compare each variant with the original
        seen_nat: set[tuple[str, str, str]] = set()
        for ck in members:
            flow.tuples.add((*directed[ck][0], *directed[ck][1]))
            if ck == original:
                continue
            c2, s2 = directed[ck]
            ev = _nat_evidence(convs[original], convs[ck])
            nat_node = _nat_node(convs[original], convs[ck], points)
            if s2 != server:
                t = ("dnat", _fmt(server), _fmt(s2))
                if t not in seen_nat:
                    seen_nat.add(t)
                    flow.nats.append(ObservedNat("dnat", t[1], t[2], nat_node, ev))
            if c2 != client:
                typ = _nat_type(client, c2, topo)
                t = (typ, _fmt(client), _fmt(c2))
                if t not in seen_nat:
                    seen_nat.add(t)
                    flow.nats.append(ObservedNat(typ, t[1], t[2], nat_node, ev))
        flow.nats.sort(key=lambda n: 0 if n.type == "dnat" else 1)
        client_side = {directed[ck][0] for ck in members}
        add = flow.sightings.append
        for ck in members:
            conv_flow[ck] = flow
            for r in convs[ck]:
                where = (r.file, r.interface)
                at = place.get(where)
                if at is None:
                    at = place[where] = point_of(r, points)
                direction = "fwd" if (r.src, r.sport) in client_side else "rev"
                ident = idents[id(r)] or ("frame", r.file, r.frame)
                add(Sighting(r, at[0], at[1], direction, r.ts + file_shift.get(r.file, other_shift),  # ts(r)
                             (direction, ident)))
        flow.sightings.sort(key=lambda s: (s.ts, s.record.file, s.record.frame))
        flows.append(flow)

    # ICMP errors: attach to the flow of the packet they quote
    by_pair: dict[tuple[str, str], list[StitchedFlow]] = defaultdict(list)
    by_outer: dict[tuple[str, str], list[StitchedFlow]] = defaultdict(list)
    for f in flows if errors else ():  # (the index is needed only when an ICMP error was captured)
        for s in f.sightings:
            r = s.record
            by_pair[(r.src, r.dst)].append(f)  # type: ignore[index]
            if r.tunnel and r.outer_src and r.outer_dst:
                by_outer[(r.outer_src, r.outer_dst)].append(f)
    quoted_only: dict[tuple, StitchedFlow] = {}
    for r in errors:
        q = r.quoted
        assert q is not None
        node, iface = point_of(r, points)
        targets: list[StitchedFlow] = []
        if q.tunnel and q.inner_src and q.inner_dst:
            targets = _unique(by_pair.get((q.inner_src, q.inner_dst), []))
        elif q.proto == 17 and q.dport is not None and q.dport == topo.overlay_port:
            targets = _unique(by_outer.get((q.src, q.dst), []))
        else:
            ck = conv_key(PacketRecord(file="", frame=0, ts=0.0, interface=None, wire_len=0, cap_len=0,
                                       linktype=0, ip_version=4, src=q.src, dst=q.dst, proto=q.proto,
                                       sport=q.sport, dport=q.dport))
            if ck is not None and ck in conv_flow:
                targets = [conv_flow[ck]]
            else:
                targets = _unique(by_pair.get((q.src, q.dst), []))
        if not targets and not q.tunnel and q.proto is not None:
            # the flow's own packets were not captured (``tcpdump icmp``, or a capture on the
            # router that answered): the error alone tells its addresses, and what happened to it
            key = (q.proto, q.src, q.sport, q.dst, q.dport)
            lone = quoted_only.get(key)
            if lone is None:
                lone = quoted_only[key] = StitchedFlow(id="", proto=q.proto, client=(q.src, q.sport),
                                                       server=(q.dst, q.dport), real_server=(q.dst, q.dport))
                lone.tuples.add((q.src, q.sport, q.dst, q.dport))
                flows.append(lone)
            targets = [lone]
        if not targets:
            if warn:
                warn(f"{r.file}: packet #{r.frame}: ICMP {r.icmp_type}/{r.icmp_code} about {q.src} -> {q.dst} "
                     "matches no captured flow")
            continue
        for f in targets:
            f.errors.append(Sighting(r, node, iface, "rev", ts(r), ("err", r.file, r.frame)))
    # ids: stable, in order of first appearance
    flows.sort(key=flow_order)
    for i, f in enumerate(flows, 1):
        f.id = f"f{i}"
        f.retransmissions = find_retransmissions(f)
    return flows


def flow_order(f: StitchedFlow) -> tuple:
    """The order of stitched flows (their ids): first copy's time, client, server."""
    return (f.sightings[0].ts if f.sightings else f.errors[0].ts if f.errors else 0.0, f.client, f.server)


def nat_plausible(a_src: str, a_dst: str, b_src: str, b_dst: str, topo: Topology) -> bool:
    """Whether one packet seen as ``a_src > a_dst`` and as ``b_src > b_dst`` is a rewrite
    Kubernetes makes: kube-proxy's DNAT turns a service, node or external address into a pod's,
    SNAT/MASQUERADE a pod's into a node's; nothing turns one pod's address into another pod's.
    (Two pods' DNS queries with one payload under one reused IP ID are not each other's SNAT.)"""
    for x, y in ((a_src, b_src), (a_dst, b_dst)):
        if x != y and is_pod(x, topo) and is_pod(y, topo):
            return False
    return True


def _unique(flows: list[StitchedFlow]) -> list[StitchedFlow]:
    out: list[StitchedFlow] = []
    for f in flows:
        if all(f is not g for g in out):
            out.append(f)
    return out


def _nat_evidence(a: list[PacketRecord], b: list[PacketRecord]) -> tuple[tuple[str, int], ...]:
    ids_b = {}
    for r in b:
        ident = packet_identity(r)
        if ident is not None:
            ids_b.setdefault(ident, r)
    for r in a:
        ident = packet_identity(r)
        if ident is not None and ident in ids_b:
            other = ids_b[ident]
            return ((r.file, r.frame), (other.file, other.frame))
    return ()


def _nat_node(a: list[PacketRecord], b: list[PacketRecord], points: Mapping[str, CapturePoint]) -> str | None:
    """The node that saw both the before and the after copy (where the rewrite happened)."""
    na = {points[r.file].node for r in a if r.file in points}
    nb = {points[r.file].node for r in b if r.file in points}
    both = sorted(n for n in na & nb if n)
    if both:
        return both[0]
    return None


def find_retransmissions(flow: StitchedFlow) -> list[Sighting]:
    """Repeated TCP segments at one capture point: same seq, length and SYN/FIN, but a new packet.

    A ``-i any`` capture holds one copy per interface of the same packet: those share the packet
    identity (IP ID...) and are not retransmissions. With IP ID 0 on both copies, only a copy
    more than 100 ms later counts (no retransmission timer fires sooner).
    """
    if flow.proto != 6:
        return []
    seen: dict[tuple, list[Sighting]] = {}
    out = []
    for s in flow.sightings:
        r = s.record
        flags = r.tcp_flags or 0
        if not ((r.payload_len or 0) > 0 or flags & TCP_SYN) or flags & TCP_RST:
            continue
        key = (s.node, r.file, s.direction, r.seq, r.payload_len, flags & (TCP_SYN | 0x01))
        earlier = seen.setdefault(key, [])
        if any(_same_packet(p, s) for p in earlier):
            earlier.append(s)
            continue
        if earlier:
            out.append(s)
        earlier.append(s)
    return out


def _same_packet(a: Sighting, b: Sighting) -> bool:
    ra, rb = a.record, b.record
    if (ra.ip_id or 0) != 0 or (rb.ip_id or 0) != 0:
        return ra.ip_id == rb.ip_id and abs(a.ts - b.ts) < 1.0
    return abs(a.ts - b.ts) <= 0.1
