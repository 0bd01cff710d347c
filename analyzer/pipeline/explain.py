"""``explain``: captures and node bundles in, the explain document (a JSON-safe dict) out.

Inputs are sorted into captures, node bundles (directories or ``collect`` tarballs, their
captures taken on that node) and kubectl JSON. The packets come from ``scan_flows`` with samples
(per flow, file and direction the first and last K packets plus every SYN/FIN/RST/ICMP error and
retransmission), so memory is bounded by the number of flows. Then: the cluster's shape (dumps
first, packets second), clock offsets, stitching, a path per flow, status, findings, document.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer import __version__
from analyzer.engines import classify, diagnose, paths, stitch
from analyzer.engines.explain import NOT_CHECKABLE_WITHOUT_DUMPS, NOT_CHECKABLE_ZH, STATUS_TEXT, verdict
from analyzer.errors import InputError
from analyzer.model.explain import (
    ANY_INTERFACE,
    UNDERLAY_INTERFACE,
    CapturePoint,
    Finding,
    NodeFacts,
    ObservedNat,
    Service,
    StitchedFlow,
    Topology,
)
from analyzer.model.flow import endpoint_text, proto_name
from analyzer.model.record import PacketRecord
from analyzer.pipeline import plain

if TYPE_CHECKING:  # (the dumps' model: imported where dumps are read)
    from analyzer.model.node import KubeInventory, NodeSnapshot

SCHEMA = "k8s-trace.explain/1"
SAMPLE = 4  # packets kept per (flow, file, direction) at each end (SYN/FIN/RST/errors always)
LADDER_EVENTS = 60  # per delivered flow (four times as many for a failing one)
Warn = Callable[[str], None]
Progress = Callable[[str, int, int], None]



@dataclass(slots=True)
class Inputs:
    captures: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)  # path, node, iface, display
    bundles: list[NodeSnapshot] = field(default_factory=list)
    kube: KubeInventory | None = None
    described: list[dict] = field(default_factory=list)


def _load_kubectl(path: Path) -> KubeInventory:
    from analyzer.inputs.kubectl import parse_kubectl

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    inv, _warnings = parse_kubectl(text, str(path))
    return inv


def classify_inputs(given: Sequence[str | os.PathLike[str]], warn: Warn) -> Inputs:
    from analyzer.inputs.bundle import is_bundle_dir, is_tarball, load_bundle
    from analyzer.inputs.capture import interface_from_name

    out = Inputs()
    for raw in given:
        p = Path(raw)
        if not p.exists():
            raise InputError(str(raw), "no such file or directory")
        if p.is_dir():
            single = is_bundle_dir(p)
            dirs = [p] if single else sorted(d for d in p.iterdir() if d.is_dir() and is_bundle_dir(d))
            tars = [] if single else sorted(t for t in p.iterdir() if is_tarball(t))
            if not dirs and not tars:
                raise InputError(str(raw), "no node bundle or capture in this directory",
                                 hint="a bundle holds iptables-save, ip-route... and <iface>.pcap files")
            if not single and (p / "kubectl.json").is_file():
                out.kube = _merge(out.kube, _load_kubectl(p / "kubectl.json"))
            for b in list(dirs) + list(tars):
                _add_bundle(out, load_bundle(b), b, warn)
            continue
        if is_tarball(p):
            _add_bundle(out, load_bundle(p), p, warn)
            continue
        head = _head(p)
        if head[:1] in (b"{", b"[") or p.suffix == ".json":
            out.kube = _merge(out.kube, _load_kubectl(p))
            out.described.append({"path": str(raw), "type": "kubectl", "node": None, "interface": None})
            continue
        iface = interface_from_name(p)
        out.captures.append((str(raw), None, iface, str(raw)))
        out.described.append({"path": str(raw), "type": "capture", "node": None, "interface": iface})
    return out


def _head(p: Path) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(16).lstrip()
    except OSError as exc:
        raise InputError(str(p), f"cannot read: {exc.strerror or exc}") from exc


def _merge(a: KubeInventory | None, b: KubeInventory | None) -> KubeInventory | None:
    if a is None:
        return b
    if b is None:
        return a
    return a.merged(b)


def _add_bundle(out: Inputs, snap: NodeSnapshot, given: Path, warn: Warn) -> None:
    out.bundles.append(snap)
    out.described.append({"path": str(given), "type": "bundle", "node": snap.name, "interface": None})
    for w in snap.warnings:
        warn(w)
    if snap.kube is not None:
        out.kube = _merge(out.kube, snap.kube)
    for cap in snap.captures:
        iface = cap.interface
        if iface is None and Path(cap.path).name.startswith("any."):
            iface = ANY_INTERFACE
        out.captures.append((cap.path, snap.name, iface, cap.display or cap.path))


# ----------------------------------------------------------------------------- packets

#: set (to anything but "" or "0") to take the general path everywhere: every sampled frame
#: through the general decoder, every flow's document made one by one (the fast lanes' reference)
GENERAL_ENV = "K8S_TRACE_EXPLAIN_GENERAL"


def fast_lane() -> bool:
    """Whether the fast lanes are on (they are unless ``GENERAL_ENV`` says otherwise)."""
    return os.environ.get(GENERAL_ENV, "") in ("", "0")


def _other_tunnel_ports() -> tuple[frozenset[int], frozenset[int]]:
    from analyzer.inputs.decode import FLANNEL_UDP_PORTS, GENEVE_UDP_PORTS

    return GENEVE_UDP_PORTS, FLANNEL_UDP_PORTS


@dataclass(slots=True)
class PacketSource:
    records: list[PacketRecord]
    conv_counts: dict[tuple, tuple[int, int, float, float]]  # conv key -> packets, bytes, first, last
    frames: dict[str, int]
    link: dict[str, str]
    split: Any = None  # pipeline.plain.Split: the plain lane's flows (with ``lane``)
    more: Callable[[Sequence[int]], list[PacketRecord]] | None = None  # those flows' records after all
    # the records of some kept frames: [(flow, direction, file, frame), ...] -> their PacketRecords
    records_of: Callable[[Sequence[tuple[int, int, int, int]]], list[PacketRecord]] | None = None


def read_packets(files: Sequence[str], *, vxlan_ports: frozenset[int], warn: Warn,
                 progress: Callable[[int, int], None] | None = None,
                 ifnames: Mapping[str, Mapping[int, str]] | None = None, lane: bool = False) -> PacketSource:
    """The sampled packets of every flow in ``files`` (one pass, memory bounded by the flows).

    ``ifnames`` (file -> interface index -> name, from the bundle's ``ip link``) names the
    interface of each frame of a ``tcpdump -i any`` (SLL2) capture taken on that node.
    ``lane``: the flows the plain lane may take (``pipeline.plain``) are left out of ``records``
    and given as ``split``; ``more(flow ids)`` builds the records of some of them after all.
    """
    from analyzer.pipeline.flows import scan_table

    kw = {"heads": True} if lane else {}
    scan = scan_table([Path(f) for f in files], vxlan_ports=vxlan_ports, sample=SAMPLE, progress=progress, warn=warn,
                      **kw)
    general = scan.general  # the kept frames are decoded in full by the one general decoder
    ifnames = ifnames or {}
    quick = None
    if fast_lane():  # the common shapes at fixed offsets: the same record (decode.quick)
        from analyzer.inputs.decode import _port_map
        from analyzer.inputs.decode.quick import quick_record

        ports = _port_map(vxlan_ports, *_other_tunnel_ports())

        def quick(sf) -> PacketRecord | None:  # noqa: ANN001 - engines.flowtable.SampleFrame
            return quick_record(sf.file, sf.frame, sf.ts, sf.linktype, sf.data, sf.wire_len, sf.interface, ports)

    def materialise(sf) -> PacketRecord:  # noqa: ANN001 - engines.flowtable.SampleFrame
        rec = quick(sf) if quick is not None else None
        if rec is None:
            rec = general.record(sf.file, sf.frame, sf.ts, sf.linktype, sf.data, sf.wire_len, sf.interface)
        names = ifnames.get(sf.file)
        if names and sf.linktype == 276 and rec.interface in (None, ANY_INTERFACE) and len(sf.data) >= 8:
            name = names.get(int.from_bytes(sf.data[4:8], "big"))  # SLL2: the interface index at offset 4
            if name is not None:
                rec = replace(rec, interface=name)
        return rec

    counts: dict[tuple, tuple[int, int, float, float]] = {}
    tunnel_name = lambda code: scan.addrs.tunnels.name(code) or "unknown"  # noqa: E731

    def take(only: Any = None) -> list[PacketRecord]:
        records: list[PacketRecord] = []
        kw = {"only": only} if only is not None else {}
        for rows in scan.table.row_blocks(addr_name=scan.addrs.name, tunnel_name=tunnel_name, materialise=materialise,
                                          **kw):
            for i in range(len(rows)):
                key = stitch.conv_key_of(rows.proto_num[i], (rows.client_ip[i], rows.client_port[i]),
                                         (rows.server_ip[i], rows.server_port[i]))
                val = (rows.packets_c2s[i] + rows.packets_s2c[i], rows.bytes_c2s[i] + rows.bytes_s2c[i],
                       rows.first_ts[i], rows.last_ts[i])
                old = counts.get(key)
                if old is not None:
                    val = (old[0] + val[0], old[1] + val[1], min(old[2], val[2]), max(old[3], val[3]))
                counts[key] = val
                records.extend(rows.samples[i])
        records.sort(key=attrgetter("file", "frame"))
        # a frame kept for two flows (an ICMP error and the flow it quotes) once: the copies are equal
        return [r for n, r in enumerate(records)
                if n == 0 or r.frame != records[n - 1].frame or r.file != records[n - 1].file]

    split = None
    more = None
    if lane:
        split = plain.split_scan(scan, {fs.path: fs.linktype for fs in scan.files}, scan.addrs.tunnels.name)
        if not split.plain:
            split = None

    if split is None:
        records = take()
    else:
        records = take(split.general)

        def more(flow_ids: Sequence[int]) -> list[PacketRecord]:
            mask = np.zeros(len(split.general), dtype=bool)
            mask[list(flow_ids)] = True
            return take(mask)

        def records_of(wanted: Sequence[tuple[int, int, int, int]]) -> list[PacketRecord]:
            got = scan.table.frames_at(wanted)
            missing = next((w for w, sf in zip(wanted, got, strict=True) if sf is None), None)
            if missing is not None:  # (the lane asks only for frames the table kept)
                raise RuntimeError(f"frame {missing[3]} of flow {missing[0]} is not kept")
            return [materialise(sf) for sf in got]

    link_names = {1: "ethernet", 113: "sll", 276: "sll2", 101: "raw", 228: "raw", 229: "raw", 0: "loopback"}
    return PacketSource(
        records=records,
        conv_counts=counts,
        frames={fs.path: fs.frames for fs in scan.files},
        link={fs.path: link_names.get(fs.linktype, "unknown") if fs.linktype is not None else "mixed" for fs in scan.files},
        split=split,
        more=more,
        records_of=records_of if split is not None else None,
    )


# ----------------------------------------------------------------------------- the cluster


def facts_from_snapshot(snap: NodeSnapshot) -> NodeFacts:
    vtep = snap.overlay_device()
    bridge = snap.interface("cni0") or next((i for i in snap.interfaces if i.kind == "bridge"), None)
    addresses: list[str] = []
    underlay = None
    if vtep is not None and vtep.vxlan is not None and vtep.vxlan.local is not None:
        addresses.append(str(vtep.vxlan.local))
        underlay = vtep.vxlan.dev
    default = next((r for r in snap.routes if r.is_default and r.table == "main" and r.dev), None)
    if underlay is None and default is not None:
        underlay = default.dev
    iface = snap.interface(underlay) if underlay is not None else None
    if iface is not None:
        addresses += [str(a.ip) for a in iface.addresses if a.ip.version == 4]
    elif vtep is not None and vtep.vxlan is not None and vtep.vxlan.local is not None:
        owner = snap.interface_of_address(vtep.vxlan.local)
        underlay = owner.name if owner else underlay
    # the node's other non-pod addresses (a second NIC's): the node too, after the underlay's; with
    # no VXLAN details and no default route, the first interface holding one is the underlay
    guess_underlay = not addresses
    pod_net = snap.pod_cidr
    for i in snap.interfaces:
        if i.kind in ("bridge", "vxlan", "ipip") or i.master or i.name == "lo" or i is vtep or i is bridge:
            continue
        own = [str(a.ip) for a in i.addresses if a.ip.version == 4 and not a.ip.is_loopback
               and not a.ip.is_link_local and (pod_net is None or a.ip not in pod_net)]
        if own and guess_underlay and underlay is None:
            underlay = i.name
        addresses += own
    backend = "unknown"
    if vtep is not None and (vtep.vxlan is not None or vtep.kind == "vxlan"):
        backend = "vxlan"
    elif vtep is not None and vtep.kind == "ipip":
        backend = "ipip"
    pod = snap.pod_cidr
    if backend == "unknown" and pod is not None and underlay and any(
        r.dev == underlay and r.via is not None and r.dst.prefixlen == pod.prefixlen and r.dst != pod
        for r in snap.routes
    ):
        backend = "host-gw"
    return NodeFacts(
        name=snap.name,
        addresses=tuple(dict.fromkeys(addresses)),
        pod_cidr=str(pod) if pod is not None else None,
        backend=backend,
        vtep_interface=vtep.name if vtep is not None else None,
        bridge_interface=bridge.name if bridge is not None else None,
        underlay_interface=underlay,
        mtu={i.name: i.mtu for i in snap.interfaces if i.mtu},
        from_dumps=bool(snap.interfaces or snap.routes),
        pod_veths=_pod_veths(snap, bridge.name if bridge is not None else None),
    )


def _pod_veths(snap: NodeSnapshot, bridge: str | None) -> dict[str, str]:
    """Pod address -> its host-side veth: the bridge's neighbour (pod MAC), then the bridge FDB port."""
    if bridge is None:
        return {}
    port_of = {f.mac.lower(): f.dev for f in snap.fdb if f.master == bridge and f.dev and not f.is_self}
    out = {}
    for n in snap.neigh:
        if n.dev == bridge and n.lladdr and n.lladdr.lower() in port_of:
            out[str(n.ip)] = port_of[n.lladdr.lower()]
    return out


def services_from_dumps(snaps: Sequence[NodeSnapshot], kube: KubeInventory | None) -> list[Service]:
    found: dict[tuple[str, int | None], Service] = {}
    for snap in snaps:
        rs = snap.ruleset
        if rs is None:
            continue
        for rule in rs.rules():
            comment = rule.comment or ""
            nodeport = _nodeport_service(rule, comment)
            if nodeport is not None:
                prev = found.get(("*", nodeport.port))
                if prev is None or (nodeport.no_endpoints and not prev.no_endpoints):
                    found[("*", nodeport.port)] = nodeport
                continue
            if rule.dst is None or "/" not in rule.dst.value and rule.dst.value.count(".") != 3:
                continue
            ip = rule.dst.value.split("/")[0]
            if not comment or ip.startswith("0.") or rule.dst.negated:
                continue
            dport = None
            for m in rule.matches:
                opt = m.option("dport")
                if opt is not None and opt.value.isdigit():
                    dport = int(opt.value)
            name = comment.split(" ")[0]
            if "/" not in name:
                continue
            no_ep = "has no endpoints" in comment
            if "cluster IP" in comment or no_ep or "external IP" in comment or "loadbalancer IP" in comment:
                key = (ip, dport)
                prev = found.get(key)
                ev = ((rule.source.file, rule.source.line, rule.source.text),)
                if prev is None:
                    found[key] = Service(ip=ip, port=dport, name=name, no_endpoints=no_ep, evidence=ev)
                elif no_ep and not prev.no_endpoints:
                    found[key] = replace(prev, no_endpoints=True, evidence=prev.evidence + ev)
    if kube is not None:
        for svc in kube.services:
            for ip in {str(a) for a in (svc.cluster_ip, *svc.cluster_ips) if a is not None}:
                for sp in svc.ports or (None,):  # type: ignore[assignment]
                    port = sp.port if sp is not None else None
                    name = f"{svc.namespace}/{svc.name}" + (f":{sp.name}" if sp is not None and sp.name else "")
                    eps = kube.endpoints_of(svc.namespace, svc.name)
                    if (ip, port) not in found:
                        found[(ip, port)] = Service(ip=ip, port=port, name=name,
                                                    no_endpoints=bool(kube.endpoints) and not any(e.ready for e in eps))
    return list(found.values())


def _nodeport_service(rule, comment: str) -> Service | None:  # noqa: ANN001 - model.netfilter.Rule
    """A NodePort from kube-proxy's KUBE-NODEPORTS jump or its "has no local endpoints" DROP."""
    is_np = rule.chain == "KUBE-NODEPORTS" and rule.table == "nat"
    is_local_drop = rule.chain == "KUBE-EXTERNAL-SERVICES" and "endpoints" in comment and rule.dst is None
    if not (is_np or is_local_drop) or "/" not in comment.split(" ")[0]:
        return None
    port = None
    for m in rule.matches:
        opt = m.option("dport")
        if opt is not None and opt.value.isdigit():
            port = int(opt.value)
    if port is None:
        return None
    ev = ((rule.source.file, rule.source.line, rule.source.text),)
    return Service(ip="*", port=port, name=comment.split(" ")[0], no_endpoints="has no endpoints" in comment,
                   evidence=ev)


def pod_names(kube: KubeInventory | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if kube is None:
        return out
    for pod in kube.pods:
        if pod.host_network:
            continue
        for ip in {pod.ip, *pod.ips}:
            if ip is not None:
                out[str(ip)] = f"{pod.namespace}/{pod.name}"
    return out


def placement_counts(records: Iterable[PacketRecord], weights: Mapping[int, int] | None = None
                     ) -> tuple[dict[str, dict[str, int]], dict[str, int], dict[str, dict[str, int]]]:
    """What ``_assign_capture_nodes`` counts per file, each dict in the order the records first
    show its keys: the tunnel endpoints (those of the capture's own node for a cooked capture),
    the tunnelled packets, and the pod-side senders (``weights``: as ``classify.topology_counts``')."""
    # counted in plain dicts (in the packets' order), made Counters with that same order
    outer_n: dict[str, dict[str, int]] = {}
    total_n: dict[str, int] = {}
    pods_n: dict[str, dict[str, int]] = {}
    wget = weights.get if weights else None
    for r in records:
        if r.quoted is not None:
            continue
        w = wget(id(r), 1) if wget is not None else 1
        osrc, odst, pkttype = r.outer_src, r.outer_dst, r.sll_pkttype
        if r.tunnel and osrc and odst:
            c = outer_n.get(r.file)
            if c is None:
                c = outer_n[r.file] = {}
            if pkttype != 0:  # (4: sent by the node the cooked capture was taken on)
                c[osrc] = c.get(osrc, 0) + w
            if pkttype != 4:  # (0: addressed to it)
                c[odst] = c.get(odst, 0) + w
            total_n[r.file] = total_n.get(r.file, 0) + w
        elif r.src:
            # a cooked capture holds a local pod's packets entering the node more often (its veth,
            # cni0) than leaving it (the NIC); a remote pod's the other way round
            weight = -1 if pkttype == 4 else 1
            c = pods_n.get(r.file)
            if c is None:
                c = pods_n[r.file] = {}
            c[r.src] = c.get(r.src, 0) + weight * w
    return outer_n, total_n, pods_n


def _assign_capture_nodes(points: dict[str, CapturePoint], records: Iterable[PacketRecord], topo: Topology,
                          counts: tuple | None = None) -> dict[str, CapturePoint]:
    """Give a bare capture (no bundle) the node it was taken on, from what it holds (``counts``:
    ``placement_counts`` of the records, counted already)."""
    outer_n: dict[str, dict[str, int]] = {}
    total_n: dict[str, int] = {}
    pods_n: dict[str, dict[str, int]] = {}
    if any(p.node is None for p in points.values()):  # (nothing to place otherwise)
        outer_n, total_n, pods_n = counts if counts is not None else placement_counts(records)
    total: Counter[str] = Counter(total_n)
    outer = {f: Counter(c) for f, c in outer_n.items()}
    pods = {f: Counter(c) for f, c in pods_n.items()}
    out = dict(points)
    for f, p in points.items():
        if p.node is not None:
            continue
        name = None
        c = outer.get(f)
        if c:
            common = [a for a, n in c.items() if n == total[f]]
            if len(common) == 1:
                name = classify.node_of(common[0], topo)
            elif not common and len(c) >= 3 and p.interface is None:
                # tunnels between several node pairs that share no node: taken between the nodes
                out[f] = replace(p, interface=UNDERLAY_INTERFACE)
                continue
        if name is None and pods.get(f):
            for ip, _n in pods[f].most_common():
                if classify.role_of(ip, topo) == "pod":
                    name = classify.node_of(ip, topo)
                    if name:
                        break
        if name is not None:
            out[f] = replace(p, node=name)
    return out


def _infer_backend(topo: Topology, records: Sequence[PacketRecord], tunnelled: bool | None = None,
                   pairs: Iterable[tuple[str, str]] | None = None) -> Topology:
    """No overlay packet in any capture and no dumps: host-gw when a remote pod answered without
    encapsulation, else flannel's default (VXLAN), said so in ``inferred``. (``tunnelled``: whether
    a record was tunnelled, ``pairs``: the (source, destination) of the records but ICMP errors'
    quotes, known already.)"""
    if topo.overlay is not None or topo.has_dumps:
        return topo
    if tunnelled if tunnelled is not None else any(r.tunnel for r in records):
        return topo
    if pairs is None:
        pairs = ((r.src, r.dst) for r in records if r.quoted is None)
    pods = [(s, d) for s, d in pairs if classify.role_of(s, topo) == "pod" and classify.role_of(d, topo) == "pod"
            and classify.node_of(s, topo) != classify.node_of(d, topo)]
    if not pods:
        return topo
    answered = {(d, s) for s, d in pods}
    if any(p in answered for p in pods):
        backend, why = "host-gw", "pod packets cross between nodes unencapsulated and get answers"
    else:
        backend, why = "vxlan", "flannel's default; no overlay packet was captured"
    nodes = tuple(replace(n, backend=backend) if n.backend == "unknown" else n for n in topo.nodes)
    return replace(topo, nodes=nodes, overlay=backend,
                   inferred=topo.inferred + (f"backend assumed to be {backend} ({why})",))


def seen_addresses(records: Iterable[PacketRecord]) -> list[str]:
    """Each source and destination address of the records (but ICMP errors' quotes) once, in the
    order the packets first show it."""
    return list(dict.fromkeys(ip for r in records if r.quoted is None for ip in (r.src, r.dst) if ip is not None))


def _placeholder_nodes(topo: Topology, records: Iterable[PacketRecord], addrs: Iterable[str] | None = None
                       ) -> Topology:
    """Pods seen in subnets no node claims get a node named after the subnet (inferred).
    (``addrs``: ``seen_addresses`` of the records, known already.)"""
    cidr = topo.cluster_cidr
    if cidr is None:
        return topo
    claimed = {n.pod_cidr for n in topo.nodes if n.pod_cidr}
    extra: dict[str, NodeFacts] = {}
    if addrs is None:
        addrs = seen_addresses(records)
    for ip in addrs:
        if not classify.in_cidr(ip, cidr):
            continue
        if classify.node_of(ip, topo) is not None or classify.role_of(ip, topo) == "service":
            continue
        sub = classify.slash24(ip)
        if sub and sub not in claimed and sub not in extra:
            extra[sub] = NodeFacts(name=f"node({sub})", pod_cidr=sub)
    if not extra:
        return topo
    note = tuple(f"pods in {s} belong to a node no capture or dump names; called {n.name}" for s, n in extra.items())
    return replace(topo, nodes=topo.nodes + tuple(extra.values()), inferred=topo.inferred + note)


# ----------------------------------------------------------------------------- the document


def _endpoint(ip: str, port: int | None, topo: Topology, role: str | None = None) -> dict:
    role = role or classify.role_of(ip, topo)
    name = None
    if role == "service":
        svc = classify.service_at(ip, port, topo)
        name = svc.name if svc else None
    elif role == "pod":
        name = topo.pod_names.get(ip)
    elif role == "node":
        svc = classify.service_at(ip, port, topo) if port is not None else None
        # a NodePort on the node's address is named after its service
        name = svc.name if svc is not None and svc.ip == "*" and svc.name else classify.node_of(ip, topo)
    return {"ip": ip, "port": port, "role": role, "name": name, "node": classify.node_of(ip, topo)
            if role in ("pod", "node") else None}


def _translations(flow: StitchedFlow) -> list[dict]:
    """The rewrites learnt from the packets (their rules come from the dumps, if given)."""
    return [{"type": n.type, "node": n.node, "from": n.before, "to": n.after, "observed": True, "rule": None}
            for n in paths.nat_list(flow.nats)]


def _encapsulation(flow: StitchedFlow, path: Sequence) -> list[dict]:
    out: list[dict] = []
    seen = set()
    for s in flow.sightings:
        r = s.record
        if s.direction != "fwd" or not r.tunnel:
            continue
        key = (r.tunnel, r.vni, r.outer_dport, r.outer_src, r.outer_dst)
        if key in seen:
            continue
        seen.add(key)
        out.append({"type": r.tunnel, "vni": r.vni, "port": r.outer_dport, "outer_src": r.outer_src,
                    "outer_dst": r.outer_dst, "observed": True})
    if not out:
        encap = next((h for h in path if h.kind == "vtep" and h.action == "encap"), None)
        if encap is not None:
            f = dict(encap.facts)
            tx = next((h for h in path if h.kind == "nic" and h.action == "transmit"), None)
            if tx is not None and tx.observed is False:
                return out  # captured where it should leave: nothing was encapsulated
            out.append({"type": "vxlan", "vni": _int(f.get("vni")), "port": _int(f.get("port")),
                        "outer_src": None, "outer_dst": f.get("peer"), "observed": None})
    return out


def _int(v: str | None) -> int | None:
    return int(v) if v is not None and v.isdigit() else None


def _decide_status(flow: StitchedFlow, path: Sequence, topo: Topology | None = None) -> tuple[str, str]:
    status, reason = _status_of(flow, path, topo)
    if not flow.sightings and flow.errors:
        reason += "; only the ICMP error was captured, not the flow's own packets"
    return status, reason


#: a flow whose first packet came this close to the end of every capture that saw it had no time
#: to be answered (a reply takes milliseconds; the first SYN retransmission comes after 1 s)
TOO_SOON = 1.0


def _too_soon(flow: StitchedFlow, points: Mapping[str, CapturePoint]) -> tuple[str, str] | None:
    """``incomplete`` instead of ``no-reply`` when every capture of the flow ended under
    ``TOO_SOON`` seconds after the flow's first packet there."""
    first: dict[str, float] = {}
    for s in flow.sightings:
        if s.direction == "fwd":
            first[s.record.file] = min(first.get(s.record.file, s.record.ts), s.record.ts)
    margins = []
    for f, t in first.items():
        pt = points.get(f)
        if pt is None or pt.last_ts is None:
            return None
        margins.append(pt.last_ts - t)
    if not margins or max(margins) >= TOO_SOON:
        return None
    return "incomplete", f"the capture ends {max(margins) * 1000:.0f} ms after the flow's first packet: too soon for an answer"


def _status_of(flow: StitchedFlow, path: Sequence, topo: Topology | None) -> tuple[str, str]:
    status, reason = classify.answer_status(flow, topo)
    if status is not None:
        return status, reason
    frag = [e for e in flow.errors if (e.record.icmp_type, e.record.icmp_code) == (3, 4)]
    if frag:
        e = frag[0].record
        return "rejected", f"ICMP fragmentation needed (MTU {e.icmp_mtu}) from {e.src}"
    if paths.missing_after(path) is not None:
        return "dropped", "a capture point on the path never saw it"
    fwd = [s for s in flow.sightings if s.direction == "fwd"]
    if flow.proto == 6 and not any((s.record.tcp_flags or 0) & 0x02 for s in fwd):
        return "incomplete", "the capture starts in the middle of the connection"
    return "no-reply", reason


def explain_inputs(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    vxlan_ports: Iterable[int] = (),
    warn: Warn | None = None,
    progress: Progress | None = None,
    generated_at: str | None = None,
    annotate_dir: Path | None = None,
) -> dict:
    """Read everything, explain every flow, and return the explain document."""
    with _no_cyclic_gc():
        flows, finish = explain_stream(inputs, vxlan_ports=vxlan_ports, warn=warn, progress=progress,
                                       generated_at=generated_at, annotate_dir=annotate_dir)
        doc_flows = list(flows)
        doc = finish()
    doc["flows"] = doc_flows
    return doc


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The document is millions of small dicts and lists and holds no cycle: the cyclic collector
    would only rescan them again and again as they pile up (a third of the time on big captures)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def explain_stream(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    vxlan_ports: Iterable[int] = (),
    warn: Warn | None = None,
    progress: Progress | None = None,
    generated_at: str | None = None,
    brief: bool = False,
    annotate_dir: Path | None = None,
    rows: bool = False,
) -> tuple[Iterator[dict], Callable[[], dict]]:
    """``explain_inputs`` a flow at a time: the captures are read and stitched now; the iterator
    yields each flow's document as it is explained (drop it once written: memory then holds the
    stitched samples, not the documents); ``finish()``, after the iterator is exhausted, returns
    the rest of the document (everything but ``flows``, which it gives as an empty list).

    ``brief`` (the text report's view): every flow still gets its exact ``kind``, ``status``,
    endpoints, ``translations``, ``encapsulation``, ``findings``, counts and ``verdict``, but the
    per-hop detail is computed only where the text report shows it: ``hops`` only for a failing
    flow (``is_failing``), and never ``graph``, ``reply`` or ``ladder``. Such a document carries
    ``"brief": true``.

    ``rows`` (with ``brief``, for the text report): the plain lane's flows come as
    ``model.explain.RowBlock``s (runs of flows of one summary line and nothing more: what those
    lines read, ``doc(i)`` gives a document) and ``model.explain.SummaryRow``s (one flow with
    findings, ``doc()`` gives its document).

    ``annotate_dir``: ``finish()`` also writes every input capture there as pcapng with each
    explained flow's verdict as packet comments (``pipeline.annotate``), listed in ``annotated``."""
    from analyzer.pipeline.annotate import FlowIndex

    warnings: list[str] = []
    index = FlowIndex() if annotate_dir is not None else None

    def _warn(line: str) -> None:
        warnings.append(line)
        if warn is not None:
            warn(line)

    ports = frozenset({8472, 4789, *vxlan_ports})
    given = classify_inputs(inputs, _warn)
    display = {path: shown for path, _n, _i, shown in given.captures}
    snaps = {s.name: s for s in given.bundles}
    if not given.captures:
        raise InputError(", ".join(str(i) for i in inputs), "no capture among the inputs",
                         hint="give pcap/pcapng files or bundles with <iface>.pcap captures")

    def _prog(done: int, total: int) -> None:
        if progress is not None:
            progress("reading captures", done, total)

    index_names = {s.name: {i.index: i.name for i in s.interfaces if i.index is not None} for s in given.bundles}
    ifnames = {path: index_names[node] for path, node, _i, _s in given.captures if index_names.get(node)}
    # the plain lane (pipeline.plain): the text report of a captures-only run
    lane = brief and index is None and not given.bundles and given.kube is None and fast_lane() and plain.plain_lane_on()
    src = read_packets([p for p, *_ in given.captures], vxlan_ports=ports, warn=_warn, progress=_prog, ifnames=ifnames,
                       lane=lane)
    records = src.records
    split = src.split
    points: dict[str, CapturePoint] = {}
    span: dict[str, tuple[float, float]] = dict(split.span) if split is not None else {}
    for r in records:
        lo_hi = span.get(r.file)
        span[r.file] = (r.ts, r.ts) if lo_hi is None else (min(lo_hi[0], r.ts), max(lo_hi[1], r.ts))
    for path, node, iface, _shown in given.captures:
        ts = span.get(path)
        points[path] = CapturePoint(file=path, node=node, interface=iface, frames=src.frames.get(path, 0),
                                    first_ts=ts[0] if ts else None, last_ts=ts[1] if ts else None,
                                    link=src.link.get(path, "unknown"))
        if iface is None and src.link.get(path) in ("sll", "sll2"):
            points[path] = replace(points[path], interface=ANY_INTERFACE)
    known = [facts_from_snapshot(s) for s in given.bundles]
    cluster_cidr = next((str(s.subnet_env.network) for s in given.bundles
                         if s.subnet_env is not None and s.subnet_env.network is not None), None)
    services = services_from_dumps(given.bundles, given.kube)
    if split is not None:  # the lane's sampled packets as weighted stand-ins, counted from columns
        counts = split.standins.counts(records, ports)
        topo = classify.infer_topology((), points, known, services=services, cluster_cidr=cluster_cidr,
                                       pod_names=pod_names(given.kube), vxlan_ports=ports, counts=counts.topology)
        topo = _placeholder_nodes(topo, (), counts.addresses)
        topo = _infer_backend(topo, (), counts.tunnelled, counts.pairs)
        points = _assign_capture_nodes(points, (), topo, counts=counts.placement)
        del counts
    else:
        topo = classify.infer_topology(records, points, known, services=services, cluster_cidr=cluster_cidr,
                                       pod_names=pod_names(given.kube), vxlan_ports=ports)
        topo = _placeholder_nodes(topo, records)
        topo = _infer_backend(topo, records)
        points = _assign_capture_nodes(points, records, topo)
    topo = replace(topo, inferred=topo.inferred + tuple(
        f"{display.get(p.file, p.file)} holds tunnel packets of several node pairs: taken between the nodes (underlay)"
        for p in points.values() if p.is_underlay))
    kept: Any = None  # the plain lane's flows (pipeline.plain.PlainSet), in the report's order
    if split is not None and src.more is not None:
        quoted = {a for r in records if r.quoted is not None
                  for a in (r.quoted.src, r.quoted.dst, r.quoted.inner_src, r.quoted.inner_dst) if a}
        kept, demoted = plain.demote(split.plain, topo, points, quoted, split.shared)
        if demoted:  # down the general path after all
            records = sorted([*records, *src.more(demoted)], key=attrgetter("file", "frame"))
        split.standins, split.plain = None, []
    offsets = stitch.estimate_offsets(records, points, topo)
    flows: list[Any] = stitch.stitch_flows(records, points, topo, offsets, warn=_warn,
                                           crowded=split.crowded if split is not None else ())
    skipped = [f for f in flows if _is_multicast(f)]
    n_skipped = len(skipped)
    if skipped:
        flows = [f for f in flows if not _is_multicast(f)]
    # (the lane's flows are never multicast: split_scan leaves those out); the lane's rows go
    # between the stitched flows as ``(first row, end row)`` runs, in stitch.flow_order's order
    if kept is not None and len(kept):
        flows = _merged(flows, kept)
    n = 0
    for f in flows:
        if type(f) is StitchedFlow:
            n += 1
            f.id = f"f{n}"
        else:
            n += f[1] - f[0]
    n_flows = n
    # from here on the packets live only in the stitched flows, each let go once its document is made
    src.records = []
    del records, skipped

    all_findings: list[Finding] = []
    by_status: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    sim = Simulator(snaps, _warn)
    done = [False]
    plain_docs: list[Any] = [None]

    def flow_docs() -> Iterator[dict]:
        number = 0  # the flows done
        for i in range(len(flows)):
            if progress is not None:
                progress("explaining flows", number, n_flows)
            flow, flows[i] = flows[i], None  # type: ignore[call-overload]
            if type(flow) is not StitchedFlow:  # a run of the plain lane's rows
                if plain_docs[0] is None:
                    plain_docs[0] = plain.Documents(topo, _endpoint, points, src.records_of, all_findings)
                block = plain_docs[0].segment(kept, flow[0], flow[1], number + 1)  # (names no file)
                for t, times in Counter(block.tails).items():
                    by_kind[block.tail_defs[t][0]] += times
                if rows:
                    yield block
                else:
                    yield from (block.doc(j) for j in range(len(block)))
                by_status["delivered"] += flow[1] - flow[0]
                number += flow[1] - flow[0]
                continue
            number += 1
            d = _flow_doc(flow, topo, points, snaps, src, all_findings, sim, brief=brief)
            if index is not None:
                index.add(flow, d)
            del flow
            by_status[d["status"]] += 1
            by_kind[d["kind"]] += 1
            yield _rename_files(d, display)
        done[0] = True

    def finish() -> dict:
        if not done[0]:
            raise RuntimeError("explain_stream: finish() before every flow was taken")
        doc = _finish(given, topo, points, offsets, warnings, n_skipped, by_status, by_kind, all_findings,
                      display, generated_at)
        if index is not None and annotate_dir is not None:
            from analyzer.pipeline.annotate import annotate_captures

            done_files = annotate_captures(given.captures, index, annotate_dir, vxlan_ports=ports, warn=_warn,
                                           ifnames=ifnames)
            doc["annotated"] = [{"path": str(p), "frames": n, "commented": c} for p, n, c in done_files]
        return doc

    return flow_docs(), finish


def _merged(flows: list[StitchedFlow], kept: Any) -> list[Any]:
    """The stitched ``flows`` and the plain lane's ``kept`` rows (``pipeline.plain.PlainSet``, both
    in ``stitch.flow_order``'s order) in that order, the rows as ``(first, end)`` runs between the
    flows; a flow goes before the rows of an equal key (as ``heapq.merge`` puts its first
    iterable's). Ports compare with no port first."""
    ts = kept.first_ts
    names, c_id, c_port, s_id, s_port = kept.names, kept.c_id, kept.c_port, kept.s_id, kept.s_port

    def key(ep: tuple) -> tuple:
        return ep[0], -1 if ep[1] is None else ep[1]

    out: list[Any] = []
    at = 0
    for f in flows:
        t, client, server = stitch.flow_order(f)
        want = (t, key(client), key(server))
        lo = int(np.searchsorted(ts, t, side="left"))
        hi = int(np.searchsorted(ts, t, side="right"))
        while lo < hi:  # the rows of the same first time, by client and server
            mid = (lo + hi) // 2
            row = (float(ts[mid]), (names[int(c_id[mid])], int(c_port[mid])), (names[int(s_id[mid])], int(s_port[mid])))
            if row < want:
                lo = mid + 1
            else:
                hi = mid
        pos = max(lo, at)
        if pos > at:
            out.append((at, pos))
            at = pos
        out.append(f)
    if at < len(kept):
        out.append((at, len(kept)))
    return out


def _finish(given: Inputs, topo: Topology, points: dict[str, CapturePoint], offsets: Sequence, warnings: list[str],
            n_skipped: int, by_status: Counter[str], by_kind: Counter[str],
            all_findings: Sequence[Finding], display: dict[str, str], generated_at: str | None) -> dict:
    """The document around the flows (whose ``flows`` is left empty), once every flow is done."""
    n_flows = sum(by_status.values())
    sev = Counter(f.severity for f in all_findings)
    not_checkable = []
    has_tables = {k: any(bool(getattr(s, attr)) for s in given.bundles)
                  for k, attr in (("routes", "routes"), ("fdb", "fdb"), ("neigh", "neigh"), ("rules", "ruleset"))}
    need = {"MISSING_ROUTE": "routes", "MISSING_FDB": "fdb", "MISSING_NEIGH": "neigh", "FORWARD_BLOCKED": "rules",
            "OVERLAY_PORT_BLOCKED": "rules", "MISSING_MASQUERADE": "rules", "SERVICE_NO_ENDPOINTS": "rules",
            "NO_LOCAL_ENDPOINTS": "rules"}
    for code, what in need.items():
        if not has_tables[what] and not (what == "rules" and given.kube is not None and "ENDPOINTS" in code):
            not_checkable.append({"code": code, "reason": NOT_CHECKABLE_WITHOUT_DUMPS[code],
                                  "reason_zh": NOT_CHECKABLE_ZH[code]})
    for f in all_findings:
        if not f.checkable and f.code not in {n["code"] for n in not_checkable}:
            not_checkable.append({"code": f.code, "reason": NOT_CHECKABLE_WITHOUT_DUMPS.get(f.code, "needs node dumps"),
                                  "reason_zh": NOT_CHECKABLE_ZH.get(f.code, "需要节点转储")})
    described = []
    for d in given.described:
        described.append(d)
    for path, node, iface, shown in given.captures:
        if node is not None:
            described.append({"path": shown, "type": "capture", "node": node, "interface": iface})
        else:
            for d in described:
                if d["path"] == shown and d["type"] == "capture":
                    d["node"] = points[path].node
                    d["interface"] = points[path].interface
    doc = {
        "schema": SCHEMA,
        "inputs": described,
        "nodes": [{"name": n.name, "addresses": list(n.addresses), "pod_cidr": n.pod_cidr, "backend": n.backend,
                   "inferred": not n.from_dumps} for n in topo.nodes],
        "flows": [],
        "findings": [],
        "warnings": warnings,
        "generated_at": generated_at or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": {"name": "k8s-trace", "version": __version__},
        "summary": {"flows": n_flows, "multicast_skipped": n_skipped, "by_status": dict(sorted(by_status.items())),
                    "by_kind": dict(sorted(by_kind.items())),
                    "findings": {k: sev.get(k, 0) for k in ("error", "warning", "info")}},
        "clock_offsets": [{"node": o.node, "offset": o.offset, "basis": o.basis} for o in offsets],
        "not_checkable": not_checkable,
        "inferred": list(topo.inferred),
        "captures": [{"path": display.get(p.file, p.file), "node": p.node, "interface": p.interface,
                      "frames": p.frames, "first_ts": p.first_ts, "last_ts": p.last_ts, "link": p.link}
                     for p in points.values()],
    }
    return _rename_files(doc, display)


def _is_multicast(flow: StitchedFlow) -> bool:
    """Multicast and broadcast traffic (IGMP, mDNS, DHCP...): not a connection to explain."""
    return _group_address(flow.server[0]) or _group_address(flow.client[0])


@lru_cache(maxsize=65536)
def _group_address(ip: str) -> bool:
    import ipaddress

    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return addr.is_multicast or str(addr) == "255.255.255.255" or (addr.version == 6 and addr.is_link_local)


def _rename_files(obj, names: dict[str, str]):
    """Show captures under the names the user knows (tarball members, not temporary paths)."""
    names = {k: v for k, v in names.items() if k != v}
    if not names:
        return obj
    return _rename(obj, names)


def _rename(obj, names: dict[str, str]):
    if isinstance(obj, dict):
        return {k: (names.get(v, v) if k == "file" and isinstance(v, str) else _rename(v, names))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename(v, names) for v in obj]
    return obj


def _reply_hops(flow: StitchedFlow, path: Sequence, points: dict[str, CapturePoint]) -> list[dict] | None:
    """The reply direction's hops, when any reply packet was captured."""
    if not any(s.direction == "rev" for s in flow.sightings):
        return None
    back = paths.observe(paths.reply_path(path, flow.id), flow, points, direction="rev")
    return [paths.hop_json(h) for h in back]


def _failed_at(path: Sequence, failed: int | None, status: str) -> str | None:
    """Where the verdict says the packet stopped: the first capture point that missed it (dropped),
    else the failing hop."""
    if status == "dropped":
        miss = paths.missing_after(path)
        if miss is not None:
            return paths.describe(path[miss])
    return paths.describe(path[failed]) if failed is not None else None


class Simulator:
    """The dumps' view of a flow's first packet (``engines.simulate``), one walk per destination."""

    def __init__(self, snaps: dict[str, NodeSnapshot], warn: Warn) -> None:
        self.snaps = snaps
        self.warn = warn
        self.cache: dict[tuple, object] = {}
        self.inside: dict[str, bool] = {}
        self.unexplained_dnat: set[tuple[str, str]] = set()
        # the nodes' own addresses and pod subnets, gathered once (not for every new client)
        self.local = frozenset(a for snap in snaps.values() for a in snap.local_addresses())
        self.pod_nets = tuple(snap.pod_cidr for snap in snaps.values() if snap.pod_cidr is not None)

    def _inside(self, ip: str) -> bool:
        """A node's own address or a pod of a node: the simulator knows where it enters."""
        if ip not in self.inside:
            import ipaddress

            addr = ipaddress.ip_address(ip)
            self.inside[ip] = addr in self.local or any(addr in net for net in self.pod_nets)
        return self.inside[ip]

    def outcome(self, flow: StitchedFlow):  # noqa: ANN201 - engines.simulate.SimOutcome | None
        if not self.snaps or not any(s.ruleset is not None or s.routes for s in self.snaps.values()):
            return None
        proto = proto_name(flow.proto)
        if proto not in ("tcp", "udp", "sctp", "icmp"):
            return None
        # a client from outside: the node and interface its first packet was captured arriving on (a
        # second NIC is not where the route back leads, which rp_filter cares about)
        start = iif = None
        if not self._inside(flow.client[0]):
            first = min((s for s in flow.sightings if s.direction == "fwd" and s.node in self.snaps and s.interface
                         and s.interface != ANY_INTERFACE and not s.record.tunnel
                         and self.snaps[s.node].interface(s.interface) is not None), key=lambda s: s.ts, default=None)
            if first is not None:
                start, iif = first.node, first.interface
        key = (flow.client[0], flow.server[0], proto, flow.server[1], start, iif)
        if key not in self.cache:
            from analyzer.engines.simulate import simulate_packet

            try:
                res = simulate_packet(list(self.snaps.values()), flow.client[0], flow.server[0], proto,
                                      flow.client[1], flow.server[1], iif, start_node=start,
                                      icmp_type=8 if proto == "icmp" else None)
                self.cache[key] = res.outcomes
            except Exception as exc:  # noqa: BLE001 - the dumps' view is an aid: never lose the captures' answer
                self.warn(f"simulating {proto} {flow.client[0]} -> {flow.server[0]} failed: {type(exc).__name__}: {exc}")
                self.cache[key] = ()
        outcomes = self.cache[key]
        if not outcomes:
            return None
        if flow.real_server != flow.server:
            want = endpoint_text(*flow.real_server)
            match = [o for o in outcomes if o.dnat == want]
            if match:
                return max(match, key=lambda o: o.probability)
            # the captures show a DNAT no walk of the dumps makes: the dumps' path is another packet's
            # (its routes, rules and translations would be wrong here), so it is left out, said once
            seen = (endpoint_text(*flow.server), want)
            if seen not in self.unexplained_dnat:
                self.unexplained_dnat.add(seen)
                self.warn(f"the captures show {seen[0]} rewritten to {want}, but no rule in the dumps does it "
                          "(kube-proxy in IPVS mode, or in nftables mode without `nft list ruleset` in the "
                          "bundle?): the dumps' view of these flows is left out")
            return None
        return max(outcomes, key=lambda o: o.probability)


def _rule_json(rule) -> dict | None:  # noqa: ANN001 - model.netfilter.Rule
    if rule is None:
        return None
    return {"file": rule.file, "line": rule.line, "table": rule.table, "chain": rule.chain, "text": rule.text}


def _sim_translations(doc_nats: list[dict], outcome, shaped: bool = False) -> list[dict]:  # noqa: ANN001
    """Give observed translations their rule; add the ones only the dumps show (observed: null);
    ``shaped``: dropped after a DNAT no capture saw (``_dnat_shape``), which is added."""
    if outcome is None:
        return doc_nats
    sims = [(t.node, "dnat" if t.translation.type == "redirect" else t.translation.type, t.translation)
            for t in outcome.translations]
    out = []
    used = set()
    for d in doc_nats:
        for i, (node, typ, tr) in enumerate(sims):
            same_type = typ == d["type"] or {typ, d["type"]} == {"snat", "masquerade"}
            if i not in used and same_type and (node == d["node"] or d["node"] is None):
                used.add(i)  # no capture point saw both copies: the dumps say which node rewrote it
                d = {**d, "rule": _rule_json(tr.rule), "node": node}
                break
        out.append(d)
    if outcome.status in ("forwarded", "local") or shaped:
        for i, (node, typ, tr) in enumerate(sims):
            if i in used or any(d["type"] == typ for d in out) or (shaped and typ != "dnat"):
                continue
            out.append({"type": typ, "node": node, "from": tr.before, "to": tr.after, "observed": None,
                        "rule": _rule_json(tr.rule)})
    order = {"dnat": 0, "snat": 1, "masquerade": 1}
    return sorted(out, key=lambda d: order.get(d["type"], 2))


def _dnat_shape(flow: StitchedFlow, outcome) -> StitchedFlow:  # noqa: ANN001 - engines.simulate.SimOutcome
    """A flow dropped after a DNAT the dumps show but no capture saw (the rewritten packet never
    reached one): the path is that of the rewritten packet, toward the endpoint."""
    if outcome is None or outcome.status != "dropped" or flow.real_server != flow.server or not outcome.dnat:
        return flow
    node = next((t.node for t in outcome.translations if t.translation.type in ("dnat", "redirect")), None)
    host, _, port = outcome.dnat.rpartition(":")
    if not port.isdigit() or host.startswith("["):
        return flow
    return replace(flow, real_server=(host, int(port)),
                   nats=(*flow.nats, ObservedNat("dnat", endpoint_text(*flow.server), outcome.dnat, node)))


def _flow_doc(flow: StitchedFlow, topo: Topology, points: dict[str, CapturePoint], snaps: dict[str, NodeSnapshot],
              src: PacketSource, sink: list[Finding], sim: Simulator | None = None, *, brief: bool = False) -> dict:
    kind = classify.flow_kind(flow, topo)
    outcome = sim.outcome(flow) if sim is not None else None
    shape = _dnat_shape(flow, outcome)
    path = paths.observe(paths.expected_path(shape, topo, points), flow, points)
    if outcome is not None:
        path = paths.attach_simulation(path, outcome.hops)
    status, reason = _decide_status(flow, path, topo)
    if status == "no-reply":
        status, reason = _too_soon(flow, points) or (status, reason)
    sim_failed = paths.sim_failure_index(path, outcome.hops) if outcome is not None else None
    if status == "no-reply" and outcome is not None and outcome.status in ("dropped", "rejected") \
            and sim_failed is not None:
        status = outcome.status
        reason = outcome.explanation or reason
    error_node = None
    frag = False
    if status == "rejected" and flow.errors:
        hard = [e for e in flow.errors if e.record.icmp_type == 3] or flow.errors
        error_node = classify.node_of(hard[0].record.src, topo)
        frag = (hard[0].record.icmp_type, hard[0].record.icmp_code) == (3, 4)
    failed = None
    # the last place the packet was seen, found on the path graph
    seen_id = paths.last_seen_on_path(path)
    last = next((i for i, h in enumerate(path) if h.id == seen_id), None)
    wrong_replies, _resets = (classify.unnatted_replies(flow, classify.node_of(flow.client[0], topo))
                              if status == "dropped" else ([], []))
    if wrong_replies:
        # the answer crossed the client's bridge without conntrack: that bridge is where it failed
        where = wrong_replies[0].node
        bridges = [i for i, h in enumerate(path) if h.kind == "bridge" and h.node == where]
        failed = bridges[-1] if bridges else None
        if failed is not None:  # the forward packets went on: no drop edge after it
            path = [replace(h, failed=True) if i == failed else h for i, h in enumerate(path)]
    elif status in ("dropped", "rejected"):
        # a drop by the bridge itself (hairpin off) happens at a bridge that did see the packet
        bridge_drop = sim_failed is not None and path[sim_failed].kind == "bridge"
        if sim_failed is not None and (last is None or sim_failed > last or bridge_drop) and not frag:
            failed = sim_failed
        else:
            failed = paths.failure_index(path, error_node=error_node, frag_needed=frag, last=last)
        path = paths.mark_failed(path, failed)
    ctx = diagnose.Context(flow=flow, path=path, status=status, kind=kind, topo=topo, nodes=snaps, sim=outcome)
    findings = diagnose.diagnose_flow(ctx)
    sink.extend(findings)
    pname = proto_name(flow.proto)
    c_ep = _endpoint(*flow.client, topo)
    s_ep = _endpoint(*flow.server, topo)
    via = None
    if flow.real_server != flow.server:
        via = endpoint_text(*flow.real_server)
    keys = {stitch.conv_key_of(flow.proto, (t[0], t[1]), (t[2], t[3])) for t in flow.tuples}
    counts = [src.conv_counts[k] for k in keys if k in src.conv_counts]
    all_ts = [s.ts for s in flow.sightings]
    doc = {
        "id": flow.id,
        "proto": pname,
        "client": c_ep,
        "server": s_ep,
        "kind": kind,
        "status": status,
        "translations": _sim_translations(_translations(flow), outcome, shape is not flow),
        "encapsulation": _encapsulation(flow, path),
        "hops": None,
        "findings": [f.to_json() for f in findings],
        "packets": sum(c[0] for c in counts) if counts else len(flow.sightings),
        "bytes": sum(c[1] for c in counts) if counts else sum(s.record.wire_len for s in flow.sightings),
        "first_seen": round(min(all_ts), 6) if all_ts else None,
        "last_seen": round(max(all_ts), 6) if all_ts else None,
        "verdict": verdict(proto=pname, client=endpoint_text(*flow.client), server=endpoint_text(*flow.server), status=status,
                           reason=reason, last_seen=paths.describe(path[last]) if last is not None else None,
                           failed_at=_failed_at(path, failed, status), via=via, reply_failed=bool(wrong_replies)),
        "status_text": {"en": STATUS_TEXT[status][0], "zh": STATUS_TEXT[status][1]},
    }
    if brief:
        doc["brief"] = True
        if failing(status, findings):
            doc["hops"] = [paths.hop_json(h) for h in path]
        else:
            del doc["hops"]
        return doc
    doc["hops"] = [paths.hop_json(h) for h in path]
    doc["graph"] = paths.path_graph_json(path)
    doc["reply"] = _reply_hops(flow, path, points)
    doc["ladder"] = paths.ladder(flow, points, limit=LADDER_EVENTS if status == "delivered" else 4 * LADDER_EVENTS)
    return doc


def failing(status: str, findings: Sequence[Finding]) -> bool:
    """What the text report details hop by hop (``report.fmt.is_failing`` on the document)."""
    return status != "delivered" or any(f.severity == "error" for f in findings)
