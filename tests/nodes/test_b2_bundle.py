"""Bundles: captures recognised as capture.py recognises them (compressed ones too), cut tarballs,
and ``is_bundle_dir`` as the one answer to "is this directory a node bundle?"."""

from __future__ import annotations

import struct
from pathlib import Path

from analyzer.inputs.bundle import load_bundle

ROUTES = "default via 10.0.0.1 dev eth0\n10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1\n"


def pcap(magic: int = 0xA1B2C3D4, record: int = 16, frames: int = 1) -> bytes:
    frame = bytes(14)
    rec = struct.pack("<IIII", 1, 0, len(frame), len(frame)) + bytes(record - 16) + frame
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1) + rec * frames


def test_modified_pcap_is_a_capture_as_for_read_capture(tmp_path: Path) -> None:
    node = tmp_path / "n1"
    node.mkdir()
    (node / "ip-route").write_text(ROUTES)
    (node / "eth0.pcap").write_bytes(pcap(0xA1B2CD34, record=24))  # old Red Hat tcpdump
    snap = load_bundle(node)
    assert [(c.interface, c.display) for c in snap.captures] == [("eth0", f"{node}/eth0.pcap")]
    assert snap.warnings == ()
