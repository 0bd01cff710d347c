"""Simulate a service and a pod-to-external packet on each real dump of ../shared/corpus/real-iptables."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.engines.simulate import SimulationResult, simulate_packet
from analyzer.inputs.iptables_save import read_iptables_save
from analyzer.model.node import NodeSnapshot


def _node(corpus_dir: Path, name: str) -> NodeSnapshot:
    rs = read_iptables_save(corpus_dir / "real-iptables" / name, display=name)
    return NodeSnapshot(name=name[:2], ruleset=rs)


def _sim(node: NodeSnapshot, src: str, dst: str, proto: str, dport: int, node_ip: str) -> SimulationResult:
    r = simulate_packet([node], src, dst, proto, 40000, dport, local_ips=[node_ip])
    assert sum(o.probability for o in r.outcomes) == pytest.approx(1.0)
    return r


def test_01_centos_rejects(corpus_dir: Path) -> None:
    n = _node(corpus_dir, "01-centos7-flannel-icmp-host-prohibited.txt")
    [svc] = _sim(n, "10.1.0.20", "10.2.0.10", "udp", 53, "192.168.1.5").outcomes
    assert svc.status == "rejected" and svc.reject_with == "icmp-port-unreachable"
    assert svc.decided_by.line == 133 and svc.decided_by.comment == "kube-system/kube-dns:dns has no endpoints"
    [ext] = _sim(n, "10.1.0.20", "1.1.1.1", "tcp", 443, "192.168.1.5").outcomes
    assert ext.status == "rejected" and ext.reject_with == "icmp-host-prohibited"
    assert ext.decided_by.line == 109  # before FLANNEL-FWD on line 110
    [api] = _sim(n, "10.1.0.20", "10.2.0.1", "tcp", 443, "192.168.1.5").outcomes
    # DNATed to the apiserver on the node itself, where CentOS's INPUT catch-all rejects it
    assert api.dnat == "192.168.1.5:6443" and api.status == "rejected"
    assert api.decided_by.line == 93 and api.reject_with == "icmp-host-prohibited"
    [ssh] = _sim(n, "10.1.0.20", "192.168.1.5", "tcp", 22, "192.168.1.5").outcomes
    assert ssh.status == "local" and ssh.reply_status == "delivered"


def test_02_kubeadm_probabilities_and_flannel_masquerade(corpus_dir: Path) -> None:
    n = _node(corpus_dir, "02-ubuntu-kubeadm-flannel-service1.txt")
    r = _sim(n, "10.244.0.9", "10.108.64.11", "tcp", 8080, "192.168.157.133")
    got = {o.dnat: o.probability for o in r.outcomes}
    assert set(got) == {"10.244.1.4:8080", "10.244.1.5:8080", "10.244.1.6:8080"}
    assert all(p == pytest.approx(1 / 3, abs=1e-6) for p in got.values())
    assert got["10.244.1.4:8080"] == pytest.approx(0.33333333349)  # what the kernel stores for 1/3
    [ext] = _sim(n, "10.244.0.9", "8.8.8.8", "udp", 53, "192.168.157.133").outcomes
    masq = ext.translation("masquerade")
    assert ext.status == "forwarded" and masq is not None
    assert masq.rule.chain == "FLANNEL-POSTRTG" and masq.rule.line == 109 and masq.detail == "--random-fully"
    # FORWARD policy is DROP here, but flannel's FLANNEL-FWD accepts pod traffic
    assert any(rule.chain == "FLANNEL-FWD" and rule.target == "ACCEPT" for _, rule in ext.rules)


def test_03_k3s_nodeport_to_host_network_endpoint_and_external_ip(corpus_dir: Path) -> None:
    n = _node(corpus_dir, "03-k3s-flannel-kube-router-nftables.txt")
    [np] = _sim(n, "203.0.113.5", "192.168.1.105", "tcp", 30080, "192.168.1.105").outcomes
    assert np.status == "local" and np.dnat == "192.168.1.105:8096"
    [eip] = _sim(n, "203.0.113.5", "100.90.167.160", "tcp", 80, "192.168.1.105").outcomes
    assert eip.dnat == "192.168.1.105:80"
    assert any(rule.chain.startswith("KUBE-EXT-") and rule.target == "KUBE-MARK-MASQ" for _, rule in eip.rules)
    [ext] = _sim(n, "10.42.0.31", "1.1.1.1", "tcp", 443, "192.168.1.105").outcomes
    assert ext.status == "forwarded"
    assert ext.translation("masquerade").rule.chain == "FLANNEL-POSTRTG"
    assert any(rule.chain.startswith("KUBE-POD-FW-") for _, rule in ext.rules)  # kube-router netpol walked


def test_04_centos_after_flush(corpus_dir: Path) -> None:
    n = _node(corpus_dir, "04-centos7-flannel-after-flush.txt")
    r = _sim(n, "10.1.0.9", "10.2.0.10", "tcp", 53, "192.168.1.5")
    assert {o.dnat for o in r.outcomes} == {"10.1.0.64:53", "10.1.0.67:53"}
    assert all(o.probability == pytest.approx(0.5) for o in r.outcomes)
    [np] = _sim(n, "192.0.2.9", "192.168.1.5", "tcp", 32117, "192.168.1.5").outcomes
    assert np.dnat == "10.1.0.63:8080" and np.translation("masquerade") is not None
    [ext] = _sim(n, "10.1.0.9", "8.8.8.8", "udp", 53, "192.168.1.5").outcomes
    assert ext.status == "forwarded" and ext.translation("masquerade").rule.chain == "FLANNEL-POSTRTG"
