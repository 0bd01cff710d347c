"""Streaming, vectorised fast path: capture files -> column batches, no per-packet Python object.

Classic pcap files (either byte order, micro- or nanoseconds, also gzip/bzip2/xz-compressed) are
read into one reused buffer of ``CHUNK_BYTES`` (peak memory does not grow with the file). Python
only walks the 16-byte record headers; numpy then gathers fields at fixed offsets for every frame
of the chunk at once and recognises the common shapes:

* link: Ethernet (optionally one 802.1Q tag), Linux cooked SLL and SLL2, raw IP (101, 228, 229);
* IPv4 without options and not fragmented, or IPv6 without extension headers; then TCP, UDP
  (ports outside the tunnel ports) or an ICMP message that is not an error;
* the same inside VXLAN (outer IPv4/UDP to a port in ``vxlan_ports``, I flag set, inner Ethernet
  with IPv4 or IPv6) or inside IPIP (IPv4 protocol 4);
* ARP (a non-IP frame: counted, never part of a flow).

Every other frame (IPv4 options, fragments, IPv6 extension headers, ICMP errors, GENEVE, GRE,
flannel-udp, VLAN stacks, frames cut by the snaplen, malformed headers...) is handed to the general
decoder (``analyzer.inputs.decode.decode_frame`` + ``to_record``) and its ``PacketRecord`` is
merged into the same columns, so the columns always equal what the general decoder says (tests
compare them frame by frame). pcapng and damaged files are read through
``analyzer.inputs.capture.read_capture`` and batched the same way (the fast shapes still apply to
their frames); damage is reported in that reader's words.

Addresses are ``int64`` columns: an IPv4 address is its 32-bit value; any other address (IPv6) is
interned in an ``AddressTable`` and gets an id >= 2**32; -1 means "none".
"""

from __future__ import annotations

import bz2
import contextlib
import fcntl
import gzip
import io
import ipaddress
import lzma
import os
import signal
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.errors import InputError
from analyzer.model.record import PacketRecord, QuotedPacket

CHUNK_BYTES = 4 << 20  # 4 MiB: faster than 2 or 8 on the development VM (the chunk's columns stay in cache)
# the limits of analyzer.inputs.capture (a test checks they agree). That module, and the general
# decoder it loads, are imported only when a frame or a file needs them: ``flows`` on a capture of
# common shapes never pays for them.
MAX_RECORD = 262144
MAX_BLOCK = 64 << 20
LINKTYPE_MASK = 0x03FFFFFF
FALLBACK_BATCH = 4096
VXLAN_UDP_PORTS = frozenset({4789, 8472})
# UDP ports the general decoder treats as tunnels besides VXLAN: GENEVE and flannel's UDP backend.
OTHER_TUNNEL_UDP_PORTS = frozenset({6081, 8285})

TUNNEL_NAMES = ("", "vxlan", "ipip", "geneve", "gre", "ip6in4", "flannel-udp")
TUNNEL_CODES = {name: code for code, name in enumerate(TUNNEL_NAMES) if name}

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_ICMP_ERRORS = np.zeros(256, dtype=bool)  # ICMP types that quote a packet (general decoder), as a lookup table
_ICMP_ERRORS[[3, 4, 5, 11, 12]] = True

# row kinds
KIND_BAD = 0  # no usable IP header and not a recognised non-IP frame (truncated, malformed...)
KIND_NONIP = 1  # ARP, LLDP...: decoded, but not an IP flow
KIND_IP = 2

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}
_PAD = 256  # zero bytes after each chunk, so fixed-offset gathers never leave the buffer


class AddressTable:
    """Non-IPv4 address strings <-> int64 ids >= 2**32 (IPv4 addresses are their own value).

    One table is shared by every file of a scan; it also interns tunnel type names.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        self.tunnels = TunnelTable()

    def intern(self, text: str | None) -> int:
        if text is None:
            return -1
        if ":" not in text:
            try:
                return int(ipaddress.IPv4Address(text))
            except ValueError:
                pass
        got = self._ids.get(text)
        if got is None:
            got = self._ids[text] = (1 << 32) + len(self._names)
            self._names.append(text)
        return got

    def name(self, value: int) -> str | None:
        if value < 0:
            return None
        if value < (1 << 32):
            return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
        return self._names[value - (1 << 32)]


class TunnelTable:
    """Tunnel type names <-> small codes; the fast path's codes (``TUNNEL_CODES``) come first."""

    def __init__(self) -> None:
        self._names: list[str] = list(TUNNEL_NAMES)
        self._codes: dict[str, int] = dict(TUNNEL_CODES)

    def intern(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self._names)
            self._names.append(name)
        return code

    def name(self, code: int) -> str | None:
        return self._names[code] if 0 < code < len(self._names) else None


@dataclass(slots=True, repr=False, eq=False)  # numpy columns: no useful repr or equality
class Batch:
    """Columns for ``n`` consecutive frames of one capture file (see the module docstring)."""

    file: str
    n: int
    frame: np.ndarray  # int64, 1-based
    ts: np.ndarray  # float64
    wire_len: np.ndarray  # int64
    cap_len: np.ndarray  # int64
    linktype: np.ndarray  # int32
    kind: np.ndarray  # int8: KIND_BAD / KIND_NONIP / KIND_IP
    src: np.ndarray  # int64 address ids (innermost, non-quoted)
    dst: np.ndarray
    proto: np.ndarray  # int16, -1 none
    sport: np.ndarray  # int32, -1 none
    dport: np.ndarray
    flags: np.ndarray  # int16 raw TCP flag byte, -1 none
    seq: np.ndarray  # int64, -1 none
    ack: np.ndarray
    payload_len: np.ndarray  # int64, -1 none
    ip_id: np.ndarray  # int64, -1 none (IPv6 fragment ids are 32-bit unsigned)
    tunnel: np.ndarray  # int8 index into TUNNEL_NAMES (0 none)
    vni: np.ndarray  # int64, -1 none
    outer_src: np.ndarray  # int64 address ids, -1 none
    outer_dst: np.ndarray
    outer_port: np.ndarray  # int32 outer UDP dport of UDP tunnels, -1 none
    icmp_type: np.ndarray  # int16 ICMP/ICMPv6 type of the innermost packet (errors too), -1 none
    fallback: np.ndarray  # bool: row came from the general decoder
    icmp_error: np.ndarray  # bool: ICMP/ICMPv6 error with a quoted packet
    buf: bytes | bytearray  # frame i is buf[start[i]:start[i] + cap_len[i]]; valid until the next batch
    start: np.ndarray  # int64
    interface_of: Callable[[], str | None] | None = None  # the capture's interface, looked up on demand
    records: dict[int, PacketRecord] = field(default_factory=dict)  # fallback rows -> their record
    # the file offset of buf[0] when the batch comes straight from an uncompressed classic pcap file
    # (frame i's bytes are then at file offset file_offset + start[i]); -1 otherwise (compressed
    # files, pcapng, the general reader)
    file_offset: int = -1
    # with ``heads=True`` (iter_batches): what ``head`` and ``heads_of`` read (the classification
    # of the batch's rows), None otherwise
    head_parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] | None = None
    _head: np.ndarray | None = None

    @property
    def head(self) -> np.ndarray | None:
        """With ``heads=True`` (iter_batches): int64 per row, the first n = min(8, captured payload
        bytes, payload_len) bytes of the innermost L4 payload (after the TCP header, the 8-byte
        UDP/ICMP header) as a big-endian number (read as int64: 8 bytes 0xff.. give -1), 0 when
        n == 0; -1 where unknown (rows of the general decoder, non-IP rows). None when not asked
        for. Read from ``buf`` on first use: like ``buf``, valid until the next batch."""
        if self._head is None and self.head_parts is not None:
            self._head = _heads(self.buf, self.start, self.cap_len, self.head_parts)
        return self._head

    def heads_of(self, rows: np.ndarray) -> np.ndarray | None:
        """``head[rows]``, reading only those rows' bytes (while the batch is current)."""
        if self._head is not None or self.head_parts is None:
            return None if self._head is None else self._head[rows]
        return _heads(self.buf, self.start, self.cap_len, self.head_parts, rows)

    @property
    def interface(self) -> str | None:
        return self.interface_of() if self.interface_of is not None else None

    def raw(self, i: int) -> bytes:
        s = int(self.start[i])
        return bytes(self.buf[s : s + int(self.cap_len[i])])

    def quoted(self, i: int) -> QuotedPacket | None:
        rec = self.records.get(i)
        return rec.quoted if rec is not None else None


# --------------------------------------------------------------------------------------------
# vectorised classification


def _u8(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return a[idx].astype(np.int32)


def _u16(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (a[idx].astype(np.int32) << 8) | a[idx + 1]


def _u24(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return _u32(a, idx) >> 8


def _u32(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Big-endian 32-bit numbers at byte offsets ``idx`` of ``a`` (one gather through ``_u32_at``'s
    view; ``a`` has ``_PAD`` bytes beyond any offset asked for)."""
    return _u32_at(a, ">")[idx].astype(np.int64)


def _classify(
    a: np.ndarray,
    base: np.ndarray,
    cap: np.ndarray,
    linktype: int,
    vxlan_ports: np.ndarray,
    tunnel_ports: np.ndarray,
) -> dict[str, np.ndarray]:
    """Fixed-offset recognition of the fast shapes for frames of one linktype.

    ``a`` is the chunk, ``base`` the frame starts, ``cap`` the captured lengths. Every byte a
    recognised frame's fields come from lies inside its captured bytes; bytes read for the other
    rows may be anything (they are masked out). Returns the columns plus the masks ``ok`` (a fast
    IP shape), ``v6`` (its innermost header is IPv6: addresses still to intern) and ``arp``.
    """
    n = len(base)
    zero = np.zeros(n, dtype=bool)
    if linktype == LINKTYPE_ETHERNET:
        et = _u16(a, base + 12)
        tagged = et == 0x8100
        if tagged.any():
            et = np.where(tagged, _u16(a, base + 16), et)
            ip = base + np.where(tagged, 18, 14)
        else:  # the common case: no 802.1Q tag in the whole chunk
            ip = base + 14
    elif linktype == LINKTYPE_LINUX_SLL:
        et = np.where(_u16(a, base + 2) == 824, -1, _u16(a, base + 14))  # 824: netlink, not Ethernet types
        ip = base + 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        et = np.where(_u16(a, base + 8) == 824, -1, _u16(a, base))
        ip = base + 20
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        ver = a[base] >> 4
        if linktype == LINKTYPE_IPV4:
            ver = np.where(ver == 4, 4, 0)
        elif linktype == LINKTYPE_IPV6:
            ver = np.where(ver == 6, 6, 0)
        et = np.where(ver == 4, 0x0800, np.where(ver == 6, 0x86DD, -1))
        ip = base
    else:
        return {"ok": zero, "v6": zero, "arp": zero}
    link = ip - base
    arp = (et == 0x0806) & (cap >= link + 28)

    # outer IPv4 (or the only IP header): no options, not a fragment, lengths within the frame
    tot = _u16(a, ip + 2)
    p = _u8(a, ip + 9)
    ip4 = (
        (et == 0x0800)
        & (a[ip] == 0x45)
        & ((_u16(a, ip + 6) & 0x3FFF) == 0)
        & (tot >= 20)
        & (link + tot <= cap)  # a snaplen-cut packet goes to the general decoder
        & (cap >= link + 20)
    )
    odp = _u16(a, ip + 22)
    inner_et = _u16(a, ip + 48)
    vx = (
        ip4
        & (p == 17)
        & vxlan_ports[odp]
        & (_u16(a, ip + 24) == tot - 20)
        & (tot >= 20 + 8 + 8 + 14 + 20)
        & ((a[ip + 28] & 0x08) != 0)
        & ((inner_et == 0x0800) | (inner_et == 0x86DD))
    )
    ipip = ip4 & (p == 4) & (tot >= 40)
    tunneled = vx | ipip
    iip = np.where(vx, ip + 50, np.where(ipip, ip + 20, ip))
    # the innermost header is IPv6 for plain IPv6 frames and VXLAN-carried IPv6
    v6 = np.where(vx, inner_et == 0x86DD, (et == 0x86DD) & ~ip4)
    # room for the innermost IP packet: the outer payload when tunneled, else the frame
    room = np.where(tunneled, tot - (iip - ip), cap - link)

    # innermost IPv4
    itot = _u16(a, iip + 2)
    in4 = ~v6 & np.where(tunneled, (a[iip] == 0x45) & ((_u16(a, iip + 6) & 0x3FFF) == 0) & (itot >= 20), ip4)
    # innermost IPv6: no extension headers (next header TCP/UDP directly), no jumbogram
    plen6 = _u16(a, iip + 4)
    in6 = v6 & ((a[iip] >> 4) == 6) & (plen6 > 0)
    ihl = np.where(in6, 40, 20)
    ilen = np.where(in6, 40 + plen6, itot)  # the whole innermost IP packet
    ip2 = np.where(in6, _u8(a, iip + 6), _u8(a, iip + 9))
    inner_ok = (in4 | in6) & (ilen <= room) & (cap >= iip - base + ihl)

    l4 = iip + ihl
    l4cap = cap - (l4 - base)  # captured bytes from the transport header on
    ipay = ilen - ihl  # transport bytes by the IP length
    sp = _u16(a, l4)
    dp = _u16(a, l4 + 2)
    doff = (a[l4 + 12] >> 4).astype(np.int64) * 4
    tcp = inner_ok & (ip2 == 6) & (doff >= 20) & (ipay >= doff) & (l4cap >= doff)
    udp = (
        inner_ok
        & (ip2 == 17)
        & (_u16(a, l4 + 4) == ipay)
        & (l4cap >= 8)
        & ~tunnel_ports[sp]
        & ~tunnel_ports[dp]
    )
    icmp_type = _u8(a, l4)
    icmp = inner_ok & ~in6 & (ip2 == 1) & (ipay >= 8) & (l4cap >= 8) & ~_ICMP_ERRORS[icmp_type]
    ok = tcp | udp | icmp
    ported = tcp | udp
    ok4 = ok & ~in6
    vx &= ok
    ipip &= ok
    tunneled &= ok
    # every column is final: its value where ``ok``, the fill value of _COLUMNS elsewhere
    return {
        "ok": ok,
        "v6": ok & in6,
        "arp": arp & ~ok,
        "iip": iip,
        "src": np.where(ok4, _u32(a, iip + 12), -1),
        "dst": np.where(ok4, _u32(a, iip + 16), -1),
        "proto": np.where(ok, ip2, -1),
        "sport": np.where(ported, sp, -1),
        "dport": np.where(ported, dp, -1),
        "flags": np.where(tcp, a[l4 + 13].astype(np.int16), -1),
        "seq": np.where(tcp, _u32(a, l4 + 4), -1),
        "ack": np.where(tcp, _u32(a, l4 + 8), -1),
        "payload_len": np.where(tcp, ipay - doff, np.where(ok, ipay - 8, -1)),
        "ip_id": np.where(ok4, plen6, -1),  # the same 2 bytes: IPv4's ID, IPv6's payload length
        "tunnel": np.where(vx, TUNNEL_CODES["vxlan"], np.where(ipip, TUNNEL_CODES["ipip"], 0)),
        "vni": np.where(vx, _u24(a, ip + 32), -1),
        "outer_src": np.where(tunneled, _u32(a, ip + 12), -1),
        "outer_dst": np.where(tunneled, _u32(a, ip + 16), -1),
        "outer_port": np.where(vx, odp, -1),
        "icmp_type": np.where(icmp, icmp_type, -1),
    }


_COLUMNS: tuple[tuple[str, Any, int], ...] = (
    ("src", np.int64, -1),
    ("dst", np.int64, -1),
    ("proto", np.int16, -1),
    ("sport", np.int32, -1),
    ("dport", np.int32, -1),
    ("flags", np.int16, -1),
    ("seq", np.int64, -1),
    ("ack", np.int64, -1),
    ("payload_len", np.int64, -1),
    ("ip_id", np.int64, -1),
    ("tunnel", np.int8, 0),
    ("vni", np.int64, -1),
    ("outer_src", np.int64, -1),
    ("outer_dst", np.int64, -1),
    ("outer_port", np.int32, -1),
    ("icmp_type", np.int16, -1),
)


class GeneralDecoder:
    """The general decoder of ``analyzer.inputs.decode`` (imported lazily: it is the slow path)."""

    def __init__(self, vxlan_ports: frozenset[int]) -> None:
        self.vxlan_ports = vxlan_ports
        self._fns: tuple[Any, Any, Any] | None = None

    def _load(self) -> tuple[Any, Any, Any]:
        if self._fns is None:
            from analyzer.inputs.decode import decode_frame, to_record
            from analyzer.model.packet import RawFrame

            self._fns = (RawFrame, decode_frame, to_record)
        return self._fns

    def record(
        self, file: str, number: int, ts: float, linktype: int, data: bytes, wire_len: int, interface: str | None
    ) -> PacketRecord:
        raw_frame, decode_frame, to_record = self._load()
        frame = raw_frame(
            file=file, number=number, ts=ts, linktype=linktype, data=data, wire_len=wire_len, interface=interface
        )
        return to_record(frame, decode_frame(data, linktype, vxlan_ports=self.vxlan_ports))

    def read_capture(self, path: str, warn: Callable[[str], None] | None) -> Iterator[Any]:
        from analyzer.inputs.capture import read_capture

        return read_capture(path, warn=warn)


def _build_batch(
    file: str,
    buf: bytes | bytearray,
    start: np.ndarray,
    cap: np.ndarray,
    wire: np.ndarray,
    ts: np.ndarray,
    frame: np.ndarray,
    linktypes: np.ndarray,
    interface_of: Callable[[], str | None],
    addrs: AddressTable,
    general: GeneralDecoder,
    vxlan_arr: np.ndarray,
    tunnel_arr: np.ndarray,
    interfaces: list[str | None] | None = None,
    classified: dict[str, np.ndarray] | None = None,
    heads: bool = False,
) -> Batch:
    """The batch of frames ``start``/``cap`` in ``buf``; ``classified`` is ``_classified``'s result
    for them when a helper process has computed it already (one link type); ``heads``: fill
    ``Batch.head``."""
    n = len(start)
    a = np.frombuffer(buf, dtype=np.uint8)
    parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []  # (rows, their classification)
    if n and (linktypes == linktypes[0]).all():  # one link type (every pcap): whole columns at once
        got = classified if classified is not None else _classified(a, start, cap, int(linktypes[0]), vxlan_arr,
                                                                     tunnel_arr)
        cols = {name: got[name] for name, _dt, _fill in _COLUMNS}
        parts.append((np.arange(n), got))
    else:  # several link types (a pcapng's interfaces): each one's rows into the columns
        cols = {name: np.empty(n, dtype=dt) for name, dt, _fill in _COLUMNS}
        for lt in np.unique(linktypes).tolist():
            sel = np.flatnonzero(linktypes == lt)
            got = _classified(a, start[sel], cap[sel], lt, vxlan_arr, tunnel_arr)
            for name, _dt, _fill in _COLUMNS:
                cols[name][sel] = got[name]
            parts.append((sel, got))
    ok = np.zeros(n, dtype=bool)
    kind = np.zeros(n, dtype=np.int8)
    for sel, got in parts:
        idx = sel[got["ok"]]
        ok[idx] = True
        kind[idx] = KIND_IP
        v6 = got["v6"]
        if v6.any():
            iip = got["iip"][v6]
            cols["src"][sel[v6]] = _intern_v6(a, iip + 8, addrs)
            cols["dst"][sel[v6]] = _intern_v6(a, iip + 24, addrs)
        arp = sel[got["arp"]]
        kind[arp] = KIND_NONIP
        ok[arp] = True
    batch = Batch(
        file=file,
        n=n,
        frame=frame,
        ts=ts,
        wire_len=wire,
        cap_len=cap,
        linktype=linktypes,
        kind=kind,
        fallback=~ok,
        icmp_error=np.zeros(n, dtype=bool),
        buf=buf,
        start=start,
        interface_of=interface_of,
        **cols,
    )
    for i in np.flatnonzero(~ok).tolist():
        iface = interfaces[i] if interfaces is not None else interface_of()
        rec = general.record(
            file, int(frame[i]), float(ts[i]), int(linktypes[i]), batch.raw(i), int(wire[i]), iface
        )
        _merge_record(batch, i, rec, addrs)
    if heads:
        batch.head_parts = parts  # (``Batch.head`` reads them on first use, ``heads_of`` for some rows)
    return batch


def _heads(buf: bytes | bytearray, start: np.ndarray, cap: np.ndarray,
           parts: list[tuple[np.ndarray, dict[str, np.ndarray]]], only: np.ndarray | None = None) -> np.ndarray:
    """``Batch.head`` of the fast-shape rows (see there); -1 elsewhere. ``only``: of those rows
    alone (``head[only]``), the other rows' bytes not read."""
    if only is not None and not (len(parts) == 1 and len(parts[0][0]) == len(start)):
        return _heads(buf, start, cap, parts)[only]  # several link types (pcapng): all rows first
    head = np.full(len(start) if only is None else len(only), -1, dtype=np.int64)
    u64 = np.ndarray((len(buf) - 7,), dtype=">u8", buffer=buf, strides=(1,))  # like _u32_at
    a = np.frombuffer(buf, dtype=np.uint8)
    for sel, got in parts:
        # the fast-shape rows: 0 without payload, the others read below
        if only is None:
            ok = got["ok"]
            head[sel[ok]] = 0
            idx = np.flatnonzero(ok & (got["payload_len"] > 0))  # rows of the part's columns
            rows = at = sel[idx]  # where their heads go, their rows in the batch
        else:  # one part of every row (``sel`` is 0..n-1)
            ok = got["ok"][only]
            head[ok] = 0
            rows = np.flatnonzero(ok & (got["payload_len"][only] > 0))
            idx = at = only[rows]
        if not len(rows):
            continue
        l4 = got["iip"][idx] + np.where(got["v6"][idx], 40, 20)  # fast shapes: no IP options, no extensions
        p0 = l4 + np.where(got["proto"][idx] == 6, (a[l4 + 12] >> 4).astype(np.int64) * 4, 8)
        n = np.clip(np.minimum(start[at] + cap[at] - p0, got["payload_len"][idx]), 0, 8)
        raw = u64[np.minimum(p0, len(u64) - 1)]  # the bytes past the payload are shifted out below
        shift = (8 * (8 - np.maximum(n, 1))).astype(np.uint64)
        head[rows] = np.where(n > 0, raw >> shift, np.uint64(0)).view(np.int64)
    return head


def _classified(a: np.ndarray, start: np.ndarray, cap: np.ndarray, linktype: int, vxlan_arr: np.ndarray,
                tunnel_arr: np.ndarray) -> dict[str, np.ndarray]:
    """``_classify`` for frames of one link type, as finished columns: ``_COLUMNS`` in their
    dtypes (fill values where the frame is not a fast shape), and the masks ``ok``, ``v6``, ``arp``
    and ``iip`` (where the innermost IP header starts)."""
    got = _classify(a, start, cap, linktype, vxlan_arr, tunnel_arr)
    out = {"ok": got["ok"], "v6": got["v6"], "arp": got["arp"], "iip": got.get("iip", start)}
    for name, dt, fill in _COLUMNS:
        col = got.get(name)
        out[name] = np.full(len(start), fill, dtype=dt) if col is None else col.astype(dt, copy=False)
    return out


#: what a helper process sends per frame after the record offsets: ``_classified``'s columns
_WIRE_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("ok", np.bool_), ("v6", np.bool_), ("arp", np.bool_), ("iip", np.int64),
    *((name, dt) for name, dt, _fill in _COLUMNS),
)
_WIRE_ROW = sum(np.dtype(dt).itemsize for _name, dt in _WIRE_COLUMNS)


def _intern_v6(a: np.ndarray, at: np.ndarray, addrs: AddressTable) -> np.ndarray:
    """Address ids of the 16-byte IPv6 addresses at offsets ``at`` (one Python call per distinct one)."""
    raw = np.ascontiguousarray(a[at[:, None] + np.arange(16)])
    keys = raw.view(np.dtype((np.void, 16))).ravel()
    uniq, inv = np.unique(keys, return_inverse=True)
    ids = np.array([addrs.intern(socket.inet_ntop(socket.AF_INET6, u.tobytes())) for u in uniq], dtype=np.int64)
    return ids[np.asarray(inv).ravel()]


def _merge_record(batch: Batch, i: int, rec: PacketRecord, addrs: AddressTable) -> None:
    batch.records[i] = rec
    if rec.ip_version and rec.src is not None and rec.proto is not None:
        batch.kind[i] = KIND_IP
        batch.src[i] = addrs.intern(rec.src)
        batch.dst[i] = addrs.intern(rec.dst)
        batch.proto[i] = rec.proto
    elif rec.arp_op is not None or (rec.ip_version == 0 and not rec.notes):
        batch.kind[i] = KIND_NONIP
    else:
        batch.kind[i] = KIND_BAD
    for name, value in (
        ("sport", rec.sport),
        ("dport", rec.dport),
        ("flags", rec.tcp_flags),
        ("seq", rec.seq),
        ("ack", rec.ack),
        ("payload_len", rec.payload_len),
        ("ip_id", rec.ip_id),
        ("vni", rec.vni),
        ("icmp_type", rec.icmp_type),
    ):
        if value is not None:
            getattr(batch, name)[i] = value
    if rec.tunnel:
        batch.tunnel[i] = addrs.tunnels.intern(rec.tunnel)
        batch.outer_src[i] = addrs.intern(rec.outer_src)
        batch.outer_dst[i] = addrs.intern(rec.outer_dst)
        if rec.outer_dport is not None:
            batch.outer_port[i] = rec.outer_dport
    batch.icmp_error[i] = rec.quoted is not None


# --------------------------------------------------------------------------------------------
# readers


def _interface_of(name: str) -> Callable[[], str | None]:
    """``interface_from_name(name)``, computed (and its module imported) on the first call only."""
    memo: list[str | None] = []

    def get() -> str | None:
        if not memo:
            from analyzer.inputs.capture import interface_from_name

            memo.append(interface_from_name(name))
        return memo[0]

    return get


def _port_table(ports: Iterable[int]) -> np.ndarray:
    """A 65536-entry lookup table: ``table[port]`` is True for the given UDP ports."""
    table = np.zeros(65536, dtype=bool)
    table[[p for p in ports if 0 <= p < 65536]] = True
    return table


_STREAM_ERRORS = (OSError, EOFError, lzma.LZMAError)  # a damaged compressed stream (gzip raises OSError)


class _Anomaly(Exception):
    """A damaged pcap record: the rest of the file goes through the general reader."""


def iter_batches(
    path: Path,
    *,
    vxlan_ports: frozenset[int] = VXLAN_UDP_PORTS,
    addrs: AddressTable | None = None,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    heads: bool = False,
) -> Iterator[Batch]:
    """Yield column batches for every frame of ``path`` in file order.

    ``progress(bytes_read)`` is called after each batch. ``heads``: fill ``Batch.head`` (the first
    payload bytes, for ``FlowTable.kept_twins``; ``flows`` does not need them). Raises ``InputError`` when the file cannot
    be used at all; damaged records become warnings (through the general reader) and reading goes on.
    """
    addrs = addrs if addrs is not None else AddressTable()
    general = GeneralDecoder(vxlan_ports)
    vxlan_arr = _port_table(vxlan_ports)
    tunnel_arr = _port_table(vxlan_ports | OTHER_TUNNEL_UDP_PORTS)
    name = str(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed in finally, the generator may stop early
    except OSError as exc:
        raise InputError(name, f"cannot open: {exc.strerror or exc}") from exc
    fh: Any = raw
    try:
        magic = raw.read(6)
        raw.seek(0)
        # compressed classic pcap streams through the same walker (progress in compressed bytes)
        if magic[:2] == b"\x1f\x8b":
            fh = gzip.GzipFile(fileobj=raw)
        elif magic[:3] == b"BZh":
            fh = bz2.BZ2File(raw)
        elif magic == b"\xfd7zXZ\x00":
            fh = lzma.LZMAFile(raw)  # noqa: SIM115 - closed in finally
        step = progress
        if fh is not raw and progress is not None:
            def step(_offset: int) -> None:
                progress(raw.tell())
        done = 0
        try:
            head = fh.read(24)
        except _STREAM_ERRORS:
            head = b""
        spec = _PCAP_MAGIC.get(head[:4])
        if spec is not None and len(head) == 24:
            try:
                walker = fh is raw and os.fstat(raw.fileno()).st_size >= WALKER_MIN_BYTES and _core_free()
                for batch in _pcap_batches(
                    fh, name, head, spec, addrs, general, vxlan_arr, tunnel_arr, step, chunk_bytes, warn, walker,
                    plain=fh is raw, heads=heads,
                ):
                    done = int(batch.frame[-1]) if batch.n else done
                    yield batch
                return
            except (_Anomaly, *_STREAM_ERRORS):
                pass  # the general reader reads the file again and reports the damage in its words
        yield from _general_batches(
            path, name, done, addrs, general, vxlan_arr, tunnel_arr, warn, progress, heads=heads
        )
    finally:
        if fh is not raw:
            fh.close()
        raw.close()


#: plain pcap files at least this big are walked by a helper process when two CPUs are idle: it
#: finds the record boundaries and classifies the frames while this process aggregates
WALKER_MIN_BYTES = 64 << 20
#: ... on machines with at least this many CPUs, when the load average leaves the helper a core:
#: two idle CPUs on 4 or more; on 2 or 3 CPUs a load of at most ``cpus - 1``. On the 2-vCPU
#: development VM the two processes slow each other down once the machine is busy (bench/README.md:
#: at load 1.5 to 3 together 1.7 CPU-s where one process alone needs 1.0, and a longer wall time),
#: while at a load below 1 the helper shortens the whole run (median 1.26 s against 1.40 s).
WALKER_MIN_CPUS = 2
_WALK_RECORDS = 32768  # at most this many records per message from the walker
_WALK_END, _WALK_DAMAGE = -2, -1


def _core_free() -> bool:
    """Whether a helper process would get a core of its own (else it only competes with us).

    ``K8S_TRACE_WALKER=0`` / ``=1`` forces the choice."""
    forced = os.environ.get("K8S_TRACE_WALKER")
    if forced is not None:
        return forced == "1" and hasattr(os, "fork")
    cpus = os.cpu_count() or 1
    if not hasattr(os, "fork") or cpus < WALKER_MIN_CPUS:
        return False
    try:
        load = os.getloadavg()[0]
    except OSError:
        return False
    return load <= cpus - (2 if cpus >= 4 else 1)


def _walker(path: str, order: str, limit: int, span_max: int, wfd: int, linktype: int, vxlan_arr: np.ndarray,
            tunnel_arr: np.ndarray) -> None:
    """The helper process: walk the records of ``path``, classify their frames, send both.

    Messages (native int64 header): ``count``, then ``count`` record offsets and the end of the
    last record, then ``count`` rows of ``_classified``'s columns (``_WIRE_COLUMNS``, column after
    column; ``iip`` counts from the first record, where the parent's copy of the records starts).
    A message holds at most ``_WALK_RECORDS`` records spanning at most ``span_max`` bytes (or one
    bigger record). ``_WALK_DAMAGE`` ends the stream at a damaged or cut-off record, ``_WALK_END``
    at a clean end of file.
    """
    incl_at = struct.Struct(order + "I").unpack_from
    size = 2 * (span_max + limit + 16)
    store = bytearray(size + _PAD)
    view = memoryview(store)
    a = np.frombuffer(store, dtype=np.uint8)

    def write(data: memoryview) -> None:
        while data:
            data = data[os.write(wfd, data) :]

    def send(values: list[int]) -> None:
        write(memoryview(np.array(values, dtype=np.int64).tobytes()))

    with open(path, "rb") as fh:
        fh.seek(24)
        base, have, eof = 24, 0, False
        while True:
            if not eof:
                have, eof = _refill(fh, view, have, size)
            n = have
            try:
                offs, off = _walk(store, n, order, limit, incl_at)
            except _Anomaly:
                send([_WALK_DAMAGE])
                return
            u32 = _u32_at(store, order)
            ends = offs + 16 + u32[offs + 8].astype(np.int64)
            i = 0
            while i < len(offs):  # messages: at most _WALK_RECORDS records, spanning at most span_max
                j = int(np.searchsorted(ends, offs[i] + span_max, side="right"))
                j = min(max(j, i + 1), i + _WALK_RECORDS, len(offs))
                ro = offs[i:j]
                first = int(ro[0])
                cols = _classified(a, ro + 16, u32[ro + 8].astype(np.int64), linktype, vxlan_arr, tunnel_arr)
                cols["iip"] = cols["iip"] - first
                write(memoryview(np.concatenate(([j - i], ro + base, [base + int(ends[j - 1])]))
                                 .astype(np.int64).tobytes()))
                for name, dt in _WIRE_COLUMNS:  # each column straight from its array (no bytes copy)
                    write(memoryview(np.ascontiguousarray(cols[name], dtype=dt)).cast("B"))
                i = j
            if eof:
                send([_WALK_DAMAGE] if off < n else [_WALK_END])
                return
            store[: n - off] = store[off:n]
            base, have = base + off, n - off


def _read_into(fd: int, view: memoryview) -> None:
    while view:
        got = os.readv(fd, [view])
        if not got:
            raise _Anomaly  # the walker died: the general reader takes over
        view = view[got:]


def _walked_chunks(path: str, fh: Any, order: str, limit: int, chunk_bytes: int, linktype: int,
                   vxlan_arr: np.ndarray, tunnel_arr: np.ndarray
                   ) -> Iterator[tuple[bytearray, np.ndarray, int, int, dict[str, np.ndarray] | None]]:
    """(buffer, record offsets in it, file offset of the buffer, bytes used, classified columns)
    from a walker process."""
    rfd, wfd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # fewer, bigger pipe transfers (Linux)
        fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, 1 << 20)  # type: ignore[attr-defined]
    pid = os.fork()
    if pid == 0:  # the child: walk, send, and leave without running any of the parent's code
        try:
            os.close(rfd)
            _walker(path, order, limit, chunk_bytes, wfd, linktype, vxlan_arr, tunnel_arr)
        finally:
            os._exit(0)
    os.close(wfd)
    store = bytearray(chunk_bytes + limit + 16 + _PAD)
    view = memoryview(store)
    head = bytearray(8)
    try:
        while True:
            _read_into(rfd, memoryview(head))
            count = int(np.frombuffer(head, dtype=np.int64)[0])
            if count == _WALK_END:
                return
            if count < 0:
                raise _Anomaly
            msg = bytearray(8 * (count + 1) + count * _WIRE_ROW)
            _read_into(rfd, memoryview(msg))
            vals = np.frombuffer(msg, dtype=np.int64, count=count + 1)
            at = 8 * (count + 1)
            cols: dict[str, np.ndarray] = {}
            for name, dt in _WIRE_COLUMNS:
                cols[name] = np.frombuffer(msg, dtype=dt, count=count, offset=at)
                at += count * np.dtype(dt).itemsize
            base, stop = int(vals[0]), int(vals[-1])
            fh.seek(base)
            used = stop - base
            if fh.readinto(view[:used]) != used:
                raise _Anomaly
            yield store, vals[:-1] - base, base, used, cols
    finally:
        os.close(rfd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # done already, or the caller stopped early
        os.waitpid(pid, 0)


def _pcap_batches(
    fh: Any,
    name: str,
    head: bytes,
    spec: tuple[str, float],
    addrs: AddressTable,
    general: GeneralDecoder,
    vxlan_arr: np.ndarray,
    tunnel_arr: np.ndarray,
    progress: Callable[[int], None] | None,
    chunk_bytes: int,
    warn: Callable[[str], None] | None,
    walker: bool = False,
    *,
    plain: bool = False,
    heads: bool = False,
) -> Iterator[Batch]:
    """Classic pcap: chunks of whole records in a reused buffer; numpy does the rest.

    A batch's ``buf`` is that buffer: it is valid until the next batch is requested. ``plain``:
    ``fh`` is the file itself (not a decompressing stream), so the batches get their ``file_offset``.
    """
    order, scale = spec
    _, _, _, _, snaplen, network = struct.unpack(order + "HHiIII", head[4:24])
    linktype = network & LINKTYPE_MASK
    # the same limits and wording as analyzer.inputs.capture, which handles any damage
    limit = max(MAX_RECORD, snaplen if snaplen <= MAX_BLOCK else 0)
    interface_of = _interface_of(name)
    warned_snaplen = False
    number = 0
    chunks = (_walked_chunks(name, fh, order, limit, chunk_bytes, linktype, vxlan_arr, tunnel_arr) if walker
              else _own_chunks(fh, order, limit, chunk_bytes))
    for store, ro, base, used, classified in chunks:
        u32 = _u32_at(store, order)
        cap = u32[ro + 8].astype(np.int64)
        if int(cap.max()) > limit:
            raise _Anomaly
        wire = np.maximum(u32[ro + 12].astype(np.int64), cap)
        ts = u32[ro].astype(np.float64) + u32[ro + 4].astype(np.float64) / scale
        k = len(ro)
        frames = np.arange(number + 1, number + k + 1, dtype=np.int64)
        if not warned_snaplen and warn is not None:
            over = np.flatnonzero(cap > snaplen)
            if len(over):
                warned_snaplen = True
                warn(
                    f"{name}: packet #{int(frames[over[0]])}: record of {int(cap[over[0]])} bytes is longer "
                    f"than the snaplen {snaplen}"
                )
        batch = _build_batch(
            name,
            store,
            ro + 16,
            cap,
            wire,
            ts,
            frames,
            np.full(k, linktype, dtype=np.int32),
            interface_of,
            addrs,
            general,
            vxlan_arr,
            tunnel_arr,
            classified=classified,
            heads=heads,
        )
        if plain:
            batch.file_offset = base
        number += k
        if progress is not None:
            progress(base + used)
        yield batch


def _own_chunks(fh: Any, order: str, limit: int, chunk_bytes: int
                ) -> Iterator[tuple[bytearray, np.ndarray, int, int, None]]:
    """(buffer, record offsets in it, file offset of the buffer, bytes of whole records) in file order.

    Each refill of one reused buffer is walked by ``_walk``.
    """
    incl_at = struct.Struct(order + "I").unpack_from
    size = max(chunk_bytes, 2 * (limit + 16))  # room for at least one whole record plus the tail
    store = bytearray(size + _PAD)
    view = memoryview(store)
    have = 0  # valid bytes at the start of store (the tail of the previous chunk, then new data)
    base = 24  # file offset of store[0]
    eof = False
    while True:
        if not eof:
            have, eof = _refill(fh, view, have, size)
        n = have
        offs, off = _walk(store, n, order, limit, incl_at)
        if not len(offs):
            if eof:
                if n:
                    raise _Anomaly  # a cut-off last record: the general reader reports it
                return
            continue
        yield store, offs, base, off, None
        store[: n - off] = store[off:n]  # keep the partial record for the next round
        base += off
        have = n - off


def _refill(fh: Any, view: memoryview, have: int, size: int) -> tuple[int, bool]:
    """Read after the ``have`` bytes already in ``view`` up to ``size``, and ask for the next chunk
    ahead: (bytes now valid, end of file reached)."""
    got = fh.readinto(view[have:size])
    _prefetch(fh, size)
    return have + (got or 0), not got


def _prefetch(fh: Any, size: int) -> None:
    """Ask the kernel to start reading the next ``size`` bytes of a plain file now, so that a file
    not (or no longer wholly) in the page cache is read from disk while this chunk is processed."""
    if isinstance(fh, io.BufferedReader) and hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fh.fileno(), fh.tell(), size, os.POSIX_FADV_WILLNEED)


#: a chunk whose timestamps change their high 16 bits more often than this is walked in plain Python
_MAX_SCANS = 8


def _walk(store: bytearray, n: int, order: str, limit: int, incl_at: Callable[..., tuple[int, ...]]
          ) -> tuple[np.ndarray, int]:
    """Offsets of the whole records in ``store[:n]`` (a walk ``off += 16 + incl`` from 0) and the
    end of the last one. ``_Anomaly`` for a record length above ``limit``.

    The result is exactly the plain walk's (``_plain_walk``); numpy only takes the steps it can
    take faster (see ``_Chain``). ``store`` has ``_PAD`` bytes after ``n``.
    """
    parts: list[np.ndarray] = []
    off = 0
    scans = 0
    chain: _Chain | None = None
    while off + 16 <= n:
        incl = incl_at(store, off + 8)[0]
        if incl > limit:
            raise _Anomaly  # an impossible record length: the general reader reports it
        if off + 16 + incl > n:
            break  # the record continues in the next chunk (or is cut off)
        if chain is None or not chain.has(off):
            scans += 1
            chain = _Chain(store, n, off, order, limit) if scans <= _MAX_SCANS else None
            if chain is None or not chain.has(off):  # no timestamp pattern to use: the plain walk
                offs, off = _plain_walk(store, n, off, incl_at)
                if len(offs) and int(_u32_at(store, order)[offs + 8].max()) > limit:
                    raise _Anomaly
                parts.append(offs)
                continue  # only checks the record where it stopped
        offs, off = chain.follow(off)
        parts.append(offs)
    if not parts:
        return np.zeros(0, dtype=np.int64), off
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), off


def _plain_walk(store: bytearray, n: int, off: int, incl_at: Callable[..., tuple[int, ...]]
                ) -> tuple[np.ndarray, int]:
    """The record walk in Python: the offsets of the whole records from ``off`` on, and where it stopped."""
    offs: list[int] = []
    append = offs.append
    # store has _PAD bytes after its data, so the length read at off+8 never leaves it; past ``n``
    # it reads stale bytes, but then ``end > n`` anyway and the walk stops
    while True:
        end = off + 16 + incl_at(store, off + 8)[0]
        if end > n:
            break
        append(off)
        off = end
    return np.array(offs, dtype=np.int64), off


def _u32_at(store: bytearray | np.ndarray, order: str) -> np.ndarray:
    """``store`` (bytes, or a uint8 array) as 32-bit numbers of byte order ``order`` at every byte
    offset (element i: the bytes i..i+3), through a view with a 1-byte stride (no copy)."""
    return np.ndarray((len(store) - 3,), dtype=order + "u4", buffer=store, strides=(1,))


class _Chain:
    """The record chain through one chunk, followed by numpy.

    Candidates are the offsets (from ``start`` on) whose 16 high bits of the timestamp seconds
    equal those of the record at ``start``: one vectorised compare over the chunk. Every candidate
    gets its successor ``offset + 16 + incl`` (a candidate index, or "none" when that offset is no
    whole candidate record); the chain from a known record start is then read off by pointer
    doubling. Only records a plain walk reaches are on it: a candidate inside some payload is never
    reached from a real record (each step is the real record's own length), and where the chain
    leaves the candidates the caller walks on by itself.
    """

    __slots__ = ("complete", "ends", "jumps", "pos")

    def __init__(self, store: bytearray, n: int, start: int, order: str, limit: int) -> None:
        hi_at = 2 if order == "<" else 0  # where the high half of ts_sec is in a record header
        u16 = np.dtype(order + "u2")
        high = np.frombuffer(store, dtype=u16, count=1, offset=start + hi_at)[0]
        first = start + hi_at
        last = n - 16 + hi_at  # the high half of the last record header that fits
        found = []
        for parity in (0, 1):
            at = first + parity
            count = (last - at) // 2 + 1
            if count > 0:
                hits = np.flatnonzero(np.frombuffer(store, dtype=u16, count=count, offset=at) == high)
                found.append(hits * 2 + (at - hi_at))
        pos = np.sort(np.concatenate(found), kind="stable") if found else np.zeros(0, dtype=np.int64)  # two runs: a merge
        self.pos = pos
        self.jumps: list[np.ndarray] = []
        if len(pos) > (n - start) // 24 + 64:  # payloads full of this pattern (zero timestamps...)
            self.complete = self.ends = pos[:0]
            self.pos = pos[:0]
            return
        incl = _u32_at(store, order)[pos + 8]
        ends = pos + 16 + incl.astype(np.int64)
        complete = (ends <= n) & (incl <= limit)
        idx = np.arange(1, len(pos) + 1)  # mostly the successor is the next candidate ...
        off = np.flatnonzero(ends[:-1] != pos[1:])
        idx[off] = np.searchsorted(pos, ends[off])  # ... else (a candidate inside a payload, the end) look it up
        if len(pos):
            idx[-1] = np.searchsorted(pos, ends[-1])
        ok = complete & (idx < len(pos))
        hit = np.flatnonzero(ok)
        ok[hit] = (pos[idx[hit]] == ends[hit]) & complete[idx[hit]]
        nxt = np.where(ok, idx, len(pos))
        self.jumps.append(np.append(nxt, len(pos)))  # the last entry: "none", which stays "none"
        self.ends = ends
        self.complete = complete

    def has(self, off: int) -> bool:
        """Whether ``off`` is a candidate with a whole record (so ``follow`` can start there)."""
        i = int(np.searchsorted(self.pos, off))
        return i < len(self.pos) and int(self.pos[i]) == off and bool(self.complete[i])

    def follow(self, off: int) -> tuple[np.ndarray, int]:
        """The chain from the record at ``off`` (``has(off)``): its record offsets and the end of the last."""
        none = len(self.pos)
        path = np.searchsorted(self.pos, [off])
        level = 0
        while True:  # path holds the first 2**level records of the chain
            if level == len(self.jumps):
                j = self.jumps[-1]
                self.jumps.append(j[j])
            more = self.jumps[level][path]
            more = more[more != none]  # "none" only ever follows the chain's last record
            if len(more):
                path = np.concatenate((path, more))
            if len(more) < len(path) - len(more) or not len(more):
                break
            level += 1
        return self.pos[path], int(self.ends[path[-1]])


def _general_batches(
    path: Path,
    name: str,
    skip: int,
    addrs: AddressTable,
    general: GeneralDecoder,
    vxlan_arr: np.ndarray,
    tunnel_arr: np.ndarray,
    warn: Callable[[str], None] | None,
    progress: Callable[[int], None] | None,
    *,
    heads: bool = False,
) -> Iterator[Batch]:
    size = max(os.path.getsize(path), 1)
    frames: list[Any] = []
    seen = 0  # record bytes so far: about the file offset for pcapng (an estimate when compressed)
    for raw in general.read_capture(name, warn):
        if raw.number <= skip:
            continue
        frames.append(raw)
        seen += len(raw.data) + 16
        if len(frames) >= FALLBACK_BATCH:
            yield _frames_batch(name, frames, addrs, general, vxlan_arr, tunnel_arr, heads=heads)
            frames = []
            if progress is not None:
                progress(min(size - 1, seen))
    if frames:
        yield _frames_batch(name, frames, addrs, general, vxlan_arr, tunnel_arr, heads=heads)
    if progress is not None:
        progress(size)


def _frames_batch(
    name: str,
    frames: list[Any],
    addrs: AddressTable,
    general: GeneralDecoder,
    vxlan_arr: np.ndarray,
    tunnel_arr: np.ndarray,
    *,
    heads: bool = False,
) -> Batch:
    datas = [bytes(f.data) for f in frames]
    cap = np.array([len(d) for d in datas], dtype=np.int64)
    start = np.zeros(len(datas), dtype=np.int64)
    if len(datas) > 1:
        np.cumsum(cap[:-1], out=start[1:])
    buf = b"".join(datas) + bytes(_PAD)
    wire = np.maximum(np.array([f.wire_len for f in frames], dtype=np.int64), cap)
    ifaces = [f.interface for f in frames]
    only = ifaces[0] if len(set(ifaces)) == 1 else None
    return _build_batch(
        name,
        buf,
        start,
        cap,
        wire,
        np.array([f.ts for f in frames], dtype=np.float64),
        np.array([f.number for f in frames], dtype=np.int64),
        np.array([f.linktype for f in frames], dtype=np.int32),
        lambda: only,
        addrs,
        general,
        vxlan_arr,
        tunnel_arr,
        interfaces=ifaces,
        heads=heads,
    )


def iter_rows(batches: Iterable[Batch], addrs: AddressTable) -> Iterator[dict[str, Any]]:
    """Per-frame dicts of the columns with addresses as text (tests and debugging only)."""
    for b in batches:
        for i in range(b.n):
            row: dict[str, Any] = {"file": b.file, "frame": int(b.frame[i]), "kind": int(b.kind[i])}
            for name, _dt, fill in _COLUMNS:
                v = int(getattr(b, name)[i])
                if name in ("src", "dst", "outer_src", "outer_dst"):
                    row[name] = addrs.name(v)
                elif name == "tunnel":
                    row[name] = addrs.tunnels.name(v)
                else:
                    row[name] = None if v == fill else v
            row["fallback"] = bool(b.fallback[i])
            row["ts"] = float(b.ts[i])
            row["wire_len"] = int(b.wire_len[i])
            yield row
