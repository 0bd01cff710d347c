"""Conversation table of inner flows, aggregated from column batches with numpy group-bys.

The table consumes batches of columns (see ``analyzer.inputs.fastpath.Batch``; any object with
the same attributes works) one at a time and keeps only small per-flow state between them:
counters in growable numpy arrays indexed by flow id, the TCP handshake state, and per file and
direction the highest sequence number seen (for retransmissions). Memory grows with the number of
flows, not with the number of packets.

Semantics
* A flow is (protocol, {ip:port, ip:port}) of the innermost, non-quoted IP header. Direction 0 is
  from the numerically lower endpoint to the higher one; the client is the sender of the first pure
  SYN (SYN without ACK) if one was captured, else the source of the first packet seen.
* handshake: a SYN, a SYN+ACK from the other side, then a segment from the SYN sender with ACK set
  (no SYN/RST) acknowledging the SYN+ACK's sequence number + 1.
* retransmissions: TCP segments with payload whose whole sequence range [seq, seq+len) lies at or
  below the highest sequence end already seen in that direction *in the same capture file* (the
  same packet captured in two files is not a retransmission). Within one file, a segment with the
  same sequence number and IPv4 ID as one seen in the same or the previous batch is a *copy* of
  that packet (``tcpdump -i any`` sees it on the veth and on the bridge, or inside and outside
  VXLAN), not a retransmission: Linux gives every transmission a new IP ID. (IPv6 has no ID, so
  IPv6 copies within one file do count.) Keep-alives and out-of-order fills count, as they would
  for a receiver.
* ICMP/ICMPv6 errors quoting a packet of a known flow (seen before the error, or in the same
  batch) are counted on that flow (``icmp_errors``) and not in its packets; an error quoting
  nothing known is a flow of its own. A quoted tunnel packet (the underlay's "fragmentation
  needed" for a VXLAN packet) is attached to a flow between its inner addresses.
* The flows come out ordered by first packet time, then by first appearance.
* Sampling (``sample=K``): per (flow, file, direction) the first K and last K packets plus every
  special packet (SYN/FIN/RST, retransmission, ICMP error quoting the flow), specials capped at 8*K.
  Kept rows of a batch read straight from an uncompressed pcap file (``file_offset`` >= 0) stay
  numpy columns (frame, time, lengths, file offset...) until a flow is materialised
  (``row_blocks(materialise=...)``, ``sample_frames``): only then are its bytes read back from the
  file, checked against their record header. Other batches (compressed files, pcapng, the general
  reader) keep ``SampleFrame`` objects at once. Both keep the same frames.
* Per-flow facts for a caller that needs no packet objects: ``column`` (the counters above, SYNs,
  copies, tunneled packets, general-decoder rows), ``file_packets``, ``monotonic``, ``slot_stats``,
  and ``kept_twins`` (which sampled packets other flows may share; ``heads=True`` scans).
"""

from __future__ import annotations

import contextlib
import os
import struct
import weakref
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from analyzer.errors import InputError
from analyzer.model.flow import Encap, FlowSummary, TCPSummary, endpoint_text, proto_name
from analyzer.model.packet import fast_frozen, frozen_builder
from analyzer.model.record import PacketRecord, QuotedPacket

KIND_IP = 2  # analyzer.inputs.fastpath.KIND_IP (engines do not import inputs)
_FIRST, _SPECIAL, _LAST = 1, 2, 4  # roles of a kept row (see FlowTable._np_keep)
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
_BIG = 1 << 42  # group offset for the segmented running maximum (sequence ends stay within +-2**34)
_UNSET = -(1 << 40)
_H1, _H2, _H3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)


class ColumnBatch(Protocol):
    file: str
    n: int
    frame: np.ndarray
    ts: np.ndarray
    wire_len: np.ndarray
    linktype: np.ndarray
    kind: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    proto: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    flags: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    payload_len: np.ndarray
    tunnel: np.ndarray
    vni: np.ndarray
    outer_src: np.ndarray
    outer_dst: np.ndarray
    outer_port: np.ndarray
    icmp_type: np.ndarray
    icmp_error: np.ndarray
    interface: str | None

    def raw(self, i: int) -> bytes: ...

    def quoted(self, i: int) -> QuotedPacket | None: ...


@fast_frozen
class SampleFrame:
    """A kept frame, materialised into a PacketRecord only at the end."""

    file: str
    frame: int
    ts: float
    linktype: int
    wire_len: int
    interface: str | None
    data: bytes


_sample_frame = frozen_builder(SampleFrame)


class _Slot:
    """Samples of one (flow, direction, file)."""

    __slots__ = ("first", "last", "special")

    def __init__(self, k: int) -> None:
        self.first: list[SampleFrame] = []
        self.last: deque[SampleFrame] = deque(maxlen=k)
        self.special: list[SampleFrame] = []


def _identity_keys(b: ColumnBatch, at: np.ndarray, got: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per row: a 64-bit hash of what ``stitch.packet_identity`` holds, the payload's CRC-32 read
    as its first 8 bytes (``Batch.head``); 0 where packet_identity is None (no IP ID, sequence
    number or payload), -1 where unknown (no head: a general decoder's row, or no heads asked).
    ``got``: batch columns already gathered for the rows ``at`` (by column name)."""
    got = got or {}

    def column(name: str) -> np.ndarray:
        col = got.get(name)
        return col if col is not None else getattr(b, name)[at]

    heads_of = getattr(b, "heads_of", None)  # (reads only those rows' bytes)
    if heads_of is not None:
        h8 = heads_of(at)
    else:
        head = getattr(b, "head", None)
        h8 = None if head is None else head[at]
    ip_id, seq, plen = column("ip_id"), column("seq"), column("payload_len")
    strong = (ip_id > 0) | (seq >= 0) | (plen > 0)
    if h8 is None:
        return np.where(strong, -1, 0).astype(np.int64)
    proto = b.proto[at].astype(np.int64)
    fl = np.where(proto == 6, column("flags").astype(np.int64), -1)
    with np.errstate(over="ignore"):
        h = np.zeros(len(at), dtype=np.uint64)
        for i, col in enumerate((proto, ip_id, seq, column("ack"), fl, plen, h8)):
            h += col.astype(np.int64, copy=False).view(np.uint64)  # (as astype(uint64): two's complement)
            h *= (_H1, _H2, _H3)[i % 3]
        key = (h ^ (h >> np.uint64(31))).view(np.int64)
    key = np.where((key == 0) | (key == -1), 1, key)
    return np.where(~strong, 0, np.where(h8 == -1, -1, key))


class _Rows(Mapping[str, np.ndarray]):
    """Kept-row columns (``FlowTable._NP_COLS``) read through an index: the rows ``take`` (all when
    None) of ``parts`` put end to end. Each column is joined and gathered on first use, so an
    accessor pays only for the columns it reads; ``at`` reads some rows of a column without
    gathering the rest."""

    __slots__ = ("_parts", "_take", "_flat", "_got", "_names", "_starts")
    JOIN_SHARE = 2  # ``at`` joins a column whole for more than 1/JOIN_SHARE of the rows

    def __init__(self, parts: list[Mapping[str, np.ndarray]], take: np.ndarray | None,
                 names: tuple[str, ...]) -> None:
        self._parts, self._take, self._names = parts, take, names
        self._flat: dict[str, np.ndarray] = {}  # joined, not yet gathered
        self._got: dict[str, np.ndarray] = {}
        self._starts: np.ndarray | None = None  # where each part starts, end to end

    def flat(self, name: str) -> np.ndarray:
        """The column of every row of the parts, end to end (before ``take``)."""
        col = self._flat.get(name)
        if col is None:
            parts = self._parts
            col = parts[0][name] if len(parts) == 1 else np.concatenate([p[name] for p in parts])
            self._flat[name] = col
        return col

    def taken(self, take: np.ndarray | None, got: dict[str, np.ndarray] | None = None) -> _Rows:
        """These parts through another index (the joined columns shared); ``got``: columns already gathered."""
        rows = _Rows(self._parts, take, self._names)
        rows._flat, rows._starts = self._flat, self._starts
        rows._got = dict(got or {})
        return rows

    def __getitem__(self, name: str) -> np.ndarray:
        col = self._got.get(name)
        if col is None:
            if name not in self._names:
                raise KeyError(name)
            col = self.flat(name)
            if self._take is not None:
                col = col[self._take]
            self._got[name] = col
            if len(self._got) == len(self._names):  # every column gathered: the parts can go
                self._parts, self._flat, self._take = [self._got], {}, None
        return col

    def at(self, name: str, idx: np.ndarray) -> np.ndarray:
        """``self[name][idx]``, gathering only those rows."""
        return self.at_many((name,), idx)[0]

    def at_many(self, names: Collection[str], idx: np.ndarray) -> list[np.ndarray]:
        """``[self[name][idx] for name in names]``, gathering only those rows: a column not joined
        yet is read from the parts the rows lie in while they are a small share of the rows."""
        pos = idx if self._take is None else self._take[idx]
        out: list[np.ndarray | None] = [None] * len(names)
        plan = None
        for j, name in enumerate(names):
            col = self._got.get(name)
            if col is not None:
                out[j] = col[idx]
                continue
            parts = self._parts
            if name in self._flat or len(parts) == 1 or len(pos) * self.JOIN_SHARE > self._ends()[-1]:
                out[j] = self.flat(name)[pos]
                continue
            if plan is None:  # the rows by part: one stable sort of their part numbers (few parts: radix)
                which = np.searchsorted(self._ends(), pos, side="right")
                order = np.argsort(which.astype(np.uint16) if len(parts) <= 1 << 16 else which, kind="stable")
                ws = which[order]
                cut = np.flatnonzero(np.concatenate(([True], ws[1:] != ws[:-1]))).tolist()
                start = np.concatenate(([0], self._ends()))
                plan = [(order[a:b], parts[w], pos[order[a:b]] - start[w])
                        for a, b, w in zip(cut, [*cut[1:], len(ws)], ws[cut].tolist(), strict=True)]
            got = np.empty(len(pos), dtype=parts[0][name].dtype)
            for at, part, local in plan:
                got[at] = part[name][local]
            out[j] = got
        return out  # type: ignore[return-value]

    def _ends(self) -> np.ndarray:
        """Where each part ends, end to end."""
        if self._starts is None:
            self._starts = np.cumsum([len(p[self._names[0]]) for p in self._parts])
        return self._starts

    def with_column(self, name: str, col: np.ndarray) -> _Rows:
        """These rows with column ``name`` replaced by ``col`` (one value per row, in this order)."""
        return self.taken(self._take, {**self._got, name: col})

    def subset(self, idx: np.ndarray) -> _Rows:
        """The rows ``idx`` (positions in this index), nothing gathered."""
        return self.taken(idx if self._take is None else self._take[idx])

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _at(cols: Mapping[str, np.ndarray], name: str, idx: np.ndarray) -> np.ndarray:
    """``cols[name][idx]`` without gathering a lazy column whole."""
    return cols.at(name, idx) if isinstance(cols, _Rows) else cols[name][idx]


def _at_many(cols: Mapping[str, np.ndarray], names: Collection[str], idx: np.ndarray) -> list[np.ndarray]:
    """``[cols[name][idx] for name in names]`` without gathering lazy columns whole."""
    return cols.at_many(names, idx) if isinstance(cols, _Rows) else [cols[name][idx] for name in names]


class FlowTable:
    def __init__(self, *, intern: Callable[[str | None], int], sample: int = 0, frame_objects: bool = False) -> None:
        """``frame_objects=True`` keeps every sample as a ``SampleFrame`` at once (the sampler of
        batches without a file offset) even for batches with one: the same kept set, slower (tests)."""
        self.intern = intern
        self.sample = max(0, int(sample))
        self._frame_objects = frame_objects
        self.files: list[str] = []
        self._file = -1
        # 64-bit key hashes, sorted, and their flow ids (verified against the key columns)
        self._hkeys = np.zeros(0, dtype=np.int64)
        self._hids = np.zeros(0, dtype=np.int64)
        self._exact: dict[tuple[int, int, int], int] = {}  # flows whose hash collided with another's
        # address pair -> first flow between them, built lazily (quoted tunnel packets name no ports)
        self._pairs: dict[tuple[int, int], int] = {}
        self._pairs_upto = 0
        self.count = 0
        self._cap = 0
        self._a: dict[str, np.ndarray] = {}
        self._specs: dict[str, tuple[Any, int, int]] = {
            # name: (dtype, fill, width) ; width 2 = one value per direction
            "lo": (np.int64, -1, 1),
            "hi": (np.int64, -1, 1),
            "proto": (np.int16, -1, 1),
            "k3": (np.int64, -1, 1),  # proto and ports packed: (proto << 40) | (plo + 1) << 20 | (phi + 1)
            "enc_h": (np.int64, 0, 2),  # hash of the last tunnel (type, vni, outer pair, port) per direction
            "enc_first": (np.int64, 0, 2),  # ... of the first tunnel per direction (0: no tunnelled packet yet)
            "enc_multi": (np.bool_, False, 2),  # a tunnel other than the first was seen in that direction
            "pk": (np.int64, 0, 2),
            "by": (np.int64, 0, 2),
            "first_ts": (np.float64, np.inf, 1),
            "last_ts": (np.float64, -np.inf, 1),
            "first_dir": (np.int8, 0, 1),
            "syn_dir": (np.int8, -1, 1),
            "synack": (np.bool_, False, 1),
            "exp_ack": (np.uint32, 0, 1),  # meaningful where exp_dir >= 0
            "exp_dir": (np.int8, -1, 1),
            "handshake": (np.bool_, False, 1),
            "flags_or": (np.uint8, 0, 2),  # FIN | SYN | RST bits seen
            "retrans": (np.int32, 0, 1),
            "icmp_errors": (np.int32, 0, 1),
            "syn_n": (np.int32, 0, 2),  # TCP packets with the SYN flag (SYN or SYN+ACK)
            "dups": (np.int32, 0, 1),  # TCP data segments skipped as copies (see _retransmissions)
            "tun_pk": (np.int64, 0, 2),  # packets that came through a tunnel
            "echo_req": (np.int64, 0, 2),  # ICMP/ICMPv6 echo requests (8, 128)
            "echo_rep": (np.int64, 0, 2),  # ICMP/ICMPv6 echo replies (0, 129)
            "slow": (np.int32, 0, 1),  # rows from the general decoder (fallback), ICMP errors included
            # per-file state, reset by begin_file
            "seq_base": (np.uint32, 0, 2),  # meaningful where max_end is set
            "max_end": (np.int64, _UNSET, 2),
        }
        if self.sample:  # sampling state: packets seen and specials kept per (flow, direction) in this file
            self._specs["seen"] = (np.int64, 0, 2)
            self._specs["special_n"] = (np.int32, 0, 2)
        self._per_file: list[np.ndarray] = []
        self._mono: list[bool] = []  # per file: its timestamps never decreased (see ``monotonic``)
        self._last_ts = -np.inf  # the current file's last timestamp
        # rows (flow, type, vni, outer src, outer dst, port): appended per batch, deduplicated now and then
        self._enc_parts: list[np.ndarray] = []
        self._enc_rows = 0
        self._samples: dict[tuple[int, int, int], _Slot] = {}
        # kept rows of batches with a file offset, as columns (see _np_keep): appended per batch to
        # chunks of rows (arrival order: one per batch, and the last pruning's; _np_len rows, the
        # first _np_old of earlier files, the first _np_held already pruned); _np_store: the rows
        # sorted by slot key, then arrival, once an accessor asked (_np_compact)
        self._np_chunks: list[dict[str, np.ndarray]] = []
        self._np_len = self._np_old = self._np_held = 0
        self._np_store: Mapping[str, np.ndarray] | None = None
        self._np_files: set[int] = set()  # files with rows in the columns
        self._mixed: set[int] = set()  # ... and frame objects in their slots' last-K lists
        self._ifaces: dict[str | None, int] = {}
        self._np_dirty = False  # frame objects joined a slot with columns since the last compaction
        self._np_due = False  # enough rows were appended: prune once the batch is counted
        self._np_factor = 1  # compact when the appended rows reach this many times the rows held
        self._fds: dict[int, int] = {}  # file index -> descriptor, for sample_frames
        self._orders: dict[int, str] = {}  # file index -> byte order of its pcap record headers
        self._fds_closer: weakref.finalize | None = None
        self._recent = np.zeros(0, dtype=np.int64)  # data-segment hashes of the last batch (copy detection)
        self._grow(1024)

    # ---------------------------------------------------------------- storage

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, self._cap * 5 // 4)  # at most 25% unused (the state is most of the memory that grows)
        for name, (dt, fill, width) in self._specs.items():
            new = np.full(cap * width, fill, dtype=dt)
            old = self._a.get(name)
            if old is not None:
                new[: len(old)] = old
            self._a[name] = new
        for i, arr in enumerate(self._per_file):
            new = np.zeros(cap, dtype=np.int32)
            new[: len(arr)] = arr
            self._per_file[i] = new
        self._cap = cap

    def begin_file(self, name: str) -> None:
        if self._np_any():  # the last file's last-K candidates, decided by its counts
            self._np_resolve()
            self._np_old = self._np_len
        self.files.append(name)
        self._file = len(self.files) - 1
        self._per_file.append(np.zeros(self._cap, dtype=np.int32))
        self._mono.append(True)
        self._last_ts = -np.inf
        self._recent = np.zeros(0, dtype=np.int64)
        for name_ in ("seq_base", "max_end", "seen", "special_n"):
            if name_ in self._specs:
                self._a[name_][:] = self._specs[name_][1]

    @staticmethod
    def _hash(lo: np.ndarray, hi: np.ndarray, k3: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            h = lo.astype(np.uint64) * _H1 + hi.astype(np.uint64) * _H2 + k3.astype(np.uint64) * _H3
            return (h ^ (h >> np.uint64(29))).view(np.int64)

    def _flow_ids(self, lo: np.ndarray, hi: np.ndarray, k3: np.ndarray, proto: np.ndarray, d: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flow id of every row (creating flows as needed), plus the chunk's groups: the unique
        flow ids and each row's index into them."""
        h = self._hash(lo, hi, k3)
        uniq, inv = np.unique(h, return_inverse=True)
        inv = np.asarray(inv).ravel()
        first = _first_rows(inv, len(uniq))
        # known hashes live in one sorted array (self._hkeys) with their flow ids (self._hids)
        keys, ids = self._hkeys, self._hids
        pos = np.searchsorted(keys, uniq)
        found = pos < len(keys)
        found[found] = keys[pos[found]] == uniq[found]
        gids = np.empty(len(uniq), dtype=np.int64)
        gids[found] = ids[pos[found]]
        nj = np.flatnonzero(~found)
        a = self._a
        if len(nj):
            ng = np.arange(self.count, self.count + len(nj), dtype=np.int64)
            gids[nj] = ng
            self._hkeys = np.insert(keys, pos[nj], uniq[nj])
            self._hids = np.insert(ids, pos[nj], ng)
            self._grow(self.count + len(nj))
            rows = first[nj]
            a["lo"][ng] = lo[rows]
            a["hi"][ng] = hi[rows]
            a["k3"][ng] = k3[rows]
            a["proto"][ng] = proto[rows]
            a["first_dir"][ng] = d[rows]  # the direction of the flow's first packet
            self.count += len(nj)
        g_row = gids[inv]
        bad = np.flatnonzero((a["lo"][g_row] != lo) | (a["hi"][g_row] != hi) | (a["k3"][g_row] != k3))
        if len(bad):  # 64-bit hash collisions (practically never): exact keys for those rows
            for i in bad.tolist():
                key = (int(lo[i]), int(hi[i]), int(k3[i]))
                g = self._exact.get(key)
                if g is None:
                    g = self._exact[key] = self.count
                    self._grow(self.count + 1)
                    a["lo"][g], a["hi"][g], a["k3"][g], a["proto"][g] = key[0], key[1], key[2], proto[i]
                    a["first_dir"][g] = d[i]
                    self.count += 1
                g_row[i] = g
            gids, inv = np.unique(g_row, return_inverse=True)
            inv = np.asarray(inv).ravel()
        return g_row, gids, inv

    def _lookup(self, src: int, dst: int, proto: int, sport: int, dport: int) -> tuple[int, int] | None:
        """(flow id, direction) of a packet src:sport -> dst:dport, None when the flow is unknown."""
        d = 0
        if (src, sport) > (dst, dport):
            src, dst, sport, dport = dst, src, dport, sport
            d = 1
        k3 = (proto << 40) | ((sport + 1) << 20) | (dport + 1)
        key = (src, dst, k3)
        g = self._exact.get(key)
        if g is None:
            h = self._hash(np.array([src]), np.array([dst]), np.array([k3]))
            pos = int(np.searchsorted(self._hkeys, h)[0])
            if pos >= len(self._hkeys) or self._hkeys[pos] != h[0]:
                return None
            g = int(self._hids[pos])
            a = self._a
            if (int(a["lo"][g]), int(a["hi"][g]), int(a["k3"][g])) != key:
                return None
        return g, d

    # ---------------------------------------------------------------- aggregation

    def add(self, b: ColumnBatch) -> None:
        """Aggregate one batch of the current file (``begin_file`` first)."""
        if self._file < 0:
            raise RuntimeError("begin_file() must be called before add()")
        if b.n and self._mono[self._file]:
            ts = b.ts[: b.n]
            if ts[0] < self._last_ts or bool((ts[1:] < ts[:-1]).any()):
                self._mono[self._file] = False
            self._last_ts = float(ts[-1])
        ip = b.kind == KIND_IP
        errs = ip & b.icmp_error
        fallback = getattr(b, "fallback", None)
        self._add_rows(b, np.flatnonzero(ip & ~errs))
        # ICMP errors after the batch's own packets, so an error can quote a packet just before it
        alone: list[int] = []
        for i in np.flatnonzero(errs).tolist():
            hit = self._quoted_flow(b.quoted(i))
            if hit is None:
                alone.append(i)  # quotes nothing we know: a flow of its own
                continue
            g, qd = hit
            self._a["icmp_errors"][g] += 1
            if fallback is None or fallback[i]:
                self._a["slow"][g] += 1
            if self.sample:
                self._keep_special(b, i, g, qd, force=True)
        if alone:
            self._add_rows(b, np.array(alone, dtype=np.int64))

    def _add_rows(self, b: ColumnBatch, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        src = b.src[rows]
        dst = b.dst[rows]
        sp = b.sport[rows].astype(np.int64)
        dp = b.dport[rows].astype(np.int64)
        proto = b.proto[rows].astype(np.int64)
        flip = (src > dst) | ((src == dst) & (sp > dp))
        d = flip.astype(np.int64)
        lo = np.where(flip, dst, src)
        hi = np.where(flip, src, dst)
        plo = np.where(flip, dp, sp)
        phi = np.where(flip, sp, dp)
        k3 = (proto << 40) | ((plo + 1) << 20) | (phi + 1)
        g_row, gids, inv = self._flow_ids(lo, hi, k3, proto, d)
        u = len(gids)
        a = self._a
        slot_local = inv * 2 + d
        wl = b.wire_len[rows]
        ts = b.ts[rows]

        # packets and bytes each way, per-file packets
        cnt = np.bincount(slot_local, minlength=2 * u)
        byt = np.bincount(slot_local, weights=wl, minlength=2 * u).astype(np.int64)
        gslots = (gids[:, None] * 2 + np.arange(2)).ravel()
        a["pk"][gslots] += cnt
        a["by"][gslots] += byt
        self._per_file[self._file][gids] += cnt[0::2] + cnt[1::2]

        fb = getattr(b, "fallback", None)
        if fb is not None:
            slow = np.flatnonzero(fb[rows])
            if len(slow):
                np.add.at(a["slow"], g_row[slow], 1)

        it = getattr(b, "icmp_type", None) if self.sample else None
        if it is not None:
            t = it[rows]
            echo = (t >= 0) & ((proto == 1) | (proto == 58))
            if echo.any():
                req = np.flatnonzero(echo & ((t == 8) | (t == 128)))
                rep = np.flatnonzero(echo & ((t == 0) | (t == 129)))
                if len(req):
                    a["echo_req"][gslots] += np.bincount(slot_local[req], minlength=2 * u)
                if len(rep):
                    a["echo_rep"][gslots] += np.bincount(slot_local[rep], minlength=2 * u)

        # first/last time
        np.minimum.at(a["first_ts"], g_row, ts)
        np.maximum.at(a["last_ts"], g_row, ts)

        # encapsulations: only rows whose tunnel differs from the last one seen in that direction
        tun = b.tunnel[rows]
        trows = np.flatnonzero(tun > 0)
        if len(trows):
            if self.sample:  # (what the explain lane reads; ``flows`` does not pay for it)
                a["tun_pk"][gslots] += np.bincount(slot_local[trows], minlength=2 * u)
            cols = [g_row[trows], tun[trows].astype(np.int64), b.vni[rows][trows].astype(np.int64),
                    b.outer_src[rows][trows], b.outer_dst[rows][trows], b.outer_port[rows][trows].astype(np.int64)]
            with np.errstate(over="ignore"):
                eh = ((cols[1].astype(np.uint64) * _H1 + cols[2].astype(np.uint64)) * _H2
                      + cols[3].astype(np.uint64) * _H3 + cols[4].astype(np.uint64) * _H1
                      + cols[5].astype(np.uint64)).view(np.int64) | 1
            eslot = g_row[trows] * 2 + d[trows]
            fresh = np.flatnonzero(a["enc_h"][eslot] != eh)  # (a tunnel other than the direction's last)
            if self.sample and len(fresh):
                # each direction's first tunnel, and whether another followed (the lane's). Only the
                # fresh rows can tell: a row with the last tunnel of the direction adds nothing (that
                # tunnel was compared with the first when it was fresh), and a direction without a
                # tunnel yet has no last one either (all its rows are fresh)
                fs, fe = eslot[fresh], eh[fresh]
                new = np.flatnonzero(a["enc_first"][fs] == 0)
                if len(new):  # the first row of each such direction (by its number within the batch)
                    first = _first_rows(slot_local[trows[fresh[new]]], 2 * u)
                    first = new[first[first < len(new)]]
                    a["enc_first"][fs[first]] = fe[first]
                other = a["enc_first"][fs] != fe
                if other.any():
                    a["enc_multi"][fs[other]] = True
            if len(fresh):
                with np.errstate(over="ignore"):
                    pair = eh[fresh] ^ (eslot[fresh].astype(np.uint64) * _H3).view(np.int64)
                fresh = fresh[np.unique(pair, return_index=True)[1]]  # one row per (direction, tunnel)
                a["enc_h"][eslot[fresh]] = eh[fresh]
                self._enc_parts.append(np.stack([c[fresh] for c in cols], axis=1))
                self._enc_rows += len(fresh)
                if self._enc_rows > 65536 and len(self._enc_parts) > 1:
                    self._encaps()

        # TCP
        tcp = proto == 6
        retrans_rows = np.zeros(len(rows), dtype=bool)
        if tcp.any():
            fl = b.flags[rows].astype(np.int64)
            seq = b.seq[rows]
            ack = b.ack[rows]
            marks = tcp & ((fl & (FIN | SYN | RST)) != 0)
            if marks.any():
                np.bitwise_or.at(a["flags_or"], g_row[marks] * 2 + d[marks],
                                 (fl[marks] & (FIN | SYN | RST)).astype(np.uint8))
            synf = np.flatnonzero(tcp & ((fl & SYN) != 0))
            if len(synf):
                np.add.at(a["syn_n"], g_row[synf] * 2 + d[synf], 1)
            syn = tcp & ((fl & (SYN | ACK)) == SYN)  # the first pure SYN of a flow names its client
            if syn.any():
                srows = np.flatnonzero(syn)
                g_u, first = np.unique(g_row[srows], return_index=True)
                unset = a["syn_dir"][g_u] < 0
                a["syn_dir"][g_u[unset]] = d[srows[first[unset]]]
            synack = tcp & ((fl & (SYN | ACK)) == (SYN | ACK))  # the last SYN+ACK sets the expected ACK
            if synack.any():
                srows = np.flatnonzero(synack)[::-1]
                g_u, last = np.unique(g_row[srows], return_index=True)
                r = srows[last]
                a["synack"][g_u] = True
                a["exp_ack"][g_u] = (seq[r] + 1) & 0xFFFFFFFF
                a["exp_dir"][g_u] = 1 - d[r]
            hs = (
                tcp
                & ((fl & (ACK | SYN | RST)) == ACK)
                & (ack == a["exp_ack"][g_row])
                & (d == a["exp_dir"][g_row])
                & (d == a["syn_dir"][g_row])
            )
            if hs.any():
                a["handshake"][g_row[hs]] = True
            retrans_rows = self._retransmissions(tcp, g_row, d, seq, b.payload_len[rows], b.ip_id[rows])

        if self.sample:
            self._sample(b, rows, g_row, d, tcp, retrans_rows, slot_local, cnt, gslots)
            a["seen"][gslots] += cnt
            if self._np_due:  # (after ``seen``: pruning reads each slot's packets so far)
                self._np_prune()

    def _retransmissions(self, tcp: np.ndarray, g_row: np.ndarray, d: np.ndarray, seq: np.ndarray,
                         plen: np.ndarray, ip_id: np.ndarray) -> np.ndarray:
        a = self._a
        out = np.zeros(len(g_row), dtype=bool)
        data = np.flatnonzero(tcp & (plen > 0))
        if len(data) == 0:
            return out
        # copies of one packet seen twice in a file (``tcpdump -i any``: on the pod's veth and on the
        # bridge, or inside and outside VXLAN) keep their IPv4 ID; a retransmission gets a new one
        # (Linux: per-socket counter). A data segment whose (flow, direction, seq, IP ID) was already
        # seen in this or the previous batch is such a copy: it is skipped here.
        with np.errstate(over="ignore"):
            dh = ((g_row[data] * 2 + d[data]).astype(np.uint64) * _H1 + seq[data].astype(np.uint64) * _H2
                  + ip_id[data].astype(np.uint64) * _H3).view(np.int64)
        uniq, inv = np.unique(dh, return_inverse=True)
        first = np.zeros(len(data), dtype=bool)
        first[_first_rows(np.asarray(inv).ravel(), len(uniq))] = True
        recent = self._recent
        at = np.minimum(np.searchsorted(recent, dh), max(len(recent) - 1, 0))
        seen = recent[at] == dh if len(recent) else np.zeros(len(dh), dtype=bool)
        copy = (~first | seen) & (ip_id[data] >= 0)
        self._recent = uniq
        if copy.any():
            np.add.at(a["dups"], g_row[data[copy]], 1)
        data = data[~copy]
        if len(data) == 0:
            return out
        slot = g_row[data] * 2 + d[data]
        order = np.argsort(slot, kind="stable")
        s_sorted = slot[order]
        us, gstart, grp = _groups(s_sorted)
        base = a["seq_base"][us].astype(np.int64)
        unset = a["max_end"][us] == _UNSET  # no data seen yet in this direction and file
        base[unset] = seq[data][order][gstart[unset]]
        a["seq_base"][us] = base
        rel = (seq[data][order] - base[grp]) & 0xFFFFFFFF
        rel = np.where(rel >= (1 << 31), rel - (1 << 32), rel)
        end = rel + plen[data][order]
        carried = a["max_end"][us]
        val = end + grp * _BIG
        cm = np.maximum.accumulate(val) - grp * _BIG
        prev = np.empty_like(cm)
        prev[0] = _UNSET
        prev[1:] = cm[:-1]
        prev[gstart] = _UNSET
        prev = np.maximum(prev, carried[grp])
        is_re = end <= prev
        a["max_end"][us] = np.maximum(carried, np.maximum.reduceat(end, gstart))
        if is_re.any():
            re_rows = data[order][is_re]
            out[re_rows] = True
            np.add.at(a["retrans"], g_row[re_rows], 1)
        return out

    def _quoted_flow(self, q: QuotedPacket | None) -> tuple[int, int] | None:
        """The flow (and direction) an ICMP error's quoted packet belongs to, if already seen.

        A quoted tunnel packet (e.g. VXLAN too big for the underlay) names only its inner
        addresses, so it is attached to the first flow seen between them.
        """
        if q is None:
            return None
        if q.tunnel and q.inner_src and q.inner_dst:
            x, y = self.intern(q.inner_src), self.intern(q.inner_dst)
            if self._pairs_upto < self.count:  # index the flows created since the last lookup
                n0, n = self._pairs_upto, self.count
                for g, pair in enumerate(zip(self._a["lo"][n0:n].tolist(), self._a["hi"][n0:n].tolist()), n0):
                    self._pairs.setdefault(pair, g)
                self._pairs_upto = n
            g = self._pairs.get((min(x, y), max(x, y)))
            return None if g is None else (g, int(x > y))
        sport = -1 if q.sport is None else q.sport
        dport = -1 if q.dport is None else q.dport
        return self._lookup(self.intern(q.src), self.intern(q.dst), q.proto, sport, dport)

    # ---------------------------------------------------------------- sampling

    def _frame(self, b: ColumnBatch, i: int) -> SampleFrame:
        return SampleFrame(b.file, int(b.frame[i]), float(b.ts[i]), int(b.linktype[i]), int(b.wire_len[i]),
                           b.interface, b.raw(i))

    def _slot(self, g: int, d: int) -> _Slot:
        key = (g, d, self._file)
        got = self._samples.get(key)
        if got is None:
            got = self._samples[key] = _Slot(self.sample)
        return got

    def _keep_special(self, b: ColumnBatch, i: int, g: int, d: int, *, force: bool = False) -> None:
        s = g * 2 + d
        if force or self._a["special_n"][s] < 8 * self.sample:
            self._a["special_n"][s] += 1
            self._slot(g, d).special.append(self._frame(b, i))

    def _sample(self, b: ColumnBatch, rows: np.ndarray, g_row: np.ndarray, d: np.ndarray, tcp: np.ndarray,
                retrans: np.ndarray, slot_local: np.ndarray, cnt: np.ndarray, gslots: np.ndarray) -> None:
        """Keep the batch's sampled rows. ``slot_local``: each row's (flow, direction) numbered within
        the batch (``2 * group + d``), ``cnt``: the rows of each such number, ``gslots``: its slot."""
        k = self.sample
        slot = g_row * 2 + d
        n = len(rows)
        # each row's rank among its slot's rows of the batch (arrival order): one stable sort of the
        # batch's own slot numbers (a radix sort while they fit 16 bits), minus where its group starts
        local = slot_local.astype(np.uint16) if len(cnt) <= 1 << 16 else slot_local
        order = np.argsort(local, kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        pos = self._a["seen"][slot] + rank  # its place among the slot's packets in this file
        first = pos < k
        last = rank >= cnt[slot_local] - k
        fl = b.flags[rows].astype(np.int64)
        special = (tcp & ((fl & (SYN | FIN | RST)) != 0)) | retrans
        offset = getattr(b, "file_offset", -1)
        if offset >= 0 and not self._frame_objects:
            self._np_keep(b, rows, slot, first, last, special, offset, pos, slot_local, gslots)
            return
        if self._file in self._np_files:
            self._mixed.add(self._file)  # frame objects after columns in one file (the general reader took over)
            self._np_dirty = True
        sel = np.flatnonzero(first | last | special)
        if len(sel) == 0:
            return
        # the kept rows' columns as Python lists at once, one frame object per kept row (shared by
        # the slot's lists it goes to: the frames are immutable and compared by value)
        at = rows[sel]
        buf = getattr(b, "buf", None)
        file, iface, k8 = b.file, b.interface, 8 * k
        start = b.start[at].tolist() if buf is not None else [0] * len(at)
        cols = zip(g_row[sel].tolist(), d[sel].tolist(), at.tolist(), special[sel].tolist(), first[sel].tolist(),
                   last[sel].tolist(), b.frame[at].tolist(), b.ts[at].tolist(), b.linktype[at].tolist(),
                   b.wire_len[at].tolist(), b.cap_len[at].tolist(), start, strict=True)
        special_n = self._a["special_n"]
        for g, dd, i, sp, fi, la, num, ts, lt, wl, cap, st in cols:
            frame = _sample_frame(file, num, ts, lt, wl, iface, bytes(buf[st : st + cap]) if buf is not None
                                  else b.raw(i))
            slot = self._slot(g, dd)
            if sp and special_n[g * 2 + dd] < k8:
                special_n[g * 2 + dd] += 1
                slot.special.append(frame)
            if fi:
                slot.first.append(frame)
            if la:
                slot.last.append(frame)

    # ---------------------------------------------------------------- sampled rows as columns

    # A kept row of a batch with a file offset is one row of these columns, not a SampleFrame: its
    # bytes stay in the file until a flow is materialised. ``key`` is the slot, (g * 2 + d) << 20 | f
    # (f: file index); each slot's rows are held in arrival order; ``role`` the
    # bits _FIRST (one of the slot's first K), _SPECIAL (SYN/FIN/RST or retransmission within the
    # 8K cap) and _LAST (one of the last K of the slot's rows in its batch: a candidate for the
    # slot's last K, decided by ``_np_resolve``); ``lpos`` the row's place among the slot's packets
    # in its file (0-based), which decides it.
    _NP_COLS = (("key", np.int64), ("frame", np.int64), ("ts", np.float64),
                ("linktype", np.int32), ("wire_len", np.int64), ("cap_len", np.int64), ("off", np.int64),
                ("iface", np.int32), ("role", np.uint8), ("lpos", np.int64),
                # the TCP/IP fields the plain lane's retransmission check reads (see kept_columns)
                ("tseq", np.int64), ("plen", np.int64), ("tflags", np.int16), ("ipid", np.int64),
                # its identity key (0: packet_identity None; -1: unknown, no head) and what kept_twins reads
                # (its source and destination are the flow's ends, by the direction in ``key``)
                ("ikey", np.int64), ("ack", np.int64), ("itype", np.int16))
    _NP_COMPACT_ROWS = 1 << 18  # appended rows that trigger a pruning (at least)

    def _np_keep(self, b: ColumnBatch, rows: np.ndarray, slot: np.ndarray, first: np.ndarray, last: np.ndarray,
                 special: np.ndarray, offset: int, pos: np.ndarray, slot_local: np.ndarray, gslots: np.ndarray
                 ) -> None:
        """The sampler of ``_sample`` for a batch whose frames can be read again from its file
        (``pos``: each row's place among its slot's packets in the file; ``slot_local``, ``gslots``:
        see ``_sample``)."""
        special_n = self._a["special_n"]
        sp = np.flatnonzero(special)
        if len(sp):  # the 8K cap per slot, in row order
            n_sp = np.bincount(slot_local[sp], minlength=len(gslots))
            if (special_n[gslots] + n_sp > 8 * self.sample).any():  # a slot reaches it: rank its rows
                s_sp = slot[sp]
                order = np.argsort(s_sp, kind="stable")
                ss = s_sp[order]
                rank = np.empty(len(sp), dtype=np.int64)
                rank[order] = np.arange(len(sp)) - np.searchsorted(ss, ss, side="left")
                ok = special_n[s_sp] + rank < 8 * self.sample
                special = np.zeros(len(rows), dtype=bool)
                special[sp[ok]] = True
                n_sp = np.bincount(slot_local[sp[ok]], minlength=len(gslots))
            special_n[gslots] += n_sp.astype(special_n.dtype)
        role = first.view(np.uint8) * np.uint8(_FIRST) | special.view(np.uint8) * np.uint8(_SPECIAL) \
            | last.view(np.uint8) * np.uint8(_LAST)
        sel = np.flatnonzero(role)
        if len(sel) == 0:
            return
        at = rows[sel]
        iface = b.interface
        code = self._ifaces.setdefault(iface, len(self._ifaces))
        part = {
            "key": (slot[sel] << 20) | self._file, "ts": b.ts[at], "linktype": b.linktype[at],
            "wire_len": b.wire_len[at], "cap_len": b.cap_len[at], "off": b.start[at] + offset,
            "iface": np.full(len(sel), code, dtype=np.int32), "role": role[sel], "lpos": pos[sel],
        }
        itype = getattr(b, "icmp_type", None)
        part["itype"] = itype[at] if itype is not None else np.full(len(at), -1, dtype=np.int16)
        got = {src: getattr(b, src)[at] for src in self._NP_BATCH.values()}
        for name, src in self._NP_BATCH.items():
            part[name] = got[src]
        part["ikey"] = _identity_keys(b, at, got)
        self._np_chunks.append({name: np.asarray(part[name], dtype=dt) for name, dt in self._NP_COLS})
        m = len(sel)
        self._np_len += m
        self._np_files.add(self._file)
        # amortised: at least as many new rows as held; more while pruning drops little (short
        # flows keep nearly every row), fewer passes over rows that stay anyway. (The pruning waits
        # for the batch's packets to be counted: see _add_rows.)
        if self._np_pending >= max(self._NP_COMPACT_ROWS, self._np_held * self._np_factor):
            self._np_due = True

    #: columns gathered from the batch's column of that name
    _NP_BATCH = {"frame": "frame", "tseq": "seq", "plen": "payload_len", "tflags": "flags", "ipid": "ip_id",
                 "ack": "ack"}

    @property
    def _np_pending(self) -> int:
        """Rows appended since the last pruning."""
        return self._np_len - self._np_held

    def _np_any(self) -> bool:
        return self._np_store is not None or self._np_len > 0

    def _np_resolve(self) -> None:
        """Decide the current file's last-K candidates held so far: a candidate is one of its slot's
        last K while fewer than K of the slot's packets came after it in the file (its ``lpos``
        against the slot's ``seen``); the others lose the role. Candidates of earlier files were
        decided when their file ended (``begin_file``).

        The same rows as keeping the last K candidates of each slot: the slot's last K packets are
        all candidates (fewer than K packets follow each, in its batch too), and a general reader
        taking over the rest of a file (its frames kept as objects, counted in ``seen`` as well)
        only takes the last places."""
        k, seen, f = self.sample, self._a["seen"], self._file
        store = self._np_store
        if store is not None:  # (rows of this file only when an accessor ran before its end)
            role = self._decided(store, k, seen, f)
            if role is not None:  # a new store: callers may hold the old one
                self._np_store = store.with_column("role", role) if isinstance(store, _Rows) \
                    else {**store, "role": role}
        start = 0
        for chunk in self._np_chunks:  # this file's rows: the last ones (arrival order)
            n = len(chunk["key"])
            if start + n > self._np_old:
                lo = max(0, self._np_old - start)
                role = chunk["role"][lo:]  # (a view of our own chunk: decided in place)
                cand = np.flatnonzero(role & _LAST)
                drop = cand[chunk["lpos"][lo:][cand] < seen[chunk["key"][lo:][cand] >> 20] - k]
                role[drop] &= np.uint8(~_LAST & 0xFF)
            start += n

    @staticmethod
    def _decided(cols: Mapping[str, np.ndarray], k: int, seen: np.ndarray, f: int) -> np.ndarray | None:
        """``cols``' roles with the file ``f``'s lost last-K candidates cleared, None if none lost it."""
        role, key = cols["role"], cols["key"]
        cand = np.flatnonzero(role & _LAST)
        if not len(cand):
            return None
        ck = key[cand]
        mine = (ck & 0xFFFFF) == f
        cand, ck = cand[mine], ck[mine]
        drop = cand[cols["lpos"][cand] < seen[ck >> 20] - k]
        if not len(drop):
            return None
        role = role.copy()
        role[drop] &= np.uint8(~_LAST & 0xFF)
        return role

    def _np_prune(self) -> None:
        """During the scan: the rows with no role left dropped, the chunks joined into one (arrival
        order kept: no sort until an accessor needs one, ``_np_compact``). Only when that frees a
        quarter of the rows or more: short flows keep nearly every row, and their chunks are joined
        once, by the first accessor."""
        self._np_due = False
        self._np_resolve()
        chunks = self._np_chunks
        n = self._np_len
        kept = sum(int(np.count_nonzero(c["role"])) for c in chunks)
        if kept >= 0.75 * n:
            self._np_factor = min(4, self._np_factor * 2)
            self._np_held = n
            return
        self._np_factor = 1
        rows = _Rows(chunks, None, tuple(name for name, _dt in self._NP_COLS))
        keep = rows.flat("role") != 0
        idx = np.flatnonzero(keep)
        self._np_chunks = [{name: rows.flat(name)[idx] for name in rows}]
        self._np_old = int(np.count_nonzero(keep[: self._np_old]))
        self._np_len = self._np_held = kept

    def _np_compact(self) -> Mapping[str, np.ndarray]:
        """Every held row, each candidate decided, rows with no role dropped; sorted by key, then
        arrival. Each column is gathered on first use (``_Rows``: an accessor pays for the columns
        it reads)."""
        if not self._np_any():
            return {name: np.zeros(0, dtype=dt) for name, dt in self._NP_COLS}
        if not self._np_len and not self._np_dirty:
            return self._np_store  # type: ignore[return-value]
        self._np_dirty = False
        self._np_resolve()
        parts: list[Mapping[str, np.ndarray]] = [self._np_store] if self._np_store is not None else []
        parts += self._np_chunks
        names = tuple(name for name, _dt in self._NP_COLS)
        rows = _Rows(parts, None, names)
        keep = rows.flat("role") != 0
        kept = int(np.count_nonzero(keep))
        take = np.flatnonzero(keep) if kept < len(keep) else None
        got: dict[str, np.ndarray] = {}
        if self._np_len:
            # each slot's rows are in arrival order, and the chunks' came after the store's: a
            # stable sort by key gives (key, arrival)
            key = rows.flat("key")
            kk = key if take is None else key[take]
            order = np.argsort(kk, kind="stable")
            take = order if take is None else take[order]
            got["key"] = kk[order]
        cols = parts[0] if take is None and len(parts) == 1 else rows.taken(take, got)
        self._np_store, self._np_chunks, self._np_len, self._np_held, self._np_old = cols, [], 0, 0, 0
        return cols

    def _np_frames(self, cols: Mapping[str, np.ndarray], idx: np.ndarray, files: dict[int, int]
                   ) -> list[SampleFrame]:
        """SampleFrames of the column rows ``idx``, their bytes read from the files (``files``: file
        index -> open descriptor, filled as needed; the caller closes them).

        Each frame's 16-byte pcap record header is read with it and must still give the captured
        and wire lengths the scan saw: a capture replaced or rewritten since is an ``InputError``,
        never another packet's bytes."""
        if not len(idx):
            return []
        key, off, cap, frame, wire, ts, lt, ifc = _at_many(cols, ("key", "off", "cap_len", "frame", "wire_len", "ts",
                                                                "linktype", "iface"), idx)
        f_of = key & 0xFFFFF
        frame_l, wire_l = frame.tolist(), wire.tolist()
        data: list[bytes] = [b""] * len(idx)
        names = self.files

        def check(f: int, j: int, blob: bytes | memoryview, at: int, c: int) -> bytes:
            """The frame after the record header at ``blob[at:]``, once the header agrees."""
            if len(blob) >= at + 16 + c:
                incl, orig = struct.unpack_from(self._orders[f] + "II", blob, at + 8)
                if incl == c and max(orig, incl) == wire_l[j]:
                    return bytes(blob[at + 16 : at + 16 + c])
            raise InputError(names[f], "changed since it was read: the sampled packet's record is not there "
                             "any more", packet=frame_l[j])

        if len(idx) <= 16:  # one flow's slot: a read per frame costs less than planning runs
            for j, (f, o, c) in enumerate(zip(f_of.tolist(), off.tolist(), cap.tolist(), strict=True)):
                data[j] = check(f, j, os.pread(self._open(f, files), 16 + c, o - 16), 0, c)
        for f in (np.unique(f_of).tolist() if len(idx) > 16 else ()):
            fd = self._open(f, files)
            sel = np.flatnonzero(f_of == f)
            sel = sel[np.argsort(off[sel], kind="stable")]
            o, c = off[sel], cap[sel]
            end = o + c
            # runs of nearby frames are read at once (gaps under 64 KiB), each frame cut out of its run
            brk = np.flatnonzero(o[1:] - np.maximum.accumulate(end)[:-1] > 65536) + 1
            for lo, hi in zip([0, *brk.tolist()], [*brk.tolist(), len(sel)], strict=True):
                start = int(o[lo]) - 16  # from the first frame's record header
                view = memoryview(os.pread(fd, int(end[lo:hi].max()) - start, start))
                for j, a, n in zip(sel[lo:hi].tolist(), (o[lo:hi] - 16 - start).tolist(), c[lo:hi].tolist(),
                                   strict=True):
                    data[j] = check(f, j, view, a, n)
        iface_names = list(self._ifaces)
        file_l = [names[f] for f in f_of.tolist()]
        return list(map(_sample_frame, file_l, frame_l, ts.tolist(), lt.tolist(), wire_l,
                        [iface_names[i] for i in ifc.tolist()], data))

    def _open(self, f: int, files: dict[int, int]) -> int:
        """A read-only descriptor of file ``f`` from ``files`` (opened and added there if new)."""
        fd = files.get(f)
        if fd is None:
            name = self.files[f]
            try:
                fd = os.open(name, os.O_RDONLY)
                magic = os.pread(fd, 4, 0)
            except OSError as exc:
                raise InputError(name, f"cannot open it again to read the sampled packets: "
                                       f"{exc.strerror or exc}") from exc
            files[f] = fd
            # the byte order of the record headers (only classic pcap files have rows here)
            self._orders[f] = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        return fd

    # ---------------------------------------------------------------- per-flow columns

    #: the per-flow columns ``column`` serves (width 2: one value per direction, see ``column``)
    COLUMNS = ("lo", "hi", "proto", "k3", "pk", "by", "first_ts", "last_ts", "first_dir", "syn_dir", "synack",
               "handshake", "flags_or", "retrans", "icmp_errors", "syn_n", "dups", "tun_pk", "slow", "echo_req",
               "echo_rep")

    def column(self, name: str) -> np.ndarray:
        """The values of the first ``count`` flows (index = flow id), a read-only view.

        Width-2 columns come as shape ``(count, 2)``: ``[:, 0]`` direction 0 (from the numerically
        lower endpoint ``lo`` to ``hi``), ``[:, 1]`` the other way. The columns (see ``__init__``
        for their types): ``lo``/``hi`` address ids, ``proto``, ``k3`` (proto and ports packed:
        ``proto << 40 | (port_lo + 1) << 20 | (port_hi + 1)``, port -1 = none), ``pk``/``by``
        (2: packets and wire bytes), ``first_ts``/``last_ts``, ``first_dir`` (the first packet's
        direction), ``syn_dir`` (the first pure SYN's direction, -1 none), ``synack``, ``handshake``,
        ``flags_or`` (2: FIN|SYN|RST bits seen), ``retrans``, ``icmp_errors`` (errors quoting the
        flow, not in its packets), ``syn_n`` (2: TCP packets with SYN set, SYN+ACK included),
        ``dups`` (TCP data segments skipped as copies of one packet seen twice in a file),
        ``tun_pk`` (2: packets that came through a tunnel), ``slow`` (rows the general decoder
        made: fallback frames, and every ICMP error counted on the flow), ``echo_req`` /
        ``echo_rep`` (2: ICMP/ICMPv6 echo requests and replies). ``tun_pk``, ``echo_req``,
        ``echo_rep`` and ``direction_tunnels`` are counted only by a table with samples (the
        explain lane's; ``flows`` does not pay for them): zero otherwise.
        """
        if name not in self.COLUMNS:
            raise KeyError(f"no per-flow column {name!r} (have: {', '.join(self.COLUMNS)})")
        width = self._specs[name][2]
        arr = self._a[name][: self.count * width]
        view = arr.reshape(self.count, 2) if width == 2 else arr.view()
        view.flags.writeable = False
        return view

    def file_packets(self) -> np.ndarray:
        """Packets per (file index, flow id): shape ``(len(files), count)``, files in ``begin_file``
        order (ICMP errors counted on a quoted flow are not its packets)."""
        if not self._per_file:
            return np.zeros((0, self.count), dtype=np.int32)
        return np.stack([arr[: self.count] for arr in self._per_file])

    def monotonic(self, file_index: int) -> bool:
        """Whether the timestamps of every row of file ``file_index`` given to ``add`` (all rows,
        non-IP and undecodable ones too, in file order) never decrease."""
        return self._mono[file_index]

    # ---------------------------------------------------------------- kept samples

    def slot_stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The sample slots that kept frames: arrays ``(g, d, f, n, first_frame)``, one entry per
        (flow id, direction, file index), sorted by (g, d, f).

        ``n`` counts the distinct kept frames of the slot (a frame kept as one of the first K, one
        of the last K and as special at once counts once); ``first_frame`` is the smallest kept
        frame number (1-based). Frames already handed over by ``row_blocks(materialise=...)`` are
        not counted.
        """
        rows = []
        for (g, d, f), slot in self._samples.items():
            frames = {s.frame for s in (*slot.first, *slot.last, *slot.special)}
            if frames:
                rows.append((((g * 2 + d) << 20) | f, len(frames), min(frames)))
        arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        key, n, first = arr[:, 0], arr[:, 1], arr[:, 2]
        if self._np_any():
            # rows held as columns are distinct frames, and distinct from a slot's frame objects
            # (those came later in the file, or are ICMP errors quoting the flow)
            cols = self._np_compact()
            if len(key):
                key = np.concatenate((cols["key"], key))
                n = np.concatenate((np.ones(len(cols["key"]), dtype=np.int64), n))
                first = np.concatenate((cols["frame"], first))
            else:  # the columns alone: sorted by key already
                key, n, first = cols["key"], None, cols["frame"]
        if n is not None:
            order = np.argsort(key, kind="stable")
            key, n, first = key[order], n[order], first[order]
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1]))) if len(key) else key
        uk = key[starts]
        if len(uk):
            n = np.add.reduceat(n, starts) if n is not None else np.diff(np.append(starts, len(key)))
            first = np.minimum.reduceat(first, starts)
        else:
            n = first = np.zeros(0, dtype=np.int64)
        return uk >> 21, (uk >> 20) & 1, uk & 0xFFFFF, n, first

    def kept_twins(self, small: int = 64, interest: np.ndarray | None = None
                   ) -> tuple[np.ndarray, list[tuple[list[int], list[float], list[int], list[int]]], set[tuple]]:
        """What the kept frames tell of ``stitch.stitch_flows``' NAT twins: ``(firm, groups, crowded)``.

        Stitch links conversations whose sampled records (the kept rows) share a packet identity:
        an identity of more than four conversations links nothing; otherwise its first
        conversation is linked with each other one that has a copy within ``NAT_TWIN_WINDOW`` told
        apart by a plausible rewrite (``nat_plausible``, which needs the roles). Which
        conversations share an identity decides, so a caller that explains some flows without
        stitching must let stitch see every conversation of an identity that may link, or tell it
        that the identity is crowded. Per identity key of the kept rows:

        * one flow: nothing;
        * five flows or more without payload (the key is the identity itself, hash collisions
          aside): never linked; the identities go to ``crowded`` (``packet_identity`` tuples) for
          stitch to honour when it sees only some of those flows;
        * other keys of several flows, at most ``small`` rows: ``groups`` (flows, times, sources,
          destinations of each row) for the caller to check, pair by pair, for a copy within the
          window and a plausible rewrite: if any pair passes, stitch may link within the key, and
          every flow of it must be stitched;
        * bigger keys: ``firm`` (every flow of the key must be stitched);
        * rows whose key is unknown (no head: a general decoder's row): every flow with a row of
          the same (protocol, IP ID, seq, ack, flags, length) is ``firm``;
        * frames kept as objects (compressed, pcapng...: no columns): every flow ``firm``.

        ``interest`` (bool per flow): ``groups`` only lists keys that hold one of those flows.
        """
        n = self.count
        firm = np.zeros(n, dtype=bool)
        crowded: set[tuple] = set()
        if any(slot.first or slot.last for slot in self._samples.values()):
            return np.ones(n, dtype=bool), [], crowded  # frames kept as objects (no columns): every flow
        if not self._np_any():
            return firm, [], crowded
        cols = self._np_compact()
        ikey = cols["ikey"]
        g_all = cols["key"] >> 21
        unknown = ikey == -1
        if unknown.any():  # every flow sharing the identity's fields but the payload with such a row
            proto = self._a["proto"][g_all].astype(np.int64)
            fl = np.where(proto == 6, cols["tflags"].astype(np.int64), -1)
            with np.errstate(over="ignore"):
                h = np.zeros(len(ikey), dtype=np.uint64)
                for c in (proto, cols["ipid"], cols["tseq"], cols["ack"], fl, cols["plen"], cols["itype"]):
                    h = (h + c.astype(np.uint64)) * _H2
            pk = h.view(np.int64)
            bad = np.isin(pk, pk[unknown]) & (ikey != 0)
            firm[g_all[bad | unknown]] = True
        rows = np.flatnonzero((ikey != 0) & ~unknown)  # (a key is any other value, negative ones too)
        rows = rows[_held_twice(ikey[rows])]  # a key of one row links nothing (store order kept)
        if not len(rows):
            return firm, [], crowded
        key, g, t = ikey[rows], g_all[rows], _at(cols, "ts", rows)
        order = np.lexsort((t, g, key))
        rows, key, g, t = rows[order], key[order], g[order], t[order]
        start = np.concatenate(([True], key[1:] != key[:-1]))
        grp = np.cumsum(start) - 1
        ng = int(grp[-1]) + 1
        newflow = start | np.concatenate(([True], g[1:] != g[:-1]))
        nflows = np.bincount(grp, weights=newflow, minlength=ng).astype(np.int64)
        size = np.bincount(grp, minlength=ng)
        payload = np.bincount(grp, weights=_at(cols, "plen", rows) > 0, minlength=ng) > 0
        crowd = (nflows >= 5) & ~payload
        checkable = (nflows >= 2) & ~crowd & (size <= small)
        big = (nflows >= 2) & ~crowd & ~checkable
        firm[g[big[grp]]] = True
        c_rows = rows[crowd[grp]]
        if len(c_rows):
            fields = np.stack([self._a["proto"][g_all[c_rows]].astype(np.int64),
                               *(c.astype(np.int64) for c in _at_many(cols, ("ipid", "tseq", "ack", "tflags", "plen",
                                                                             "itype"), c_rows))], axis=1)
            first = np.sort(np.unique(fields, axis=0, return_index=True)[1])  # each distinct row once, in order
            for pr, ip_id, seq, ack, fl, plen, it in fields[first].tolist():  # packet_identity's tuple, as the record gives it
                crowded.add((pr, None if ip_id < 0 else ip_id, None if seq < 0 else seq, None if ack < 0 else ack,
                             fl if pr == 6 and fl >= 0 else None, None if plen < 0 else plen, None,
                             None if it < 0 else it))
        groups: list[tuple[list[int], list[float], list[int], list[int]]] = []
        if interest is not None:  # keys without a flow of interest need no check
            checkable &= np.bincount(grp, weights=interest[g], minlength=ng) > 0
        sel = np.flatnonzero(checkable[grp])
        if len(sel):
            sg = grp[sel]
            cut = np.flatnonzero(np.concatenate(([True], sg[1:] != sg[:-1])))
            gs = g[sel]
            flip = ((_at(cols, "key", rows[sel]) >> 20) & 1) == 1  # direction 1: from hi to lo
            lo, hi = self._a["lo"][gs], self._a["hi"][gs]
            gl, tl = gs.tolist(), t[sel].tolist()
            sl, dl = np.where(flip, hi, lo).tolist(), np.where(flip, lo, hi).tolist()
            groups = [(gl[a:b], tl[a:b], sl[a:b], dl[a:b])
                      for a, b in zip(cut.tolist(), [*cut[1:].tolist(), len(sel)], strict=True)]
        return firm, groups, crowded

    def kept_columns(self, only: np.ndarray) -> dict[str, np.ndarray] | None:
        """The kept rows of the flows ``only`` (bool per flow) as columns, one row per distinct
        kept frame, sorted by (flow, frame): ``g``, ``d``, ``f``, ``frame``, ``ts``, ``tseq``
        (TCP sequence number, -1 none), ``plen`` (L4 payload length), ``tflags`` (TCP flags, -1
        none), ``ipid`` (IPv4 ID, -1 none). None when one of those flows also kept frame objects
        (a compressed file, pcapng or the general reader): then only materialising tells."""
        if any(only[g] for (g, _d, _f) in self._samples):
            return None
        cols = self._np_compact() if self._np_any() else None
        names = ("frame", "ts", "tseq", "plen", "tflags", "ipid")
        if cols is None:
            return {n: np.zeros(0, dtype=np.int64) for n in ("g", "d", "f", *names)}
        key = cols["key"]
        g = key >> 21
        sel = np.flatnonzero(only[g])
        out = {"g": g[sel], "d": (key[sel] >> 20) & 1, "f": key[sel] & 0xFFFFF,
               **dict(zip(names, _at_many(cols, names, sel), strict=True))}
        order = np.lexsort((out["frame"], out["f"], out["g"]))
        return {n: v[order] for n, v in out.items()}

    def sample_frames(self, g: int, d: int, f: int, frames: Collection[int] | None = None) -> list[SampleFrame]:
        """The distinct kept frames of flow ``g``, direction ``d`` (0: lo -> hi), file index ``f``,
        in frame order (empty when none are kept, or they were handed over); ``frames``: only
        those frame numbers (the others' bytes are not read)."""
        slot = self._samples.get((g, d, f))
        uniq = {s.frame: s for s in (*slot.first, *slot.last, *slot.special)} if slot is not None else {}
        if frames is not None:
            uniq = {n: s for n, s in uniq.items() if n in frames}
        if self._np_any():
            cols = self._np_compact()
            key = ((g * 2 + d) << 20) | f
            lo, hi = np.searchsorted(cols["key"], [key, key + 1])
            if hi > lo:
                idx = np.arange(lo, hi)
                if frames is not None:
                    have = _at(cols, "frame", idx)
                    idx = idx[np.logical_or.reduce([have == n for n in frames]) if frames else have < 0]
                if self._fds_closer is None:  # the descriptors stay open for the next calls, closed with the table
                    self._fds_closer = weakref.finalize(self, _close_all, self._fds)
                uniq.update((s.frame, s) for s in self._np_frames(cols, idx, self._fds))
        return [uniq[n] for n in sorted(uniq)]

    def frames_at(self, wanted: Sequence[tuple[int, int, int, int]]) -> list[SampleFrame | None]:
        """``sample_frames(g, d, f, frames=(frame,))[0]`` for each ``(g, d, f, frame)`` of
        ``wanted`` at once (None where that frame is not kept): one search of the kept rows for
        all of them, their bytes read together."""
        out: list[SampleFrame | None] = [None] * len(wanted)
        rest = []
        for i, (g, d, f, frame) in enumerate(wanted):
            slot = self._samples.get((g, d, f))
            hit = next((s for s in (*slot.first, *slot.last, *slot.special) if s.frame == frame), None) \
                if slot is not None else None
            if hit is not None:
                out[i] = hit
            else:
                rest.append(i)
        if not rest or not self._np_any():
            return out
        cols = self._np_compact()
        req = np.array([wanted[i] for i in rest], dtype=np.int64).reshape(-1, 4)
        keys = ((req[:, 0] * 2 + req[:, 1]) << 20) | req[:, 2]
        lo = np.searchsorted(cols["key"], keys, side="left")
        hi = np.searchsorted(cols["key"], keys, side="right")
        # every kept row of the slots asked, then the one of each request's frame
        n = hi - lo
        rows = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
        owner = np.repeat(np.arange(len(rest)), n)
        match = _at(cols, "frame", rows) == req[owner, 3]
        rows, owner = rows[match], owner[match]
        _u, first = np.unique(owner, return_index=True)  # (a frame is one kept row of its slot)
        rows, owner = rows[first], owner[first]
        if self._fds_closer is None:  # the descriptors stay open for the next calls, closed with the table
            self._fds_closer = weakref.finalize(self, _close_all, self._fds)
        for j, sf in zip(owner.tolist(), self._np_frames(cols, rows, self._fds), strict=True):
            out[rest[j]] = sf
        return out

    def close(self) -> None:
        """Close the capture files ``sample_frames`` keeps open (it opens them again when asked)."""
        _close_all(self._fds)

    # ---------------------------------------------------------------- results

    def summaries(
        self,
        *,
        addr_name: Callable[[int], str | None],
        tunnel_name: Callable[[int], str],
        materialise: Callable[[SampleFrame], PacketRecord] | None = None,
    ) -> list[FlowSummary]:
        """One ``FlowSummary`` per flow, ordered by first packet time, then by first appearance."""
        out: list[FlowSummary] = []
        for rows in self.row_blocks(addr_name=addr_name, tunnel_name=tunnel_name, materialise=materialise):
            out.extend(rows.summaries())
        return out

    def _encaps(self) -> np.ndarray:
        """The distinct encapsulation rows seen so far, sorted (by flow id first)."""
        if not self._enc_parts:
            return np.zeros((0, 6), dtype=np.int64)
        if len(self._enc_parts) > 1 or self._enc_rows:
            rows = np.concatenate(self._enc_parts)
            rows = rows[np.lexsort(rows.T[::-1])]  # by flow id, then type, vni, outer pair, port
            rows = rows[np.concatenate(([True], (rows[1:] != rows[:-1]).any(axis=1)))]
            self._enc_parts, self._enc_rows = [rows], 0
        return self._enc_parts[0]

    def direction_tunnels(self) -> tuple[np.ndarray, np.ndarray]:
        """Per (flow, direction): the first tunnel its packets were seen in, and whether another
        followed. Returns ``(rows, multi)``: ``rows`` shape (count * 2, 5) of (type, vni, outer
        src, outer dst, port) for slot ``g * 2 + d`` (-1 everywhere when none), ``multi`` bool per slot."""
        n = self.count * 2
        out = np.full((n, 5), -1, dtype=np.int64)
        first = self._a["enc_first"][:n]
        enc = self._encaps()
        if len(enc):
            with np.errstate(over="ignore"):
                eh = ((enc[:, 1].astype(np.uint64) * _H1 + enc[:, 2].astype(np.uint64)) * _H2
                      + enc[:, 3].astype(np.uint64) * _H3 + enc[:, 4].astype(np.uint64) * _H1
                      + enc[:, 5].astype(np.uint64)).view(np.int64) | 1
            slots = np.flatnonzero(first != 0)
            for d in (0, 1):
                mine = slots[slots % 2 == d]
                key = np.concatenate([enc[:, 0] * 2 + d, mine]).astype(np.int64)
                # match each slot's first hash with its flow's rows (the same hash as in _add_rows)
                hk = np.concatenate([eh, first[mine]])
                order = np.lexsort((hk, key))
                k2, h2 = key[order], hk[order]
                same = (k2[1:] == k2[:-1]) & (h2[1:] == h2[:-1])
                i = np.flatnonzero(same)
                row, slot = np.minimum(order[i], order[i + 1]), np.maximum(order[i], order[i + 1])
                ok = (row < len(enc)) & (slot >= len(enc))
                out[mine[slot[ok] - len(enc)]] = enc[row[ok], 1:]
        return out, self._a["enc_multi"][:n].copy()

    def extents(self, addr_name: Callable[[int], str | None]) -> dict[str, Any]:
        """Largest values over all flows (for column widths without building the rows first)."""
        n = self.count
        a = self._a
        if n == 0:
            return {}
        lo, hi = a["lo"][:n], a["hi"][:n]
        v6 = np.unique(np.concatenate((lo[lo >= 1 << 32], hi[hi >= 1 << 32])))  # the few non-IPv4 ids
        widest = max((len(addr_name(i) or "?") + 2 for i in v6.tolist()), default=0)  # "[v6]"
        v4 = bool((lo < 1 << 32).any() or (hi < 1 << 32).any())
        widest = max(widest, 15 if v4 else 0)  # a dotted quad: at most 15 characters
        return {
            "first_ts": float(a["first_ts"][:n].min()),
            "last_first_ts": float(a["first_ts"][:n].max()),
            "duration": float((a["last_ts"][:n] - a["first_ts"][:n]).max()),
            "packets": int(a["pk"][: 2 * n].max()),
            "bytes": int(a["by"][: 2 * n].max()),
            "endpoint": widest + 6,  # ":65535"
            "retransmissions": int(a["retrans"][:n].max()),
            "icmp_errors": int(a["icmp_errors"][:n].max()),
            "proto": max(len(proto_name(int(p))) for p in np.unique(a["proto"][:n]).tolist()),
        }

    def row_blocks(
        self,
        *,
        addr_name: Callable[[int], str | None],
        tunnel_name: Callable[[int], str],
        materialise: Callable[[SampleFrame], PacketRecord] | None = None,
        block: int = 4096,
        only: np.ndarray | None = None,
    ) -> Iterator[FlowRows]:
        """The flows as column lists, a block at a time, in ``summaries`` order.

        Renderers of big tables use these directly: no per-flow object is built (the million-flow
        table stays cheap), and the values are exactly those of the ``FlowSummary`` fields.
        With ``materialise`` the table hands the kept frames of the flows it yields over (once: a
        second call has none for them). ``only`` (bool per flow id, ``count`` long): the flows
        with ``only[g]`` False are left out entirely (no row, nothing materialised; their kept
        frames stay in the table for ``sample_frames``); None: every flow.
        """
        only = self._only(only)
        ctx = _SummaryContext(self, addr_name, tunnel_name, materialise, only)
        try:
            for sl in self._in_order(block, only):
                yield self._rows(ctx, sl)
        finally:
            for fd in ctx.fds.values():
                os.close(fd)

    def _only(self, only: np.ndarray | None) -> np.ndarray | None:
        if only is None:
            return None
        only = np.asarray(only, dtype=bool)
        if only.shape != (self.count,):
            raise ValueError(f"only: one bool per flow expected, shape ({self.count},), got {only.shape}")
        return only

    def cell_blocks(
        self,
        *,
        addr_name: Callable[[int], str | None],
        tunnel_name: Callable[[int], str],
        block: int = 2048,
        only: np.ndarray | None = None,
    ) -> Iterator[FlowCells]:
        """What a table of the flows prints, a block at a time, in ``summaries`` order.

        The cheapest form of the rows (the text table of a million-packet capture renders ~70,000
        of them): only the printed columns, and the TCP summaries and encapsulations as codes into
        shared lists, so a renderer formats each distinct value once.
        """
        only = self._only(only)
        ctx = _SummaryContext(self, addr_name, tunnel_name, None)
        A = self._a
        for sl in self._in_order(block, only):
            c_id, s_id, c_port, s_port, ci, si, syn = self._ends(sl)
            yield FlowCells(
                proto=ctx.proto_names(A["proto"][sl].tolist()),
                client=ctx.endpoints(c_id, c_port),
                server=ctx.endpoints(s_id, s_port),
                packets_c2s=A["pk"][ci].tolist(), bytes_c2s=A["by"][ci].tolist(),
                packets_s2c=A["pk"][si].tolist(), bytes_s2c=A["by"][si].tolist(),
                first_ts=A["first_ts"][sl].tolist(), last_ts=A["last_ts"][sl].tolist(),
                tcp=self._tcp_codes(ctx, sl, ci, si, syn).tolist(), encap=ctx.enc_code[sl].tolist(),
                tcp_values=ctx.tcp_values, encap_values=ctx.enc_values,
            )

    def _in_order(self, block: int, only: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The flow ids in ``summaries`` order (first packet time, then first appearance), ``block``
        at a time; only those with ``only[g]`` True when ``only`` is given."""
        order = np.argsort(self._a["first_ts"][: self.count], kind="stable")
        if only is not None:
            order = order[only[order]]
        for start in range(0, len(order), block):
            yield order[start : start + block]

    def _ends(self, sl: np.ndarray) -> tuple[list[int], list[int], list[int], list[int], np.ndarray, np.ndarray,
                                            np.ndarray]:
        """Client and server address ids and ports of the flows ``sl``, the client's and the server's
        direction slots, and the SYN direction (-1 none)."""
        A = self._a
        syn = A["syn_dir"][sl].astype(np.int64)
        cd = np.where(syn >= 0, syn, A["first_dir"][sl])  # client direction: 0 = lo -> hi
        k3 = A["k3"][sl]
        plo, phi = ((k3 >> 20) & 0xFFFFF) - 1, (k3 & 0xFFFFF) - 1
        lo, hi = A["lo"][sl], A["hi"][sl]
        flip = cd == 1
        return (np.where(flip, hi, lo).tolist(), np.where(flip, lo, hi).tolist(),
                np.where(flip, phi, plo).tolist(), np.where(flip, plo, phi).tolist(),
                2 * sl + cd, 2 * sl + 1 - cd, syn)

    def _tcp_codes(self, ctx: _SummaryContext, sl: np.ndarray, ci: np.ndarray, si: np.ndarray, syn: np.ndarray
                   ) -> np.ndarray:
        """Per flow of ``sl``, a code into ``ctx.tcp_values``: (TCP summary or None, ICMP errors)."""
        A = self._a
        fin_rst = FIN | RST
        bits = ((syn >= 0).astype(np.int64) | (A["synack"][sl].astype(np.int64) << 1)
                | (A["handshake"][sl].astype(np.int64) << 2) | ((A["flags_or"][ci] & fin_rst).astype(np.int64) << 3)
                | ((A["flags_or"][si] & fin_rst).astype(np.int64) << 6))
        bits = np.where(A["proto"][sl] == 6, bits, 1 << 9)  # 1 << 9: not TCP
        key = bits | (A["retrans"][sl].astype(np.int64) << 10)
        errors = A["icmp_errors"][sl].astype(np.int64)
        ids, first = row_ids([key, errors])
        codes = np.array([ctx.tcp_code(int(key[i]), int(errors[i])) for i in first.tolist()], dtype=np.int64)
        return codes[ids]

    def _rows(self, ctx: _SummaryContext, sl: np.ndarray) -> FlowRows:
        """Column lists of the flows ``sl`` (an array of flow ids), in that order."""
        A = self._a
        c_id, s_id, c_port, s_port, ci, si, syn = self._ends(sl)
        gids = sl.tolist()
        per_file = [arr[sl].tolist() for arr in self._per_file]
        samples, materialise, fidx, intern = ctx.samples, ctx.materialise, ctx.fidx, ctx.intern
        single, files = ctx.single_file, self.files
        only = per_file[0] if len(files) == 1 else None
        n = len(gids)
        c_ips, s_ips = ctx.names_of(c_id), ctx.names_of(s_id)
        tcp_values = ctx.tcp_values
        tcp_col = [tcp_values[c][0] for c in self._tcp_codes(ctx, sl, ci, si, syn).tolist()]
        if only is not None:
            for k in set(only) - single.keys():
                single[k] = ((files[0], k),)
            pf_col = [single[k] for k in only]
        else:
            pf_col = [intern(tuple((files[f], c[j]) for f, c in enumerate(per_file) if c[j])) for j in range(n)]
        proto_l = A["proto"][sl].tolist()
        enc_values = ctx.enc_values
        r = FlowRows(
            proto=ctx.proto_names(proto_l), proto_num=proto_l, client_ip=c_ips,
            client_port=[None if p < 0 else p for p in c_port], server_ip=s_ips,
            server_port=[None if p < 0 else p for p in s_port],
            client=ctx.endpoints(c_id, c_port), server=ctx.endpoints(s_id, s_port),
            packets_c2s=A["pk"][ci].tolist(), packets_s2c=A["pk"][si].tolist(),
            bytes_c2s=A["by"][ci].tolist(), bytes_s2c=A["by"][si].tolist(),
            first_ts=A["first_ts"][sl].tolist(), last_ts=A["last_ts"][sl].tolist(),
            encapsulations=[enc_values[c] for c in ctx.enc_code[sl].tolist()], tcp=tcp_col,
            icmp_errors=A["icmp_errors"][sl].tolist(), per_file=pf_col, samples=[()] * n,
        )
        if ctx.np_cols is not None:  # this block's rows held as columns become frames now
            lo, hi = np.searchsorted(ctx.np_g, sl, side="left"), np.searchsorted(ctx.np_g, sl, side="right")
            counts = hi - lo
            idx = np.arange(int(counts.sum())) + np.repeat(lo - (np.cumsum(counts) - counts), counts)
            for g, frame in zip(ctx.np_g[idx].tolist(), self._np_frames(ctx.np_cols, idx, ctx.fds), strict=True):
                samples.setdefault(g, []).append(frame)
        if materialise is not None:
            for j, g in enumerate(gids):
                if g in samples:
                    uniq = {(s.file, s.frame): s for s in samples.pop(g)}
                    r.samples[j] = tuple(
                        materialise(s) for s in sorted(uniq.values(), key=lambda s: (fidx.get(s.file, 0), s.frame))
                    )
        return r


@dataclass(slots=True, repr=False, eq=False)  # columns: no useful repr or equality
class FlowCells:
    """A block of flows as a table prints them (see ``FlowTable.cell_blocks``).

    ``tcp[j]`` indexes ``tcp_values`` (the TCP summary or None, and the ICMP errors quoting the
    flow); ``encap[j]`` indexes ``encap_values``. Both lists are shared by all blocks of one call
    and only grow: equal values have one code.
    """

    proto: list[str]
    client: list[str]  # "ip:port" / "[v6]:port" / "ip"
    server: list[str]
    packets_c2s: list[int]
    bytes_c2s: list[int]
    packets_s2c: list[int]
    bytes_s2c: list[int]
    first_ts: list[float]
    last_ts: list[float]
    tcp: list[int]
    encap: list[int]
    tcp_values: list[tuple[TCPSummary | None, int]]
    encap_values: list[tuple[Encap, ...]]

    def __len__(self) -> int:
        return len(self.proto)


@dataclass(slots=True, repr=False, eq=False)  # columns: no useful repr or equality
class FlowRows:
    """A block of flows as parallel lists, one per ``FlowSummary`` field (plus endpoint texts)."""

    proto: list[str]
    proto_num: list[int]
    client_ip: list[str]
    client_port: list[int | None]
    server_ip: list[str]
    server_port: list[int | None]
    client: list[str]  # "ip:port" / "[v6]:port" / "ip"
    server: list[str]
    packets_c2s: list[int]
    packets_s2c: list[int]
    bytes_c2s: list[int]
    bytes_s2c: list[int]
    first_ts: list[float]
    last_ts: list[float]
    encapsulations: list[tuple[Encap, ...]]
    tcp: list[TCPSummary | None]
    icmp_errors: list[int]
    per_file: list[tuple[tuple[str, int], ...]]
    samples: list[tuple[PacketRecord, ...]]

    def __len__(self) -> int:
        return len(self.proto)

    def summaries(self) -> list[FlowSummary]:
        keys = [f"{p} {c} > {s}" for p, c, s in zip(self.proto, self.client, self.server)]
        return list(map(FlowSummary, keys, self.proto, self.proto_num, self.client_ip, self.client_port,
                        self.server_ip, self.server_port, self.packets_c2s, self.packets_s2c, self.bytes_c2s,
                        self.bytes_s2c, self.first_ts, self.last_ts, self.encapsulations, self.tcp,
                        self.icmp_errors, self.per_file, self.samples))


def _close_all(fds: dict[int, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def _groups(s_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a sorted key array: the distinct keys, where each group starts, each row's group number."""
    starts = np.flatnonzero(np.concatenate(([True], s_sorted[1:] != s_sorted[:-1])))
    grp = np.zeros(len(s_sorted), dtype=np.int64)
    grp[starts[1:]] = 1
    return s_sorted[starts], starts, np.cumsum(grp)


def _held_twice(keys: np.ndarray) -> np.ndarray:
    """Per entry of ``keys`` (int64): whether another entry holds the same value. A count by the
    low bits first (a bincount), then one sort of the entries that may share theirs."""
    out = np.zeros(len(keys), dtype=bool)
    if len(keys) < 2:
        return out
    bits = min(22, max(10, len(keys).bit_length() + 1))
    low = keys & ((1 << bits) - 1)
    maybe = np.flatnonzero(np.bincount(low, minlength=1 << bits)[low] > 1)
    by_key = np.argsort(keys[maybe])
    ks = keys[maybe][by_key]
    twice = np.flatnonzero(ks[1:] == ks[:-1])
    out[maybe[by_key[twice]]] = True
    out[maybe[by_key[twice + 1]]] = True
    return out


def _first_rows(inv: np.ndarray, groups: int) -> np.ndarray:
    """The first row of each group, given each row's group number (``np.unique``'s ``return_index``
    without the stable sort it needs)."""
    first = np.full(groups, len(inv), dtype=np.int64)
    np.minimum.at(first, inv, np.arange(len(inv)))
    return first


def row_ids(cols: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Numbers for the distinct rows of equal-length integer columns: each row's number (0..m-1,
    in the order of the rows' values) and the first row of each number. Exact (one ``lexsort`` of
    the columns, then where any column changes), no hashing."""
    n = len(cols[0])
    order = np.lexsort(tuple(cols)[::-1])
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
        for col in cols:
            c = col[order]
            change[1:] |= c[1:] != c[:-1]
    ids = np.empty(n, dtype=np.int64)
    ids[order] = np.cumsum(change) - 1
    return ids, order[change]


def _tcp_summary(syn: bool, syn_ack: bool, handshake: bool, fc: int, fs: int, retrans: int) -> TCPSummary:
    return TCPSummary(
        syn=syn,
        syn_ack=syn_ack,
        handshake=handshake,
        fin=bool((fc | fs) & FIN),
        rst=bool((fc | fs) & RST),
        fin_from_client=bool(fc & FIN),
        fin_from_server=bool(fs & FIN),
        rst_from_client=bool(fc & RST),
        rst_from_server=bool(fs & RST),
        retransmissions=retrans,
    )


class _SummaryContext:
    """What every block of ``FlowTable.summaries`` shares: names, tunnels, samples, interned values."""

    def __init__(self, table: FlowTable, addr_name: Callable[[int], str | None], tunnel_name: Callable[[int], str],
                 materialise: Callable[[SampleFrame], PacketRecord] | None, only: np.ndarray | None = None
                 ) -> None:
        self.addr_name = addr_name
        self.materialise = materialise
        self.names: dict[int, str] = {}
        self.prefixes: dict[int, str] = {}
        self.values: dict[Any, Any] = {}
        self.tcp_codes: dict[tuple[int, int], int] = {}
        self.tcp_values: list[tuple[TCPSummary | None, int]] = []
        self.single_file: dict[int, tuple[tuple[str, int], ...]] = {}
        self.pnames: dict[int, str] = {}
        self.tunnel_name = tunnel_name
        self.enc_code, self.enc_values = self._encap_codes(table)
        self.samples: dict[int, list[SampleFrame]] = {}
        kept: dict[tuple[int, int, int], _Slot] = {}
        for key, slot in table._samples.items():
            g = key[0]
            if only is not None and not only[g]:
                kept[key] = slot
                continue
            self.samples.setdefault(g, []).extend([*slot.first, *slot.last, *slot.special])
        if materialise is not None:
            # handed over: each flow's frames are let go once materialised (the bytes of the kept
            # frames and their records are not both held whole at the peak)
            table._samples = kept
        # the kept rows held as columns: the handed-over flows' rows move here, read block by block
        self.np_cols: Mapping[str, np.ndarray] | None = None
        self.np_g = np.zeros(0, dtype=np.int64)
        self.fds: dict[int, int] = {}
        if materialise is not None and table._np_any():
            cols = table._np_compact()
            g_of = cols["key"] >> 21
            if only is not None:
                mine = only[g_of]
                if isinstance(cols, _Rows):  # (the others' columns stay ungathered)
                    table._np_store = cols.subset(np.flatnonzero(~mine))
                    cols = cols.subset(np.flatnonzero(mine))
                else:
                    table._np_store = {name: col[~mine] for name, col in cols.items()}
                    cols = {name: col[mine] for name, col in cols.items()}
                g_of = g_of[mine]
            else:
                table._np_store = None
            self.np_cols, self.np_g = cols, g_of
        self.fidx = {name: i for i, name in enumerate(table.files)}

    def _encap_codes(self, table: FlowTable) -> tuple[np.ndarray, list[tuple[Encap, ...]]]:
        """Per flow id, a code into the list of distinct encapsulation tuples (code 0: none).

        A flow's tuple holds one ``Encap`` per distinct (type, vni, outer src, outer dst, port),
        in the order of those numbers. Flows with the same set share one tuple; the sets are
        numbered with numpy, one step per position in a flow's list, not per flow.
        """
        rows = table._encaps()  # distinct, sorted: (flow, type, vni, outer src, outer dst, port)
        code = np.zeros(table.count, dtype=np.int64)
        values: list[tuple[Encap, ...]] = [()]
        if not len(rows):
            return code, values
        eid, first = row_ids([rows[:, c] for c in range(1, 6)])
        encs = [Encap(self.tunnel_name(t), None if vni < 0 else vni, self.addr_name(src), self.addr_name(dst),
                      None if port < 0 else port) for t, vni, src, dst, port in rows[first, 1:].tolist()]
        flow = rows[:, 0]
        starts = np.flatnonzero(np.concatenate(([True], flow[1:] != flow[:-1])))
        lengths = np.diff(np.append(starts, len(flow)))
        combo = eid[starts]  # the number of each flow's first k keys, for k = 1, 2, ...
        k = 1
        while True:
            more = np.flatnonzero(lengths > k)
            if not len(more):
                break
            pair = combo[more] * len(encs) + eid[starts[more] + k]
            combo[more] = np.asarray(np.unique(pair, return_inverse=True)[1]).ravel()
            k += 1
        _, first, inv = np.unique(combo * (int(lengths.max()) + 1) + lengths, return_index=True,
                                  return_inverse=True)
        for f in first.tolist():
            values.append(tuple(encs[e] for e in eid[starts[f] : starts[f] + lengths[f]].tolist()))
        code[flow[starts]] = np.asarray(inv).ravel() + 1
        return code, values

    def tcp_code(self, key: int, icmp_errors: int) -> int:
        """The code of a flow's TCP bits (see ``FlowTable._tcp_codes``) and ICMP error count."""
        got = self.tcp_codes.get((key, icmp_errors))
        if got is None:
            got = self.tcp_codes[(key, icmp_errors)] = len(self.tcp_values)
            bits = key & 1023
            tcp = None
            if bits != 1 << 9:
                tcp = self.intern(_tcp_summary(bool(bits & 1), bool(bits & 2), bool(bits & 4), (bits >> 3) & 7,
                                               (bits >> 6) & 7, key >> 10))
            self.tcp_values.append((tcp, icmp_errors))
        return got

    def proto_names(self, protos: list[int]) -> list[str]:
        pnames = self.pnames
        for p in set(protos) - pnames.keys():
            pnames[p] = proto_name(p)
        return [pnames[p] for p in protos]

    def names_of(self, ids: list[int]) -> list[str]:
        names = self.names
        for v in set(ids) - names.keys():
            names[v] = self.addr_name(v) or "?"
        return [names[v] for v in ids]

    def endpoints(self, ids: list[int], ports: list[int]) -> list[str]:
        """``ip:port``, ``[v6]:port``, or the address alone for a portless protocol."""
        prefixes = self.prefixes
        for v in set(ids) - prefixes.keys():  # what endpoint_text puts before the port
            prefixes[v] = endpoint_text(self.names_of([v])[0], 0)[:-1]
        out = list(map(str.__add__, map(prefixes.__getitem__, ids), map(str, ports)))
        if ports and min(ports) < 0:  # portless protocols: the address alone
            names = self.names
            for j in [j for j, p in enumerate(ports) if p < 0]:
                out[j] = names[ids[j]]
        return out

    def intern(self, value: Any) -> Any:
        """One shared instance per distinct frozen value (many flows have equal TCP summaries...)."""
        return self.values.setdefault(value, value)
