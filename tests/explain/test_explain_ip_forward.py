"""IP_FORWARD_DISABLED on the recorded sample (node2 with net.ipv4.ip_forward = 0): the SYN arrives
on node2's eth0 inside VXLAN, comes out of flannel.1, and the kernel does not route it on to cni0.
With the dumps: dropped at node2's route lookup (not at FORWARD), an error naming the sysctl lines;
from node2's ``-i any`` capture alone: the same status, a suspicion that names FORWARD_BLOCKED as
the cause the packets cannot tell apart. FORWARD policy DROP (forward-drop) and healthy samples
never get it from the dumps; the kernel agrees with the forwarding model."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from explaincheck import codes, explain, only_flow, sample

from analyzer.engines.routing import lookup_route
from analyzer.inputs.bundle import load_bundle


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == text)


def test_with_dumps() -> None:
    root = sample("ip-forward-off")
    flow = only_flow(explain(root / "node1", root / "node2"))
    assert (flow["kind"], flow["status"]) == ("pod-to-pod-cross-node", "dropped"), flow["verdict"]["en"]
    assert [e["type"] for e in flow["encapsulation"]] == ["vxlan"]
    hops = flow["hops"]
    failed = [i for i, h in enumerate(hops) if h["failed"]]
    assert [(hops[i]["node"], hops[i]["kind"]) for i in failed] == [("node2", "route")]
    i = failed[0]
    why = hops[i]["explanation"]
    assert "came in on flannel.1, where forwarding is off" in why["en"] and "without an ICMP error" in why["en"]
    assert "关闭了转发" in why["zh"] and "net.ipv4.ip_forward = 0" in why["zh"] and "forwarding is off" not in why["zh"]
    # seen decapsulated on flannel.1 just before; captured at cni0 and absent there; FORWARD never reached
    assert (hops[i - 1]["kind"], hops[i - 1]["interface"], hops[i - 1]["observed"]) == ("vtep", "flannel.1", True)
    assert [(h["kind"], h["observed"]) for h in hops[i + 1:i + 3]] == [("netfilter", None), ("bridge", False)]
    assert hops[i + 2]["interface"] == "cni0"
    assert [h["id"] for h in hops] == [f"{flow['id']}.{n}" for n in range(1, len(hops) + 1)]
    assert len(flow["graph"]["edges"]) == len(hops) - 1

    found = codes(flow)
    assert "FORWARD_BLOCKED" not in found and "OVERLAY_PORT_BLOCKED" not in found
    f = found["IP_FORWARD_DISABLED"]
    assert (f["node"], f["severity"], f["checkable"]) == ("node2", "error", True)
    sysctl = root / "node2" / "sysctl"
    lines = [e for e in f["evidence"] if e["line"]]
    assert lines[0]["file"].endswith("node2/sysctl")
    assert (lines[0]["line"], lines[0]["text"].strip()) == (_line_of(sysctl, "net.ipv4.ip_forward = 0"),
                                                             "net.ipv4.ip_forward = 0")
    # the kernel's own test: the input device's forwarding flag
    assert any(e["text"].strip() == "net.ipv4.conf.flannel/1.forwarding = 0" for e in lines), lines
    texts = [e["text"] for e in f["evidence"] if e["packet"]]
    assert any("in VXLAN 192.168.56.11 > 192.168.56.12:8472" in t and "SYN" in t for t in texts), texts
    assert any(t.endswith("> 10.244.2.2:8080 SYN") for t in texts), texts  # the decapsulated copy
    assert all(e["file"].startswith(str(root / "node2")) for e in f["evidence"])
    assert "came in on flannel.1" in f["message"] and "before the FORWARD chain" in f["message"]
    assert "none on cni0" in f["message"]
    assert "sysctl -w net.ipv4.ip_forward=1" in f["fix"] and "/etc/sysctl.d/" in f["fix"]
    assert "kube-proxy" in f["fix"] and "flannel" in f["fix"]
    assert "net.ipv4.ip_forward" in f["message_zh"] and "sysctl -w net.ipv4.ip_forward=1" in f["fix_zh"]


def test_from_node2_any_capture_alone() -> None:
    doc = explain(sample("ip-forward-off") / "node2" / "any.pcap")
    flow = only_flow(doc)
    assert (flow["kind"], flow["status"]) == ("pod-to-pod-cross-node", "dropped"), flow["verdict"]["en"]
    f = codes(flow)["IP_FORWARD_DISABLED"]
    assert (f["severity"], f["checkable"]) == ("info", False)
    assert f["message"].startswith("Suspected: ")
    assert "FORWARD_BLOCKED" in f["message"] and "cannot tell them apart" in f["message"]
    assert not any(e["line"] for e in f["evidence"]) and f["evidence"]
    assert "IP_FORWARD_DISABLED" in {n["code"] for n in doc["not_checkable"]}


def test_client_node_capture_alone_says_nothing_about_node2() -> None:
    # node1 saw its SYNs leave and nothing come back: where they died is unknown there
    flow = only_flow(explain(sample("ip-forward-off") / "node1" / "any.pcap"))
    assert flow["status"] == "no-reply"
    assert "IP_FORWARD_DISABLED" not in codes(flow)


def test_forward_policy_drop_is_not_ip_forward() -> None:
    root = sample("forward-drop")
    flow = only_flow(explain(root / "node1", root / "node2"))
    found = codes(flow)
    assert "IP_FORWARD_DISABLED" not in found
    assert found["FORWARD_BLOCKED"]["checkable"] is True
    assert [(h["node"], h["kind"]) for h in flow["hops"] if h["failed"]] == [("node2", "netfilter")]
    # from packets alone both look the same, and the suspicion says so
    alone = codes(only_flow(explain(root / "node2" / "any.pcap")))
    assert alone["IP_FORWARD_DISABLED"]["checkable"] is False
    assert "FORWARD_BLOCKED" in alone["IP_FORWARD_DISABLED"]["message"]


@pytest.mark.parametrize("name", ["cross-node", "service-remote", "nodeport", "host-gw", "external-masq", "dns",
                                  "two-endpoints", "three-node", "same-node", "hairpin", "missing-fdb",
                                  "vxlan-blocked", "external-no-masq", "hairpin-off", "br-netfilter-off",
                                  "no-endpoints", "mtu"])
def test_other_samples_are_not_flagged(name: str) -> None:
    root = sample(name)
    nodes = sorted(p for p in root.iterdir() if p.is_dir())
    for inputs in [nodes] + [[n / "any.pcap"] for n in nodes if (n / "any.pcap").exists()]:
        for flow in explain(*inputs)["flows"]:
            assert "IP_FORWARD_DISABLED" not in codes(flow), (name, inputs, flow["verdict"]["en"])


def _edit_sysctl(root: Path, node: str, changes: dict[str, str]) -> None:
    path = root / node / "sysctl"
    lines = []
    for line in path.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"{key} = {changes[key]}" if key in changes else line)
    path.write_text("\n".join(lines) + "\n")


def test_only_the_input_device_forwarding_off(tmp_path: Path) -> None:
    """ip_forward = 1 but conf.flannel/1.forwarding = 0: the kernel checks the device; so do we."""
    root = tmp_path / "s"
    shutil.copytree(sample("ip-forward-off"), root)
    on = {k: "1" for k in ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv4.conf.cni0.forwarding",
                           "net.ipv4.conf.eth0.forwarding", "net.ipv4.conf.default.forwarding")}
    _edit_sysctl(root, "node2", on)
    flow = only_flow(explain(root / "node1", root / "node2"))
    f = codes(flow)["IP_FORWARD_DISABLED"]
    assert [e["text"].strip() for e in f["evidence"] if e["line"]] == ["net.ipv4.conf.flannel/1.forwarding = 0"]
    assert "sysctl -w net.ipv4.conf.flannel/1.forwarding=1" in f["fix"]
    # and with forwarding on everywhere the dumps contradict the suspicion: no finding
    _edit_sysctl(root, "node2", {"net.ipv4.conf.flannel/1.forwarding": "1"})
    flow = only_flow(explain(root / "node1", root / "node2"))
    assert "IP_FORWARD_DISABLED" not in codes(flow)


def _sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=20)


@pytest.mark.netns
def test_the_kernel_agrees(netns: None, tmp_path: Path) -> None:
    """`ip route get DST from SRC iif DEV` in a namespace of ours for each forwarding setting, against
    lookup_route on that namespace's own dumps (a device name with a dot, as flannel.1)."""
    ns = f"ktc-fwd-{os.getpid()}"
    x = ("ip", "netns", "exec", ns)
    try:
        assert _sh("ip", "netns", "add", ns).returncode == 0
        for cmd in (("ip", "link", "add", "in.1", "type", "veth", "peer", "name", "in-peer"),
                    ("ip", "link", "add", "out0", "type", "veth", "peer", "name", "out-peer"),
                    ("ip", "addr", "add", "10.71.0.1/24", "dev", "in.1"),
                    ("ip", "addr", "add", "10.72.0.1/24", "dev", "out0")):
            assert _sh(*x, *cmd).returncode == 0, cmd
        for dev in ("in.1", "in-peer", "out0", "out-peer"):
            assert _sh(*x, "ip", "link", "set", dev, "up").returncode == 0
        cases = [("1", None), ("0", None), ("1", "0"), ("0", "1")]
        for ip_forward, device in cases:
            assert _sh(*x, "sysctl", "-qw", f"net.ipv4.ip_forward={ip_forward}").returncode == 0
            if device is not None:
                assert _sh(*x, "sysctl", "-qw", f"net.ipv4.conf.in/1.forwarding={device}").returncode == 0
            kernel = _sh(*x, "ip", "-o", "route", "get", "10.72.0.9", "from", "10.71.0.9", "iif", "in.1")
            bundle = tmp_path / f"n-{ip_forward}-{device}"
            bundle.mkdir()
            for name, cmd in (("ip-addr", "ip -d addr show"), ("ip-route", "ip route show table all"),
                              ("ip-rule", "ip rule show")):
                (bundle / name).write_text(_sh(*x, *cmd.split()).stdout)
            dump = _sh(*x, "sysctl", "-a").stdout
            (bundle / "sysctl").write_text("".join(line + "\n" for line in dump.splitlines()
                                                   if "forward" in line or "rp_filter" in line))
            (bundle / "node").write_text("ktc\n")
            d = lookup_route(load_bundle(bundle), "10.72.0.9", src="10.71.0.9", iif="in.1")
            refused = kernel.returncode != 0
            if refused:
                assert "No route to host" in kernel.stderr, kernel.stderr
            assert d.dropped is refused, (ip_forward, device, kernel.stdout, kernel.stderr, d.explanation)
            if not refused:
                assert d.out_interface == "out0" and "dev out0" in kernel.stdout
    finally:
        _sh("ip", "netns", "del", ns)
    assert ns not in _sh("ip", "netns", "list").stdout


@pytest.mark.netns
def test_forwarding_off_on_the_sending_node_live(netns: None, tmp_path: Path) -> None:
    """The same fault on the client's node, recorded live: the SYN comes in on cni0 and dies at
    node1's route lookup; the route is there, so no MISSING_ROUTE."""
    from dataclasses import replace

    from analyzer.lab.run import run_scenario
    from analyzer.lab.scenarios import scenario
    from analyzer.lab.topology import Faults, LabParams

    sc = scenario("ip-forward-off")
    step = replace(sc.steps[0], expect=replace(sc.steps[0].expect, finding_node="node1"))
    sc = replace(sc, faults=Faults(no_ip_forward_on=("node1",)), steps=(step,))
    tag = f"c2f{os.getpid() % 100000}"
    doc = run_scenario(sc, LabParams(tag=tag), tmp_path / "rec")
    assert [s["outcome"] for s in doc["steps"]] == ["timeout"] and doc["teardown"] == {"problems": []}
    assert not [n for n in _sh("ip", "netns", "list").stdout.split() if n.startswith(f"k8sl-{tag}-")]
    flow = only_flow(explain(tmp_path / "rec" / "node1", tmp_path / "rec" / "node2"))
    assert (flow["kind"], flow["status"]) == ("pod-to-pod-cross-node", "dropped")
    assert [(h["node"], h["kind"]) for h in flow["hops"] if h["failed"]] == [("node1", "route")]
    found = codes(flow)
    assert "MISSING_ROUTE" not in found and "FORWARD_BLOCKED" not in found
    f = found["IP_FORWARD_DISABLED"]
    assert (f["node"], f["checkable"]) == ("node1", True) and "came in on cni0" in f["message"]
    assert [e["text"].strip() for e in f["evidence"] if e["line"]] == [
        "net.ipv4.ip_forward = 0", "net.ipv4.conf.cni0.forwarding = 0"]
