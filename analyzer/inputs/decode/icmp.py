"""ICMP; error messages (unreachable, time exceeded, redirect...) quote the offending packet,
which is decoded as far as it goes (a quoted VXLAN packet shows its inner addresses too)."""

from __future__ import annotations

import socket

from analyzer.inputs.decode.ipv4 import decode_ipv4
from analyzer.inputs.decode.registry import Cursor, bind_ip_proto
from analyzer.model.packet import ICMP, ICMP_ERROR_TYPES

ICMP_HEADER = 8
_ID_SEQ_TYPES = frozenset({0, 8, 13, 14, 15, 16, 17, 18})


def decode_icmp(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    stop = (end if end < cur.n else cur.n)
    if stop - off < 4:
        cur.truncated(off, "ICMP header", ICMP_HEADER, end)
        return
    itype, code = data[off], data[off + 1]
    csum = (data[off + 2] << 8) | data[off + 3]
    ident = seq = mtu = None
    gateway = None
    full = stop - off >= ICMP_HEADER
    if full:
        if itype in _ID_SEQ_TYPES:
            ident = (data[off + 4] << 8) | data[off + 5]
            seq = (data[off + 6] << 8) | data[off + 7]
        elif itype == 3 and code == 4:
            mtu = (data[off + 6] << 8) | data[off + 7]
        elif itype == 5:
            gateway = socket.inet_ntoa(data[off + 4 : off + 8])
    is_error = itype in ICMP_ERROR_TYPES
    cur.layers.append(ICMP(off, min(ICMP_HEADER, stop - off), itype, code, csum, ident, seq, mtu, gateway, is_error))
    if not full:
        cur.short(off, "ICMP header", ICMP_HEADER, end)
        return
    if not cur.quoted:
        cur.payload_offset, cur.payload_end = off + ICMP_HEADER, end
    if is_error and stop > off + ICMP_HEADER:
        cur.quote(decode_ipv4, off + ICMP_HEADER, end)


bind_ip_proto(1, decode_icmp)
