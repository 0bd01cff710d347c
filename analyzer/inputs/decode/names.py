"""Address and MAC bytes -> their text, each distinct value made once.

A capture repeats a few hundred addresses millions of times: the decoder asks these caches instead
of formatting every header again, and every record of the same address shares one string (the
sampled records ``explain`` keeps are a large part of its memory). Each cache is bounded: it is
emptied when it grows past ``LIMIT`` entries (a scan of random addresses cannot grow it forever).
"""

from __future__ import annotations

import socket

LIMIT = 1 << 16

_V4: dict[bytes, str] = {}
_V6: dict[bytes, str] = {}
_MAC: dict[bytes, str] = {}


def ipv4_text(raw: bytes) -> str:
    if type(raw) is not bytes:  # a bytearray or memoryview slice is not hashable
        raw = bytes(raw)
    text = _V4.get(raw)
    if text is None:
        if len(_V4) >= LIMIT:
            _V4.clear()
        text = _V4[raw] = socket.inet_ntoa(raw)
    return text


def ipv6_text(raw: bytes) -> str:
    if type(raw) is not bytes:
        raw = bytes(raw)
    text = _V6.get(raw)
    if text is None:
        if len(_V6) >= LIMIT:
            _V6.clear()
        text = _V6[raw] = socket.inet_ntop(socket.AF_INET6, raw)
    return text


def mac_text(raw: bytes) -> str:
    if type(raw) is not bytes:
        raw = bytes(raw)
    text = _MAC.get(raw)
    if text is None:
        if len(_MAC) >= LIMIT:
            _MAC.clear()
        text = _MAC[raw] = raw.hex(":")
    return text
