"""explain's fixed-offset record builder equals the general decoder on every frame it accepts."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from explaincheck import SAMPLES

from analyzer.inputs.capture import read_capture
from analyzer.inputs.decode import VXLAN_UDP_PORTS, decode_frame, to_record
from analyzer.pipeline.explain import fast_record

PORTS = frozenset(VXLAN_UDP_PORTS)


def _captures() -> list[Path]:
    caps = sorted(SAMPLES.glob("*/*/*.pcap"))
    if not caps:
        pytest.skip("samples/ is absent")
    return caps


def _compare(path: Path) -> tuple[int, int]:
    accepted = total = 0
    for frame in read_capture(path):
        total += 1
        fast = fast_record(frame.file, frame.number, frame.ts, frame.linktype, frame.data, frame.wire_len,
                           frame.interface, PORTS)
        if fast is None:
            continue
        accepted += 1
        slow = to_record(frame, decode_frame(frame.data, frame.linktype, vxlan_ports=PORTS))
        diff = {f.name: (getattr(fast, f.name), getattr(slow, f.name)) for f in fields(slow)
                if getattr(fast, f.name) != getattr(slow, f.name)}
        assert not diff, f"{path} frame {frame.number}: {diff}"
    return accepted, total


def test_fast_records_equal_the_general_decoder_on_the_lab_recordings() -> None:
    accepted = total = 0
    for cap in _captures():
        a, t = _compare(cap)
        accepted += a
        total += t
    assert total > 500
    # the common shapes are most frames (lab VXLAN frames carry offloaded checksums: general decoder)
    assert accepted > 0.6 * total


def test_fast_records_on_crafted_shapes(tmp_path: Path) -> None:
    from builders import ether, icmp, icmp_frag_needed, ipv4, sll2, tcp, udp, vxlan, write_pcap

    inner = ether(ipv4(tcp(b"hello", sport=1, dport=2, flags="PA", seq=5, mss=1400), src="10.244.1.2",
                       dst="10.244.2.2", ident=7, df=True))
    frames = [
        inner,
        ether(ipv4(udp(vxlan(inner, vni=1), sport=5, dport=8472, checksum=0x1234), src="192.168.0.1",
                   dst="192.168.0.2")),
        ether(ipv4(udp(vxlan(inner, vni=7), sport=5, dport=8472), src="192.168.0.1", dst="192.168.0.2")),
        ether(ipv4(udp(vxlan(inner, vni=7), sport=5, dport=8472, checksum=0), src="192.168.0.1", dst="192.168.0.2")),
        ether(ipv4(icmp(b"x" * 40), src="10.244.1.2", dst="10.244.2.2")),
        ether(ipv4(icmp_frag_needed(bytes(ipv4(tcp(), src="10.244.1.2", dst="10.244.2.2"))[:28], mtu=1450),
                   src="10.244.1.1", dst="10.244.1.2")),
        ether(ipv4(udp(b"q" * 100, sport=5353, dport=53), src="10.244.1.2", dst="10.96.0.10", mf=True)),
        ether(ipv4(tcp(b"z" * 3000, sport=1, dport=2, flags="A"), src="10.244.1.2", dst="10.244.2.2"))[:200],
    ]
    a, t = _compare(write_pcap(tmp_path / "eth.pcap", frames))
    assert t == len(frames) and a == 4  # plain TCP, good VXLAN, checksum-less VXLAN, echo
    cooked = [sll2(bytes(f)[14:], pkttype=p, ifindex=3) for f, p in zip(frames, (0, 4, 0, 4, 0, 0, 0, 4))]
    a, t = _compare(write_pcap(tmp_path / "any.pcap", cooked, linktype=276))
    assert t == len(frames) and a == 4
