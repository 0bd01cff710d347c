"""The address/MAC text caches: the same text as formatting it, one shared string, bounded."""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st

from analyzer.inputs.decode import names


@given(st.binary(min_size=4, max_size=4), st.binary(min_size=16, max_size=16), st.binary(min_size=6, max_size=6))
def test_same_text_as_formatting(v4: bytes, v6: bytes, mac: bytes) -> None:
    assert names.ipv4_text(v4) == socket.inet_ntoa(v4)
    assert names.ipv6_text(v6) == socket.inet_ntop(socket.AF_INET6, v6)
    assert names.mac_text(mac) == mac.hex(":")
    assert names.ipv4_text(bytearray(v4)) == socket.inet_ntoa(v4)
    assert names.mac_text(memoryview(mac)) == mac.hex(":")


def test_shared_and_bounded() -> None:
    a = names.ipv4_text(bytes([10, 244, 1, 5]))
    assert names.ipv4_text(bytes([10, 244, 1, 5])) is a
    for i in range(names.LIMIT + 10):
        names.ipv4_text(i.to_bytes(4, "big"))
    assert len(names._V4) <= names.LIMIT
