"""TCP: ports, seq/ack, flags, MSS and window-scale options."""

from __future__ import annotations

import struct

from analyzer.inputs.decode.registry import Cursor, bind_ip_proto
from analyzer.model.packet import TCP

_HDR = struct.Struct("!HHIIBBH")
TCP_MIN = 20


def scan_options(data: bytes, start: int, stop: int) -> tuple[int | None, int | None, tuple[int, int, int] | None]:
    """(MSS, window scale, the first malformed option as (byte, kind, length) or None) of the TCP
    options in ``data[start:stop]``; the reading stops at a malformed option."""
    mss = wscale = None
    pos = start
    while pos < stop:
        kind = data[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= stop:
            break
        olen = data[pos + 1]
        if olen < 2 or pos + olen > stop:
            return mss, wscale, (pos, kind, olen)
        if kind == 2 and olen == 4:
            mss = (data[pos + 2] << 8) | data[pos + 3]
        elif kind == 3 and olen == 3:
            wscale = data[pos + 2]
        pos += olen
    return mss, wscale, None


def _options(cur: Cursor, start: int, stop: int) -> tuple[int | None, int | None]:
    mss, wscale, bad = scan_options(cur.data, start, stop)
    if bad is not None:
        cur.note(f"byte {bad[0]}: malformed TCP option {bad[1]} (length {bad[2]})")
    return mss, wscale


def decode_tcp(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    avail = (end if end < cur.n else cur.n) - off
    if avail < TCP_MIN:
        if cur.quoted and avail >= 4:  # an ICMP error quotes at least the first 8 bytes
            sport = (data[off] << 8) | data[off + 1]
            dport = (data[off + 2] << 8) | data[off + 3]
            seq = int.from_bytes(data[off + 4 : off + 8], "big") if avail >= 8 else None
            cur.layers.append(TCP(off, avail, sport, dport, seq, None, None, None, None, None, None, None))
            return
        cur.truncated(off, "TCP header", TCP_MIN, end)
        return
    sport, dport, seq, ack, doff, flags, window = _HDR.unpack_from(data, off)
    hl = (doff >> 4) * 4
    mss = wscale = None
    if hl < TCP_MIN:
        cur.note(f"byte {off}: bogus TCP header length {hl} (less than 20)")
        length = TCP_MIN
    elif hl > end - off:
        if not cur.quoted:  # a quote ends where the ICMP error ends, often inside the TCP header
            cur.note(f"byte {off}: TCP header length {hl} exceeds the {end - off} bytes of the segment")
        length = avail if avail < hl else hl
    elif hl > avail:
        cur.short(off, "TCP header with options", hl, end)
        length = avail
    else:
        length = hl
        if hl > TCP_MIN:
            mss, wscale = _options(cur, off + TCP_MIN, off + hl)
    payload_len = max(0, end - off - length) if hl >= TCP_MIN and hl <= end - off else 0
    cur.layers.append(TCP(off, length, sport, dport, seq, ack, flags, window, hl, mss, wscale, payload_len))
    if not cur.quoted:
        cur.payload_offset, cur.payload_end = off + length, (end if payload_len else off + length)


bind_ip_proto(6, decode_tcp)
