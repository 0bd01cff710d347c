"""NAT twins only through a rewrite Kubernetes makes (``stitch.nat_plausible``).

Two pods' DNS queries with the same payload under the same IP ID (a reused ID, an identical
question) used to be stitched as SNATs of each other; a real DNAT (service -> pod) and a
MASQUERADE (pod -> node) are still twins. Checked through the whole text report, with the plain
lane and without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import ether, ipv4, tcp, udp, write_pcap

from analyzer.commands.explain import _stream_text
from analyzer.engines.stitch import nat_plausible
from analyzer.model.explain import NodeFacts, Topology
from analyzer.pipeline import plain

TOPO = Topology(nodes=(NodeFacts(name="n1", addresses=("192.168.0.11",), pod_cidr="10.244.0.0/24"),
                       NodeFacts(name="n2", addresses=("192.168.0.12",), pod_cidr="10.244.1.0/24")),
                cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")


def test_rules() -> None:
    assert not nat_plausible("10.244.0.5", "10.96.0.10", "10.244.1.7", "10.96.0.10", TOPO)  # pod -> another pod
    assert nat_plausible("10.244.0.5", "10.96.0.10", "10.244.0.5", "10.244.1.9", TOPO)  # DNAT service -> pod
    assert nat_plausible("10.244.0.5", "8.8.8.8", "192.168.0.11", "8.8.8.8", TOPO)  # MASQUERADE pod -> node
    assert nat_plausible("10.244.0.5", "10.244.1.9", "10.244.0.1", "10.244.1.9", TOPO)  # hairpin: to cni0's .1


def _report(cap: Path, out: Path, lane: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(plain.PLAIN_ENV, "1" if lane else "0")
    _stream_text([str(cap)], out, lang="en", vxlan_ports=(), warn=lambda _line: None, progress=None,
                 annotate_dir=None)
    return out.read_text(encoding="utf-8")


def test_same_query_from_two_pods_is_two_flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    question = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x07default\x00\x00\x01\x00\x01"
    answer = question[:2] + b"\x81\x80" + question[4:]
    frames = [
        ether(ipv4(udp(question, sport=40001, dport=53), src="10.244.0.5", dst="10.96.0.10", ident=777)),
        ether(ipv4(udp(question, sport=40001, dport=53), src="10.244.1.7", dst="10.96.0.10", ident=777)),
        ether(ipv4(udp(answer, sport=53, dport=40001), src="10.96.0.10", dst="10.244.0.5", ident=9)),
        ether(ipv4(udp(answer, sport=53, dport=40001), src="10.96.0.10", dst="10.244.1.7", ident=10)),
    ]
    cap = tmp_path / "dns.pcap"
    write_pcap(cap, frames)
    for lane in (False, True):
        text = _report(cap, tmp_path / f"r{lane}.txt", lane, monkeypatch)
        assert "2 flows (2 delivered)" in text, text
        assert "SNAT" not in text and "DNAT" not in text, text


def test_a_dnat_is_still_a_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a pod's SYN to a ClusterIP, and the same SYN after kube-proxy's DNAT to the endpoint pod
    syn = tcp(sport=40002, dport=80, flags="S", seq=1000)
    synack = tcp(sport=80, dport=40002, flags="SA", seq=5000, ack=1001)
    frames = [
        ether(ipv4(syn, src="10.244.0.5", dst="10.96.0.20", ident=4242)),
        ether(ipv4(syn, src="10.244.0.5", dst="10.244.1.9", ident=4242)),
        ether(ipv4(synack, src="10.244.1.9", dst="10.244.0.5", ident=31)),
        ether(ipv4(synack, src="10.96.0.20", dst="10.244.0.5", ident=31)),
    ]
    cap = tmp_path / "dnat.pcap"
    write_pcap(cap, frames)
    for lane in (False, True):
        text = _report(cap, tmp_path / f"d{lane}.txt", lane, monkeypatch)
        assert "1 flows (1 delivered)" in text or "1 flow (1 delivered)" in text, text
        assert "DNAT 10.96.0.20:80 → 10.244.1.9:80" in text, text
