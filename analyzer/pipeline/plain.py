"""The plain lane of the text report: ordinary flows explained from the flow table's columns.

Most flows of a big capture are ordinary: one conversation, answered, no reset, no ICMP error,
one tunnel each way. Everything the text report says of such a flow (its kind, status,
endpoints, encapsulation, counts, times, and its findings: none, or RETRANSMISSIONS) follows from
the flow table's per-flow columns, its kept rows and the topology, so the lane never builds the
flow's sampled ``PacketRecord`` objects (only those a RETRANSMISSIONS finding cites), never
stitches it and never builds its path: the general path's cost per flow is what kept
``explain`` at 10-20x the time of ``flows``.

The lane is exact by construction, not an approximation: a flow takes it only when every rule
the general path would apply to it is decided by the columns alone, and any doubt sends the flow
down the general path. Conditions, each with the general-path rule it stands for:

* the run is captures only (no bundle, no kubectl: no simulator walk, no names from dumps), the
  report is the text one (brief documents), no ``--annotate``, and the capture is Ethernet
  (no cooked capture: no per-frame interface or packet type);
* TCP or UDP, not multicast/broadcast, seen in one capture file whose timestamps never go back
  (then the first and last packets are the earliest and latest: what the samples hold);
* packets both ways, no RST either way, no ICMP error about it, no frame the general decoder
  had to take (``slow``), TCP with its client's SYN seen (``stitch._initiator``), a DNS query
  sent once (``diagnose._dns_race``);
* a TCP flow with a repeated SYN or data segment: ``stitch.find_retransmissions`` run on its kept
  rows' columns (the sampled records' seq, length, flags, IP ID and time), RETRANSMISSIONS made
  from the records of the copies it names (``diagnose.retransmission_findings``);
* in each direction either no packet tunnelled or every packet in one and the same tunnel
  (the encapsulation the report lists comes from the packets);
* no NAT twin: ``FlowTable.kept_twins`` reads the identity keys of the kept rows (the sampled
  records ``stitch_flows`` compares); a key shared with other flows is checked, once the roles
  are known, for copies within ``stitch.NAT_TWIN_WINDOW`` told apart by a plausible rewrite
  (``stitch.nat_plausible``), which is what ``stitch_flows`` links;
* after the topology is known: any kind but pod-to-external (MISSING_MASQUERADE reads the path),
  a path that needs no inferred tunnel, no ICMP error elsewhere that names its addresses, and
  every capture placed on one node or none (one clock: no offsets, twins only within the window).

The global steps that read every packet (topology, capture placement, backend, placeholder
nodes) count the lane's sampled frames as *stand-ins*: one per group of frames that share the
fields those steps read, with the group's count as its weight, placed where the group's first
sampled frame was. ``Standins.counts`` makes those counts from columns, merged with the general
path's records: the same counts and the same first-seen orders as with every sampled record. ``K8S_TRACE_EXPLAIN_PLAIN=0`` (or ``K8S_TRACE_EXPLAIN_GENERAL=1``) turns the lane
off; tests compare both ways byte for byte.

The lane's flows stay columns (``PlainSet``) to the end: ``demote`` decides each rule once per
distinct value of what the rule reads, and the text report receives runs of them as
``model.explain.RowBlock``s, whose summary lines it makes from the parts the flows share.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from analyzer.engines import classify, diagnose, stitch
from analyzer.engines.explain import STATUS_TEXT, verdict
from analyzer.engines.flowtable import row_ids
from analyzer.model.explain import (
    ANY_INTERFACE,
    CapturePoint,
    RowBlock,
    Sighting,
    StitchedFlow,
    SummaryRow,
    Topology,
)
from analyzer.model.flow import endpoint_text, proto_name

PLAIN_ENV = "K8S_TRACE_EXPLAIN_PLAIN"
#: the one kind the lane leaves to the general path: a delivered pod-to-external flow may carry a
#: MISSING_MASQUERADE finding, which reads the path's observed hops (every other check of
#: ``diagnose.diagnose_flow`` is silent on a delivered flow without an ICMP error or a dump)
NOT_PLAIN_KINDS = frozenset({"pod-to-external"})
_RST, _SYN = 0x04, 0x02
_ETHERNET = 1
_V4 = 1 << 32  # address ids below this are IPv4 addresses themselves, the others interned IPv6 ones


def plain_lane_on() -> bool:
    """Whether the lane is on (``K8S_TRACE_EXPLAIN_PLAIN=0`` turns it off)."""
    return os.environ.get(PLAIN_ENV, "") in ("", "1")


@dataclass(slots=True)
class PlainFlow:
    """A flow the lane explains: what its text-report entry needs, from the table's columns."""

    g: int  # the flow table's flow id
    proto: int
    client: tuple[str, int]
    server: tuple[str, int]
    file: str
    first_ts: float
    last_ts: float
    packets: int
    bytes: int
    encap: dict | None  # the client's direction's tunnel, as ``_encapsulation`` lists it
    outer: tuple[tuple[str, str], ...]  # the (outer src, outer dst) pairs of both directions
    id: str = ""
    nats: tuple = field(default=())  # (what ``classify.flow_kind`` asks of a stitched flow)
    resent: tuple = ()  # the retransmitted copies find_retransmissions names: (direction, file index, frame)
    kind: str = ""  # classify.flow_kind's, once the topology is known (``demote``)

    @property
    def real_server(self) -> tuple[str, int]:
        return self.server


@dataclass(slots=True)
class PlainSet:
    """The lane's flows as columns, one row per flow (``flow(i)`` gives row ``i`` as a
    ``PlainFlow``). Ports and tunnel indexes are -1 for none; ``fwd_t``/``rev_t`` index
    ``tunnels``, the tunnels of the client's and the server's direction. After ``demote``: rows
    in the report's order (``stitch.flow_order``'s: first time, client, server), each row's
    ``kind_i`` indexing ``kinds`` and ``encap_i`` ``encaps`` (its encapsulation entry: seen, or
    inferred; -1: none)."""

    g: np.ndarray  # the flow table's flow ids
    proto: np.ndarray
    c_id: np.ndarray  # client and server address ids (``names``), ports
    c_port: np.ndarray
    s_id: np.ndarray
    s_port: np.ndarray
    fidx: np.ndarray  # index of the one file (``files``)
    first_ts: np.ndarray
    last_ts: np.ndarray
    packets: np.ndarray
    bytes: np.ndarray
    fwd_t: np.ndarray
    rev_t: np.ndarray
    tunnels: list[dict | None]
    names: dict[int, str]
    files: list[str]
    resent: dict[int, tuple]  # flow id -> the retransmitted copies find_retransmissions names
    kind_i: np.ndarray | None = None
    kinds: list[str] = field(default_factory=list)
    encap_i: np.ndarray | None = None
    encaps: list[dict | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.g)

    def __iter__(self) -> Iterator[PlainFlow]:
        return (self.flow(i) for i in range(len(self.g)))

    def take(self, idx: np.ndarray) -> PlainSet:
        """The rows ``idx`` (indexes, in their order)."""
        return PlainSet(self.g[idx], self.proto[idx], self.c_id[idx], self.c_port[idx], self.s_id[idx], self.s_port[idx],
                        self.fidx[idx], self.first_ts[idx], self.last_ts[idx], self.packets[idx], self.bytes[idx],
                        self.fwd_t[idx], self.rev_t[idx], self.tunnels, self.names, self.files, self.resent,
                        self.kind_i[idx] if self.kind_i is not None else None, self.kinds,
                        self.encap_i[idx] if self.encap_i is not None else None, self.encaps)

    def flow(self, i: int) -> PlainFlow:
        names, tunnels = self.names, self.tunnels
        cp, sp = int(self.c_port[i]), int(self.s_port[i])
        ft, rt = int(self.fwd_t[i]), int(self.rev_t[i])
        fwd, rev = tunnels[ft] if ft >= 0 else None, tunnels[rt] if rt >= 0 else None
        outer = tuple((t["outer_src"], t["outer_dst"]) for t in (fwd, rev) if t is not None)
        g = int(self.g[i])
        pf = PlainFlow(g, int(self.proto[i]), (names[int(self.c_id[i])], cp if cp >= 0 else None),
                       (names[int(self.s_id[i])], sp if sp >= 0 else None), self.files[int(self.fidx[i])],
                       float(self.first_ts[i]), float(self.last_ts[i]), int(self.packets[i]), int(self.bytes[i]),
                       fwd, outer, resent=self.resent.get(g, ()))
        if self.kind_i is not None and self.encap_i is not None:
            e = int(self.encap_i[i])
            pf.kind, pf.encap = self.kinds[int(self.kind_i[i])], self.encaps[e] if e >= 0 else None
        return pf


class Standin(NamedTuple):
    """What the global steps read of a sampled record, for a group of the lane's sampled frames
    (no ``ts``: never read)."""

    file: str
    frame: int
    interface: str | None
    src: str
    dst: str
    proto: int
    sport: int | None
    dport: int | None
    tunnel: str | None
    vni: int | None
    outer_src: str | None
    outer_dst: str | None
    outer_dport: int | None
    ip_version: int
    quoted: None = None
    sll_pkttype: None = None


@dataclass(slots=True)
class Split:
    """The lane's share of a scan: its flows, their stand-ins and the rest's mask."""

    plain: PlainSet | list  # (an empty list when the lane takes nothing)
    standins: Standins | None
    span: dict[str, tuple[float, float]]  # file -> first and last time of the lane's packets
    general: np.ndarray  # bool per table flow: explained by the general path
    shared: list = field(default_factory=list)  # keys two flows share: (flow ids, times, sources, destinations)
    crowded: set = field(default_factory=set)  # identities of five flows or more: stitch links none (kept_twins)


def split_scan(scan: Any, linktypes: Mapping[str, int | None], tunnel_name: Callable[[int], str | None]) -> Split:
    """The flows of ``scan`` (``pipeline.flows.TableScan`` with samples) the lane may take before
    the topology is known, and their stand-ins. ``linktypes``: file -> its one link type."""
    table = scan.table
    n = table.count
    general = np.ones(n, dtype=bool)
    empty = Split([], None, {}, general)
    if n == 0 or not all(hasattr(table, a) for a in ("column", "slot_stats", "sample_frames", "kept_twins")):
        return empty
    col = table.column
    files = table.files
    ok_file = np.array([linktypes.get(f) == _ETHERNET and table.monotonic(i) for i, f in enumerate(files)], dtype=bool)
    if not ok_file.any():
        return empty
    lo, hi, proto, k3 = col("lo"), col("hi"), col("proto").astype(np.int64), col("k3")
    pk, by = col("pk"), col("by")
    flags = col("flags_or").astype(np.int64)
    fp = table.file_packets()  # (files, flows)
    in_files = (fp > 0).sum(axis=0)
    fidx = np.argmax(fp > 0, axis=0)
    syn_dir = col("syn_dir").astype(np.int64)
    first_dir = col("first_dir").astype(np.int64)
    lo_port = ((k3 >> 20) & 0xFFFFF) - 1
    hi_port = (k3 & 0xFFFFF) - 1
    tcp = proto == 6
    icmp = (proto == 1) | (proto == 58)
    req, rep = col("echo_req"), col("echo_rep")
    rows = np.arange(n)
    # ICMP echo: the requests one way, the replies the other, nothing else (the echo requests'
    # sender is the client, and every packet back is a plain reply)
    icmp_c = np.where(req[:, 0] > 0, 0, 1)
    icmp_ok = icmp & (req[rows, icmp_c] == pk[rows, icmp_c]) & (req[rows, 1 - icmp_c] == 0) \
        & (rep[rows, 1 - icmp_c] == pk[rows, 1 - icmp_c])
    # the client's direction (0: lo -> hi), as stitch._initiator decides it
    cdir = np.where(tcp, syn_dir, np.where(icmp, icmp_c, first_dir))
    a_port = np.where(cdir == 0, lo_port, hi_port)  # the first packet's source port (UDP)
    b_port = np.where(cdir == 0, hi_port, lo_port)
    swap = (proto == 17) & (a_port < 1024) & (b_port >= 1024)  # a well-known port is the server's
    cdir = np.where(swap, 1 - cdir, cdir)
    c_pk = pk[rows, np.clip(cdir, 0, 1)]
    s_pk = pk[rows, np.clip(1 - cdir, 0, 1)]
    s_port = np.where(cdir == 0, hi_port, lo_port)
    tun_pk = col("tun_pk")
    tunnels, multi = table.direction_tunnels()
    multi = multi.reshape(n, 2)
    one_tunnel = ((tun_pk == 0) | ((tun_pk == pk) & ~multi)).all(axis=1)
    ok = (
        ((proto == 6) | (proto == 17) | icmp_ok)
        & (lo >= 0) & (hi >= 0)
        & (in_files == 1) & ok_file[fidx]
        & (pk > 0).all(axis=1)
        & ((flags & _RST) == 0).all(axis=1)
        & (col("icmp_errors") == 0) & (col("slow") == 0)
        & (cdir >= 0)
        & ~((proto == 17) & (s_port == 53) & (c_pk != 1))
        & (c_pk > 0) & (s_pk > 0)
        & one_tunnel
    )
    pairs: list = []
    crowded: set[tuple] = set()
    if ok.any():  # (one clock: ``demote`` sends every flow back when the captures' nodes differ)
        firm, pairs, crowded = table.kept_twins(interest=ok)
        ok &= ~firm
    # a TCP flow with a repeated SYN or data segment: find_retransmissions run on its kept rows
    check = ok & tcp & ((col("syn_n") > 1).any(axis=1) | (col("retrans") > 0) | (col("dups") > 0))
    resent: dict[int, tuple] = {}
    if check.any():
        kept = table.kept_columns(check)
        if kept is None:
            ok &= ~check
        else:
            resent = _resent(kept, cdir)
    names = scan.addrs.name
    ok &= _not_group(lo) & _not_group(hi)
    for g in np.flatnonzero(ok & ((lo >= _V4) | (hi >= _V4))).tolist():  # IPv6: as _is_multicast says
        if _group_address(names(int(lo[g])) or "") or _group_address(names(int(hi[g])) or ""):
            ok[g] = False
    if not ok.any():
        return empty
    general = ~ok
    # the lane's flows, as columns
    keep = np.flatnonzero(ok)
    addr: dict[int, str] = {}

    def name(a: int) -> str:
        s = addr.get(a)
        if s is None:
            s = addr[a] = names(a) or ""
        return s

    ck = cdir[keep] == 0
    c_id, s_id = np.where(ck, lo[keep], hi[keep]), np.where(ck, hi[keep], lo[keep])
    for a in np.unique(np.concatenate((c_id, s_id))).tolist():  # every address named once
        name(a)
    # the tunnels of both directions, one dict each (``_encapsulation``'s entry of the client's)
    both = np.concatenate((tunnels[keep * 2 + cdir[keep]], tunnels[keep * 2 + 1 - cdir[keep]]))
    inv, t_first = row_ids(both.T)
    t_dicts: list[dict | None] = []
    for kind, vni, osrc, odst, port in both[t_first].tolist():
        t_dicts.append(None if kind < 0 else {
            "type": tunnel_name(kind), "vni": None if vni < 0 else vni, "port": None if port < 0 else port,
            "outer_src": name(osrc), "outer_dst": name(odst), "observed": True})
    t_idx = np.array([-1 if d is None else i for i, d in enumerate(t_dicts)], dtype=np.int64)[inv]
    plain = PlainSet(
        g=keep, proto=proto[keep], c_id=c_id, c_port=np.where(ck, lo_port[keep], hi_port[keep]), s_id=s_id,
        s_port=np.where(ck, hi_port[keep], lo_port[keep]), fidx=fidx[keep], first_ts=col("first_ts")[keep],
        last_ts=col("last_ts")[keep], packets=pk[keep, 0] + pk[keep, 1], bytes=by[keep, 0] + by[keep, 1],
        fwd_t=t_idx[: len(keep)], rev_t=t_idx[len(keep):], tunnels=t_dicts, names=addr, files=list(files),
        resent=resent)
    span: dict[str, tuple[float, float]] = {}
    f_keep = fidx[keep]
    for fi in np.unique(f_keep).tolist():
        mine = keep[f_keep == fi]
        span[files[fi]] = (float(col("first_ts")[mine].min()), float(col("last_ts")[mine].max()))
    standins = _standins(table, ok, lo, hi, lo_port, hi_port, proto, tunnels, name, addr, tunnel_name)
    # keys two flows share: twins if stitch would link them, known once the roles are
    shared = [(gs, ts, [name(a) for a in srcs], [name(a) for a in dsts]) for gs, ts, srcs, dsts in pairs
              if any(ok[x] for x in gs)]
    return Split(plain, standins, span, general, shared, crowded)


def _resent(kept: dict[str, np.ndarray], cdir: np.ndarray) -> dict[int, tuple]:
    """Per flow, the copies ``stitch.find_retransmissions`` names among its sampled packets, run
    on the kept rows' columns: the same sightings in the same order (time, then frame: one file),
    the same keys and the same test for two copies of one packet. A key held by one row names
    nothing: only keys held by several rows are walked."""
    out: dict[int, tuple] = {}
    g_all = kept["g"]
    if not len(g_all):
        return out
    flags = np.where(kept["tflags"] >= 0, kept["tflags"], 0).astype(np.int64)
    plen = np.where(kept["plen"] >= 0, kept["plen"], 0)
    # what find_retransmissions looks at: data or SYN, no RST; its key (direction, seq, length, SYN/FIN)
    looked = np.flatnonzero(((plen > 0) | ((flags & _SYN) != 0)) & ((flags & _RST) == 0))
    if not len(looked):
        return out
    grp, _first = row_ids((g_all[looked], kept["d"][looked], kept["tseq"][looked], plen[looked],
                           flags[looked] & (_SYN | 0x01)))
    multi = np.flatnonzero(np.bincount(grp)[grp] > 1)  # rows whose key another row holds
    if not len(multi):
        return out
    rows = looked[multi]
    names = ("d", "f", "frame", "ts", "tseq", "plen", "tflags", "ipid")
    vals = {n: kept[n][rows].tolist() for n in names}
    plen_l, fl_l, g_l = plen[rows].tolist(), flags[rows].tolist(), g_all[rows].tolist()
    ts_l, frame_l = vals["ts"], vals["frame"]
    # each key's rows in sighting order (time, then frame)
    by_key: dict[tuple, list[int]] = {}
    for i in range(len(rows)):
        by_key.setdefault((g_l[i], vals["d"][i], vals["tseq"][i], plen_l[i], fl_l[i] & (_SYN | 0x01)), []).append(i)
    cols_l = [vals[n] for n in names]
    found: dict[int, list[tuple]] = {}
    for members in by_key.values():
        members.sort(key=lambda i: (ts_l[i], frame_l[i]))
        earlier: list[int] = []
        for i in members:
            if any(_same_packet(cols_l, p, i) for p in earlier):
                earlier.append(i)
                continue
            if earlier:
                found.setdefault(g_l[i], []).append((ts_l[i], frame_l[i], (vals["d"][i], vals["f"][i], frame_l[i])))
            earlier.append(i)
    for g, hits in found.items():
        hits.sort()
        out[g] = tuple(h[2] for h in hits)
    return out


def _same_packet(cols: list[list], a: int, b: int) -> bool:
    """``stitch._same_packet`` on two kept rows (IP ID -1: none, as None is)."""
    ia, ib = cols[7][a], cols[7][b]
    ta, tb = cols[3][a], cols[3][b]
    if (ia if ia > 0 else 0) != 0 or (ib if ib > 0 else 0) != 0:
        return ia == ib and abs(ta - tb) < 1.0
    return abs(ta - tb) <= 0.1


def _not_group(a: np.ndarray) -> np.ndarray:
    """Not IPv4 multicast (224/4) nor the limited broadcast: ``explain``'s ``_is_multicast`` skips those."""
    v4 = a < _V4
    return ~v4 | (((a >> 28) != 0xE) & (a != 0xFFFFFFFF))


def _group_address(ip: str) -> bool:
    from analyzer.pipeline.explain import _group_address as group

    return group(ip)


@dataclass(slots=True)
class Standins:
    """The lane's sampled frames in groups that agree on every field the global steps read (file,
    addresses, protocol, tunnel), as columns: per group its file index, first frame (where it
    stands), count of distinct sampled frames (its weight), addresses (``names``' ids), protocol,
    its first member's ports (-1: none) and the tunnel (``FlowTable.direction_tunnels``' row: type
    code, VNI, outer source and destination, port; type <= 0: none). ``rows()`` gives them as
    ``Standin``s; ``counts()`` what the global steps count of them and of the general path's
    records together."""

    fidx: np.ndarray
    frame: np.ndarray
    weight: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    proto: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    tun: np.ndarray
    files: list[str]
    iface: dict[int, str | None]  # file index -> the capture's interface
    names: dict[int, str]
    tunnel_name: Callable[[int], str | None]

    def __len__(self) -> int:
        return len(self.frame)

    def _tunnels(self) -> list[str | None]:
        kinds: dict[int, str | None] = {}
        return [None if k <= 0 else kinds[k] if k in kinds else kinds.setdefault(k, self.tunnel_name(k))
                for k in self.tun[:, 0].tolist()]

    def rows(self) -> tuple[list[Standin], dict[int, int]]:
        """The stand-ins as records the global steps read, and their weights (``id`` -> count)."""
        names, t = self.names, self.tun
        has = (t[:, 0] > 0).tolist()

        def named(col: np.ndarray) -> list[str]:
            return list(map(names.__getitem__, col.tolist()))

        def opt(col: np.ndarray, address: bool = False) -> list:  # a tunnel field, None where none or -1
            if address:
                return [v if h else None for v, h in zip(named(col), has, strict=True)]
            return [v if h and v >= 0 else None for v, h in zip(col.tolist(), has, strict=True)]

        fl = self.fidx.tolist()
        srcs = named(self.src)
        # (each tuple made in C: ``Standin(*row)`` would run the named tuple's __new__ per row)
        out = list(map(partial(tuple.__new__, Standin), zip(
            [self.files[fi] for fi in fl], self.frame.tolist(), [self.iface[fi] for fi in fl], srcs,
            named(self.dst), self.proto.tolist(), [p if p >= 0 else None for p in self.sport.tolist()],
            [p if p >= 0 else None for p in self.dport.tolist()], self._tunnels(), opt(t[:, 1]),
            opt(t[:, 2], address=True), opt(t[:, 3], address=True), opt(t[:, 4]),
            [6 if ":" in a else 4 for a in srcs], repeat(None), repeat(None))))
        return out, dict(zip(map(id, out), self.weight.tolist(), strict=True))

    def counts(self, records: Sequence[Any], ports: Collection[int]) -> Counts:
        """What ``classify.topology_counts``, ``explain.placement_counts``, ``explain.seen_addresses``
        and ``explain._infer_backend`` read of the stand-ins (weighted) and ``records`` (the
        general path's sampled records) sorted together by (file, frame): the same counts, each
        dict's keys in the same order, from columns."""
        return _lane_counts(self, records, ports)


@dataclass(slots=True)
class Counts:
    """The global steps' counts (``Standins.counts``)."""

    topology: Any  # classify.TopoCounts
    placement: tuple  # explain.placement_counts'
    addresses: list[str]  # explain.seen_addresses'
    tunnelled: bool  # a record was tunnelled (ICMP errors included)
    pairs: Iterable[tuple[str | None, str | None]]  # (source, destination) of the records, each once


class _Pairs:
    """The distinct (source, destination) pairs of some rows (address ids, ``text`` their names),
    found when first iterated: only ``explain._infer_backend`` reads them, and only when no packet
    was tunnelled."""

    __slots__ = ("_dst", "_src", "_text")

    def __init__(self, src: np.ndarray, dst: np.ndarray, text: Mapping[int, str]) -> None:
        self._src, self._dst, self._text = src, dst, text

    def __iter__(self) -> Iterator[tuple[str | None, str | None]]:
        _ids, first = row_ids((self._src, self._dst))
        text = self._text
        return ((text.get(a), text.get(b)) for a, b in zip(self._src[first].tolist(), self._dst[first].tolist(),
                                                            strict=True))


def _standins(table: Any, ok: np.ndarray, lo: np.ndarray, hi: np.ndarray, lo_port: np.ndarray, hi_port: np.ndarray,
              proto: np.ndarray, tunnels: np.ndarray, name: Callable[[int], str], known: dict[int, str],
              tunnel_name: Callable[[int], str | None]) -> Standins:
    """The stand-ins: one per group of the lane's (flow, direction, file) sample slots that agree
    on every field the global steps read (file, addresses, protocol, tunnel), weighted by the
    group's distinct sampled frames and placed at its first one, in (file, frame) order
    (``known``: the addresses ``name`` has named)."""
    g, d, f, cnt, first = table.slot_stats()
    sel = ok[g]
    g, d, f, cnt, first = g[sel], d[sel], f[sel], cnt[sel], first[sel]
    empty = np.zeros(0, dtype=np.int64)
    if len(g) == 0:
        return Standins(empty, empty, empty, empty, empty, empty, empty, empty, np.zeros((0, 5), dtype=np.int64),
                        list(table.files), {}, known, tunnel_name)
    src = np.where(d == 0, lo[g], hi[g])
    dst = np.where(d == 0, hi[g], lo[g])
    tun = tunnels[g * 2 + d]
    # the global steps read no port: the group ignores them (the stand-in carries its first member's)
    grp, lead = row_ids((f, src, dst, proto[g], *tun.T))
    ngroups = len(lead)
    weight = np.bincount(grp, weights=cnt, minlength=ngroups).astype(np.int64)
    # the member with the earliest first frame in each group: by group, then first frame (one sort)
    by_first = np.argsort(grp * (int(first.max()) + 1) + first, kind="stable")
    m_all = by_first[np.concatenate(([True], grp[by_first][1:] != grp[by_first][:-1]))]
    m_all = m_all[np.lexsort((first[m_all], f[m_all]))]  # in (file, frame) order, as the records are sorted
    gm, dm, fm = g[m_all], d[m_all], f[m_all]
    t = tun[m_all]
    iface: dict[int, str | None] = {}
    for fi in np.unique(fm).tolist():  # the capture's interface, as its sampled frames carry it
        at = int(np.argmax(fm == fi))
        iface[fi] = table.sample_frames(int(gm[at]), int(dm[at]), fi)[0].interface
    for a in np.unique(np.concatenate((src[m_all], dst[m_all], t[:, 2], t[:, 3]))).tolist():
        name(a)  # every address named once (``known`` then holds them)
    return Standins(fm, first[m_all], weight[grp[m_all]], src[m_all], dst[m_all], proto[gm],
                    np.where(dm == 0, lo_port[gm], hi_port[gm]), np.where(dm == 0, hi_port[gm], lo_port[gm]), t,
                    list(table.files), iface, known, tunnel_name)


def _lane_counts(st: Standins, records: Sequence[Any], ports: Collection[int]) -> Counts:
    """``Standins.counts``: every count made of events (which dict, which key, weight, place),
    the places (file name's rank, frame, then first/second address of the record) deciding each
    key's order in its dict, as the loops over the sorted records would have met them."""
    from analyzer.engines.classify import POD_SIDE_PREFIXES, TopoCounts

    # strings as ids: the stand-ins' addresses keep ``names``' ids, the records' get ids after them
    text: dict[int, str] = dict(st.names)
    ids: dict[str, int] = {v: k for k, v in text.items()}
    nxt = [max(text, default=0) + 1]

    def sid(v: str | None) -> int:
        if v is None:
            return -1
        i = ids.get(v)
        if i is None:
            i = ids[v] = nxt[0]
            text[i] = v
            nxt[0] += 1
        return i

    empty_ids = np.array([k for k, v in text.items() if v == ""] or [-2], dtype=np.int64)  # (not None, and false)
    tcode: dict[str | None, int] = {None: -1}
    ttext: list[str | None] = []

    def tid(v: str | None) -> int:
        c = tcode.get(v)
        if c is None:
            c = tcode[v] = len(ttext)
            ttext.append(v)
        return c

    rank = {f: i for i, f in enumerate(sorted(set(st.files) | {r.file for r in records}))}
    f_rank = [rank[f] for f in st.files]
    has = st.tun[:, 0] > 0
    t_names = st._tunnels()
    iface_of = [st.iface.get(fi) for fi in range(len(st.files))]
    n_r = len(records)
    rec = list(records)
    cols = {
        "file": np.concatenate((np.array(f_rank, dtype=np.int64)[st.fidx] if len(st) else np.zeros(0, dtype=np.int64),
                                np.array([rank[r.file] for r in rec], dtype=np.int64))),
        "frame": np.concatenate((st.frame, np.array([r.frame for r in rec], dtype=np.int64))),
        "w": np.concatenate((st.weight, np.ones(n_r, dtype=np.int64))),
        "src": np.concatenate((st.src, np.array([sid(r.src) for r in rec], dtype=np.int64))),
        "dst": np.concatenate((st.dst, np.array([sid(r.dst) for r in rec], dtype=np.int64))),
        "ttype": np.array([tid(v) for v in t_names] + [tid(r.tunnel) if r.tunnel else -1 for r in rec],
                          dtype=np.int64),
        "vni": np.concatenate((np.where(has, st.tun[:, 1], -1), np.array(
            [-1 if r.vni is None else r.vni for r in rec], dtype=np.int64))),
        "osrc": np.concatenate((np.where(has, st.tun[:, 2], -1), np.array([sid(r.outer_src) for r in rec],
                                                                           dtype=np.int64))),
        "odst": np.concatenate((np.where(has, st.tun[:, 3], -1), np.array([sid(r.outer_dst) for r in rec],
                                                                           dtype=np.int64))),
        "oport": np.concatenate((np.where(has, st.tun[:, 4], -1), np.array(
            [-1 if r.outer_dport is None else r.outer_dport for r in rec], dtype=np.int64))),
        "quoted": np.concatenate((np.zeros(len(st), dtype=bool), np.array([r.quoted is not None for r in rec],
                                                                           dtype=bool))),
        "ipv": np.concatenate((np.ones(len(st), dtype=bool), np.array([bool(r.ip_version) for r in rec], dtype=bool))),
        "podside": np.array([(iface_of[fi] or "").startswith(POD_SIDE_PREFIXES) for fi in st.fidx.tolist()]
                            + [(r.interface or "").startswith(POD_SIDE_PREFIXES) for r in rec], dtype=bool),
        "pkttype": np.concatenate((np.full(len(st), -1, dtype=np.int64), np.array(
            [-1 if r.sll_pkttype is None else r.sll_pkttype for r in rec], dtype=np.int64))),
    }
    file_text = sorted(rank)  # rank -> file name
    pos = (cols["file"] << 40 | cols["frame"]) * 2  # (second address of a record: +1)

    def truthy(a: np.ndarray) -> np.ndarray:  # an address that is neither None nor empty
        return (a >= 0) & ~np.isin(a, empty_ids)

    src_ok, dst_ok = truthy(cols["src"]), truthy(cols["dst"])
    # per tunnel type code (-1: none, the last entry): a tunnel at all, VXLAN
    of_type = np.array([[bool(t), t == "vxlan"] for t in ttext] + [[False, False]], dtype=bool)
    tunnelled_row, is_vxlan = of_type[cols["ttype"]].T
    t1 = tunnelled_row & truthy(cols["osrc"]) & truthy(cols["odst"])
    unq = ~cols["quoted"]
    w = cols["w"]

    def tally(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> list[tuple]:
        """(outer key, inner key, weight) summed per (outer, inner), in the order of each pair's
        first place; parts: (rows, outer keys, inner keys, weights, places) of each event kind."""
        if not parts:
            return []
        ok_ = np.concatenate([p[1] for p in parts])
        ik = np.concatenate([p[2] for p in parts])
        ww = np.concatenate([p[3] for p in parts])
        pp = np.concatenate([p[4] for p in parts])
        if not len(ok_):
            return []
        grp, _first = row_ids((ok_, ik))
        n = int(grp.max()) + 1
        tot = np.bincount(grp, weights=ww, minlength=n).astype(np.int64)
        first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, grp, pp)
        order = np.argsort(first, kind="stable")
        okg = np.empty(n, dtype=np.int64)
        ikg = np.empty(n, dtype=np.int64)
        okg[grp], ikg[grp] = ok_, ik
        return list(zip(okg[order].tolist(), ikg[order].tolist(), tot[order].tolist(), strict=True))

    def ev(mask: np.ndarray, outer: np.ndarray | int, inner: np.ndarray, weight: np.ndarray, sub: int) -> tuple:
        rows = np.flatnonzero(mask)
        o = np.full(len(rows), outer, dtype=np.int64) if isinstance(outer, int) else outer[rows]
        return rows, o, inner[rows], weight[rows], pos[rows] + sub

    def nested(entries: list[tuple], outer: Callable[[int], Any], inner: Callable[[int], Any]) -> dict:
        out: dict = {}
        for o, i, n in entries:
            d = out.get(outer(o))
            if d is None:
                d = out[outer(o)] = {}
            d[inner(i)] = n
        return out

    def flat(entries: list[tuple], key: Callable[[int], Any]) -> dict:
        return {key(i): n for _o, i, n in entries}

    addr = text.__getitem__
    ftext = file_text.__getitem__
    port_ok = (cols["oport"] >= 0) & (is_vxlan | np.isin(cols["oport"], np.array(sorted(ports), dtype=np.int64)))
    topo = TopoCounts(
        ports=flat(tally([ev(t1 & port_ok, 0, cols["oport"], w, 0)]), int),
        vnis=flat(tally([ev(t1 & (cols["vni"] >= 0), 0, cols["vni"], w, 0)]), int),
        tunnel_of=nested(tally([ev(t1, cols["osrc"], cols["ttype"], w, 0), ev(t1, cols["odst"], cols["ttype"], w, 1)]),
                         addr, ttext.__getitem__),
        pod_of_underlay=nested(tally([ev(t1 & src_ok & unq, cols["osrc"], cols["src"], w, 0),
                                      ev(t1 & dst_ok & unq, cols["odst"], cols["dst"], w, 1)]), addr, addr),
        file_outer=nested(tally([ev(t1, cols["file"], cols["osrc"], w, 0), ev(t1, cols["file"], cols["odst"], w, 1)]),
                          ftext, addr),
        file_count=flat(tally([ev(t1, 0, cols["file"], w, 0)]), ftext),
        srcs=set(), dsts=set(), pod_side=set())
    seen = src_ok & unq & cols["ipv"]
    topo.srcs = {text[i] for i in np.unique(cols["src"][seen]).tolist()}
    topo.dsts = {text[i] for i in np.unique(cols["dst"][seen & dst_ok]).tolist()}
    side = seen & cols["podside"]
    topo.pod_side = {text[i] for i in np.unique(np.concatenate(
        (cols["src"][side], np.where(dst_ok[side], cols["dst"][side], cols["src"][side])))).tolist()}
    # explain.placement_counts
    pk = cols["pkttype"]
    sign = np.where(pk == 4, -1, 1) * w
    placement = (
        nested(tally([ev(unq & t1 & (pk != 0), cols["file"], cols["osrc"], w, 0),
                      ev(unq & t1 & (pk != 4), cols["file"], cols["odst"], w, 1)]), ftext, addr),
        flat(tally([ev(unq & t1, 0, cols["file"], w, 0)]), ftext),
        nested(tally([ev(unq & ~t1 & src_ok, cols["file"], cols["src"], sign, 0)]), ftext, addr),
    )
    # explain.seen_addresses: each address (None aside) by its first place
    firsts = tally([ev(unq & (cols["src"] >= 0), 0, cols["src"], w, 0), ev(unq & (cols["dst"] >= 0), 0, cols["dst"], w, 1)])
    addresses = [text[i] for _o, i, _n in firsts]
    tunnelled = bool(tunnelled_row.any())
    return Counts(topo, placement, addresses, tunnelled, _Pairs(cols["src"][unq], cols["dst"][unq], text))


def demote(plain: PlainSet, topo: Topology, points: Mapping[str, CapturePoint], quoted: set[str],
           shared: Sequence[tuple] = ()) -> tuple[PlainSet | None, list[int]]:
    """(kept, demoted): the lane's flows once the topology is known, the kept ones with their
    kinds and encapsulations and in the report's order (``in_order``); the demoted ones (flow
    ids) go down the general path (``quoted``: addresses some captured ICMP error's quoted packet
    names; ``shared``: ``Split.shared``, keys two flows share). Each rule is decided once per
    distinct value of what it reads (``classify.flow_kind``: both ends' role, node and /24, a
    NodePort's service, whether they are one address; ``_inferred_tunnel``: both ends' roles and
    nodes, the file)."""
    if len({p.node for p in points.values()}) > 1:
        # captures of two nodes (or of a node and of an unknown place): clock offsets, and copies
        # compared across clocks at any distance in time (stitch's ``near``): the general path
        return None, plain.g.tolist()
    names = plain.names
    role_of, node_of = classify.role_of, classify.node_of
    # per client address: what the kind reads of it, and what _inferred_tunnel reads
    cu, c_inv = np.unique(plain.c_id, return_inverse=True)
    c_text = [names[a] for a in cu.tolist()]
    c_roles = [(role_of(ip, topo), node_of(ip, topo)) for ip in c_text]
    c_kind_info = _codes([(*rn, ip.rsplit(".", 1)[0] if "." in ip else ip) for rn, ip in zip(c_roles, c_text, strict=True)])
    c_ends = _codes(c_roles)
    s_inv, s_first = row_ids((plain.s_id, plain.s_port))
    s_ids = np.unique(plain.s_id)
    s_ends = _codes([(role_of(names[a], topo), node_of(names[a], topo)) for a in s_ids.tolist()])
    # per server (address and port): what the kind reads of it (its role, a NodePort a service's)
    s_kind_info = []
    for a, port in zip(plain.s_id[s_first].tolist(), plain.s_port[s_first].tolist(), strict=True):
        ip = names[a]
        role = role_of(ip, topo)
        if role == "node" and classify.service_at(ip, port if port >= 0 else None, topo) is not None:
            role = "service"
        s_kind_info.append((role, node_of(ip, topo), ip.rsplit(".", 1)[0] if "." in ip else ip))
    # the kinds, once per (client's role/node//24, client is the server, server's role/node//24)
    kind_i, k_first = row_ids((c_kind_info[c_inv], plain.c_id == plain.s_id, _codes(s_kind_info)[s_inv]))
    kinds = [classify.flow_kind(plain.flow(i), topo) for i in k_first.tolist()]  # type: ignore[arg-type]
    bad = np.isin(kind_i, [k for k, kind in enumerate(kinds) if kind in NOT_PLAIN_KINDS])
    if quoted:  # an ICMP error elsewhere names one of its addresses (its own or its tunnels')
        q_ids = np.array([a for a, ip in names.items() if ip in quoted], dtype=np.int64)
        t_quoted = np.array([t is not None and (t["outer_src"] in quoted or t["outer_dst"] in quoted)
                             for t in plain.tunnels] + [False], dtype=bool)  # (index -1: no tunnel)
        bad |= np.isin(plain.c_id, q_ids) | np.isin(plain.s_id, q_ids) | t_quoted[plain.fwd_t] | t_quoted[plain.rev_t]
    encaps: list[dict | None] = list(plain.tunnels)
    encap_i = plain.fwd_t.copy()
    ask = np.flatnonzero(~bad & (plain.fwd_t < 0))
    if len(ask):  # not seen tunnelled: the tunnel the path infers, once per (ends' roles and nodes, file)
        i_inv, i_first = row_ids((c_ends[c_inv[ask]], s_ends[np.searchsorted(s_ids, plain.s_id[ask])],
                                  plain.fidx[ask]))
        shared_dicts: dict[tuple, int] = {}
        code = []
        for i in ask[i_first].tolist():
            inferred = _inferred_tunnel(plain.flow(i), topo, points)
            if inferred is None or inferred is False:
                code.append(-1 if inferred is None else -2)
                continue
            at = shared_dicts.get(tuple(inferred.values()))  # one dict per inferred tunnel
            if at is None:
                at = shared_dicts[tuple(inferred.values())] = len(encaps)
                encaps.append(inferred)
            code.append(at)
        got = np.array(code, dtype=np.int64)[i_inv]
        bad[ask[got == -2]] = True  # a capture on the sending node: the general path decides
        encap_i[ask] = np.where(got == -2, -1, got)
    twins = _twins(shared, topo)
    if twins:
        bad |= np.isin(plain.g, np.fromiter(twins, dtype=np.int64, count=len(twins)))
    demoted = plain.g[bad].tolist()
    idx = in_order(plain, np.flatnonzero(~bad))
    kept = plain.take(idx)
    kept.kind_i, kept.kinds, kept.encap_i, kept.encaps = kind_i[idx], kinds, encap_i[idx], encaps
    return kept, demoted


def _codes(values: Sequence[tuple]) -> np.ndarray:
    """A small integer per distinct value, in an array aligned with ``values``."""
    seen: dict[tuple, int] = {}
    return np.array([seen.setdefault(v, len(seen)) for v in values], dtype=np.int64).reshape(-1)


def in_order(plain: PlainSet, idx: np.ndarray) -> np.ndarray:
    """The rows ``idx`` in ``stitch.flow_order``'s order: first time, client, server (address text,
    then port, no port first)."""
    if not len(idx):
        return idx
    names = plain.names
    ids = np.unique(np.concatenate((plain.c_id[idx], plain.s_id[idx])))
    text = [names[a] for a in ids.tolist()]
    rank = np.empty(len(ids), dtype=np.int64)
    rank[sorted(range(len(ids)), key=text.__getitem__)] = np.arange(len(ids))
    c_rank = rank[np.searchsorted(ids, plain.c_id[idx])]
    s_rank = rank[np.searchsorted(ids, plain.s_id[idx])]
    return idx[np.lexsort((plain.s_port[idx], s_rank, plain.c_port[idx], c_rank, plain.first_ts[idx]))]


def _twins(shared: Sequence[tuple], topo: Topology) -> set[int]:
    """The flows of keys several flows share where stitch may link: two copies of two flows within
    ``stitch.NAT_TWIN_WINDOW`` told apart by a plausible rewrite (``nat_plausible``). Every flow of
    such a key goes to stitch (which conversations hold an identity decides what it links)."""
    out: set[int] = set()
    window = stitch.NAT_TWIN_WINDOW
    for gs, ts, srcs, dsts in shared:
        n = len(gs)
        if any(gs[i] != gs[j] and abs(ts[i] - ts[j]) <= window
               and stitch.nat_plausible(srcs[i], dsts[i], srcs[j], dsts[j], topo)
               for i in range(n) for j in range(i + 1, n)):
            out.update(gs)
    return out


def _inferred_tunnel(pf: PlainFlow, topo: Topology, points: Mapping[str, CapturePoint]) -> dict | None | bool:
    """What ``_encapsulation`` lists for a flow whose packets were not seen tunnelled: None when
    ``paths.expected_path`` puts no VXLAN on its path, the tunnel it infers (``observed`` None)
    when it does and no capture covers the sending NIC (so that hop cannot be ``observed``
    False), False when one does (the general path decides). Its nodes: the first where the
    packet enters (the client's, the NodePort's node, else the capture's), the last the real
    server's."""
    c_ip, s_ip, r_ip = pf.client[0], pf.server[0], pf.real_server[0]
    r_role = classify.role_of(r_ip, topo)
    if r_role not in ("pod", "node"):
        return None
    if classify.role_of(c_ip, topo) in ("pod", "node"):
        first = classify.node_of(c_ip, topo)
    else:
        first = classify.node_of(s_ip, topo) if classify.role_of(s_ip, topo) == "node" else None
        if first is None:
            pt = points.get(pf.file)
            first = pt.node if pt is not None else None
    last = classify.node_of(r_ip, topo)
    if last is None or last == first:
        return None
    facts = topo.node_named(first)
    backend = (facts.backend if facts and facts.backend != "unknown" else None) or topo.overlay
    if backend != "vxlan":
        return None
    if first is not None and any(p.node == first for p in points.values()):
        return False  # a capture on the sending node: whether it saw the packet leave decides
    port = topo.overlay_port or 8472
    return {"type": "vxlan", "vni": topo.vni, "port": port, "outer_src": None, "outer_dst": topo.node_ip(last),
            "observed": None}


class Documents:
    """The brief documents of the lane's flows (``_flow_doc``'s, field for field). Flows with the
    same endpoint or tunnel share that part's dict (read-only, like every document)."""

    def __init__(self, topo: Topology, endpoint: Callable[..., dict], points: Mapping[str, CapturePoint],
                 records_of: Callable[[Sequence[tuple[int, int, int, int]]], list], sink: list) -> None:
        self.topo = topo
        self._endpoint = endpoint
        self._points = points
        self._records_of = records_of  # [(flow id, direction, file index, frame)...] -> their PacketRecords
        self._fetched: dict[tuple[int, int, int, int], Any] = {}  # the records of a block's copies, read at once
        self._sink = sink  # every finding of the run
        self._eps: dict[tuple[str, int], dict] = {}
        self._texts: dict[tuple[str, int], str] = {}
        self._encaps: dict[int, list[dict]] = {}
        self._templates: dict[str, tuple] = {}
        self._status_text = {"en": STATUS_TEXT["delivered"][0], "zh": STATUS_TEXT["delivered"][1]}
        self._parts: tuple | None = None  # (kept, what its RowBlocks index: ``_shared_parts``)
        self._resent_g: np.ndarray | None = None

    def _ep(self, ep: tuple[str, int]) -> dict:
        d = self._eps.get(ep)
        if d is None:
            d = self._eps[ep] = self._endpoint(ep[0], ep[1], self.topo)
        return d

    def _text(self, ep: tuple[str, int]) -> str:
        t = self._texts.get(ep)
        if t is None:
            t = self._texts[ep] = endpoint_text(*ep)
        return t

    def _findings(self, pf: PlainFlow, kind: str) -> list[dict]:
        """RETRANSMISSIONS, from the copies find_retransmissions names (the records of those only)."""
        sights = []
        for d, f, frame in pf.resent:
            key = (pf.g, d, f, frame)
            r = self._fetched.pop(key, None) or self._records_of([key])[0]
            pt = self._points.get(r.file)
            iface = r.interface if r.interface and r.interface != ANY_INTERFACE else (pt.interface if pt else None)
            direction = "fwd" if (r.src, r.sport) == pf.client else "rev"
            ident = stitch.packet_identity(r) or ("frame", r.file, r.frame)
            sights.append(Sighting(r, pt.node if pt else None, iface, direction, r.ts, (direction, ident)))
        flow = StitchedFlow(id=pf.id, proto=pf.proto, client=pf.client, server=pf.server, real_server=pf.server)
        flow.retransmissions = sights
        ctx = diagnose.Context(flow=flow, path=(), status="delivered", kind=kind, topo=self.topo, nodes={})
        found = diagnose.retransmission_findings(ctx)
        self._sink.extend(found)
        return [f.to_json() for f in found]

    def _client(self, ep: tuple[str, int]) -> dict:
        """``_endpoint`` of an address whose port names nothing (a pod, external or unknown role:
        the rest of the dict depends on the address alone), from a per-address template."""
        t = self._templates.get(ep[0])
        if t is None:
            d = self._endpoint(ep[0], ep[1], self.topo)
            t = self._templates[ep[0]] = (d["role"], d["name"], d["node"]) \
                if d["role"] in ("pod", "external", "unknown") else ()
            if not t:
                return d
        if not t:
            return self._endpoint(ep[0], ep[1], self.topo)
        return {"ip": ep[0], "port": ep[1], "role": t[0], "name": t[1], "node": t[2]}

    def segment(self, kept: PlainSet, a: int, b: int, first: int) -> RowBlock:
        """Rows ``a`` to ``b - 1`` of ``kept`` (``demote``'s), flows ``f{first}`` on, as one
        ``RowBlock``; a flow with retransmitted copies is also a ``SummaryRow`` in its ``special``
        (its findings made now)."""
        if self._resent_g is None:
            self._resent_g = np.fromiter(kept.resent, dtype=np.int64, count=len(kept.resent))
        block = self._block(kept, a, b, first)
        if len(self._resent_g):
            hits = np.flatnonzero(np.isin(kept.g[a:b], self._resent_g)).tolist()
            wanted = [(int(g), *copy) for g in kept.g[a:b][hits].tolist() for copy in kept.resent[g]]
            self._fetched = dict(zip(wanted, self._records_of(wanted), strict=True))
            for r in hits:
                pf = kept.flow(a + r)
                pf.id = f"f{first + r}"
                block.special[r] = self.row(pf)
            self._fetched = {}
        return block

    def _block(self, kept: PlainSet, a: int, b: int, first: int) -> RowBlock:
        if self._parts is None or self._parts[0] is not kept:
            self._parts = (kept, *self._shared_parts(kept))
        _k, protos, clients, servers, tails, client_eps, by_port, server_eps, tail_defs = self._parts
        cl = clients[a:b].tolist()
        ports = [p if p >= 0 else None for p in kept.c_port[a:b].tolist()]
        u, at = np.unique(clients[a:b], return_index=True)
        for c, i in zip(u.tolist(), at.tolist(), strict=True):
            if client_eps[c] is None:  # the client's endpoint, from its first flow's
                ep = (kept.names[int(kept.c_id[a + i])], ports[i])
                client_eps[c] = self._client(ep)
                by_port[c] = self._templates.get(ep[0]) == ()
        names, c_id = kept.names, kept.c_id

        def client(i: int) -> dict:
            return self._client((names[int(c_id[a + i])], ports[i]))

        def doc(i: int) -> dict:
            kind, enc = tail_defs[int(tails[a + i])]
            pf = kept.flow(a + i)
            pf.id = f"f{first + i}"
            return self._doc(pf, kind, enc, [], client(i), server_eps[int(servers[a + i])])

        return RowBlock(first, list(map(protos.__getitem__, kept.proto[a:b].tolist())), cl, ports, servers[a:b].tolist(),
                        tails[a:b].tolist(), client_eps, by_port, server_eps, tail_defs, client, doc)

    def _shared_parts(self, kept: PlainSet) -> tuple:
        """What ``RowBlock``s index, for every row of ``kept``: protocol names (by number), client,
        server and (kind, tunnel list) indexes per row and the lists they index (clients' filled
        in as the blocks meet them)."""
        protos = {p: proto_name(p) for p in np.unique(kept.proto).tolist()}
        _cu, clients = np.unique(kept.c_id, return_inverse=True)
        servers, s_first = row_ids((kept.s_id, kept.s_port))
        server_eps = [self._ep((kept.names[s], p if p >= 0 else None))
                      for s, p in zip(kept.s_id[s_first].tolist(), kept.s_port[s_first].tolist(), strict=True)]
        tails, t_first = row_ids((kept.kind_i, kept.encap_i))  # type: ignore[arg-type]
        tail_defs = []
        for k, e in zip(kept.kind_i[t_first].tolist(), kept.encap_i[t_first].tolist(), strict=True):  # type: ignore[index]
            enc = kept.encaps[e] if e >= 0 else None
            tail_defs.append((kept.kinds[k], [] if enc is None else self._encaps.get(id(enc))
                              or self._encaps.setdefault(id(enc), [enc])))
        n_clients = len(_cu)
        return (protos, clients.reshape(-1), servers, tails, [None] * n_clients,
                [False] * n_clients, server_eps, tail_defs)

    def row(self, pf: PlainFlow) -> SummaryRow:
        """What the text report's summary line reads of ``pf`` (``doc()`` builds the document);
        its kind is ``demote``'s."""
        kind = pf.kind
        enc: list[dict] = []
        if pf.encap is not None:
            enc = self._encaps.get(id(pf.encap)) or self._encaps.setdefault(id(pf.encap), [pf.encap])
        findings = self._findings(pf, kind) if pf.resent else []
        return SummaryRow(pf.id, proto_name(pf.proto), self._client(pf.client), self._ep(pf.server), kind, enc,
                          findings, self._row_doc, pf)

    def _row_doc(self, row: SummaryRow, pf: PlainFlow) -> dict:
        return self._doc(pf, row.kind, row.encapsulation, row.findings, row.client, row.server)

    def _doc(self, pf: PlainFlow, kind: str, enc: list, findings: list, client: dict, server: dict) -> dict:
        pname = proto_name(pf.proto)
        return {
            "id": pf.id,
            "proto": pname,
            "client": client,
            "server": server,
            "kind": kind,
            "status": "delivered",
            "translations": [],
            "encapsulation": enc,
            "findings": findings,
            "packets": pf.packets,
            "bytes": pf.bytes,
            "first_seen": round(pf.first_ts, 6),
            "last_seen": round(pf.last_ts, 6),
            "verdict": verdict(proto=pname, client=self._text(pf.client), server=self._text(pf.server),
                               status="delivered", reason="the server answered", last_seen=None, failed_at=None),
            "status_text": self._status_text,
            "brief": True,
        }
