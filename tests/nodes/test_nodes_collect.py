"""`k8s-trace collect`: the script it prints, run for real with sh (dash) inside a namespace built
like a flannel node (eth0 uplink with a default route, cni0 bridge, flannel.1 VXLAN), then the
tarball read back with load_bundle."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest
from click.testing import CliRunner

from analyzer.cli import cli
from analyzer.commands.collect import render_script
from analyzer.inputs.bundle import BUNDLE_COMMANDS, load_bundle

#: UDP datagrams to the gateway and to a remote pod (through flannel.1) every 0.1 s for 6 s
SENDER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(60):
    for dst in ("192.168.56.1", "10.244.2.5"):
        try:
            s.sendto(b"k8s-trace", (dst, 9))
        except OSError:
            pass
    time.sleep(0.1)
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=60)


def test_script_text_and_options() -> None:
    result = CliRunner().invoke(cli, ["collect", "--seconds", "5", "--iface", "eth1", "--output", "/tmp/x y"])
    assert result.exit_code == 0, result.output
    script = result.output
    assert script.startswith("#!/bin/sh\n") and "\nset -eu\n" in script
    assert "capture_seconds=${K8S_TRACE_SECONDS:-5}" in script
    assert "output=${K8S_TRACE_OUTPUT:-'/tmp/x y'}" in script and "extra_ifaces=eth1" in script
    for name, _ in BUNDLE_COMMANDS:
        assert f"\nrun {name} " in script
    assert sh("dash", "-n", "-c", script).returncode == 0
    if shutil.which("shellcheck"):
        lint = subprocess.run(["shellcheck", "-s", "sh", "-"], input=script, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout
    bad = CliRunner().invoke(cli, ["collect", "--iface", "eth0; rm -rf /"])
    assert bad.exit_code == 2 and "not an interface name" in bad.output
    assert CliRunner().invoke(cli, ["collect", "--seconds", "-1"]).exit_code == 2
    filtered = CliRunner().invoke(cli, ["collect", "--filter", "host 10.0.0.1 and tcp[13] & 2 != 0",
                                        "--max-packets", "500"]).output
    assert "capture_filter='host 10.0.0.1 and tcp[13] & 2 != 0'" in filtered and "max_packets=500" in filtered
    assert CliRunner().invoke(cli, ["collect", "--filter", "a\nb"]).exit_code == 2
    # an unusable destination stops the script before it collects anything (not root: stops earlier)
    done = subprocess.run(["dash", "-c", render_script(seconds=0)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "K8S_TRACE_OUTPUT": "/nonexistent/x.tgz"})
    if os.geteuid() == 0:
        assert done.returncode == 2 and "cannot write /nonexistent/x.tgz" in done.stderr
    else:
        assert done.returncode == 1 and "run this script as root" in done.stderr


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_collect_runs_in_a_namespace(netns: None, tmp_path: Path, shell: str) -> None:
    path = "/usr/sbin:/usr/bin:/sbin:/bin"
    if shell == "busybox":
        busybox = shutil.which("busybox")
        if busybox is None:
            pytest.skip("busybox is not installed")
        applets = tmp_path / "applets"  # busybox's sh *and* its small tools, as on a minimal node
        applets.mkdir()
        for tool in ("sh", "tr", "sed", "head", "mktemp", "tar", "gzip", "cat", "rm", "mkdir", "sleep", "hostname",
                     "id", "kill", "date", "uname", "grep", "printf"):
            (applets / tool).symlink_to(busybox)
        path = f"{applets}:{path}"
    ns, gw = f"k8sC-col-{os.getpid()}", f"k8sC-colgw-{os.getpid()}"
    script = tmp_path / "collect.sh"
    script.write_text(render_script(seconds=2, ifaces=("dummy0",), bpf="not tcp[13] = 2 and not port 22"))
    env_file = tmp_path / "subnet.env"
    env_file.write_text("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\n"
                        "FLANNEL_IPMASQ=true\n")
    out = tmp_path / "out"
    out.mkdir()
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "add", gw)

        def x(*args: str) -> None:
            sh("ip", "netns", "exec", ns, *args)

        x("ip", "link", "set", "lo", "up")
        x("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "gw0", "netns", gw)
        x("ip", "addr", "add", "192.168.56.11/24", "dev", "eth0")
        x("ip", "link", "set", "eth0", "up")
        sh("ip", "netns", "exec", gw, "ip", "addr", "add", "192.168.56.1/24", "dev", "gw0")
        sh("ip", "netns", "exec", gw, "ip", "link", "set", "gw0", "up")
        x("ip", "route", "add", "default", "via", "192.168.56.1", "dev", "eth0")
        x("ip", "link", "add", "cni0", "type", "bridge")
        x("ip", "addr", "add", "10.244.1.1/24", "dev", "cni0")
        x("ip", "link", "set", "cni0", "up")
        x("ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", "192.168.56.11", "dev", "eth0",
          "dstport", "8472", "nolearning")
        x("ip", "link", "set", "flannel.1", "mtu", "1450", "up")
        x("ip", "addr", "add", "10.244.1.0/32", "dev", "flannel.1")
        x("ip", "route", "add", "10.244.2.0/24", "via", "10.244.2.0", "dev", "flannel.1", "onlink")
        x("ip", "neigh", "replace", "10.244.2.0", "lladdr", "9a:5f:1e:02:02:02", "dev", "flannel.1",
          "nud", "permanent")
        x("bridge", "fdb", "append", "9a:5f:1e:02:02:02", "dev", "flannel.1", "dst", "192.168.56.1", "self",
          "permanent")
        traffic = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SENDER],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run = subprocess.run(
            ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c",
             f"hostname k8sC-node1 && cd {out} && exec {'sh' if shell == 'busybox' else 'dash'} {script}"],
            capture_output=True, text=True, timeout=60,
            env={"PATH": path, "K8S_TRACE_SUBNET_ENV": str(env_file)})
        traffic.kill()
        traffic.wait(timeout=20)
    finally:
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "netns", "del", gw, check=False)
    assert not [n for n in sh("ip", "netns", "list").stdout.split() if n in (ns, gw)]
    assert run.returncode == 0, run.stderr
    tarball = out / "k8sC-node1-k8s-trace.tar.gz"
    assert run.stdout.strip() == str(tarball)
    assert "capturing on flannel.1 cni0 eth0 any for 2 s" in run.stderr

    snap = load_bundle(tarball)
    assert snap.name == "k8sC-node1"
    assert snap.kernel is not None and snap.kernel.startswith("Linux ")
    assert snap.collected_at is not None and snap.collected_at.endswith("Z")
    assert {c.interface for c in snap.captures} == {"flannel.1", "cni0", "eth0", "any"}
    assert snap.subnet_env is not None and snap.subnet_env.subnet == ipaddress.ip_interface("10.244.1.1/24")
    assert snap.backend == "vxlan" and snap.node_ip == ipaddress.ip_address("192.168.56.11")
    assert snap.pod_cidr == ipaddress.ip_network("10.244.1.0/24")
    assert snap.interface("flannel.1").vxlan.port == 8472
    assert {"ip-addr", "ip-link", "ip-route", "ip-rule", "bridge-fdb", "ip-neigh", "node", "subnet.env"} <= set(
        snap.files)
    assert snap.files["ip-route"] == f"{tarball}/k8sC-node1/ip-route"
    missing = [w for w in snap.warnings if "/missing:" in w]
    assert any("dummy0.pcap: no interface dummy0" in w for w in missing)
    if shutil.which("kubectl") is None:
        assert any("kubectl.json: kubectl not found" in w for w in missing)
    others = [w for w in snap.warnings if "/missing:" not in w]
    assert others == []

    def udp_to(iface: str, dst: str) -> int:
        cap = next(c for c in snap.captures if c.interface == iface)
        found = 0
        with open(cap.path, "rb") as fh:
            reader = dpkt.pcap.Reader(fh)
            for _, buf in reader:
                link = reader.datalink()
                if link == 276:  # LINUX_SLL2 (tcpdump -i any): 20-byte header, protocol first
                    ip4 = dpkt.ip.IP(buf[20:]) if buf[:2] == b"\x08\x00" else None
                elif link == 113:
                    ip4 = dpkt.sll.SLL(buf).data
                else:
                    ip4 = dpkt.ethernet.Ethernet(buf).data
                if isinstance(ip4, dpkt.ip.IP) and isinstance(ip4.data, dpkt.udp.UDP) \
                        and ip4.dst == ipaddress.ip_address(dst).packed and ip4.data.dport == 9:
                    found += 1
        return found

    assert udp_to("eth0", "192.168.56.1") >= 8  # a datagram every 0.1 s during the 2 s capture
    assert udp_to("flannel.1", "10.244.2.5") >= 8  # the pod-subnet datagrams entered the VXLAN device
    assert udp_to("cni0", "192.168.56.1") == 0
    assert udp_to("any", "192.168.56.1") >= 8
