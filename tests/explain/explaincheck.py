"""Helpers shared by the explain tests: run explain on samples, shift capture clocks, pick flows."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from builders import ether, ipv4, tcp, udp, vxlan, write_pcap

from analyzer.pipeline.explain import explain_inputs

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
FIXED_TIME = "2000-01-01T00:00:00Z"


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_dir():
        import pytest

        pytest.skip(f"samples/{name} is absent (k8s-trace lab samples --out samples)")
    return path


def explain(*paths: Path | str, **kw) -> dict:
    return explain_inputs([str(p) for p in paths], generated_at=FIXED_TIME, **kw)


def only_flow(doc: dict) -> dict:
    flows = doc["flows"]
    assert len(flows) == 1, [(f["client"], f["server"], f["status"]) for f in flows]
    return flows[0]


def codes(flow: dict) -> dict[str, dict]:
    return {f["code"]: f for f in flow["findings"]}


def shift_pcap(path: Path, seconds: float) -> None:
    """Add ``seconds`` to every record timestamp of a classic pcap file, in place."""
    data = bytearray(path.read_bytes())
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
             b"\xa1\xb2\x3c\x4d": ">"}[bytes(magic)]
    nano = bytes(magic) in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    scale = 1_000_000_000 if nano else 1_000_000
    rec = struct.Struct(order + "IIII")
    off = 24
    while off + rec.size <= len(data):
        sec, frac, incl, orig = rec.unpack_from(data, off)
        total = sec * scale + frac + round(seconds * scale)
        rec.pack_into(data, off, total // scale, total % scale, incl, orig)
        off += rec.size + incl
    path.write_bytes(bytes(data))


def copy_sample(name: str, dest: Path) -> Path:
    out = dest / name
    shutil.copytree(sample(name), out)
    return out


def vanishing_vxlan(node: Path, t0: float = 1_700_000_000.0) -> None:
    """Three SYNs 10.244.1.2 -> 10.244.2.2:8080 inside VXLAN from node1, captured on ``node``'s eth0
    and never again: an empty flannel.1 capture beside it."""
    frames = []
    for i, t in enumerate((0.0, 1.0, 3.0)):
        inner = ether(ipv4(tcp(sport=40000, dport=8080, flags="S", seq=7), src="10.244.1.2", dst="10.244.2.2",
                           ident=100 + i))
        outer = ipv4(udp(vxlan(inner, vni=1), sport=51000 + i, dport=8472), src="192.168.56.11",
                     dst="192.168.56.12", ident=300 + i)
        frames.append((t0 + t, ether(outer)))
    write_pcap(node / "eth0.pcap", frames)
    write_pcap(node / "flannel.1.pcap", [])
