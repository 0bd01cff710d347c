"""GENEVE (RFC 8926) with its options; the payload type is an Ethernet type (0x6558 Ethernet)."""

from __future__ import annotations

from analyzer.inputs.decode.registry import Cursor, bind_udp_kind
from analyzer.model.packet import GENEVE

GENEVE_HEADER = 8
GENEVE_UDP_PORTS = frozenset({6081})


def decode_geneve(cur: Cursor, off: int, end: int) -> None:
    data = cur.data
    stop = (end if end < cur.n else cur.n)
    if stop - off < GENEVE_HEADER:
        cur.truncated(off, "GENEVE header", GENEVE_HEADER, end)
        return
    version = data[off] >> 6
    opt_len = (data[off] & 0x3F) * 4
    oam = bool(data[off + 1] & 0x80)
    critical = bool(data[off + 1] & 0x40)
    protocol = (data[off + 2] << 8) | data[off + 3]
    vni = (data[off + 4] << 16) | (data[off + 5] << 8) | data[off + 6]
    length = GENEVE_HEADER + opt_len
    options: list[tuple[int, int, int]] = []
    pos = off + GENEVE_HEADER
    if stop - off < length:
        cur.short(off, "GENEVE header with options", length, end)
        length = stop - off
    else:
        while pos + 4 <= off + length:
            olen = (data[pos + 3] & 0x1F) * 4
            options.append(((data[pos] << 8) | data[pos + 1], data[pos + 2], olen))
            pos += 4 + olen
        if pos != off + length:
            cur.note(f"byte {off}: GENEVE options overrun the option length {opt_len}")
    cur.layers.append(GENEVE(off, length, version, vni, protocol, oam, critical, tuple(options)))
    if version != 0:
        cur.note(f"byte {off}: GENEVE version {version}")
        cur.raw(off + length, end, "GENEVE payload")
    elif length == GENEVE_HEADER + opt_len:
        cur.ethertype(protocol, off + length, end)


bind_udp_kind("geneve", decode_geneve)
