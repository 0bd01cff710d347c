"""flannel's UDP backend (port 8285): the UDP payload is a bare IP packet, no header of its own."""

from __future__ import annotations

from analyzer.inputs.decode.registry import Cursor, bind_udp_kind
from analyzer.model.packet import FlannelUDP

FLANNEL_UDP_PORTS = frozenset({8285})


def decode_flannel_udp(cur: Cursor, off: int, end: int) -> None:
    version = cur.data[off] >> 4
    port = (cur.data[off - 6] << 8) | cur.data[off - 5]  # the UDP destination port
    if version == 4:
        cur.layers.append(FlannelUDP(off, 0, port))
        cur.ethertype(0x0800, off, end)
    elif version == 6:
        cur.layers.append(FlannelUDP(off, 0, port))
        cur.ethertype(0x86DD, off, end)
    else:
        cur.raw(off, end, f"UDP payload on a flannel port, IP version {version}")


bind_udp_kind("flannel-udp", decode_flannel_udp)
