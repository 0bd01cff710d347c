"""Address and MAC bytes -> their text, each distinct value made once.

A capture repeats a few hundred addresses millions of times: the decoder asks these caches instead
of formatting every header again, and every record of the same address shares one string (the
sampled records ``explain`` keeps are a large part of its memory). Each cache is bounded: it is
emptied when it grows past ``LIMIT`` entries (a scan of random addresses cannot grow it forever).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

LIMIT = 1 << 16

_V4: dict[bytes, str] = {}
_V6: dict[bytes, str] = {}
_MAC: dict[bytes, str] = {}


def _text(cache: dict[bytes, str], raw: bytes, make: Callable[[bytes], str]) -> str:
    if type(raw) is not bytes:  # a bytearray or memoryview slice is not hashable
        raw = bytes(raw)
    text = cache.get(raw)
    if text is None:
        if len(cache) >= LIMIT:
            cache.clear()
        text = cache[raw] = make(raw)
    return text


def ipv4_text(raw: bytes) -> str:
    return _text(_V4, raw, socket.inet_ntoa)


def ipv6_text(raw: bytes) -> str:
    return _text(_V6, raw, _ntop6)


def mac_text(raw: bytes) -> str:
    return _text(_MAC, raw, _colons)


def _ntop6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def _colons(raw: bytes) -> str:
    return raw.hex(":")
