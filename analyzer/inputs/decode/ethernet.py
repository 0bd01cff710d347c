"""Ethernet II, 802.1Q / 802.1ad tags and MPLS label stacks."""

from __future__ import annotations

from analyzer.inputs.decode.names import mac_text
from analyzer.inputs.decode.registry import Cursor, bind_ethertype
from analyzer.model.packet import MPLS, VLAN, Ethernet

ETH_HEADER = 14
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
ETH_TYPE_TEB = 0x6558  # transparent Ethernet bridging (GRE, GENEVE)


def decode_ethernet(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    if (end if end < cur.n else cur.n) - off < ETH_HEADER:
        cur.truncated(off, "Ethernet header", ETH_HEADER, end)
        return
    etype = (data[off + 12] << 8) | data[off + 13]
    cur.layers.append(
        Ethernet(off, ETH_HEADER, mac_text(data[off : off + 6]), mac_text(data[off + 6 : off + 12]), etype)
    )
    cur.ethertype(etype, off + ETH_HEADER, end)


def decode_vlan(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    if (end if end < cur.n else cur.n) - off < 4:
        cur.truncated(off, "802.1Q tag", 4, end)
        return
    tci = (data[off] << 8) | data[off + 1]
    etype = (data[off + 2] << 8) | data[off + 3]
    cur.layers.append(VLAN(off, 4, cur.etype, tci & 0x0FFF, tci >> 13, (tci >> 12) & 1, etype))
    cur.ethertype(etype, off + 4, end)


def decode_mpls(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    stop = (end if end < cur.n else cur.n)
    pos = off
    labels: list[int] = []
    ttl = 0
    while True:
        if stop - pos < 4:
            cur.short(pos, "MPLS label", 4, end)
            if labels:
                cur.layers.append(MPLS(off, pos - off, tuple(labels), ttl))
            cur.raw(pos, end, "short MPLS label")
            return
        word = int.from_bytes(data[pos : pos + 4], "big")
        labels.append(word >> 12)
        ttl = word & 0xFF
        pos += 4
        if word & 0x100:  # bottom of stack
            break
    cur.layers.append(MPLS(off, pos - off, tuple(labels), ttl))
    if pos < stop:
        version = data[pos] >> 4
        if version == 4:
            cur.ethertype(0x0800, pos, end)
            return
        if version == 6:
            cur.ethertype(0x86DD, pos, end)
            return
    cur.raw(pos, end, "MPLS payload")


bind_ethertype(ETH_TYPE_TEB, decode_ethernet)
for _tpid in VLAN_TPIDS:
    bind_ethertype(_tpid, decode_vlan)
bind_ethertype(0x8847, decode_mpls)
bind_ethertype(0x8848, decode_mpls)
