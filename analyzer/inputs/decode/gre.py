"""GRE (RFC 2784/2890: checksum, key, sequence) and enhanced GRE v1 (PPTP) with its PPP header.

The payload type is an Ethernet type: 0x0800/0x86dd IP, 0x6558 transparent Ethernet bridging
(an Ethernet frame follows), 0x880b PPP (v1). Headers between GRE and its payload are counted in
the GRE layer's length: the PPP header, Cisco MetaData (0x8909) and ERSPAN II/III (0x88be,
0x22eb: mirrored Ethernet frames, as cloud traffic mirroring sends them).
"""

from __future__ import annotations

from analyzer.inputs.decode.registry import ETHERTYPES, Cursor, bind_ip_proto
from analyzer.model.packet import GRE

GRE_MIN = 4
PPP = 0x880B
CISCO_METADATA = 0x8909  # 8 bytes: payload ethertype, version, length, options, SGT
ERSPAN_2 = 0x88BE  # ERSPAN type II (8-byte header; type I when GRE has no sequence number)
ERSPAN_3 = 0x22EB  # ERSPAN type III (12 bytes, +8 with the O flag)
TEB = 0x6558
#: PPP protocol -> Ethernet type of the payload
_PPP_TO_ETHERTYPE = {0x0021: 0x0800, 0x0057: 0x86DD}


def decode_gre(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    stop = (end if end < cur.n else cur.n)
    if stop - off < GRE_MIN:
        cur.truncated(off, "GRE header", GRE_MIN, end)
        return
    flags = (data[off] << 8) | data[off + 1]
    version = flags & 0x7
    protocol = (data[off + 2] << 8) | data[off + 3]
    pos = off + GRE_MIN
    checksum = key = seq = ack = None
    payload_len: int | None = None
    need = GRE_MIN
    if version == 0:
        need += 4 * (bool(flags & 0xC000) + bool(flags & 0x2000) + bool(flags & 0x1000))
    elif version == 1:
        need += 4 + 4 * bool(flags & 0x1000) + 4 * bool(flags & 0x0080)
    else:
        cur.layers.append(GRE(off, GRE_MIN, version, protocol, flags, None, None, None, None, None))
        cur.note(f"byte {off}: GRE version {version} is unknown")
        cur.raw(pos, end, f"GRE version {version} payload")
        return
    if stop - off < need:
        cur.truncated(off, "GRE header", need, end)
        return
    if version == 0:
        if flags & 0xC000:
            checksum = (data[pos] << 8) | data[pos + 1]
            pos += 4
        if flags & 0x2000:
            key = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
        if flags & 0x1000:
            seq = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
        if flags & 0x4000:
            cur.note(f"byte {off}: GRE routing present (obsolete); payload not decoded")
            cur.layers.append(GRE(off, pos - off, version, protocol, flags, checksum, key, seq, None, None))
            cur.raw(pos, end, "GRE source routes")
            return
    else:
        payload_len = (data[pos] << 8) | data[pos + 1]
        key = (data[pos + 2] << 8) | data[pos + 3]  # the call ID
        pos += 4
        if flags & 0x1000:
            seq = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
        if flags & 0x0080:
            ack = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
    ppp_protocol = None
    etype = protocol
    if protocol == PPP and pos < stop:
        ppp = pos
        if stop - ppp >= 2 and data[ppp] == 0xFF and data[ppp + 1] == 0x03:
            ppp += 2
        if ppp < stop and data[ppp] & 1:  # compressed one-byte protocol field
            ppp_protocol = data[ppp]
            ppp += 1
        elif stop - ppp >= 2:
            ppp_protocol = (data[ppp] << 8) | data[ppp + 1]
            ppp += 2
        pos = ppp
        etype = _PPP_TO_ETHERTYPE.get(ppp_protocol or -1, -1)
    elif protocol == CISCO_METADATA and stop - pos >= 8:
        etype = (data[pos] << 8) | data[pos + 1]
        pos += 8
    elif protocol == ERSPAN_2:  # port mirroring: the mirrored Ethernet frame follows
        etype = TEB
        if flags & 0x1000:
            pos += 8
    elif protocol == ERSPAN_3 and stop - pos >= 12:
        etype = TEB
        pos += 20 if data[pos + 11] & 0x01 else 12
    cur.layers.append(GRE(off, pos - off, version, protocol, flags, checksum, key, seq, ack, ppp_protocol))
    if payload_len == 0 or pos >= stop:
        return
    if etype == -1:
        cur.raw(pos, end, f"PPP protocol 0x{ppp_protocol or 0:04x}")
    elif etype not in ETHERTYPES:
        cur.raw(pos, end, f"GRE protocol 0x{etype:04x}")
    else:
        cur.ethertype(etype, pos, end)


bind_ip_proto(47, decode_gre)
