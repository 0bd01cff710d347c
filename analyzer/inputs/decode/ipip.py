"""IP-in-IP encapsulations: IPIP (4), IPv6-in-IPv4 (41, SIT/6in4), IPv4-in-IPv6 and IPv6-in-IPv6.

They have no header of their own; a zero-length marker layer names the tunnel: ``ip6in4`` for
IPv6 inside IPv4, ``ipip`` for the others (IPv4 in IPv4, IPv4 in IPv6, IPv6 in IPv6).
"""

from __future__ import annotations

from analyzer.inputs.decode.ipv4 import decode_ipv4
from analyzer.inputs.decode.ipv6 import decode_ipv6
from analyzer.inputs.decode.registry import Cursor, bind_ip_proto
from analyzer.model.packet import IPIP, IP6in4


def decode_ipip(cur: Cursor, off: int, end: int) -> None:
    cur.layers.append(IPIP(off, 0, 4))
    decode_ipv4(cur, off, end)


def decode_ip6in(cur: Cursor, off: int, end: int) -> None:
    cur.layers.append(IP6in4(off, 0, 41) if cur.ip_version == 4 else IPIP(off, 0, 41))
    decode_ipv6(cur, off, end)


bind_ip_proto(4, decode_ipip)
bind_ip_proto(41, decode_ip6in)
