"""Bundles: captures recognised as capture.py recognises them (compressed ones too), cut tarballs,
and ``is_bundle_dir`` as the one answer to "is this directory a node bundle?"."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import re
import shutil
import struct
from pathlib import Path

from analyzer.inputs.bundle import load_bundle
from analyzer.pipeline.explain import explain_inputs

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

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


def _compress(path: Path, kind: str) -> Path:
    packed = path.with_name(path.name + {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}[kind])
    opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}[kind]
    with opener(packed, "wb") as out:
        out.write(path.read_bytes())
    path.unlink()
    return packed


def test_compressed_captures_are_picked_up_with_their_interface(tmp_path: Path) -> None:
    node = tmp_path / "n1"
    node.mkdir()
    (node / "ip-route").write_text(ROUTES)
    for name, kind in (("eth0.pcap", "gzip"), ("cni0.pcap", "bzip2"), ("flannel.1.pcap", "xz"),
                       ("any.pcap", "gzip"), ("dump", "gzip")):
        (node / name).write_bytes(pcap())
        _compress(node / name, kind)
    (node / "notes.gz").write_bytes(gzip.compress(b"not a capture\n"))
    snap = load_bundle(node)
    got = {Path(c.path).name: c.interface for c in snap.captures}
    assert got == {"eth0.pcap.gz": "eth0", "cni0.pcap.bz2": "cni0", "flannel.1.pcap.xz": "flannel.1",
                   "any.pcap.gz": "any", "dump.gz": None}
    assert [c.display for c in snap.captures][0] == f"{node}/any.pcap.gz"
    assert snap.warnings == (
        f"{node}/dump.gz: capture without an interface in its name (use <iface>.pcap)",
        f"{node}/notes.gz: binary file that is neither a capture nor a dump; ignored",
    )


def _normalised(doc: dict, root: Path) -> str:
    doc = {k: v for k, v in doc.items() if k not in ("generated_at", "generated")}
    text = json.dumps(doc, sort_keys=True).replace(str(root), "ROOT")
    return re.sub(r"\.pcap(?:\.gz|\.bz2|\.xz)", ".pcap", text)


def test_explain_reads_a_bundle_of_compressed_captures_as_the_plain_one(tmp_path: Path) -> None:
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    shutil.copytree(SAMPLES / "cross-node", plain, ignore=shutil.ignore_patterns("*.md", "scenario.json"))
    shutil.copytree(plain, packed)
    kinds = iter(("gzip", "bzip2", "xz") * 10)
    for capture in sorted(packed.glob("*/*.pcap")):
        _compress(capture, next(kinds))
    assert not list(packed.glob("*/*.pcap"))
    docs = [explain_inputs([root], generated_at="2026-01-01T00:00:00Z") for root in (plain, packed)]
    assert docs[0]["flows"] and docs[0]["flows"][0]["status"] == "delivered"
    assert _normalised(docs[1], packed) == _normalised(docs[0], plain)
