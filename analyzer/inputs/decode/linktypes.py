"""Link-layer types (pcap LINKTYPE_* numbers) -> first decoder."""

from __future__ import annotations

from analyzer.inputs.decode.ethernet import decode_ethernet
from analyzer.inputs.decode.ipv4 import decode_ipv4
from analyzer.inputs.decode.ipv6 import decode_ipv6
from analyzer.inputs.decode.registry import Cursor, Decoder
from analyzer.inputs.decode.sll import decode_sll, decode_sll2

#: BSD address families meaning IPv6 (NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30); Linux 10
_AF_INET6 = frozenset({10, 24, 28, 30})


def decode_raw_ip(cur: Cursor, off: int, end: int) -> None:
    """Raw IP link types: the version nibble decides (LINKTYPE_IPV4 files may hold IPv6)."""
    if off >= cur.n:
        return
    version = cur.data[off] >> 4
    if version == 4:
        decode_ipv4(cur, off, end)
    elif version == 6:
        decode_ipv6(cur, off, end)
    else:
        cur.note(f"byte {off}: raw IP frame with IP version {version}")
        cur.raw(off, end, f"IP version {version}")


def _loopback(cur: Cursor, off: int, end: int, family: int) -> None:
    if family == 2:
        decode_ipv4(cur, off + 4, end)
    elif family in _AF_INET6:
        decode_ipv6(cur, off + 4, end)
    else:
        cur.note(f"byte {off}: loopback address family {family} is not IP")
        cur.raw(off + 4, end, f"address family {family}")


def decode_null(cur: Cursor, off: int, end: int) -> None:
    """BSD loopback (link type 0): a 4-byte address family in the writer's byte order."""
    if cur.n - off < 4:
        cur.truncated(off, "loopback header", 4, end)
        return
    head = cur.data[off : off + 4]
    family = int.from_bytes(head, "little" if head[0] else "big")
    _loopback(cur, off, end, family)


def decode_loop(cur: Cursor, off: int, end: int) -> None:
    """OpenBSD loopback (link type 108): the address family in network byte order."""
    if cur.n - off < 4:
        cur.truncated(off, "loopback header", 4, end)
        return
    _loopback(cur, off, end, int.from_bytes(cur.data[off : off + 4], "big"))


LINKTYPES: dict[int, Decoder] = {
    0: decode_null,
    1: decode_ethernet,
    12: decode_raw_ip,  # DLT_RAW on most systems
    14: decode_raw_ip,  # DLT_RAW on OpenBSD
    101: decode_raw_ip,
    108: decode_loop,
    113: decode_sll,
    228: decode_raw_ip,
    229: decode_raw_ip,
    276: decode_sll2,
}
LINKTYPE_NAMES = {
    0: "BSD loopback",
    1: "Ethernet",
    12: "raw IP",
    14: "raw IP",
    101: "raw IP",
    108: "OpenBSD loopback",
    113: "Linux cooked (SLL)",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2 (SLL2)",
}
