"""sniff_capture: one answer, by magic number, to "is this file a capture, and how is it packed?"."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from pathlib import Path

import pytest

from analyzer.errors import InputError
from analyzer.inputs.capture import capture_format, compression_of, read_capture, sniff_capture


def pcap(magic: int = 0xA1B2C3D4, order: str = "<", record: int = 16) -> bytes:
    frame = bytes(range(14))
    head = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack(order + "IIII", 1, 0, len(frame), len(frame)) + bytes(record - 16)
    return head + rec + frame


def pcapng() -> bytes:
    shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    shb = struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body + struct.pack("<I", 12 + len(shb_body))
    idb_body = struct.pack("<HHI", 1, 0, 65535)
    idb = struct.pack("<II", 1, 12 + len(idb_body)) + idb_body + struct.pack("<I", 12 + len(idb_body))
    return shb + idb


CASES = {
    "le.pcap": (pcap(), (None, "pcap")),
    "be.pcap": (pcap(0xA1B2C3D4, ">"), (None, "pcap")),
    "ns.pcap": (pcap(0xA1B23C4D), (None, "pcap")),
    "kuznetzov.pcap": (pcap(0xA1B2CD34, record=24), (None, "pcap-modified")),
    "x.pcapng": (pcapng(), (None, "pcapng")),
    "x.pcap.gz": (gzip.compress(pcap()), ("gzip", "pcap")),
    "x.pcapng.bz2": (bz2.compress(pcapng()), ("bzip2", "pcapng")),
    "x.pcap.xz": (lzma.compress(pcap()), ("xz", "pcap")),
    "named-wrongly.txt": (gzip.compress(pcapng()), ("gzip", "pcapng")),  # the name plays no part
    "routes.gz": (gzip.compress(b"default via 10.0.0.1 dev eth0\n"), None),
    "cut.pcap.gz": (gzip.compress(pcap())[:8], None),  # the gzip stream ends before 4 bytes come out
    "bad.pcap.gz": (b"\x1f\x8b\x08\x00" + b"\xff" * 40, None),
    "zstd.pcap.zst": (b"\x28\xb5\x2f\xfd" + bytes(40), None),  # recognised, but not readable here
    "empty.pcap": (b"", None),
    "short.pcap": (b"\xd4\xc3", None),
    "ip-route": (b"default via 10.0.0.1 dev eth0\n", None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sniff_capture(tmp_path: Path, name: str) -> None:
    data, expected = CASES[name]
    path = tmp_path / name
    path.write_bytes(data)
    assert sniff_capture(path) == expected
    # one truth: whatever sniff_capture accepts, read_capture reads (and the other way round)
    try:
        frames = list(read_capture(path))
    except InputError:
        assert expected is None
    else:
        assert expected is not None, f"read_capture read {len(frames)} frames of a file sniffed as no capture"


def test_sniff_capture_unreadable(tmp_path: Path) -> None:
    assert sniff_capture(tmp_path) is None  # a directory
    assert sniff_capture(tmp_path / "absent.pcap") is None


def test_magic_helpers() -> None:
    assert compression_of(b"\x1f\x8b\x08") == "gzip"
    assert compression_of(b"BZh9") == "bzip2"
    assert compression_of(b"\xfd7zXZ\x00\x00") == "xz"
    assert compression_of(b"\x04\x22\x4d\x18") == "lz4"
    assert compression_of(b"\xd4\xc3\xb2\xa1") is None
    assert capture_format(b"\x0a\x0d\x0d\x0a") == "pcapng"
    assert capture_format(b"\x34\xcd\xb2\xa1") == "pcap-modified"
    assert capture_format(b"\xa1\xb2\x3c\x4d") == "pcap"
    assert capture_format(b"\xa1\xb2\x3c") is None
    assert capture_format(b"GET ") is None
