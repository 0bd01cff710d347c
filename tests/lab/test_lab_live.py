"""Live lab runs in real network namespaces: traffic outcomes, recordings, dumps and teardown.

Each test runs with its own namespace tag (k8sl-<tag>-...), so the lab never touches a namespace it
did not create, and checks that the namespaces, /etc/netns entries and processes are exactly as
before. Needs root and iproute2/iptables/tcpdump (the ``netns`` fixture skips otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.errors import LabError
from analyzer.inputs.bundle import BUNDLE_COMMANDS, load_bundle
from analyzer.lab import build as build_mod
from analyzer.lab import run as run_mod
from analyzer.lab.expect import compare
from analyzer.lab.netns import NETNS_ETC, existing_namespaces, marked_processes
from analyzer.lab.scenarios import scenario
from analyzer.lab.topology import LabParams

pytestmark = pytest.mark.netns

#: dump files every lab node must have (ip6tables-save / ip6-route are empty in an IPv4-only lab)
REQUIRED_DUMPS = {"node", "iptables-save", "ip-addr", "ip-link", "ip-route", "ip-rule", "bridge-fdb",
                  "ip-neigh", "subnet.env", "conntrack", "sysctl"}


def _tag(name: str) -> str:
    return f"t{os.getpid() % 100000}{name}"


def _lab_processes(tag: str) -> list[str]:
    """Command lines of live processes the lab started for this tag (servers, clients, tcpdump)."""
    return [cmd for _pid, cmd in marked_processes(f"k8sl-{tag}-")]


def _host_state(tag: str) -> tuple[set[str], set[str], list[str]]:
    prefix = f"k8sl-{tag}-"
    etc = {p.name for p in NETNS_ETC.iterdir()} if NETNS_ETC.is_dir() else set()
    return ({n for n in existing_namespaces() if n.startswith(prefix)},
            {n for n in etc if n.startswith(prefix)}, _lab_processes(tag))


def _run(name: str, out: Path, **params) -> dict:
    tag = _tag(name.replace("-", "")[:8])
    sc = scenario(name)
    assert _host_state(tag) == (set(), set(), [])
    doc = run_mod.run_scenario(sc, replace(sc.lab_params(LabParams()), tag=tag, **params), out)
    # nothing of this run survives it: `ip netns list`, /etc/netns and the process table hold nothing of
    # this tag. (Only this tag's share can be compared: other sessions on the machine, other engineers'
    # tests included, run labs of their own meanwhile.)
    assert _host_state(tag) == (set(), set(), [])
    created = {n["namespace"] for n in doc["nodes"]} | {p["netns"] for p in doc["pods"]}
    assert created and not created & existing_namespaces()
    assert doc["teardown"] == {"problems": []}
    assert json.loads((out / "scenario.json").read_text()) == doc
    # and `k8s-trace explain` reads the fresh recording the way the scenario says it should
    from analyzer.pipeline.explain import explain_inputs

    explained = explain_inputs([str(out / n["name"]) for n in doc["nodes"]])
    assert compare(doc, explained) == []
    return doc


def _tshark(tshark: str, pcap: Path, fields: list[str], filt: str) -> list[list[str]]:
    argv = [tshark, "-n", "-r", str(pcap), "-d", "udp.port==8472,vxlan", "-Y", filt, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def _check_bundle(node_dir: Path, node_name: str, remote_ips: list[str]) -> None:
    present = {p.name for p in node_dir.iterdir()}
    assert present >= REQUIRED_DUMPS, REQUIRED_DUMPS - present
    assert {name for name, _ in BUNDLE_COMMANDS} >= REQUIRED_DUMPS  # the lab dumps what collect collects
    snap = load_bundle(node_dir)
    assert snap.name == node_name
    assert snap.warnings == ()
    assert snap.ruleset is not None
    assert snap.subnet_env is not None and snap.subnet_env.mtu == 1450
    vxlan = snap.interface("flannel.1")
    assert vxlan is not None and vxlan.vxlan.vni == 1 and vxlan.vxlan.port == 8472 and not vxlan.vxlan.learning
    fdb_dsts = {str(e.dst) for e in snap.fdb if e.dev == "flannel.1"}
    assert fdb_dsts == set(remote_ips)
    assert {c.interface for c in snap.captures} >= {"any", "eth0", "cni0", "flannel.1"}


def test_cross_node_vxlan(tmp_path: Path, tshark: str, netns: None) -> None:
    doc = _run("cross-node", tmp_path)
    (step,) = doc["steps"]
    assert step["outcome"] == "ok" and step["matches_expected"]
    assert step["result"]["served_by"] == "web"
    assert doc["duration_s"] < 15
    client, web = (p["ip"] for p in doc["pods"])
    n1, n2 = (n["ip"] for n in doc["nodes"])
    # VXLAN on the underlay: outer node1 -> node2 UDP 8472 with VNI 1 around the pod-to-pod SYN
    rows = _tshark(tshark, tmp_path / "node1" / "eth0.pcap", ["ip.src", "ip.dst", "udp.dstport", "vxlan.vni"],
                   "tcp.flags.syn == 1 && tcp.flags.ack == 0")
    assert rows == [[f"{n1},{client}", f"{n2},{web}", "8472", "1"]]
    replies = _tshark(tshark, tmp_path / "node2" / "eth0.pcap", ["ip.src", "ip.dst", "vxlan.vni"], "http.response")
    assert replies and all(r == [f"{n2},{web}", f"{n1},{client}", "1"] for r in replies)
    # the inner frame on flannel.1 is the bare pod packet
    inner = _tshark(tshark, tmp_path / "node2" / "flannel.1.pcap", ["ip.src", "ip.dst"], "http.request")
    assert inner == [[client, web]]
    for cap in doc["captures"]:
        assert cap["dropped"] == 0
        if cap["interface"] in ("eth0", "flannel.1", "cni0", "any"):
            assert cap["packets"] and cap["packets"] > 5, cap
    _check_bundle(tmp_path / "node1", "node1", [n2])
    _check_bundle(tmp_path / "node2", "node2", [n1])
    kube = json.loads((tmp_path / "node1" / "kubectl.json").read_text())
    assert {i["kind"] for i in kube["items"]} == {"Pod", "Node"}


def test_vxlan_port_blocked_times_out(tmp_path: Path, tshark: str, netns: None) -> None:
    doc = _run("vxlan-blocked", tmp_path)
    (step,) = doc["steps"]
    assert step["outcome"] == "timeout" and step["matches_expected"]
    n1, n2 = (n["ip"] for n in doc["nodes"])
    # every VXLAN packet is answered by node2 with ICMP host-prohibited (type 3 code 10) quoting UDP 8472
    icmp = _tshark(tshark, tmp_path / "node2" / "eth0.pcap", ["ip.src", "ip.dst", "icmp.code", "udp.dstport"],
                   "icmp.type == 3")
    # (tshark lists the outer address first, then the one quoted inside the ICMP error)
    assert icmp and all(r[0].split(",")[0] == n2 and r[1].split(",")[0] == n1 and r[2:] == ["10", "8472"]
                        for r in icmp)
    syns = _tshark(tshark, tmp_path / "node1" / "eth0.pcap", ["vxlan.vni"], "tcp.flags.syn == 1 && !icmp")
    assert len(syns) >= 2 and all(v == ["1"] for v in syns)  # the SYN and its retransmissions
    assert len(icmp) == len(syns)
    # nothing reaches node2's flannel.1, and the rule that did it is in the dump with its counter
    assert _tshark(tshark, tmp_path / "node2" / "flannel.1.pcap", ["frame.number"], "tcp") == []
    rules = (tmp_path / "node2" / "iptables-save").read_text()
    reject = [ln for ln in rules.splitlines() if "-A INPUT -j REJECT --reject-with icmp-host-prohibited" in ln]
    assert len(reject) == 1 and not reject[0].startswith("[0:")


def test_service_without_endpoints_is_refused(tmp_path: Path, tshark: str, netns: None) -> None:
    doc = _run("no-endpoints", tmp_path)
    (step,) = doc["steps"]
    assert step["outcome"] == "refused" and step["matches_expected"]
    assert step["result"]["elapsed"] < 1.0  # refused at once, not a timeout
    client = doc["pods"][0]
    svc_ip = doc["services"][0]["cluster_ip"]
    veth = tmp_path / "node1" / f"{client['veth']}.pcap"
    # ICMP port unreachable (type 3 code 3) to the client, quoting its SYN to the ClusterIP
    unreach = _tshark(tshark, veth, ["ip.dst", "icmp.code", "tcp.dstport"], "icmp.type == 3")
    assert len(unreach) == 1
    outer_dst, quoted_dst = unreach[0][0].split(",")
    assert (outer_dst, quoted_dst, unreach[0][1:]) == (client["ip"], svc_ip, ["3", "80"])
    # the SYN never left node1
    assert _tshark(tshark, tmp_path / "node1" / "eth0.pcap", ["frame.number"], "tcp") == []


def test_failure_mid_build_tears_everything_down(tmp_path: Path, netns: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tag = _tag("fail")
    built: list[str] = []
    real_build_pod = build_mod.build_pod

    def failing_build_pod(sb, cluster, pod, faults=None):  # noqa: ANN001
        real_build_pod(sb, cluster, pod, faults)
        built.append(pod.name)
        # the lab is half built: nodes, VXLAN devices, one pod; prove it really exists, then fail
        assert f"k8sl-{tag}-{pod.name}" in existing_namespaces()
        raise LabError("injected failure after the first pod")

    monkeypatch.setattr(build_mod, "build_pod", failing_build_pod)
    sc = scenario("cross-node")
    with pytest.raises(LabError, match="injected failure"):
        run_mod.run_scenario(sc, replace(sc.lab_params(LabParams()), tag=tag), tmp_path)
    assert built == ["client"]
    assert _host_state(tag) == (set(), set(), [])
    assert not (tmp_path / "scenario.json").exists()


def test_interrupt_during_traffic_tears_everything_down(tmp_path: Path, netns: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tag = _tag("intr")

    def interrupted(sb, sc, cluster, say):  # noqa: ANN001
        # servers and captures are running now
        assert any("tcpdump" in " ".join(p.argv) for p in sb.procs)
        assert _host_state(tag)[2], "expected lab processes while the lab runs"
        # no resolver lookup can leave the lab: the pods' resolver is the cluster DNS address, through
        # files and DNS only (ip netns exec bind-mounts these over /etc)
        etc = NETNS_ETC / f"k8sl-{tag}-client"
        assert "nameserver 10.96.0.10\n" in (etc / "resolv.conf").read_text()
        assert "hosts: files dns\n" in (etc / "nsswitch.conf").read_text()
        seen = sb.ns_run(f"k8sl-{tag}-client", ["cat", "/etc/resolv.conf", "/etc/nsswitch.conf"]).stdout
        assert "nameserver 10.96.0.10" in seen and "hosts: files dns" in seen and "nameserver 127.0.0.53" not in seen
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "run_steps", interrupted)
    sc = scenario("cross-node")
    with pytest.raises(KeyboardInterrupt):
        run_mod.run_scenario(sc, replace(sc.lab_params(LabParams()), tag=tag), tmp_path)
    assert _host_state(tag) == (set(), set(), [])
