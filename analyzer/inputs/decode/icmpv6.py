"""ICMPv6; errors (unreachable, packet too big, time exceeded, parameter problem) quote the
offending IPv6 packet, decoded as far as it goes."""

from __future__ import annotations

import socket

from analyzer.inputs.decode.ipv6 import decode_ipv6
from analyzer.inputs.decode.registry import Cursor, bind_ip_proto
from analyzer.model.packet import ICMPV6_ERROR_TYPES, ICMPv6

ICMPV6_HEADER = 8


def decode_icmpv6(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    stop = (end if end < cur.n else cur.n)
    if stop - off < 4:
        cur.truncated(off, "ICMPv6 header", ICMPV6_HEADER, end)
        return
    itype, code = data[off], data[off + 1]
    csum = (data[off + 2] << 8) | data[off + 3]
    ident = seq = mtu = None
    target = None
    full = stop - off >= ICMPV6_HEADER
    if full:
        if itype in (128, 129):
            ident = (data[off + 4] << 8) | data[off + 5]
            seq = (data[off + 6] << 8) | data[off + 7]
        elif itype == 2:
            mtu = int.from_bytes(data[off + 4 : off + 8], "big")
        elif itype in (135, 136, 137) and stop - off >= 24:
            target = socket.inet_ntop(socket.AF_INET6, data[off + 8 : off + 24])
    is_error = itype in ICMPV6_ERROR_TYPES
    cur.layers.append(
        ICMPv6(off, min(ICMPV6_HEADER, stop - off), itype, code, csum, ident, seq, mtu, target, is_error)
    )
    if not full:
        cur.short(off, "ICMPv6 header", ICMPV6_HEADER, end)
        return
    if not cur.quoted:
        cur.payload_offset, cur.payload_end = off + ICMPV6_HEADER, end
    if is_error and stop > off + ICMPV6_HEADER:
        cur.quote(decode_ipv6, off + ICMPV6_HEADER, end)


bind_ip_proto(58, decode_icmpv6)
