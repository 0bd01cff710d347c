"""ARP (Ethernet/IPv4 addresses decoded; other hardware or protocol types keep op and types)."""

from __future__ import annotations

import socket

from analyzer.inputs.decode.registry import Cursor, bind_ethertype
from analyzer.model.packet import ARP

ARP_FIXED = 8


def decode_arp(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    stop = (end if end < cur.n else cur.n)
    if stop - off < ARP_FIXED:
        cur.truncated(off, "ARP header", ARP_FIXED, end)
        return
    hwtype = (data[off] << 8) | data[off + 1]
    ptype = (data[off + 2] << 8) | data[off + 3]
    hlen, plen = data[off + 4], data[off + 5]
    op = (data[off + 6] << 8) | data[off + 7]
    length = ARP_FIXED + 2 * (hlen + plen)
    smac = sip = tmac = tip = None
    if stop - off < length:
        cur.short(off, "ARP packet", length, end)
        length = stop - off
    elif hlen == 6 and plen == 4:
        p = off + 8
        smac = data[p : p + 6].hex(":")
        sip = socket.inet_ntoa(data[p + 6 : p + 10])
        tmac = data[p + 10 : p + 16].hex(":")
        tip = socket.inet_ntoa(data[p + 16 : p + 20])
    cur.layers.append(ARP(off, length, op, hwtype, ptype, smac, sip, tmac, tip))


bind_ethertype(0x0806, decode_arp)
