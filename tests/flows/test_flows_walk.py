"""The vectorised record walk (``fastpath._walk``) finds exactly the records a plain walk finds.

Its candidate scan (offsets whose timestamp shares the high 16 bits of the record being walked)
decides only how fast it is: these buffers hold fake record headers inside payloads, timestamps
that change their high bits mid-buffer, zero timestamps over zero payloads (every offset a
candidate), impossible lengths and records cut at the end, in both byte orders.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.inputs import fastpath
from analyzer.inputs.fastpath import _Anomaly, _plain_walk, _walk

LIMIT = 262144


def _plain(store: bytearray, n: int, order: str) -> tuple[list[int], int] | None:
    """The plain walk, and None where the reader gives up on the chunk (a length above LIMIT)."""
    incl_at = struct.Struct(order + "I").unpack_from
    offs, off = _plain_walk(store, n, 0, incl_at)
    if any(incl_at(store, o + 8)[0] > LIMIT for o in offs.tolist()):
        return None
    if off + 16 <= n and incl_at(store, off + 8)[0] > LIMIT:
        return None
    return offs.tolist(), off


def _vector(store: bytearray, n: int, order: str) -> tuple[list[int], int] | None:
    try:
        offs, off = _walk(store, n, order, LIMIT, struct.Struct(order + "I").unpack_from)
    except _Anomaly:
        return None
    return offs.tolist(), off


def _records(specs: list[tuple[int, int, bytes]], order: str) -> bytes:
    out = bytearray()
    for ts, incl, payload in specs:
        out += struct.pack(order + "IIII", ts, 0, incl, incl) + payload[:incl].ljust(incl, b"\0")
    return bytes(out)


def _check(data: bytes, order: str) -> None:
    for n in sorted({len(data), max(len(data) - 1, 0), len(data) // 2, len(data) // 3}):
        store = bytearray(data[:n]) + bytes(fastpath._PAD)
        assert _vector(store, n, order) == _plain(store, n, order), (order, n)


def _fake_header(ts: int, incl: int, order: str) -> bytes:
    return struct.pack(order + "IIII", ts, 0, incl, incl)


@settings(max_examples=150, deadline=None)
@given(
    order=st.sampled_from("<>"),
    base=st.sampled_from([0, 0x6560_0000, 0x6560_FFF0, 0xFFFF_FFF0]),
    records=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 120), st.integers(0, 5), st.integers(0, 200)),
        min_size=1, max_size=60,
    ),
    bad=st.one_of(st.none(), st.integers(0, 59)),
)
def test_the_vectorised_walk_equals_the_plain_walk(order: str, base: int, records: list, bad: int | None) -> None:
    specs = []
    for i, (dt, incl, fakes, fake_len) in enumerate(records):
        ts = (base + dt) & 0xFFFFFFFF  # crosses a 65536-second boundary for some bases
        payload = b"".join(_fake_header(ts, fake_len, order) for _ in range(fakes))
        if bad is not None and i == bad:
            incl = LIMIT + 1 + incl  # an impossible length: the reader gives up on the chunk
            payload = b""
        specs.append((ts, min(incl, LIMIT + 200), payload))
    _check(_records(specs, order), order)


@pytest.mark.parametrize("order", "<>")
def test_zero_timestamps_over_zero_payloads(order: str) -> None:
    """Every offset is a candidate there: the walk must neither slow to a crawl nor go wrong."""
    data = _records([(0, 100 + i % 7, b"") for i in range(3000)], order)
    _check(data, order)


def test_the_generated_mix_and_a_fake_header_in_a_payload(tmp_path) -> None:
    """A payload that holds a well-formed record header with the right timestamp."""
    ts = 0x6560_1234
    fake = _fake_header(ts, 20, "<") + b"z" * 20
    specs = [(ts, 80, fake + b"y" * 36), (ts, 30, b""), (ts, 80, b"q" + fake)]
    data = _records(specs * 200, "<")
    _check(data, "<")
    store = bytearray(data) + bytes(fastpath._PAD)
    offs, off = _walk(store, len(data), "<", LIMIT, struct.Struct("<I").unpack_from)
    assert len(offs) == 600 and off == len(data)


def test_timestamps_that_jump_around_fall_back_to_the_plain_walk() -> None:
    specs = [((i * 0x10001) & 0xFFFFFFFF, 40, b"") for i in range(200)]  # new high bits every record
    data = _records(specs, "<")
    _check(data, "<")
    store = bytearray(data) + bytes(fastpath._PAD)
    offs, _ = _walk(store, len(data), "<", LIMIT, struct.Struct("<I").unpack_from)
    assert np.array_equal(offs, np.arange(200) * 56)
