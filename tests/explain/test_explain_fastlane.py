"""The text report's fast lanes give byte for byte what the general path gives.

``K8S_TRACE_EXPLAIN_GENERAL=1`` forces the general path (every sampled frame through the general
decoder, ...). The text report is rendered both ways, en and zh, on generated flannel mixes
(several seeds), on every lab sample (all its nodes at once) and on corpus captures; and the
fixed-offset records of ``inputs.decode.quick`` are compared with the general decoder's on every
frame of those captures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.commands.explain import _stream_text
from analyzer.inputs.capture import read_capture
from analyzer.inputs.decode import FLANNEL_UDP_PORTS, GENEVE_UDP_PORTS, _port_map
from analyzer.inputs.decode.quick import quick_record
from analyzer.inputs.fastpath import GeneralDecoder
from analyzer.pipeline.explain import GENERAL_ENV, fast_lane

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
PORTS = frozenset({4789, 8472})
#: corpus captures of the shapes the fast lanes take or must refuse (VXLAN, GRE, GENEVE, IPv6,
#: bad headers, fragments, VLAN, cooked captures)
CORPUS = ("tcpdump/vxlan.pcap", "tcpdump/vxlan_port_8472.pcap", "tcpdump/gso-ipv6-vxlan-ipv4.pcap",
          "tcpdump/ipv4_invalid_hdr_length.pcap", "tcpdump/various_gre.pcap", "tcpdump/geneve.pcap",
          "tcpdump/tcp-handshake-nano.pcap", "PcapPlusPlus/Vxlan2.pcap", "PcapPlusPlus/frag_with_padding.pcap",
          "PcapPlusPlus/sll.pcap", "PcapPlusPlus/ArpRequestWithVlan.pcap", "PcapPlusPlus/IcmpPackets.pcap")


@pytest.fixture(scope="module")
def mixes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("mix")
    paths = []
    for seed, n in ((1, 6000), (2, 12000), (5, 20000)):
        p = out / f"mix-{seed}.pcap"
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), str(n), str(p), "--seed", str(seed)],
                       check=True, capture_output=True)
        paths.append(p)
    return paths


def _text(inputs: list[str], out: Path, lang: str, monkeypatch: pytest.MonkeyPatch, *, general: bool
          ) -> tuple[str, list[str]]:
    monkeypatch.setenv(GENERAL_ENV, "1" if general else "0")
    assert fast_lane() is not general
    warnings: list[str] = []
    _stream_text(inputs, out, lang=lang, vxlan_ports=(), warn=warnings.append, progress=None, annotate_dir=None)
    return out.read_text(encoding="utf-8"), warnings


def _same_text(inputs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    text = ""
    for lang in ("en", "zh"):
        want, want_warn = _text(inputs, tmp_path / f"general-{lang}.txt", lang, monkeypatch, general=True)
        got, got_warn = _text(inputs, tmp_path / f"fast-{lang}.txt", lang, monkeypatch, general=False)
        assert got == want, f"{inputs} ({lang}): the fast lane's report differs from the general path's"
        assert got_warn == want_warn
        text = text or got
    return text


def test_fast_lane_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GENERAL_ENV, raising=False)
    assert fast_lane()
    for off in ("0", ""):
        monkeypatch.setenv(GENERAL_ENV, off)
        assert fast_lane()
    monkeypatch.setenv(GENERAL_ENV, "1")
    assert not fast_lane()


def test_mix_reports_are_identical(mixes: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for cap in mixes:
        text = _same_text([str(cap)], tmp_path, monkeypatch)
        head = text.splitlines()[0]
        assert " flows (" in head and "delivered" in head
        assert "RETRANSMISSIONS" in text  # the mixes hold flows the report details, not only summary lines


@pytest.mark.parametrize("name", sorted(p.parent.name for p in SAMPLES.glob("*/scenario.json")))
def test_lab_sample_reports_are_identical(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = sorted(str(d) for d in (SAMPLES / name).iterdir() if d.is_dir())
    assert nodes
    text = _same_text(nodes, tmp_path, monkeypatch)
    assert text.startswith("k8s-trace: ")


@pytest.mark.parametrize("rel", CORPUS)
def test_corpus_reports_are_identical(rel: str, corpus_dir: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cap = corpus_dir / rel
    if not cap.exists():
        pytest.skip(f"{rel} is not in this corpus")
    _same_text([str(cap)], tmp_path, monkeypatch)


def _records_agree(paths: list[Path]) -> tuple[int, int]:
    """(frames, frames the quick builder took); asserts its records equal the general decoder's."""
    general = GeneralDecoder(PORTS)
    ports = _port_map(PORTS, GENEVE_UDP_PORTS, FLANNEL_UDP_PORTS)
    frames = taken = 0
    for path in paths:
        for fr in read_capture(str(path), warn=None):
            frames += 1
            quick = quick_record(str(path), fr.number, fr.ts, fr.linktype, fr.data, fr.wire_len, fr.interface, ports)
            if quick is None:
                continue
            taken += 1
            want = general.record(str(path), fr.number, fr.ts, fr.linktype, fr.data, fr.wire_len, fr.interface)
            assert quick == want, f"{path} #{fr.number}"
    return frames, taken


def test_quick_records_equal_the_general_decoders(mixes: list[Path]) -> None:
    frames, taken = _records_agree(mixes[:2])
    # nearly every frame of a flannel mix is of a quick shape (the rest: ARP, ICMP, IPv6)
    assert taken > 0.9 * frames


def test_quick_records_on_samples_and_corpus(corpus_dir: Path) -> None:
    caps = sorted(SAMPLES.glob("*/node*/*.pcap"))
    caps += [corpus_dir / rel for rel in CORPUS if (corpus_dir / rel).exists()]
    frames, taken = _records_agree(caps)
    assert frames and taken  # per-interface Ethernet captures of the lab take the quick shapes


def test_quick_refuses_what_it_cannot_build_exactly() -> None:
    import struct
    import zlib

    ports = _port_map(PORTS, GENEVE_UDP_PORTS, FLANNEL_UDP_PORTS)
    eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    payload = b"hello"

    def ip(total: int, frag: int = 0x4000, vihl: int = 0x45, proto: int = 6) -> bytes:
        return struct.pack("!BBHHHBBH4s4s", vihl, 0, total, 7, frag, 64, proto, 0, bytes([10, 0, 0, 1]),
                           bytes([10, 0, 0, 2]))

    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1, 0, 0x50, 0x18, 1000, 0, 0) + payload
    good = eth + ip(20 + len(tcp)) + tcp
    rec = quick_record("f", 1, 0.5, 1, good, len(good), None, ports)
    assert rec is not None and (rec.src, rec.dport, rec.payload_len) == ("10.0.0.1", 80, 5)
    assert rec.payload_hash == zlib.crc32(payload) and rec.df and rec.ip_id == 7
    assert rec.src_mac == "02:00:00:00:00:02" and rec.dst_mac == "02:00:00:00:00:01"
    refused = {
        "fragment": eth + ip(20 + len(tcp), frag=0x2000) + tcp,
        "options": eth + ip(24 + len(tcp), vihl=0x46) + b"\x01\x01\x01\x00" + tcp,
        "cut": eth + ip(40 + len(tcp)) + tcp,
        "icmp": eth + ip(20 + len(tcp), proto=1) + tcp,
        "vlan": eth[:12] + b"\x81\x00\x00\x01\x08\x00" + ip(20 + len(tcp)) + tcp,
    }
    for why, frame in refused.items():
        assert quick_record("f", 1, 0.5, 1, frame, len(frame), None, ports) is None, why


def _mix_frames(n: int = 400) -> list[tuple[int, bytes]]:
    """The first ``n`` frames of a small generated mix (VXLAN, IPIP, plain TCP and UDP, ARP...)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "m.pcap"
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), str(n), str(p), "--seed", "3"],
                       check=True, capture_output=True)
        return [(fr.linktype, bytes(fr.data)) for fr in read_capture(str(p), warn=None)]


_FRAMES: list[tuple[int, bytes]] = []


def test_quick_records_survive_mutation() -> None:
    """Frames of the mix with bytes overwritten anywhere in their first 100 (every header of
    the quick shapes): the quick builder either refuses or gives the general decoder's record."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    if not _FRAMES:
        _FRAMES.extend(_mix_frames())
    general = GeneralDecoder(PORTS)
    ports = _port_map(PORTS, GENEVE_UDP_PORTS, FLANNEL_UDP_PORTS)
    seen = {"taken": 0}

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.integers(0, len(_FRAMES) - 1), st.lists(st.tuples(st.integers(0, 99), st.integers(0, 255)),
                                                       min_size=1, max_size=3), st.integers(0, 200))
    def check(which: int, edits: list[tuple[int, int]], cut: int) -> None:
        linktype, data = _FRAMES[which]
        buf = bytearray(data)
        for at, value in edits:
            if at < len(buf):
                buf[at] = value
        frame = bytes(buf[: len(buf) - cut] if cut < len(buf) else buf)
        quick = quick_record("m.pcap", 1, 1.0, linktype, frame, len(data), None, ports)
        if quick is not None:
            seen["taken"] += 1
            assert quick == general.record("m.pcap", 1, 1.0, linktype, frame, len(data), None)

    check()
    assert seen["taken"] > 100  # the mutations left many frames of a quick shape: compared, not skipped
