"""UDP, the tunnel-port dispatch (VXLAN, GENEVE, flannel UDP) and the outer checksum check.

The checksum of a UDP datagram that carries a tunnel is verified when the whole datagram was
captured (IPv4 or IPv6 pseudo-header). 0 means "not used" (Linux VXLAN default over IPv4).
A wrong checksum seen on the sending node is usually TX checksum offload, not corruption.
"""

from __future__ import annotations

from analyzer.inputs.decode.registry import Cursor
from analyzer.model.packet import UDP

UDP_HEADER = 8


def udp_checksum(data: bytes, off: int, length: int, src: bytes, dst: bytes) -> int:
    """The checksum the datagram at ``data[off:off+length]`` should carry (field taken as 0)."""
    pseudo = src + dst + (b"\x00\x11" + length.to_bytes(2, "big") if len(src) == 4 else
                          length.to_bytes(4, "big") + b"\x00\x00\x00\x11")
    seg = data[off : off + length]
    if length & 1:
        seg += b"\x00"
    # ones' complement sum of 16-bit words == value mod 0xffff (2**16 = 1 mod 0xffff)
    total = int.from_bytes(pseudo, "big") % 0xFFFF + int.from_bytes(seg, "big") % 0xFFFF
    total -= (data[off + 6] << 8) | data[off + 7]
    total %= 0xFFFF
    csum = 0xFFFF - total if total else 0xFFFF
    return csum if csum else 0xFFFF


def decode_udp(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    avail = min(end, cur.n) - off
    if avail < UDP_HEADER:
        if cur.quoted and avail >= 4:
            sport = (data[off] << 8) | data[off + 1]
            dport = (data[off + 2] << 8) | data[off + 3]
            cur.layers.append(UDP(off, avail, sport, dport, 0, 0, None, None))
            return
        cur.short(off, "UDP header", UDP_HEADER, end)
        cur.raw(off, end, "short UDP header")
        return
    sport = (data[off] << 8) | data[off + 1]
    dport = (data[off + 2] << 8) | data[off + 3]
    ulen = (data[off + 4] << 8) | data[off + 5]
    csum = (data[off + 6] << 8) | data[off + 7]
    stop = end
    if ulen < UDP_HEADER:
        if not cur.quoted and ulen != 0:  # 0: jumbogram / offloaded, use the IP length
            cur.note(f"byte {off}: bogus UDP length {ulen} (less than 8)")
    elif off + ulen > end:
        if not cur.quoted and not cur.first_fragment and not cur.cut:  # a first fragment holds part of it
            cur.note(f"byte {off}: UDP length {ulen} exceeds the {end - off} bytes of its IP packet")
    else:
        stop = off + ulen
    ports = cur.udp_ports
    kind = ports.get(dport) or ports.get(sport)
    ok: bool | None = None
    if kind is not None and csum and not cur.quoted and not cur.first_fragment and stop <= cur.n and cur.ip_version:
        length = stop - off
        want = udp_checksum(data, off, length, cur.ip_src, cur.ip_dst)
        ok = want == csum
        if not ok:
            cur.note(f"byte {off}: outer UDP checksum 0x{csum:04x} is wrong (should be 0x{want:04x})")
    cur.layers.append(UDP(off, UDP_HEADER, sport, dport, ulen, csum, ok, stop - off - UDP_HEADER))
    if not cur.quoted:
        cur.payload_offset, cur.payload_end = off + UDP_HEADER, stop
    if kind is not None and min(stop, cur.n) > off + UDP_HEADER:
        cur.udp_kind(kind, off + UDP_HEADER, stop)
