"""Settling outer UDP checksums that did not match, after the whole frame is decoded.

Linux fills the outer UDP checksum of a tunnel packet with *local checksum offload* (LCO): when
the inner TCP/UDP checksum is left to the NIC (CHECKSUM_PARTIAL), the outer checksum is computed
for the packet as it will be once the NIC has filled in the inner one. A capture on the sending
node (or on a veth) therefore shows an outer checksum that is "wrong" for the captured bytes and
right for the wire. When the inner checksum field holds the CHECKSUM_PARTIAL placeholder (its
pseudo-header sum), we compute the inner checksum, put it in place and check the outer one
again: if it matches, the mismatch was offload (``checksum_ok`` None, no note); otherwise the
checksum really is wrong (``checksum_ok`` False and a note). Payload damage under a partial inner
checksum cannot be told from offload (the recomputed inner checksum absorbs it); a receiving
node always sees complete checksums, so damage there is always reported.
"""

from __future__ import annotations

import socket
from dataclasses import replace

from analyzer.inputs.decode.registry import Cursor
from analyzer.model.packet import TCP, UDP, IPv4, IPv6


def ones_sum(data: bytes | bytearray) -> int:
    """16-bit ones' complement sum of ``data`` (odd length padded), as a value mod 0xffff."""
    if len(data) & 1:
        data = bytes(data) + b"\x00"
    return int.from_bytes(data, "big") % 0xFFFF


def pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The IPv4 or IPv6 (by the address size) pseudo-header of a TCP/UDP checksum."""
    if len(src) == 4:
        return src + dst + bytes((0, proto)) + length.to_bytes(2, "big")
    return src + dst + length.to_bytes(4, "big") + bytes((0, 0, 0, proto))


def _inner_fixed(cur: Cursor, after: int, outer_off: int, outer_len: int) -> bytearray | None:
    """The outer UDP datagram with the innermost TCP/UDP checksum computed and filled in."""
    layers = cur.layers
    stop = len(layers) if cur.quote_start is None else cur.quote_start
    transport = ip = None
    for layer in layers[after + 1 : stop]:
        if isinstance(layer, IPv4 | IPv6):
            ip, transport = layer, None
        elif isinstance(layer, TCP | UDP) and ip is not None:
            transport = layer
    if transport is None or ip is None:
        return None
    end = ip.offset + (ip.total_len if isinstance(ip, IPv4) else 40 + ip.payload_len)
    if end > cur.n or end > outer_off + outer_len or end <= transport.offset:
        return None
    field = transport.offset + (16 if isinstance(transport, TCP) else 6)
    if field + 2 > end:
        return None
    family = socket.AF_INET if isinstance(ip, IPv4) else socket.AF_INET6
    src, dst = socket.inet_pton(family, ip.src), socket.inet_pton(family, ip.dst)
    proto = 6 if isinstance(transport, TCP) else 17
    seg = bytearray(cur.data[transport.offset : end])
    pseudo = pseudo_header(src, dst, proto, len(seg))
    found = (cur.data[field] << 8) | cur.data[field + 1]
    if found != (ones_sum(pseudo) or 0xFFFF):
        return None  # the inner checksum is not a CHECKSUM_PARTIAL placeholder: no offload here
    seg[field - transport.offset : field - transport.offset + 2] = b"\x00\x00"
    total = (ones_sum(pseudo) + ones_sum(seg)) % 0xFFFF
    inner = (0xFFFF - total) or 0xFFFF
    outer = bytearray(cur.data[outer_off : outer_off + outer_len])
    rel = field - outer_off
    outer[rel : rel + 2] = inner.to_bytes(2, "big")
    return outer


def settle_checksums(cur: Cursor) -> None:
    """Decide each outer UDP checksum mismatch noted by ``decode_udp`` (see module doc)."""
    for index, off, length, csum, want, src, dst in cur.pending_csum:
        fixed = _inner_fixed(cur, index, off, length)
        if fixed is not None and (ones_sum(pseudo_header(src, dst, 17, length)) + ones_sum(fixed)) % 0xFFFF == 0:
            layer = cur.layers[index]
            assert isinstance(layer, UDP)
            cur.layers[index] = replace(layer, checksum_ok=None)
            continue
        cur.notes.append(f"byte {off}: outer UDP checksum 0x{csum:04x} is wrong (should be 0x{want:04x})")
