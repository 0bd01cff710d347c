"""VXLAN (RFC 7348) including the VXLAN-GBP group policy; the payload is an Ethernet frame.
Ports are chosen by ``decode_frame`` (4789 IANA, 8472 Linux/flannel default, plus extras)."""

from __future__ import annotations

from analyzer.inputs.decode.ethernet import decode_ethernet
from analyzer.inputs.decode.registry import Cursor, bind_udp_kind
from analyzer.model.packet import VXLAN

VXLAN_HEADER = 8
VXLAN_UDP_PORTS = frozenset({4789, 8472})


def decode_vxlan(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    if (end if end < cur.n else cur.n) - off < VXLAN_HEADER:
        cur.truncated(off, "VXLAN header", VXLAN_HEADER, end)
        return
    flags = (data[off] << 8) | data[off + 1]
    group = (data[off + 2] << 8) | data[off + 3]
    vni = (data[off + 4] << 16) | (data[off + 5] << 8) | data[off + 6]
    if not flags & 0x0800 and not cur.quoted:
        cur.note(f"byte {off}: VXLAN I flag clear, the VNI may be invalid")
    cur.layers.append(VXLAN(off, VXLAN_HEADER, flags, vni, group))
    if cur.room():
        decode_ethernet(cur, off + VXLAN_HEADER, end)


bind_udp_kind("vxlan", decode_vxlan)
