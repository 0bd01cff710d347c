"""The general packet decoder: total, lenient, table driven, one small module per protocol.

``decode_frame(data, linktype)`` never raises on packet bytes: whatever is malformed or cut off
becomes a note ("byte 42: VXLAN header needs 8 bytes, 5 left") and the layers decoded so far
are kept. ``to_record`` flattens the result into the shared ``PacketRecord``.
"""

from __future__ import annotations

from functools import lru_cache

# each protocol module registers its bindings on import (explicitly, in this order)
from analyzer.inputs.decode import arp as arp  # noqa: F401
from analyzer.inputs.decode import ethernet as ethernet  # noqa: F401
from analyzer.inputs.decode import flannel_udp as flannel_udp  # noqa: F401
from analyzer.inputs.decode import geneve as geneve  # noqa: F401
from analyzer.inputs.decode import gre as gre  # noqa: F401
from analyzer.inputs.decode import icmp as icmp  # noqa: F401
from analyzer.inputs.decode import icmpv6 as icmpv6  # noqa: F401
from analyzer.inputs.decode import ipip as ipip  # noqa: F401
from analyzer.inputs.decode import ipv4 as ipv4  # noqa: F401
from analyzer.inputs.decode import ipv6 as ipv6  # noqa: F401
from analyzer.inputs.decode import sctp as sctp  # noqa: F401
from analyzer.inputs.decode import tcp as tcp  # noqa: F401
from analyzer.inputs.decode import udp as udp
from analyzer.inputs.decode import vxlan as vxlan  # noqa: F401
from analyzer.inputs.decode.checksum import settle_checksums
from analyzer.inputs.decode.flannel_udp import FLANNEL_UDP_PORTS
from analyzer.inputs.decode.geneve import GENEVE_UDP_PORTS
from analyzer.inputs.decode.linktypes import LINKTYPE_NAMES, LINKTYPES
from analyzer.inputs.decode.record import to_record
from analyzer.inputs.decode.registry import IP_PROTOS, Cursor
from analyzer.inputs.decode.vxlan import VXLAN_UDP_PORTS
from analyzer.model.packet import DecodedPacket, Raw, frozen_builder

_packet = frozen_builder(DecodedPacket)

IP_PROTOS[17] = udp.decode_udp  # UDP is bound here: its payload decoders need the port map

__all__ = [
    "FLANNEL_UDP_PORTS",
    "GENEVE_UDP_PORTS",
    "LINKTYPES",
    "LINKTYPE_NAMES",
    "VXLAN_UDP_PORTS",
    "decode_frame",
    "to_record",
]


@lru_cache(maxsize=32)
def _port_map(vxlan_ports: frozenset[int], geneve_ports: frozenset[int], flannel_udp_ports: frozenset[int]
              ) -> dict[int, str]:
    ports: dict[int, str] = {}
    for port in flannel_udp_ports:
        ports[port] = "flannel-udp"
    for port in geneve_ports:
        ports[port] = "geneve"
    for port in vxlan_ports:
        ports[port] = "vxlan"
    return ports


_DEFAULT_PORTS = _port_map(VXLAN_UDP_PORTS, GENEVE_UDP_PORTS, FLANNEL_UDP_PORTS)


def decode_frame(
    data: bytes,
    linktype: int,
    *,
    vxlan_ports: frozenset[int] = VXLAN_UDP_PORTS,
    geneve_ports: frozenset[int] = GENEVE_UDP_PORTS,
    flannel_udp_ports: frozenset[int] = FLANNEL_UDP_PORTS,
    wire_len: int | None = None,
) -> DecodedPacket:
    """Decode ``data`` (one frame of link type ``linktype``) as deep as the bytes allow.

    UDP payloads are decoded as a tunnel when the destination port (else the source port) is
    one of the given ports; a port in two sets counts as VXLAN first, then GENEVE.
    ``wire_len`` (the frame's original length) lets the notes tell a frame cut by the snaplen
    ("only 33 bytes captured") from a header that claims more than the frame holds.
    """
    if vxlan_ports is VXLAN_UDP_PORTS and geneve_ports is GENEVE_UDP_PORTS and flannel_udp_ports is FLANNEL_UDP_PORTS:
        ports = _DEFAULT_PORTS
    else:
        ports = _port_map(vxlan_ports, geneve_ports, flannel_udp_ports)
    cur = Cursor(data, ports)
    decoder = LINKTYPES.get(linktype)
    try:
        if decoder is None:
            cur.note(f"link type {linktype} is not supported; frame left undecoded")
            if data:
                cur.layers.append(Raw(0, len(data), f"link type {linktype}"))
        else:
            decoder(cur, 0, max(len(data), wire_len or 0))
        if cur.pending_csum:
            settle_checksums(cur)
    except Exception as exc:  # a decoder bug must not lose the frame; tests assert it never happens
        cur.note(f"decoder bug: {type(exc).__name__}: {exc}")
    return _packet(tuple(cur.layers), tuple(cur.notes), cur.quote_start, cur.payload_offset, cur.payload_end)
