"""Live lab runs with kube-proxy in nftables mode: real traffic through the generated ``table ip kube-proxy``.

Each run has its own namespace tag and must leave no namespace, /etc/netns entry or process of that
tag behind. ``explain`` is not asked to agree with these recordings yet (it does not model
kube-proxy's nftables table); what is checked is what the kernel did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.lab import run as run_mod
from analyzer.lab.kube_proxy_nft import hash_and_truncate
from analyzer.lab.netns import NETNS_ETC, existing_namespaces, marked_processes
from analyzer.lab.scenarios import scenario
from analyzer.lab.topology import LabParams

pytestmark = pytest.mark.netns


def _host_state(tag: str) -> tuple[set[str], set[str], list[str]]:
    prefix = f"k8sl-{tag}-"
    etc = {p.name for p in NETNS_ETC.iterdir()} if NETNS_ETC.is_dir() else set()
    return ({n for n in existing_namespaces() if n.startswith(prefix)}, {n for n in etc if n.startswith(prefix)},
            [cmd for _pid, cmd in marked_processes(prefix)])


def _run(name: str, out: Path) -> dict:
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (.ci/run installs nftables)")
    tag = f"t{os.getpid() % 100000}{name.replace('-', '')[:6]}"
    sc = scenario(name)
    assert _host_state(tag) == (set(), set(), [])
    doc = run_mod.run_scenario(sc, replace(sc.lab_params(LabParams()), tag=tag), out)
    assert _host_state(tag) == (set(), set(), [])
    assert doc["teardown"] == {"problems": []}
    assert doc["params"]["kube_proxy_mode"] == "nftables"
    assert json.loads((out / "scenario.json").read_text()) == doc
    return doc


def _tshark(tshark: str, pcap: Path, fields: list[str], filt: str) -> list[list[str]]:
    argv = [tshark, "-n", "-r", str(pcap), "-d", "udp.port==8472,vxlan", "-Y", filt, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def _dumps_show_nft_mode(node_dir: Path) -> str:
    """The node's nft-ruleset (returned) holds kube-proxy's table; its iptables-save has no KUBE- chain."""
    ruleset = (node_dir / "nft-ruleset").read_text()
    assert "table ip kube-proxy {" in ruleset
    iptables = (node_dir / "iptables-save").read_text()
    assert "KUBE-" not in iptables and "FLANNEL-POSTRTG" in iptables
    return ruleset


def test_service_nft_dnats_on_node1_and_web_answers(tmp_path: Path, tshark: str, netns: None) -> None:
    doc = _run("service-nft", tmp_path)
    (step,) = doc["steps"]
    assert step["outcome"] == "ok" and step["matches_expected"]
    assert step["result"]["served_by"] == "web"
    client, web = (p["ip"] for p in doc["pods"])
    svc_ip = doc["services"][0]["cluster_ip"]
    n1, n2 = (n["ip"] for n in doc["nodes"])
    # on the client's veth the SYN still goes to the ClusterIP ...
    veth = tmp_path / "node1" / f"{doc['pods'][0]['veth']}.pcap"
    assert _tshark(tshark, veth, ["ip.dst", "tcp.dstport"], "tcp.flags.syn == 1 && tcp.flags.ack == 0") == \
        [[svc_ip, "80"]]
    # ... and leaves node1 already DNATed to web:8080, inside VXLAN on eth0 and bare on flannel.1
    rows = _tshark(tshark, tmp_path / "node1" / "eth0.pcap", ["ip.src", "ip.dst", "tcp.dstport", "vxlan.vni"],
                   "tcp.flags.syn == 1 && tcp.flags.ack == 0")
    assert rows == [[f"{n1},{client}", f"{n2},{web}", "8080", "1"]]
    assert _tshark(tshark, tmp_path / "node1" / "flannel.1.pcap", ["ip.src", "ip.dst", "tcp.dstport"],
                   "tcp.flags.syn == 1 && tcp.flags.ack == 0") == [[client, web, "8080"]]
    # the answer comes from web and is un-NATed on node1: the client sees it from the ClusterIP
    assert _tshark(tshark, veth, ["ip.src", "tcp.srcport"], "http.response") == [[svc_ip, "80"]]
    ruleset = _dumps_show_nft_mode(tmp_path / "node1")
    assert f"dnat to {web}:8080" in ruleset
    assert "service-" + hash_and_truncate("default/web/tcp/http") in ruleset
    _dumps_show_nft_mode(tmp_path / "node2")
    # conntrack on node1 holds the translation: original to the ClusterIP, reply from web
    conntrack = (tmp_path / "node1" / "conntrack").read_text()
    assert any(f"dst={svc_ip}" in line and f"src={web} dst={client}" in line for line in conntrack.splitlines())


def test_nodeport_nft_masquerades_to_flannel_address(tmp_path: Path, tshark: str, netns: None) -> None:
    doc = _run("nodeport-nft", tmp_path)
    (step,) = doc["steps"]
    assert step["outcome"] == "ok" and step["result"]["served_by"] == "web"
    web = doc["pods"][0]["ip"]
    n1 = doc["nodes"][0]
    syn = "tcp.flags.syn == 1 && tcp.flags.ack == 0"
    assert _tshark(tshark, tmp_path / "node1" / "eth0.pcap", ["ip.src", "ip.dst", "tcp.dstport"], f"{syn} && !vxlan") \
        == [[doc["external"]["ip"], n1["ip"], "30080"]]
    # DNAT to web and MASQUERADE (mark-for-masquerade in external-, masquerading in nat-postrouting) to node1's
    # flannel.1 address
    assert _tshark(tshark, tmp_path / "node1" / "flannel.1.pcap", ["ip.src", "ip.dst", "tcp.dstport"], syn) == \
        [[n1["vtep_ip"], web, "8080"]]
    assert "tcp . 30080 : goto external-" in _dumps_show_nft_mode(tmp_path / "node1")


def test_no_endpoints_nft_is_rejected_by_reject_chain(tmp_path: Path, tshark: str, netns: None) -> None:
    doc = _run("no-endpoints-nft", tmp_path)
    (step,) = doc["steps"]
    assert step["outcome"] == "refused" and step["matches_expected"]
    assert step["result"]["elapsed"] < 1.0
    client = doc["pods"][0]
    svc_ip = doc["services"][0]["cluster_ip"]
    veth = tmp_path / "node1" / f"{client['veth']}.pcap"
    unreach = _tshark(tshark, veth, ["ip.dst", "icmp.code", "tcp.dstport"], "icmp.type == 3")
    assert len(unreach) == 1
    outer_dst, quoted_dst = unreach[0][0].split(",")
    assert (outer_dst, quoted_dst, unreach[0][1:]) == (client["ip"], svc_ip, ["3", "80"])
    assert _tshark(tshark, tmp_path / "node1" / "eth0.pcap", ["frame.number"], "tcp") == []
    ruleset = _dumps_show_nft_mode(tmp_path / "node1")
    assert f'{svc_ip} . tcp . 80 comment "default/empty:http" : goto reject-chain' in ruleset
