"""Linux "cooked" captures (``tcpdump -i any``): SLL (link type 113) and SLL2 (276)."""

from __future__ import annotations

from analyzer.inputs.decode.registry import Cursor
from analyzer.model.packet import SLL, SLL2

SLL_HEADER = 16
SLL2_HEADER = 20
# SLL protocol values that are not Ethernet types
_LLC = {0x0001: "802.3 frame (Novell)", 0x0004: "802.2 LLC frame", 0x0003: "raw frame"}


def _addr(data: bytes, start: int, alen: int) -> str:
    return data[start : start + min(alen, 8)].hex(":")


def _payload(cur: Cursor, protocol: int, arphrd: int, off: int, end: int) -> None:
    what = _LLC.get(protocol)
    if what is not None:
        cur.raw(off, end, what)
    elif arphrd == 824 or protocol == 0x000C:  # netlink captures
        cur.raw(off, end, "netlink message")
    else:
        cur.ethertype(protocol, off, end)


def decode_sll(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    if (end if end < cur.n else cur.n) - off < SLL_HEADER:
        cur.short(off, "Linux cooked (SLL) header", SLL_HEADER, end)
        cur.raw(off, end, "short SLL header")
        return
    pkttype = (data[off] << 8) | data[off + 1]
    arphrd = (data[off + 2] << 8) | data[off + 3]
    alen = (data[off + 4] << 8) | data[off + 5]
    protocol = (data[off + 14] << 8) | data[off + 15]
    cur.layers.append(SLL(off, SLL_HEADER, pkttype, arphrd, _addr(data, off + 6, alen), protocol))
    _payload(cur, protocol, arphrd, off + SLL_HEADER, end)


def decode_sll2(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    if (end if end < cur.n else cur.n) - off < SLL2_HEADER:
        cur.short(off, "Linux cooked (SLL2) header", SLL2_HEADER, end)
        cur.raw(off, end, "short SLL2 header")
        return
    protocol = (data[off] << 8) | data[off + 1]
    ifindex = int.from_bytes(data[off + 4 : off + 8], "big")
    arphrd = (data[off + 8] << 8) | data[off + 9]
    pkttype = data[off + 10]
    alen = data[off + 11]
    cur.layers.append(SLL2(off, SLL2_HEADER, protocol, ifindex, arphrd, pkttype, _addr(data, off + 12, alen)))
    _payload(cur, protocol, arphrd, off + SLL2_HEADER, end)
