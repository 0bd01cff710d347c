"""Keyword-only factories that craft frames and capture files byte by byte (struct only).

Each factory returns ``Built``, a ``bytes`` that remembers what it is (its IP protocol or Ethernet
type and where its checksum sits), so the enclosing header fills in the protocol and the
checksums by itself::

    inner = ether(ipv4(tcp(sport=40000, dport=80, flags="S"), src="10.244.1.5", dst="10.244.2.7"))
    frame = ether(ipv4(udp(vxlan(inner, vni=1), sport=50000, dport=8472),
                       src="192.168.0.11", dst="192.168.0.12"))
    write_pcap(tmp_path / "c.pcap", [frame])

Checksums are correct unless a test passes an explicit value (``checksum=0x1234``; UDP ``0``
means "not used"). ``write_pcap`` / ``write_pcapng`` write any byte order and time resolution.
"""

from __future__ import annotations

import gzip
import ipaddress
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


class Built(bytes):
    """Bytes plus what the enclosing header needs: IP protocol / ethertype, checksum position."""

    proto: int | None = None  # IANA protocol number when this is an L4 / IP-in-IP payload
    ethertype: int | None = None  # when this is a network-layer packet (IPv4 0x0800, ARP 0x0806...)
    csum_at: int | None = None  # offset of a TCP/UDP/ICMPv6 checksum to fill from the pseudo-header


def _built(data: bytes, *, proto: int | None = None, ethertype: int | None = None,
           csum_at: int | None = None) -> Built:
    b = Built(data)
    b.proto, b.ethertype, b.csum_at = proto, ethertype, csum_at
    return b


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


# --- link layer ----------------------------------------------------------------------------------


def ether(payload: bytes, *, src: str = "02:00:00:00:00:01", dst: str = "02:00:00:00:00:02",
          ethertype: int | None = None) -> Built:
    etype = ethertype if ethertype is not None else getattr(payload, "ethertype", None) or 0x0800
    return _built(mac(dst) + mac(src) + struct.pack("!H", etype) + payload, ethertype=0x6558)


def vlan(payload: bytes, *, vid: int, pcp: int = 0, dei: int = 0, tpid: int = 0x8100) -> Built:
    """An 802.1Q tag (``tpid`` 0x88a8 for an 802.1ad S-tag) in front of ``payload``; wrap in ``ether``."""
    etype = getattr(payload, "ethertype", None) or 0x0800
    tci = (pcp << 13) | (dei << 12) | vid
    return _built(struct.pack("!HH", tci, etype) + payload, ethertype=tpid)


def sll(payload: bytes, *, pkttype: int = 0, arphrd: int = 1, addr: str = "02:00:00:00:00:01",
        protocol: int | None = None) -> Built:
    proto = protocol if protocol is not None else getattr(payload, "ethertype", None) or 0x0800
    a = mac(addr)
    return _built(struct.pack("!HHH", pkttype, arphrd, len(a)) + a.ljust(8, b"\x00") + struct.pack("!H", proto)
                  + payload)


def sll2(payload: bytes, *, ifindex: int = 2, pkttype: int = 0, arphrd: int = 1,
         addr: str = "02:00:00:00:00:01", protocol: int | None = None) -> Built:
    proto = protocol if protocol is not None else getattr(payload, "ethertype", None) or 0x0800
    a = mac(addr)
    return _built(struct.pack("!HHIHBB", proto, 0, ifindex, arphrd, pkttype, len(a)) + a.ljust(8, b"\x00")
                  + payload)


def arp(*, op: int = 1, sender_mac: str = "02:00:00:00:00:01", sender_ip: str = "10.0.0.1",
        target_mac: str = "00:00:00:00:00:00", target_ip: str = "10.0.0.2") -> Built:
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac(sender_mac) + ipaddress.IPv4Address(sender_ip).packed
    body += mac(target_mac) + ipaddress.IPv4Address(target_ip).packed
    return _built(body, ethertype=0x0806)


# --- network layer -------------------------------------------------------------------------------


def _fill_l4(payload: bytes, pseudo: bytes) -> bytes:
    at = getattr(payload, "csum_at", None)
    if at is None or payload[at : at + 2] != b"\xff\xfe":  # \xff\xfe marks "compute me"
        return bytes(payload)
    body = bytearray(payload)
    body[at : at + 2] = b"\x00\x00"
    csum = inet_checksum(pseudo + bytes(body))
    if getattr(payload, "proto", None) == 17 and csum == 0:
        csum = 0xFFFF
    body[at : at + 2] = struct.pack("!H", csum)
    return bytes(body)


def ipv4(payload: bytes = b"", *, src: str = "10.0.0.1", dst: str = "10.0.0.2", proto: int | None = None,
         ttl: int = 64, ident: int = 1, df: bool = False, mf: bool = False, frag_offset: int = 0,
         tos: int = 0, options: bytes = b"", total_len: int | None = None, checksum: int | None = None,
         version: int = 4, ihl: int | None = None) -> Built:
    """An IPv4 header before ``payload``; ``proto`` defaults to the payload's, ``frag_offset`` in bytes."""
    p = proto if proto is not None else getattr(payload, "proto", None)
    p = 253 if p is None else p  # 253: "for experimentation"
    hl = 20 + len(options)
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    if frag_offset == 0:
        pseudo = s + d + struct.pack("!BBH", 0, p, len(payload))
        payload = _fill_l4(payload, pseudo)
    total = hl + len(payload) if total_len is None else total_len
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_offset // 8)
    vihl = (version << 4) | ((ihl if ihl is not None else hl // 4) & 0x0F)
    head = struct.pack("!BBHHHBBH4s4s", vihl, tos, total, ident, flags, ttl, p, 0, s, d) + options
    csum = inet_checksum(head) if checksum is None else checksum
    head = head[:10] + struct.pack("!H", csum) + head[12:]
    return _built(head + payload, proto=4, ethertype=0x0800)


def ipv6(payload: bytes = b"", *, src: str = "fd00::1", dst: str = "fd00::2", nh: int | None = None,
         hop_limit: int = 64, ext: bytes = b"", ext_nh: int | None = None, payload_len: int | None = None,
         flow_label: int = 0, traffic_class: int = 0) -> Built:
    """An IPv6 header; ``ext`` is a pre-built extension-header chain whose first type is ``ext_nh``."""
    p = nh if nh is not None else getattr(payload, "proto", None)
    p = 59 if p is None else p
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    pseudo = s + d + struct.pack("!I3xB", len(payload), p)
    payload = _fill_l4(payload, pseudo)
    plen = len(ext) + len(payload) if payload_len is None else payload_len
    first = ext_nh if ext else p
    word = (6 << 28) | (traffic_class << 20) | flow_label
    head = struct.pack("!IHBB", word, plen, first, hop_limit) + s + d
    return _built(head + ext + payload, proto=41, ethertype=0x86DD)


def ipv6_ext(nh: int, *, kind: int = 0, body: bytes = b"\x00" * 6) -> bytes:
    """One generic extension header (hop-by-hop 0, routing 43, destination 60) with next header ``nh``."""
    if kind == 44:
        raise ValueError("use ipv6_frag for fragment headers")
    length = 2 + len(body)
    assert length % 8 == 0, "extension headers are multiples of 8 bytes"
    return struct.pack("!BB", nh, length // 8 - 1) + body


def ipv6_frag(nh: int, *, offset: int = 0, mf: bool = False, ident: int = 0x1234) -> bytes:
    return struct.pack("!BBHI", nh, 0, offset | (1 if mf else 0), ident)


# --- transport -----------------------------------------------------------------------------------


def udp(payload: bytes = b"", *, sport: int = 40000, dport: int = 53, checksum: int | None = None,
        length: int | None = None) -> Built:
    """UDP; the checksum is computed by the IP header unless given (0 = not used)."""
    ulen = 8 + len(payload) if length is None else length
    csum = b"\xff\xfe" if checksum is None else struct.pack("!H", checksum)
    return _built(struct.pack("!HHH", sport, dport, ulen) + csum + payload, proto=17, csum_at=6)


def tcp(payload: bytes = b"", *, sport: int = 40000, dport: int = 80, flags: str = "S", seq: int = 0,
        ack: int = 0, window: int = 64240, mss: int | None = None, wscale: int | None = None,
        options: bytes = b"", data_offset: int | None = None, checksum: int | None = None) -> Built:
    opts = options
    if mss is not None:
        opts += struct.pack("!BBH", 2, 4, mss)
    if wscale is not None:
        opts += struct.pack("!BBB", 3, 3, wscale) + b"\x01"
    opts += b"\x01" * (-len(opts) % 4)
    hl = 20 + len(opts)
    doff = (data_offset if data_offset is not None else hl // 4) << 4
    bits = 0
    for ch in flags:
        bits |= TCP_FLAGS[ch]
    csum = b"\xff\xfe" if checksum is None else struct.pack("!H", checksum)
    head = struct.pack("!HHIIBBH", sport, dport, seq, ack, doff, bits, window) + csum + b"\x00\x00" + opts
    return _built(head + payload, proto=6, csum_at=16)


def sctp(*, sport: int = 5000, dport: int = 5001, vtag: int = 7) -> Built:
    return _built(struct.pack("!HHII", sport, dport, vtag, 0), proto=132)


def icmp(payload: bytes = b"", *, type: int = 8, code: int = 0, ident: int = 1, seq: int = 1,
         rest: bytes | None = None) -> Built:
    """ICMPv4; ``rest`` (4 bytes) replaces id/seq (e.g. unused + next-hop MTU for frag-needed)."""
    word = rest if rest is not None else struct.pack("!HH", ident, seq)
    body = struct.pack("!BBH", type, code, 0) + word + payload
    csum = inet_checksum(body)
    return _built(body[:2] + struct.pack("!H", csum) + body[4:], proto=1)


def icmp_frag_needed(quoted: bytes, *, mtu: int) -> Built:
    return icmp(quoted, type=3, code=4, rest=struct.pack("!HH", 0, mtu))


def icmpv6(payload: bytes = b"", *, type: int = 128, code: int = 0, rest: bytes | None = None,
           ident: int = 1, seq: int = 1) -> Built:
    word = rest if rest is not None else struct.pack("!HH", ident, seq)
    return _built(struct.pack("!BB", type, code) + b"\xff\xfe" + word + payload, proto=58, csum_at=2)


# --- tunnels -------------------------------------------------------------------------------------


def vxlan(inner: bytes, *, vni: int, flags: int = 0x08, group_policy: int = 0) -> Built:
    """VXLAN header (+ the inner Ethernet frame); put it in ``udp(dport=8472 or 4789)``."""
    return _built(struct.pack("!BBH", flags, 0, group_policy) + vni.to_bytes(3, "big") + b"\x00" + inner)


def geneve(inner: bytes, *, vni: int, protocol: int = 0x6558, options: bytes = b"", critical: bool = False) -> Built:
    assert len(options) % 4 == 0
    first = len(options) // 4
    second = 0x40 if critical else 0
    return _built(struct.pack("!BBH", first, second, protocol) + vni.to_bytes(3, "big") + b"\x00" + options + inner)


def geneve_option(*, cls: int = 0x0102, type: int = 0x80, data: bytes = b"\x00" * 4) -> bytes:
    assert len(data) % 4 == 0
    return struct.pack("!HBB", cls, type, len(data) // 4) + data


def gre(inner: bytes, *, protocol: int | None = None, key: int | None = None, seq: int | None = None,
        checksum: bool = False) -> Built:
    proto = protocol if protocol is not None else getattr(inner, "ethertype", None) or 0x0800
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    opt = b""
    if checksum:
        opt += b"\x00\x00\x00\x00"
    if key is not None:
        opt += struct.pack("!I", key)
    if seq is not None:
        opt += struct.pack("!I", seq)
    body = struct.pack("!HH", flags, proto) + opt + inner
    if checksum:
        c = inet_checksum(body)
        body = body[:4] + struct.pack("!H", c) + body[6:]
    return _built(body, proto=47)


# --- capture files -------------------------------------------------------------------------------

Frame = bytes | tuple[float, bytes] | tuple[float, bytes, int]


def _frames(frames: Iterable[Frame]) -> list[tuple[float, bytes, int]]:
    out = []
    for i, f in enumerate(frames):
        if isinstance(f, tuple):
            ts, data = f[0], f[1]
            wire = f[2] if len(f) > 2 else len(data)  # type: ignore[misc]
        else:
            ts, data, wire = 1_700_000_000.0 + i * 0.001, f, len(f)
        out.append((ts, bytes(data), wire))
    return out


def pcap_bytes(frames: Iterable[Frame], *, linktype: int = 1, nanos: bool = False, big_endian: bool = False,
               snaplen: int = 262144) -> bytes:
    o = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    tps = 1_000_000_000 if nanos else 1_000_000
    for ts, data, wire in _frames(frames):
        ticks = round(ts * tps)
        out.append(struct.pack(o + "IIII", ticks // tps, ticks % tps, len(data), wire) + data)
    return b"".join(out)


def write_pcap(path: Path, frames: Iterable[Frame], *, linktype: int = 1, nanos: bool = False,
               big_endian: bool = False, snaplen: int = 262144, gz: bool = False) -> Path:
    data = pcap_bytes(frames, linktype=linktype, nanos=nanos, big_endian=big_endian, snaplen=snaplen)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _block(o: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(o + "II", btype, n) + body + struct.pack(o + "I", n)


def _opt(o: str, code: int, value: bytes) -> bytes:
    return struct.pack(o + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def pcapng_bytes(packets: Iterable[tuple[int, Frame]] | Iterable[Frame], *,
                 interfaces: Sequence[tuple[int, str | None] | tuple[int, str | None, int]] = ((1, None),),
                 big_endian: bool = False, simple: bool = False, tsoffset: int = 0) -> bytes:
    """A one-section pcapng file. ``interfaces``: (linktype, if_name[, if_tsresol byte]).

    ``packets``: frames on interface 0, or ``(interface index, frame)`` pairs. ``simple`` writes
    SPBs (no timestamp, interface 0) instead of EPBs.
    """
    o = ">" if big_endian else "<"
    out = [_block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _opt(o, 0, b""))]
    resols = []
    for iface in interfaces:
        linktype, name = iface[0], iface[1]
        tsresol = iface[2] if len(iface) > 2 else 6  # type: ignore[misc]
        opts = b""
        if name is not None:
            opts += _opt(o, 2, name.encode())
        if len(iface) > 2:
            opts += _opt(o, 9, bytes([tsresol]))
        if tsoffset:
            opts += _opt(o, 14, struct.pack(o + "q", tsoffset))
        if opts:
            opts += _opt(o, 0, b"")
        out.append(_block(o, 1, struct.pack(o + "HHI", linktype, 0, 0) + opts))
        resols.append(tsresol)
    pairs: list[tuple[int, Frame]] = []
    for p in packets:
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], int) and isinstance(p[1], bytes | tuple):
            pairs.append(p)  # type: ignore[arg-type]
        else:
            pairs.append((0, p))  # type: ignore[arg-type]
    for i, (if_id, f) in enumerate(pairs):
        [(ts, data, wire)] = _frames([f]) if isinstance(f, tuple) else [(1_700_000_000.0 + i * 0.001, f, len(f))]
        if simple:
            out.append(_block(o, 3, struct.pack(o + "I", wire) + data))
            continue
        r = resols[if_id]
        ticks = round((ts - tsoffset) * (2 ** (r & 0x7F) if r & 0x80 else 10**r))
        out.append(_block(o, 6, struct.pack(o + "IIIII", if_id, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
                          + data))
    return b"".join(out)


def write_pcapng(path: Path, packets: Iterable[tuple[int, Frame]] | Iterable[Frame], *,
                 interfaces: Sequence[tuple[int, str | None] | tuple[int, str | None, int]] = ((1, None),),
                 big_endian: bool = False, simple: bool = False, tsoffset: int = 0, gz: bool = False) -> Path:
    data = pcapng_bytes(packets, interfaces=interfaces, big_endian=big_endian, simple=simple, tsoffset=tsoffset)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def vxlan_tcp_frame(*, vni: int = 1, outer_src: str = "192.168.0.11", outer_dst: str = "192.168.0.12",
                    src: str = "10.244.1.5", dst: str = "10.244.2.7", sport: int = 40000, dport: int = 80,
                    flags: str = "S", payload: bytes = b"", port: int = 8472, udp_checksum: int | None = 0) -> Built:
    """A flannel-style VXLAN frame: node -> node UDP ``port`` carrying pod -> pod TCP."""
    inner = ether(ipv4(tcp(payload, sport=sport, dport=dport, flags=flags, mss=1410 if "S" in flags else None),
                       src=src, dst=dst, df=True), src="0a:58:0a:f4:01:05", dst="0a:58:0a:f4:02:07")
    return ether(ipv4(udp(vxlan(inner, vni=vni), sport=51000, dport=port, checksum=udp_checksum),
                      src=outer_src, dst=outer_dst))
