"""SCTP common header (ports and verification tag; chunks are not decoded)."""

from __future__ import annotations

from analyzer.inputs.decode.registry import Cursor, bind_ip_proto
from analyzer.model.packet import SCTP

SCTP_HEADER = 12


def decode_sctp(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    avail = (end if end < cur.n else cur.n) - off
    if avail < 4:
        cur.truncated(off, "SCTP header", SCTP_HEADER, end)
        return
    sport = (data[off] << 8) | data[off + 1]
    dport = (data[off + 2] << 8) | data[off + 3]
    vtag = int.from_bytes(data[off + 4 : off + 8], "big") if avail >= 8 else None
    cur.layers.append(SCTP(off, min(avail, SCTP_HEADER), sport, dport, vtag))
    if avail < SCTP_HEADER:
        cur.short(off, "SCTP header", SCTP_HEADER, end)
    elif not cur.quoted:
        cur.payload_offset, cur.payload_end = off + SCTP_HEADER, end


bind_ip_proto(132, decode_sctp)
