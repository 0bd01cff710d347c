"""The common frames' ``PacketRecord`` in one pass at fixed offsets, equal to the general decoder's.

``explain`` keeps a few sampled frames per flow and needs each as a ``PacketRecord``; the general
decoder (``decode_frame`` + ``to_record``) builds every layer as an object first, ~60 µs a frame.
Almost every sampled frame of a flannel capture has one of five shapes:

* Ethernet / IPv4 / TCP or UDP
* Ethernet / IPv4 / UDP (VXLAN port) / VXLAN / Ethernet / IPv4 / TCP or UDP
* Ethernet / IPv4 / IPIP / IPv4 / TCP or UDP

``quick_record`` builds those directly, and only when nothing about the frame would make the
general decoder write a note or take another branch: a 20-byte IPv4 header, not a fragment, its
total length within the captured bytes and its carrier, sane TCP/UDP lengths, well-formed TCP
options, a VXLAN header with the I flag, an outer UDP checksum of 0 (not verified, as the
general decoder leaves it) and no further tunnel inside. Anything else returns ``None`` and the
caller uses the general decoder: the record is then the same by construction.
``tests/explain/test_explain_fastlane.py`` checks record equality on every frame of generated
mixes, the lab samples and corpus captures.
"""

from __future__ import annotations

import struct
import zlib

from analyzer.inputs.decode.names import _MAC, _V4, ipv4_text, mac_text
from analyzer.inputs.decode.record import _DEFAULTS, _IX, HASH_BYTES, _build
from analyzer.inputs.decode.tcp import scan_options
from analyzer.model.record import PacketRecord

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBB")
_UDP = struct.Struct("!HHHH")

#: the record's fields in the order ``quick_record`` passes them (it checks itself at import)
_ORDER = ("file", "frame", "ts", "interface", "wire_len", "cap_len", "linktype", "sll_pkttype", "ip_version", "src",
          "dst", "proto", "ip_id", "ip_total_len", "df", "ttl", "frag_offset", "more_fragments", "sport", "dport",
          "tcp_flags", "seq", "ack", "payload_len", "payload_hash", "tcp_mss", "icmp_type", "icmp_code", "icmp_mtu",
          "quoted", "tunnel", "vni", "outer_src", "outer_dst", "outer_sport", "outer_dport", "outer_ip_total_len",
          "outer_df", "outer_udp_csum_ok", "tunnel_depth", "src_mac", "dst_mac", "vlan", "arp_op", "arp_sender_ip",
          "arp_target_ip", "arp_sender_mac", "notes")
if tuple(_IX)[: len(_ORDER)] != _ORDER:  # pragma: no cover - a reordered PacketRecord
    raise ImportError("analyzer.inputs.decode.quick: PacketRecord's fields changed order")
_TAIL = _DEFAULTS[len(_ORDER):]  # fields added later keep their defaults


def _ipv4(data: bytes, off: int, end: int) -> tuple | None:
    """(src, dst, proto, ident, df, ttl, total, stop) of a plain IPv4 header the general decoder
    takes without a note: version 4, no options, not a fragment, whole within ``end``."""
    if end - off < 20:
        return None
    vihl, _tos, total, ident, frag, ttl, proto, _csum, src, dst = _IPV4.unpack_from(data, off)
    if vihl != 0x45 or total < 20 or off + total > end or frag & 0x3FFF:
        return None
    return src, dst, proto, ident, bool(frag & 0x4000), ttl, total, off + total


def quick_record(file: str, number: int, ts: float, linktype: int, data: bytes, wire_len: int,
                 interface: str | None, udp_ports: dict[int, str]) -> PacketRecord | None:
    """The record of an Ethernet frame of one of the module's shapes, else None (see module doc).
    ``udp_ports``: UDP port -> tunnel kind, as ``decode_frame`` builds it (``_port_map``)."""
    if linktype != 1:
        return None
    if type(data) is not bytes:  # (slices of it are looked up in the name caches)
        data = bytes(data)
    cap = len(data)
    if cap < 34 or data[12] != 0x08 or data[13] != 0x00:
        return None
    outer = _ipv4(data, 14, cap)
    if outer is None:
        return None
    mac_at = 0
    ip = outer
    ip_off = 14
    proto = outer[2]
    tunnel = vni = osrc = odst = osport = odport = ototal = None
    odf = False
    depth = 0
    if proto == 4:  # IPIP: the inner IPv4 header right after the outer one
        inner = _ipv4(data, 34, outer[7])
        if inner is None or inner[2] not in (6, 17):
            return None
        ip, ip_off, proto = inner, 34, inner[2]
        tunnel, depth, osrc, odst, ototal, odf = "ipip", 1, ipv4_text(outer[0]), ipv4_text(outer[1]), outer[6], outer[4]
    elif proto == 17:
        stop = outer[7]
        if stop - 34 < 8:
            return None
        sport, dport, ulen, csum = _UDP.unpack_from(data, 34)
        kind = udp_ports.get(dport) or udp_ports.get(sport)
        if kind is not None:
            if kind != "vxlan" or csum or ulen < 8 or 34 + ulen > stop:
                return None
            ustop = 34 + ulen
            # VXLAN header, inner Ethernet, inner IPv4
            if ustop - 42 < 8 or not data[42] & 0x08 or ustop - 50 < 14 or data[62] != 0x08 or data[63] != 0x00:
                return None
            inner = _ipv4(data, 64, ustop)
            if inner is None or inner[2] not in (6, 17):
                return None
            tunnel, depth, vni = "vxlan", 1, (data[46] << 16) | (data[47] << 8) | data[48]
            osport, odport, osrc, odst = sport, dport, ipv4_text(outer[0]), ipv4_text(outer[1])
            ototal, odf = outer[6], outer[4]
            ip, ip_off, proto, mac_at = inner, 64, inner[2], 50
    elif proto != 6:
        return None
    src, dst, _p, ident, df, ttl, total, ip_stop = ip
    l4 = ip_off + 20
    flags = seq = ack = mss = None
    if proto == 6:
        if ip_stop - l4 < 20:
            return None
        sport, dport, seq, ack, doff, flags = _TCP.unpack_from(data, l4)
        hl = (doff >> 4) * 4
        if hl < 20 or hl > ip_stop - l4:
            return None
        if hl > 20:
            mss, _wscale, bad = scan_options(data, l4 + 20, l4 + hl)
            if bad is not None:
                return None
        pay_start = l4 + hl
        pay_len = ip_stop - pay_start
    else:
        if ip_stop - l4 < 8:
            return None
        sport, dport, ulen, _csum = _UDP.unpack_from(data, l4)
        if ulen < 8 or l4 + ulen > ip_stop:
            return None
        if udp_ports.get(dport) or udp_ports.get(sport):  # a tunnel inside: the general decoder's
            return None
        pay_start = l4 + 8
        pay_len = ulen - 8
    phash = None
    if pay_len and pay_start < cap:
        end = pay_start + (pay_len if pay_len < HASH_BYTES else HASH_BYTES)
        phash = zlib.crc32(data[pay_start : end if end < cap else cap])
    v4 = _V4
    smac, dmac = data[mac_at + 6 : mac_at + 12], data[mac_at : mac_at + 6]
    return _build(file, number, ts, interface, wire_len, cap, linktype, None, 4, v4.get(src) or ipv4_text(src),
                  v4.get(dst) or ipv4_text(dst),
                  proto, ident, total, df, ttl, 0, False, sport, dport, flags, seq, ack, pay_len, phash, mss, None,
                  None, None, None, tunnel, vni, osrc, odst, osport, odport, ototal, odf, None, depth,
                  _MAC.get(smac) or mac_text(smac), _MAC.get(dmac) or mac_text(dmac), None, None, None,
                  None, None, (), *_TAIL)
