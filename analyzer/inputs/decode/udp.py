"""UDP, the tunnel-port dispatch (VXLAN, GENEVE, flannel UDP) and the outer checksum check.

The checksum of a UDP datagram that carries a tunnel is verified when the whole datagram was
captured (IPv4 or IPv6 pseudo-header). 0 means "not used" (Linux VXLAN default over IPv4).
A field that holds only the pseudo-header sum is TX checksum offload (the packet was captured
before the NIC computed it, as on the sending node or a veth): not verifiable, not an error.
"""

from __future__ import annotations

from analyzer.inputs.decode.checksum import ones_sum, pseudo_header
from analyzer.inputs.decode.dns import DNS_PORT, dns_summary
from analyzer.inputs.decode.registry import Cursor
from analyzer.model.packet import UDP

UDP_HEADER = 8


def offload_partial(src: bytes, dst: bytes, length: int) -> int:
    """What a not-yet-offloaded checksum field holds: the folded pseudo-header sum, uncomplemented.

    A capture taken on the sending host (or on a veth, which passes such packets on) sees UDP
    packets whose checksum the NIC has still to fill in (CHECKSUM_PARTIAL): the field then holds
    exactly this value. It is not an error, and the real checksum cannot be verified.
    """
    return ones_sum(pseudo_header(src, dst, 17, length)) or 0xFFFF


def udp_checksum(data: bytes, off: int, length: int, src: bytes, dst: bytes) -> int:
    """The checksum the datagram at ``data[off:off+length]`` should carry (field taken as 0)."""
    field = (data[off + 6] << 8) | data[off + 7]
    total = (ones_sum(pseudo_header(src, dst, 17, length)) + ones_sum(data[off : off + length]) - field) % 0xFFFF
    return 0xFFFF - total  # never 0: a computed checksum of 0 is sent as 0xffff


def decode_udp(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    avail = (end if end < cur.n else cur.n) - off
    if avail < UDP_HEADER:
        if cur.quoted and avail >= 4:
            sport = (data[off] << 8) | data[off + 1]
            dport = (data[off + 2] << 8) | data[off + 3]
            cur.layers.append(UDP(off, avail, sport, dport, 0, 0, None, None))
            return
        cur.truncated(off, "UDP header", UDP_HEADER, end)
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
        if not ok and csum == offload_partial(cur.ip_src, cur.ip_dst, length):
            ok = None  # checksum offload: the sender's NIC fills it in later; not verifiable here
        elif not ok:  # maybe local checksum offload: decided once the inner packet is decoded
            cur.pending_csum.append((len(cur.layers), off, length, csum, want, cur.ip_src, cur.ip_dst))
    app = None
    if (dport == DNS_PORT or sport == DNS_PORT) and kind is None:
        app = dns_summary(data, off + UDP_HEADER, stop if stop < cur.n else cur.n)
    cur.layers.append(UDP(off, UDP_HEADER, sport, dport, ulen, csum, ok, stop - off - UDP_HEADER, app))
    if not cur.quoted:
        cur.payload_offset, cur.payload_end = off + UDP_HEADER, stop
    if kind is not None and (stop if stop < cur.n else cur.n) > off + UDP_HEADER:
        cur.udp_kind(kind, off + UDP_HEADER, stop)
