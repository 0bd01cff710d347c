"""RP_FILTER_DROP on the recorded sample (node1 multi-homed: eth1 on 198.51.100.0/24, its default route
on eth0, net.ipv4.conf.all.rp_filter = 1). The external host reaches the NodePort through eth0's
address (delivered) and then through eth1's: the SYN arrives on eth1, is DNATed, and the strict
reverse-path filter drops it at the route lookup because the route back leaves by eth0. With the
dumps: an error with the rp_filter lines, the route back and the packets; from one capture alone:
only the IP_FORWARD_DISABLED suspicion, which names this cause; healthy samples never get it; the
kernel agrees with the fix (loose mode on the receiving device)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from explaincheck import codes, explain, sample

from analyzer.engines.routing import lookup_route
from analyzer.inputs.bundle import load_bundle


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == text)


def _by_server(doc: dict) -> dict[str, dict]:
    return {f["server"]["ip"]: f for f in doc["flows"]}


def test_with_dumps() -> None:
    root = sample("rp-filter")
    flows = _by_server(explain(root / "node1", root / "node2"))
    assert set(flows) == {"192.168.56.11", "198.51.100.11"}
    ok = flows["192.168.56.11"]
    assert (ok["kind"], ok["status"]) == ("external-to-service", "delivered")
    assert "RP_FILTER_DROP" not in codes(ok)

    flow = flows["198.51.100.11"]
    assert (flow["kind"], flow["status"]) == ("external-to-service", "dropped"), flow["verdict"]["en"]
    assert [(t["type"], t["node"], t["to"], t["observed"]) for t in flow["translations"]] == [
        ("dnat", "node1", "10.244.2.2:8080", None)]  # the dumps' DNAT: no capture saw the rewritten packet
    hops = flow["hops"]
    assert (hops[1]["kind"], hops[1]["interface"], hops[1]["observed"]) == ("nic", "eth1", True)
    assert [(h["node"], h["kind"]) for h in hops if h["failed"]] == [("node1", "route")]
    assert hops[-1]["node"] == "node2" and hops[-1]["kind"] == "pod"  # the path toward the endpoint
    why = next(h["explanation"] for h in hops if h["failed"])
    assert "the route back to source 203.0.113.10 leaves via eth0, not eth1" in why["en"]
    assert "严格反向路径过滤" in why["zh"] and "leaves via" not in why["zh"]

    found = codes(flow)
    assert not {"IP_FORWARD_DISABLED", "FORWARD_BLOCKED", "OVERLAY_PORT_BLOCKED"} & set(found)
    f = found["RP_FILTER_DROP"]
    assert (f["node"], f["severity"], f["checkable"]) == ("node1", "error", True)
    sysctl, route = root / "node1" / "sysctl", root / "node1" / "ip-route"
    lines = {(Path(e["file"]).name, e["line"], e["text"].strip()) for e in f["evidence"] if e["line"]}
    assert ("sysctl", _line_of(sysctl, "net.ipv4.conf.eth1.rp_filter = 1"), "net.ipv4.conf.eth1.rp_filter = 1") \
        in lines
    assert ("ip-route", _line_of(route, "default via 192.168.56.1 dev eth0"), "default via 192.168.56.1 dev eth0") \
        in lines
    packets = [e for e in f["evidence"] if e["packet"]]
    assert packets and all("203.0.113.10:" in e["text"] and "> 198.51.100.11:30080 SYN" in e["text"] for e in packets)
    assert any(e["file"].endswith("node1/eth1.pcap") for e in packets), packets
    assert "came in on eth1" in f["message"] and "leaves by eth0" in f["message"]
    assert "DNATed to 10.244.2.2:8080" in f["message"] and "none on flannel.1" in f["message"]
    assert "sysctl -w net.ipv4.conf.eth1.rp_filter=2" in f["fix"] and "/etc/sysctl.d/" in f["fix"]
    assert "via 198.51.100.1 dev eth1" in f["fix"]  # the gateway the node's neighbour table knows on eth1
    assert "反向路径过滤" in f["message_zh"] and "rp_filter=2" in f["fix_zh"]


def test_from_one_capture_alone_it_is_only_a_suspicion() -> None:
    doc = explain(sample("rp-filter") / "node1" / "any.pcap")
    flow = _by_server(doc)["198.51.100.11"]
    assert flow["status"] == "dropped"
    found = codes(flow)
    assert "RP_FILTER_DROP" not in found  # the packets alone cannot tell
    f = found["IP_FORWARD_DISABLED"]
    assert f["checkable"] is False and "RP_FILTER_DROP" in f["message"]


@pytest.mark.parametrize("name", ["nodeport", "cross-node", "service-remote", "external-masq", "host-gw", "dns",
                                  "forward-drop", "ip-forward-off", "vxlan-blocked", "external-no-masq"])
def test_other_samples_are_not_flagged(name: str) -> None:
    root = sample(name)
    nodes = sorted(p for p in root.iterdir() if p.is_dir())
    for flow in explain(*nodes)["flows"]:
        assert "RP_FILTER_DROP" not in codes(flow), (name, flow["verdict"]["en"])


def _sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=20)


@pytest.mark.netns
def test_the_kernel_agrees_and_loose_mode_on_the_device_fixes_it(netns: None, tmp_path: Path) -> None:
    """A namespace of ours with two NICs, conf.all.rp_filter = 1 and the default route on the other
    NIC: `ip route get ... iif` refuses the packet until conf.<dev>.rp_filter = 2 (the larger of the
    two counts); lookup_route on the namespace's own dumps says the same each time."""
    ns = f"ktc-rpf-{os.getpid()}"
    x = ("ip", "netns", "exec", ns)
    try:
        assert _sh("ip", "netns", "add", ns).returncode == 0
        for cmd in (("ip", "link", "add", "in.1", "type", "veth", "peer", "name", "in-peer"),
                    ("ip", "link", "add", "out0", "type", "veth", "peer", "name", "out-peer"),
                    ("ip", "addr", "add", "10.71.0.1/24", "dev", "in.1"),
                    ("ip", "addr", "add", "10.72.0.1/24", "dev", "out0"),
                    ("ip", "link", "set", "in.1", "up"), ("ip", "link", "set", "in-peer", "up"),
                    ("ip", "link", "set", "out0", "up"), ("ip", "link", "set", "out-peer", "up"),
                    ("ip", "route", "add", "default", "via", "10.72.0.2", "dev", "out0"),
                    ("sysctl", "-qw", "net.ipv4.ip_forward=1"), ("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")):
            assert _sh(*x, *cmd).returncode == 0, cmd
        for device, refused in (("1", True), ("0", True), ("2", False)):
            assert _sh(*x, "sysctl", "-qw", f"net.ipv4.conf.in/1.rp_filter={device}").returncode == 0
            kernel = _sh(*x, "ip", "-o", "route", "get", "10.72.0.9", "from", "203.0.113.10", "iif", "in.1")
            assert (kernel.returncode != 0) is refused, (device, kernel.stdout, kernel.stderr)
            bundle = tmp_path / f"n{device}"
            bundle.mkdir()
            for name, cmd in (("ip-addr", "ip -d addr show"), ("ip-route", "ip route show table all"),
                              ("ip-rule", "ip rule show")):
                (bundle / name).write_text(_sh(*x, *cmd.split()).stdout)
            (bundle / "sysctl").write_text("".join(line + "\n" for line in _sh(*x, "sysctl", "-a").stdout.splitlines()
                                                   if "rp_filter" in line or "forward" in line))
            (bundle / "node").write_text("ktc\n")
            d = lookup_route(load_bundle(bundle), "10.72.0.9", src="203.0.113.10", iif="in.1")
            assert (d.kind == "rp-filter") is refused, (device, d.explanation)
            assert d.dropped is refused
    finally:
        _sh("ip", "netns", "del", ns)
    assert ns not in _sh("ip", "netns", "list").stdout
