"""IPv6: fixed header and the extension-header chain (folded into the one ``ipv6`` layer)."""

from __future__ import annotations

from analyzer.inputs.decode.names import ipv6_text
from analyzer.inputs.decode.registry import Cursor, bind_ethertype
from analyzer.model.packet import IPv6

IPV6_HEADER = 40
FRAGMENT = 44
AH = 51
ESP = 50
NO_NEXT = 59
#: extension headers of the form (next header, length in 8-byte units - 1, ...)
EXTENSIONS = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
MAX_EXTENSIONS = 32


def decode_ipv6(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    avail = (end if end < cur.n else cur.n) - off
    if avail < IPV6_HEADER:
        cur.truncated(off, "IPv6 header", IPV6_HEADER, end)
        return
    word = int.from_bytes(data[off : off + 4], "big")
    if word >> 28 != 6:
        cur.note(f"byte {off}: IPv6 header with version {word >> 28}")
        cur.raw(off, end, f"IP version {word >> 28}")
        return
    plen = (data[off + 4] << 8) | data[off + 5]
    nh = data[off + 6]
    hop = data[off + 7]
    src = data[off + 8 : off + 24]
    dst = data[off + 24 : off + 40]
    if plen == 0:  # jumbogram or offloaded: trust the captured bytes
        stop = off + avail
    else:
        stop = off + IPV6_HEADER + plen
        if stop > end:
            if not cur.quoted and not cur.cut:
                cur.cut = True
                cur.note(f"byte {off}: IPv6 payload length {plen} exceeds the {end - off - 40} bytes of its carrier")
            stop = end
        if stop - off > avail and not cur.quoted and not cur.cut:
            cur.cut = True
            cur.note(f"byte {off}: IPv6 payload length {plen}, only {avail - IPV6_HEADER} bytes captured")
    cap = off + avail
    pos = off + IPV6_HEADER
    proto = nh
    exts: list[int] = []
    frag_id: int | None = None
    frag_offset = 0
    mf = False
    broken = False
    while proto in EXTENSIONS or proto in (FRAGMENT, AH):
        if len(exts) >= MAX_EXTENSIONS:
            cur.note(f"byte {pos}: more than {MAX_EXTENSIONS} IPv6 extension headers; stopped there")
            broken = True
            break
        if cap - pos < 8:
            cur.short(pos, f"IPv6 extension header {proto}", 8, end)
            broken = True
            break
        if proto == FRAGMENT:
            size = 8
            fo = (data[pos + 2] << 8) | data[pos + 3]
            frag_offset = fo & 0xFFF8
            mf = bool(fo & 1)
            frag_id = int.from_bytes(data[pos + 4 : pos + 8], "big")
        elif proto == AH:
            size = (data[pos + 1] + 2) * 4
        else:
            size = (data[pos + 1] + 1) * 8
        if cap - pos < size:
            cur.short(pos, f"IPv6 extension header {proto}", size, end)
            broken = True
            break
        exts.append(proto)
        proto = data[pos]
        pos += size
    cur.layers.append(
        IPv6(
            off,
            pos - off,
            ipv6_text(src),
            ipv6_text(dst),
            nh,
            proto,
            hop,
            (word >> 20) & 0xFF,
            word & 0xFFFFF,
            plen,
            tuple(exts),
            frag_id,
            frag_offset,
            mf,
        )
    )
    cur.ip_version, cur.ip_src, cur.ip_dst = 6, src, dst
    cur.first_fragment = mf and not frag_offset
    if broken:
        cur.raw(pos, stop, "IPv6 extension headers")
    elif frag_offset:
        cur.raw(pos, stop, f"IPv6 fragment at offset {frag_offset}")
    elif proto == NO_NEXT:
        cur.raw(pos, stop, "IPv6 no next header")
    elif proto == ESP:
        cur.raw(pos, stop, "IPsec ESP")
    else:
        cur.ip_proto(proto, pos, stop)


bind_ethertype(0x86DD, decode_ipv6)
