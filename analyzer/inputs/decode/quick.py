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

from analyzer.inputs.decode.names import ipv4_text, mac_text
from analyzer.inputs.decode.record import _DEFAULTS, _IX, HASH_BYTES, _build
from analyzer.model.record import PacketRecord

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBB")
_UDP = struct.Struct("!HHHH")

_I_SLL = _IX["sll_pkttype"]
_I_VER = _IX["ip_version"]
_I_SRC = _IX["src"]
_I_DST = _IX["dst"]
_I_PROTO = _IX["proto"]
_I_ID = _IX["ip_id"]
_I_TOTAL = _IX["ip_total_len"]
_I_DF = _IX["df"]
_I_TTL = _IX["ttl"]
_I_SPORT = _IX["sport"]
_I_DPORT = _IX["dport"]
_I_FLAGS = _IX["tcp_flags"]
_I_SEQ = _IX["seq"]
_I_ACK = _IX["ack"]
_I_PLEN = _IX["payload_len"]
_I_HASH = _IX["payload_hash"]
_I_MSS = _IX["tcp_mss"]
_I_TUNNEL = _IX["tunnel"]
_I_VNI = _IX["vni"]
_I_OSRC = _IX["outer_src"]
_I_ODST = _IX["outer_dst"]
_I_OSPORT = _IX["outer_sport"]
_I_ODPORT = _IX["outer_dport"]
_I_OTOTAL = _IX["outer_ip_total_len"]
_I_ODF = _IX["outer_df"]
_I_DEPTH = _IX["tunnel_depth"]
_I_SMAC = _IX["src_mac"]
_I_DMAC = _IX["dst_mac"]
assert _I_SLL >= 7 and _DEFAULTS[_I_SLL] is None


def _ipv4(data: bytes, off: int, end: int) -> tuple | None:
    """(src, dst, proto, ident, df, ttl, total, stop) of a plain IPv4 header the general decoder
    takes without a note: version 4, no options, not a fragment, whole within ``end``."""
    if end - off < 20:
        return None
    vihl, _tos, total, ident, frag, ttl, proto, _csum, src, dst = _IPV4.unpack_from(data, off)
    if vihl != 0x45 or total < 20 or off + total > end or frag & 0x3FFF:
        return None
    return src, dst, proto, ident, bool(frag & 0x4000), ttl, total, off + total


def _tcp_options(data: bytes, pos: int, stop: int) -> tuple[bool, int | None]:
    """(well formed, MSS) exactly as ``decode.tcp._options`` reads them."""
    mss = None
    while pos < stop:
        kind = data[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= stop:
            break
        olen = data[pos + 1]
        if olen < 2 or pos + olen > stop:
            return False, None
        if kind == 2 and olen == 4:
            mss = (data[pos + 2] << 8) | data[pos + 3]
        pos += olen
    return True, mss


def quick_record(file: str, number: int, ts: float, linktype: int, data: bytes, wire_len: int,
                 interface: str | None, udp_ports: dict[int, str]) -> PacketRecord | None:
    """The record of an Ethernet frame of one of the module's shapes, else None (see module doc).
    ``udp_ports``: UDP port -> tunnel kind, as ``decode_frame`` builds it (``_port_map``)."""
    if linktype != 1:
        return None
    cap = len(data)
    if cap < 34 or data[12] != 0x08 or data[13] != 0x00:
        return None
    outer = _ipv4(data, 14, cap)
    if outer is None:
        return None
    fields = list(_DEFAULTS)
    mac_at = 0
    ip = outer
    ip_off = 14
    proto = outer[2]
    if proto == 4:  # IPIP: the inner IPv4 header right after the outer one
        inner = _ipv4(data, 34, outer[7])
        if inner is None or inner[2] not in (6, 17):
            return None
        ip, ip_off, proto = inner, 34, inner[2]
        fields[_I_TUNNEL] = "ipip"
        fields[_I_DEPTH] = 1
        fields[_I_OSRC] = ipv4_text(outer[0])
        fields[_I_ODST] = ipv4_text(outer[1])
        fields[_I_OTOTAL] = outer[6]
        fields[_I_ODF] = outer[4]
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
            fields[_I_TUNNEL] = "vxlan"
            fields[_I_DEPTH] = 1
            fields[_I_VNI] = (data[46] << 16) | (data[47] << 8) | data[48]
            fields[_I_OSPORT] = sport
            fields[_I_ODPORT] = dport
            fields[_I_OSRC] = ipv4_text(outer[0])
            fields[_I_ODST] = ipv4_text(outer[1])
            fields[_I_OTOTAL] = outer[6]
            fields[_I_ODF] = outer[4]
            ip, ip_off, proto, mac_at = inner, 64, inner[2], 50
    elif proto != 6:
        return None
    src, dst, _p, ident, df, ttl, total, ip_stop = ip
    l4 = ip_off + 20
    if proto == 6:
        if ip_stop - l4 < 20:
            return None
        sport, dport, seq, ack, doff, flags = _TCP.unpack_from(data, l4)
        hl = (doff >> 4) * 4
        if hl < 20 or hl > ip_stop - l4:
            return None
        mss = None
        if hl > 20:
            ok, mss = _tcp_options(data, l4 + 20, l4 + hl)
            if not ok:
                return None
        fields[_I_FLAGS] = flags
        fields[_I_SEQ] = seq
        fields[_I_ACK] = ack
        fields[_I_MSS] = mss
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
    fields[_I_SPORT] = sport
    fields[_I_DPORT] = dport
    fields[_I_PLEN] = pay_len
    if pay_len and pay_start < cap:
        end = pay_start + (pay_len if pay_len < HASH_BYTES else HASH_BYTES)
        fields[_I_HASH] = zlib.crc32(data[pay_start : end if end < cap else cap])
    fields[_I_VER] = 4
    fields[_I_SRC] = ipv4_text(src)
    fields[_I_DST] = ipv4_text(dst)
    fields[_I_PROTO] = proto
    fields[_I_ID] = ident
    fields[_I_DF] = df
    fields[_I_TTL] = ttl
    fields[_I_TOTAL] = total
    fields[_I_DMAC] = mac_text(data[mac_at : mac_at + 6])
    fields[_I_SMAC] = mac_text(data[mac_at + 6 : mac_at + 12])
    fields[0:7] = (file, number, ts, interface, wire_len, cap, linktype)
    return _build(*fields)
