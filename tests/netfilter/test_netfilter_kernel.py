"""Real kernel versus `simulate`: rule sets loaded with iptables-restore into a router namespace.

Topology (all namespaces are ours, prefix k8sD-, removed at the end)::

    client 10.0.1.2 --- r-c 10.0.1.1 [router "node"] r-s1 10.0.2.1 --- s1 10.0.2.2
                                    uplink 192.168.99.1 (a veth going nowhere, default route)
                                                      r-s2 10.0.3.1 --- s2 10.0.3.2
                                                      r-s3 172.16.4.1 --- s3 172.16.4.2

The cluster CIDR is 10.0.0.0/16 and the node's pod subnet 10.0.1.0/24 (the client is a "pod"),
s1 and s2 are "pods on other nodes", s3 is outside the cluster. Each server answers TCP and UDP
on port 8080 with its name and the source address it saw, so the client observes the kernel's
DNAT (who answered) and SNAT/MASQUERADE (what the server saw); a REJECT shows as an errno
(ECONNREFUSED for port-unreachable, EHOSTUNREACH for host-prohibited), a DROP as a timeout.
After each load, the router's own `iptables-save`, `ip addr`, `ip route` ... become a bundle, and
`simulate_packet` must predict what the kernel did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.engines.simulate import SimulationResult, simulate_packet
from analyzer.inputs.bundle import load_bundle
from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec, generate_rules

sys.path.insert(0, str(Path(__file__).resolve().parent))
from routerlab import namespaces, router_lab, sh  # noqa: E402  (helper next to this file)

pytestmark = pytest.mark.netns

PREFIX = f"k8sD-{os.getpid() % 100000}"
NS = namespaces(PREFIX)
PORT = 8080

SERVER = textwrap.dedent("""\
    import socket, sys, threading
    name = sys.argv[1]
    def tcp():
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 8080)); s.listen(128)
        while True:
            c, peer = s.accept()
            try:
                c.sendall(f"{name} {peer[0]}".encode())
            finally:
                c.close()
    def udp():
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 8080))
        while True:
            data, peer = u.recvfrom(2048)
            u.sendto(f"{name} {peer[0]}".encode(), peer)
    threading.Thread(target=udp, daemon=True).start()
    print("ready", flush=True)
    tcp()
    """)

CLIENT = textwrap.dedent("""\
    import errno, json, socket, sys
    proto, host, port, count, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    out = []
    for i in range(count):
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(socket.AF_INET, kind); s.settimeout(timeout)
        try:
            s.connect((host, port))
            if proto == "udp":
                s.send(b"x")
            out.append({"reply": s.recv(200).decode()})
        except socket.timeout:
            out.append({"error": "timeout"})
        except OSError as exc:
            out.append({"error": errno.errorcode.get(exc.errno, str(exc.errno))})
        finally:
            s.close()
    print(json.dumps(out))
    """)



@pytest.fixture(scope="module")
def lab(netns: None) -> Iterator[None]:
    with router_lab(NS, PREFIX, SERVER):
        yield


#: the backend the rules were last loaded with ("iptables" is the system default, nf_tables here)
BACKEND = {"current": "iptables"}
EMPTY = ("*raw\n:PREROUTING ACCEPT\n:OUTPUT ACCEPT\nCOMMIT\n*mangle\n:PREROUTING ACCEPT\n:INPUT ACCEPT\n"
         ":FORWARD ACCEPT\n:OUTPUT ACCEPT\n:POSTROUTING ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT\n:INPUT ACCEPT\n"
         ":OUTPUT ACCEPT\n:POSTROUTING ACCEPT\nCOMMIT\n*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\n"
         "COMMIT\n")


def load(rules: str, backend: str = "iptables") -> None:
    """iptables-restore into the router namespace (all tables replaced), conntrack flushed. The
    other backend's tables are emptied first: legacy and nf_tables rules would both apply."""
    if shutil.which(f"{backend}-restore") is None:
        pytest.skip(f"{backend}-restore is not installed")
    others = [b for b in ("iptables-legacy", "iptables-nft") if b != backend and shutil.which(f"{b}-restore")]
    for other in others if backend != "iptables" else [b for b in others if b == "iptables-legacy"]:
        subprocess.run(["ip", "netns", "exec", NS["router"], f"{other}-restore"], input=EMPTY, capture_output=True,
                       text=True, timeout=20)
    r = subprocess.run(["ip", "netns", "exec", NS["router"], f"{backend}-restore"], input=rules, capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    BACKEND["current"] = backend
    sh("conntrack", "-F", ns=NS["router"], check=False)


def node_bundle(tmp: Path) -> Path:
    """The router as `collect` would dump it: the kernel's own iptables-save and iproute2 output."""
    d = tmp / "router"
    d.mkdir(exist_ok=True)
    r = NS["router"]
    (d / "node").write_text("router\n")
    (d / "iptables-save").write_text(sh(f"{BACKEND['current']}-save", ns=r))
    (d / "ip-addr").write_text(sh("ip", "-d", "addr", "show", ns=r))
    (d / "ip-link").write_text(sh("ip", "-d", "link", "show", ns=r))
    (d / "ip-route").write_text(sh("ip", "route", "show", "table", "all", ns=r))
    (d / "ip-rule").write_text(sh("ip", "rule", "show", ns=r))
    (d / "ip-neigh").write_text(sh("ip", "neigh", "show", ns=r))
    return d


def client(proto: str, host: str, port: int = PORT, count: int = 1, timeout: float = 3.0) -> list[dict]:
    out = sh(sys.executable, "-c", CLIENT, proto, host, str(port), str(count), str(timeout), ns=NS["client"],
             timeout=count * timeout + 20)
    return json.loads(out)


def simulate(tmp: Path, dst: str, port: int = PORT, proto: str = "tcp") -> SimulationResult:
    node = load_bundle(node_bundle(tmp))
    assert node.ruleset is not None and node.ruleset.warnings == ()
    r = simulate_packet([node], "10.0.1.2", dst, proto, 40000, port, in_interface="r-c")
    assert sum(o.probability for o in r.outcomes) == pytest.approx(1.0)
    return r


def svc(name: str, ip: str, eps: tuple[str, ...], **kw) -> ServicePortSpec:
    return ServicePortSpec("default", name, ip, 80, tuple(Endpoint(e, PORT) for e in eps), **kw)


RULES_KW = dict(cluster_cidr="10.0.0.0/16", pod_cidr="10.0.1.0/24", node_ip="10.0.1.1")


@pytest.mark.parametrize("backend", ["iptables", "iptables-legacy"])
def test_kernel_dnat_with_probabilities(lab: None, tmp_path: Path, backend: str) -> None:
    load(generate_rules([svc("three", "10.96.0.3", ("10.0.2.2", "10.0.3.2", "172.16.4.2"))], **RULES_KW), backend)
    dumped = load_bundle(node_bundle(tmp_path)).ruleset  # the simulation reads this backend's own dump
    assert (dumped.backend == "nf_tables") == (backend == "iptables") and dumped.rule_count() > 20
    replies = client("tcp", "10.96.0.3", 80, count=60)
    seen = Counter(r["reply"].split()[0] for r in replies)
    assert set(seen) == {"s1", "s2", "s3"} and min(seen.values()) >= 5, seen
    sim = simulate(tmp_path, "10.96.0.3", 80)
    probs = {o.dnat: o.probability for o in sim.outcomes}
    assert probs.keys() == {"10.0.2.2:8080", "10.0.3.2:8080", "172.16.4.2:8080"}
    assert all(p == pytest.approx(1 / 3, abs=1e-6) for p in probs.values())
    # what the servers saw: pod -> pod keeps the client address; pod -> outside (s3) is masqueraded
    sources = {r["reply"].split()[0]: r["reply"].split()[1] for r in replies}
    by_dnat = {o.dnat.split(":")[0]: o for o in sim.outcomes}
    assert sources["s1"] == "10.0.1.2" and not by_dnat["10.0.2.2"].masqueraded
    assert sources["s3"] == "172.16.4.1" and by_dnat["172.16.4.2"].masquerade == "172.16.4.1"


def test_kernel_udp_cluster_ip_and_no_endpoint_rejects(lab: None, tmp_path: Path) -> None:
    load(generate_rules([svc("one", "10.96.0.1", ("10.0.2.2",), protocol="UDP"),
                         svc("none", "10.96.0.2", (), protocol="UDP"), svc("none-tcp", "10.96.0.4", ())], **RULES_KW))
    [ok] = client("udp", "10.96.0.1", 80)
    assert ok["reply"] == "s1 10.0.1.2"
    [o] = simulate(tmp_path, "10.96.0.1", 80, "udp").outcomes
    assert (o.status, o.dnat, o.masqueraded, o.out_interface) == ("forwarded", "10.0.2.2:8080", False, "r-s1")
    [rej] = client("udp", "10.96.0.2", 80)
    assert rej == {"error": "ECONNREFUSED"}
    [o] = simulate(tmp_path, "10.96.0.2", 80, "udp").outcomes
    assert (o.status, o.reject_with) == ("rejected", "icmp-port-unreachable")
    [rej_tcp] = client("tcp", "10.96.0.4", 80)
    assert rej_tcp == {"error": "ECONNREFUSED"}
    [o] = simulate(tmp_path, "10.96.0.4", 80).outcomes
    assert (o.status, o.reject_with) == ("rejected", "icmp-port-unreachable")


def test_kernel_nodeport_masquerade_and_conntrack(lab: None, tmp_path: Path) -> None:
    load(generate_rules([svc("np", "10.96.0.5", ("10.0.3.2",), node_port=30080)], **RULES_KW))
    [r] = client("tcp", "10.0.1.1", 30080)
    assert r["reply"] == "s2 10.0.3.1"  # NodePort traffic is masqueraded to the router's address on r-s2
    ct = sh("conntrack", "-L", "-p", "tcp", "--orig-port-dst", "30080", ns=NS["router"], check=False)
    assert "dst=10.0.1.1" in ct and "src=10.0.3.2" in ct and "dst=10.0.3.1" in ct
    [o] = simulate(tmp_path, "10.0.1.1", 30080).outcomes
    assert (o.dnat, o.masquerade, o.out_interface) == ("10.0.3.2:8080", "10.0.3.1", "r-s2")
    assert any(rule.chain == "KUBE-NODEPORTS" for _, rule in o.rules)
    assert o.reply_status == "delivered" and o.reply_packet.endpoint("src") == "10.0.1.1:30080"


def test_kernel_external_traffic_policy_local(lab: None, tmp_path: Path) -> None:
    local = svc("local", "10.96.0.6", ("10.0.3.2",), node_port=30081, external_traffic_policy="Local")
    # the client is a pod (inside the cluster CIDR): kube-proxy sends it to the whole service, unmasqueraded
    load(generate_rules([local], **RULES_KW))
    [r] = client("tcp", "10.0.1.1", 30081)
    assert r["reply"] == "s2 10.0.1.2"
    [o] = simulate(tmp_path, "10.0.1.1", 30081).outcomes
    assert (o.status, o.dnat, o.masqueraded) == ("forwarded", "10.0.3.2:8080", False)
    # the same client seen as external (cluster CIDR elsewhere): no local endpoint, so DROP
    load(generate_rules([local], cluster_cidr="10.0.2.0/24", flannel=False, node_ip="10.0.1.1"))
    [r2] = client("tcp", "10.0.1.1", 30081, timeout=1.0)
    assert r2 == {"error": "timeout"}
    [o2] = simulate(tmp_path, "10.0.1.1", 30081).outcomes
    assert o2.status == "dropped" and "has no local endpoints" in o2.decided_by.text


def test_kernel_pod_to_external_masquerade_by_flannel(lab: None, tmp_path: Path) -> None:
    load(generate_rules([], **RULES_KW))
    [r] = client("udp", "172.16.4.2")
    assert r["reply"] == "s3 172.16.4.1"
    [o] = simulate(tmp_path, "172.16.4.2", proto="udp").outcomes
    assert o.masquerade == "172.16.4.1" and o.translation("masquerade").rule.chain == "FLANNEL-POSTRTG"
    [r2] = client("udp", "10.0.2.2")  # pod to pod: not masqueraded
    assert r2["reply"] == "s1 10.0.1.2"
    [o2] = simulate(tmp_path, "10.0.2.2", proto="udp").outcomes
    assert not o2.masqueraded and o2.status == "forwarded"


def test_kernel_forward_policy_drop(lab: None, tmp_path: Path) -> None:
    load(generate_rules([], flannel=False, forward_policy="DROP", **RULES_KW))
    [r] = client("tcp", "10.0.2.2", timeout=1.0)
    assert r == {"error": "timeout"}
    [o] = simulate(tmp_path, "10.0.2.2").outcomes
    assert o.status == "dropped" and o.decided_by is None and "policy" in o.explanation


def test_kernel_centos_reject_host_prohibited(lab: None, tmp_path: Path) -> None:
    rules = generate_rules([], extra_filter=["-A FORWARD -j REJECT --reject-with icmp-host-prohibited"], **RULES_KW)
    # CentOS puts its catch-all before flannel's ACCEPTs: move it first in FORWARD
    lines = rules.splitlines()
    reject = "-A FORWARD -j REJECT --reject-with icmp-host-prohibited"
    lines.remove(reject)
    lines.insert(lines.index(next(x for x in lines if x.startswith("-A FORWARD -m comment --comment \"flanneld"))),
                 reject)
    load("\n".join(lines) + "\n")
    [r] = client("tcp", "10.0.2.2")
    assert r == {"error": "EHOSTUNREACH"}
    [o] = simulate(tmp_path, "10.0.2.2").outcomes
    assert (o.status, o.reject_with) == ("rejected", "icmp-host-prohibited")


def test_kernel_snat_and_mark_based_masquerade(lab: None, tmp_path: Path) -> None:
    load(generate_rules([], flannel=False, extra_nat=[
        "-A PREROUTING -d 10.0.3.2/32 -j KUBE-MARK-MASQ",
        "-A POSTROUTING -d 172.16.4.2/32 -j SNAT --to-source 192.0.2.1",
    ], **RULES_KW))
    [r] = client("tcp", "172.16.4.2")
    assert r["reply"] == "s3 192.0.2.1"
    [o] = simulate(tmp_path, "172.16.4.2").outcomes
    assert o.snat == "192.0.2.1:40000" and o.reply_status == "delivered"
    [m] = client("tcp", "10.0.3.2")
    assert m["reply"] == "s2 10.0.3.1"
    [o2] = simulate(tmp_path, "10.0.3.2").outcomes
    assert o2.masquerade == "10.0.3.1" and o2.translation("masquerade").rule.chain == "KUBE-POSTROUTING"
    assert o2.packet.mark == 0  # KUBE-POSTROUTING clears the mark it acted on
    [plain] = client("tcp", "10.0.2.2")
    assert plain["reply"] == "s1 10.0.1.2"
    [o3] = simulate(tmp_path, "10.0.2.2").outcomes
    assert not o3.masqueraded and o3.snat is None


def test_kernel_drop_rule_and_tcp_reset(lab: None, tmp_path: Path) -> None:
    load(generate_rules([], extra_filter=[
        "-A KUBE-FORWARD -d 10.0.2.2/32 -p udp -m udp --dport 8080 -j DROP",
        "-A KUBE-FORWARD -d 10.0.3.2/32 -p tcp -m tcp --dport 8080 -j REJECT --reject-with tcp-reset",
    ], **RULES_KW))
    [r] = client("udp", "10.0.2.2", timeout=1.0)
    assert r == {"error": "timeout"}
    [o] = simulate(tmp_path, "10.0.2.2", proto="udp").outcomes
    assert o.status == "dropped" and o.decided_by.chain == "KUBE-FORWARD"
    [t] = client("tcp", "10.0.3.2")
    assert t == {"error": "ECONNREFUSED"}
    [o2] = simulate(tmp_path, "10.0.3.2").outcomes
    assert (o2.status, o2.reject_with) == ("rejected", "tcp-reset")
    [ok] = client("tcp", "10.0.2.2")  # the same destination over TCP passes
    assert ok["reply"] == "s1 10.0.1.2"
    assert simulate(tmp_path, "10.0.2.2").outcomes[0].status == "forwarded"


@pytest.mark.parametrize("backend", ["iptables", "iptables-legacy"])
def test_kernel_saves_the_generated_rules_back_line_for_line(lab: None, backend: str) -> None:
    """The generator writes what iptables-save prints: restore, save, and every -A line comes back."""
    specs = [
        svc("web", "10.96.0.50", ("10.0.2.2", "10.0.3.2", "172.16.4.2"), port_name="http", node_port=30080),
        svc("empty", "10.96.0.51", (), node_port=30081),
        ServicePortSpec("default", "loc", "10.96.0.52", 80, (Endpoint("10.0.1.7", 80, local=True),
                                                            Endpoint("10.0.2.7", 80)),
                        node_port=30082, external_traffic_policy="Local"),
        svc("lb", "10.96.0.53", ("10.0.2.8",), node_port=30083, load_balancer_ips=("203.0.113.10",),
            load_balancer_source_ranges=("198.51.100.0/24", "10.0.0.0/8")),
        svc("sticky", "10.96.0.54", ("10.0.2.9", "10.0.3.9"), protocol="UDP", session_affinity_seconds=10800,
            external_ips=("192.0.2.50",)),
    ]
    text = generate_rules(specs, **RULES_KW)
    load(text, backend)
    saved = sh(f"{backend}-save", ns=NS["router"])
    generated = {line for line in text.splitlines() if line.startswith("-A ")}
    kernel = {line for line in saved.splitlines() if line.startswith("-A ")}
    assert len(generated) > 60
    assert generated == kernel
