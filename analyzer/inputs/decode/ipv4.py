"""IPv4: header, options, fragments (only the offset-0 fragment carries the L4 header)."""

from __future__ import annotations

import struct

from analyzer.inputs.decode.names import ipv4_text
from analyzer.inputs.decode.registry import Cursor, bind_ethertype
from analyzer.model.packet import IPv4

_HDR = struct.Struct("!BBHHHBBH4s4s")
IPV4_MIN = 20


def _options(cur: Cursor, start: int, stop: int) -> tuple[int, ...]:
    data = cur.data
    kinds: list[int] = []
    pos = start
    while pos < stop:
        kind = data[pos]
        kinds.append(kind)
        if kind == 0:  # end of option list; the rest is padding
            break
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= stop or data[pos + 1] < 2 or pos + data[pos + 1] > stop:
            cur.note(f"byte {pos}: malformed IPv4 option {kind}")
            break
        pos += data[pos + 1]
    return tuple(kinds)


def decode_ipv4(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    avail = (end if end < cur.n else cur.n) - off
    if avail < IPV4_MIN:
        cur.truncated(off, "IPv4 header", IPV4_MIN, end)
        return
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _HDR.unpack_from(data, off)
    if vihl >> 4 != 4:
        cur.note(f"byte {off}: IPv4 header with version {vihl >> 4}")
        cur.raw(off, end, f"IP version {vihl >> 4}")
        return
    hl = (vihl & 0x0F) * 4
    if hl < IPV4_MIN:
        cur.note(f"byte {off}: bogus IPv4 header length {hl} (less than 20)")
        cur.raw(off, end, "bogus IPv4 header")
        return
    if total == 0:  # TSO/GSO capture: the length is in the captured bytes
        stop = off + avail
        if not cur.quoted:
            cur.note(f"byte {off}: IPv4 total length 0 (segmentation offload), using the captured length")
    elif total < hl:
        cur.note(f"byte {off}: bogus IPv4 total length {total} (less than the header length {hl})")
        cur.raw(off, end, "bogus IPv4 header")
        return
    else:
        stop = off + total
        if stop > end:
            if not cur.quoted and not cur.cut:
                cur.cut = True
                cur.note(f"byte {off}: IPv4 total length {total} exceeds the {end - off} bytes of its carrier")
            stop = end
    cut_options = avail < hl  # the fixed header is there: decode it, options as far as captured
    if cut_options:
        cur.short(off, "IPv4 header with options", hl, end)
    if stop > cur.n and not cur.quoted and not cur.cut:
        cur.cut = True
        cur.note(f"byte {off}: IPv4 total length {total}, only {avail} bytes captured")
    options = _options(cur, off + IPV4_MIN, off + min(hl, avail)) if hl > IPV4_MIN else ()
    frag_offset = (frag & 0x1FFF) * 8
    cur.layers.append(
        IPv4(
            off,
            min(hl, avail),
            ipv4_text(src),
            ipv4_text(dst),
            proto,
            ttl,
            tos,
            total,
            ident,
            bool(frag & 0x4000),
            bool(frag & 0x2000),
            frag_offset,
            csum,
            options,
        )
    )
    cur.ip_version, cur.ip_src, cur.ip_dst = 4, src, dst
    cur.first_fragment = bool(frag & 0x2000) and not frag_offset
    if cut_options:
        return
    if frag_offset:
        cur.raw(off + hl, stop, f"IPv4 fragment at offset {frag_offset}")
        return
    cur.ip_proto(proto, off + hl, stop)


bind_ethertype(0x0800, decode_ipv4)
