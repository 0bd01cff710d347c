"""resolve_overlay and reverse_lookup_vtep: the flannel VXLAN chain on real dumps, each missing
link, host-gw, IPIP, and mapping a remote node back to its pod subnet."""

from __future__ import annotations

import dataclasses
import ipaddress
import shutil
from pathlib import Path

from analyzer.engines.overlay import resolve_overlay, reverse_lookup_vtep
from analyzer.engines.routing import lookup_route
from analyzer.inputs.bundle import load_bundle
from analyzer.inputs.ip_addr import parse_ip_addr
from analyzer.inputs.ip_neigh import parse_ip_neigh
from analyzer.inputs.ip_route import parse_ip_route
from analyzer.model.node import KubeInventory, KubeNode, NodeSnapshot, SubnetEnv
from analyzer.model.refs import SourceRef

REAL = Path(__file__).resolve().parent / "data" / "real"
ip = ipaddress.ip_address


def real_node(tmp_path: Path) -> NodeSnapshot:
    node = tmp_path / "n1"
    node.mkdir()
    for name in ("ip-addr", "ip-link", "ip-route", "ip-rule", "bridge-fdb", "ip-neigh"):
        shutil.copy(REAL / name, node / name)
    return load_bundle(node)


def overlay(node: NodeSnapshot, dst: str):  # noqa: ANN201
    return resolve_overlay(node, lookup_route(node, dst))


def test_vxlan_chain_on_real_dumps(tmp_path: Path) -> None:
    node = real_node(tmp_path)
    o = overlay(node, "10.244.2.7")
    assert o is not None and o.ok
    assert (o.type, o.device, o.next_hop, o.vtep_mac, o.remote, o.local, o.vni, o.port, o.outer_proto, o.mtu) == (
        "vxlan", "flannel.1", ip("10.244.2.0"), "9a:5f:1e:02:02:02", ip("192.168.56.12"), ip("192.168.56.11"),
        1, 8472, 17, 1450)
    assert [s.what for s in o.steps] == ["route", "device", "neigh", "fdb", "underlay", "mtu"]
    assert "1450 + 50 bytes of outer headers = 1500 fits eth0 MTU 1500" in o.steps[-1].explanation
    assert all(s.ok for s in o.steps)
    by_file = {Path(e.file).name: e for e in o.evidence if Path(e.file).name in ("ip-neigh", "bridge-fdb")}
    assert by_file["ip-neigh"].text.strip() == "10.244.2.0 dev flannel.1 lladdr 9a:5f:1e:02:02:02 PERMANENT"
    assert by_file["bridge-fdb"].text.strip() == "9a:5f:1e:02:02:02 dev flannel.1 dst 192.168.56.12 self permanent"
    assert "UDP 8472 from 192.168.56.11 to node 192.168.56.12" in o.explanation
    assert overlay(node, "10.244.1.5") is None  # a local pod on cni0
    assert overlay(node, "8.8.8.8") is None  # the Internet: not overlay
    assert resolve_overlay(node, lookup_route(node, "10.99.0.1")) is None  # blackhole


def test_missing_neigh_and_fdb(tmp_path: Path) -> None:
    node = real_node(tmp_path)
    no_neigh = dataclasses.replace(node, neigh=tuple(n for n in node.neigh if str(n.ip) != "10.244.3.0"))
    o = overlay(no_neigh, "10.244.3.9")
    assert o is not None and o.status == "missing-neigh" and not o.ok
    assert "10.244.3.0" in o.explanation and o.steps[-1].what == "neigh" and not o.steps[-1].ok
    no_fdb = dataclasses.replace(node, fdb=tuple(f for f in node.fdb if f.mac != "9a:5f:1e:03:03:03"))
    o = overlay(no_fdb, "10.244.3.9")
    assert o is not None and o.status == "missing-fdb" and o.vtep_mac == "9a:5f:1e:03:03:03"
    assert o.remote is None and "9a:5f:1e:03:03:03" in o.explanation
    failed, _ = parse_ip_neigh("10.244.3.0 dev flannel.1 FAILED\n", "nb")
    o = overlay(dataclasses.replace(no_neigh, neigh=failed), "10.244.3.9")
    assert o is not None and o.status == "missing-neigh" and "FAILED" in o.explanation
    assert str(o.evidence[-1]) == "nb:1"


def test_missing_device_and_no_underlay(tmp_path: Path) -> None:
    node = real_node(tmp_path)
    gone = dataclasses.replace(node, interfaces=tuple(i for i in node.interfaces if i.name != "flannel.1"))
    o = overlay(gone, "10.244.2.7")
    assert o is not None and o.status == "missing-device" and o.device == "flannel.1"
    cut = dataclasses.replace(node, routes=tuple(r for r in node.routes if not (
        r.table == "main" and (r.is_default or str(r.dst) == "192.168.56.0/24"))))
    o = overlay(cut, "10.244.2.7")
    assert o is not None and o.status == "no-underlay-route" and o.steps[-1].what == "underlay"


ADDRS = """\
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq state UP
    link/ether 52:54:00:aa:bb:cc brd ff:ff:ff:ff:ff:ff
    inet 192.168.56.11/24 brd 192.168.56.255 scope global eth0
3: cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP
    link/ether 0a:58:0a:f4:01:01 brd ff:ff:ff:ff:ff:ff
    bridge forward_delay 1500
    inet 10.244.1.1/24 brd 10.244.1.255 scope global cni0
4: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN
    link/ipip 0.0.0.0 brd 0.0.0.0
    ipip any remote any local 192.168.56.11 ttl inherit nopmtudisc
    inet 10.244.1.0/32 scope global tunl0
"""


def _node(routes: str, neigh: str = "", with_env: bool = True) -> NodeSnapshot:
    r, _ = parse_ip_route(routes, "r")
    a, _ = parse_ip_addr(ADDRS, "a")
    n, _ = parse_ip_neigh(neigh, "n")
    env = SubnetEnv(SourceRef("subnet.env", 1), network=ipaddress.ip_network("10.244.0.0/16"),
                    subnet=ipaddress.ip_interface("10.244.1.1/24")) if with_env else None
    return NodeSnapshot(name="t", routes=r, interfaces=a, neigh=n, subnet_env=env)


BASE = "default via 192.168.56.1 dev eth0\n192.168.56.0/24 dev eth0 scope link src 192.168.56.11\n" \
       "10.244.1.0/24 dev cni0 scope link src 10.244.1.1\n"


def test_host_gw() -> None:
    node = _node(BASE + "10.244.2.0/24 via 192.168.56.12 dev eth0\n",
                 "192.168.56.12 dev eth0 lladdr 52:54:00:00:00:12 REACHABLE\n")
    assert node.backend == "host-gw"
    o = overlay(node, "10.244.2.7")
    assert o is not None and o.ok and (o.type, o.remote, o.vtep_mac, o.outer_proto) == (
        "host-gw", ip("192.168.56.12"), "52:54:00:00:00:12", None)
    assert str(o.evidence[-1]) == "n:1"
    failed = _node(BASE + "10.244.2.0/24 via 192.168.56.12 dev eth0\n", "192.168.56.12 dev eth0 FAILED\n")
    o = overlay(failed, "10.244.2.7")
    assert o is not None and o.status == "missing-neigh" and "same L2" not in o.explanation
    assert "one L2 segment" in o.explanation
    m = reverse_lookup_vtep(node, "192.168.56.12")
    assert m is not None and str(m.subnet) == "10.244.2.0/24" and "host-gw" in m.explanation


def test_ipip() -> None:
    node = _node(BASE + "10.244.3.0/24 via 192.168.56.13 dev tunl0 onlink\n")
    assert node.backend == "ipip"
    o = overlay(node, "10.244.3.4")
    assert o is not None and o.ok
    assert (o.type, o.device, o.remote, o.local, o.outer_proto, o.port) == (
        "ipip", "tunl0", ip("192.168.56.13"), ip("192.168.56.11"), 4, None)
    assert "protocol 4" in o.explanation
    m = reverse_lookup_vtep(node, "192.168.56.13")
    assert m is not None and str(m.subnet) == "10.244.3.0/24" and "IPIP" in m.explanation


def test_reverse_lookup_vtep(tmp_path: Path) -> None:
    node = real_node(tmp_path)
    m = reverse_lookup_vtep(node, "192.168.56.12")
    assert m is not None and str(m.subnet) == "10.244.2.0/24" and m.vtep_mac == "9a:5f:1e:02:02:02"
    assert [Path(e.file).name for e in m.evidence] == ["bridge-fdb", "ip-neigh", "ip-route"]
    assert reverse_lookup_vtep(node, "192.168.56.99") is None
    kube = KubeInventory(nodes=(KubeNode("n9", SourceRef("kubectl.json", 12), (("InternalIP", "192.168.56.99"),),
                                         pod_cidr=ipaddress.ip_network("10.244.9.0/24")),))
    m = reverse_lookup_vtep(dataclasses.replace(node, kube=kube), "192.168.56.99")
    assert m is not None and str(m.subnet) == "10.244.9.0/24" and str(m.evidence[0]) == "kubectl.json:12"


def test_mtu_too_big_for_the_underlay(tmp_path: Path) -> None:
    node = real_node(tmp_path)
    big = tuple(dataclasses.replace(i, mtu=1500) if i.name == "flannel.1" else i for i in node.interfaces)
    o = overlay(dataclasses.replace(node, interfaces=big), "10.244.2.7")
    assert o is not None and o.ok  # small packets still pass
    mtu = o.steps[-1]
    assert mtu.what == "mtu" and not mtu.ok
    assert "1500 + 50 bytes of outer headers = 1550 exceeds eth0 MTU 1500" in mtu.explanation
    assert "should have MTU 1450" in mtu.explanation


def test_flannel_udp_backend() -> None:
    text = BASE + "10.244.0.0/16 dev flannel0\n"
    r, _ = parse_ip_route(text, "r")
    a, _ = parse_ip_addr(ADDRS + "9: flannel0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1472 qdisc pfifo_fast "
                         "state UNKNOWN\n    link/none\n    tun type tun pi off vnet_hdr off persist off\n"
                         "    inet 10.244.1.0/16 scope global flannel0\n", "a")
    kube = KubeInventory(nodes=(KubeNode("n2", SourceRef("kubectl.json", 30), (("InternalIP", "192.168.56.12"),),
                                         pod_cidr=ipaddress.ip_network("10.244.2.0/24"),
                                         annotations={"flannel.alpha.coreos.com/public-ip": "192.168.56.112"}),))
    node = NodeSnapshot(name="t", routes=r, interfaces=a, kube=kube)
    assert node.backend == "udp"
    o = overlay(node, "10.244.2.9")
    assert o is not None and o.ok and (o.type, o.port, o.remote, o.outer_proto) == (
        "udp", 8285, ip("192.168.56.112"), 17)
    assert str(o.evidence[-1]) == "kubectl.json:30" and "node n2" in o.explanation
    o = overlay(node, "10.244.7.9")
    assert o is not None and o.remote is None and "only flanneld knows" in o.explanation


def test_pod_side_mtu_larger_than_the_tunnel(tmp_path: Path) -> None:
    node = real_node(tmp_path)  # cni0 has MTU 1500, flannel.1 1450 (the lab's "mtu" scenario)
    o = resolve_overlay(node, lookup_route(node, "10.244.2.7", src="10.244.1.5", iif="cni0"))
    assert o is not None and o.ok
    bad = [s for s in o.steps if s.what == "mtu" and not s.ok]
    assert len(bad) == 1 and "arrive on cni0 with up to 1500 bytes but flannel.1 carries only 1450" in bad[0].explanation
    small = tuple(dataclasses.replace(i, mtu=1450) if i.name == "cni0" else i for i in node.interfaces)
    o = resolve_overlay(dataclasses.replace(node, interfaces=small),
                        lookup_route(node, "10.244.2.7", src="10.244.1.5", iif="cni0"))
    assert o is not None and all(s.ok for s in o.steps)


def test_overlay_health(tmp_path: Path) -> None:
    from analyzer.engines.overlay import overlay_health
    from analyzer.inputs.bridge_fdb import parse_bridge_fdb
    from analyzer.inputs.subnet_env import parse_subnet_env
    from analyzer.inputs.sysctl import parse_sysctl

    node = real_node(tmp_path)
    [mtu] = overlay_health(node)  # the real dump: cni0 at 1500 over flannel.1 at 1450, nothing else
    assert (mtu.what, mtu.ok) == ("mtu", False) and "cni0 has MTU 1500 but flannel.1 only 1450" in mtu.explanation
    node = dataclasses.replace(node, interfaces=tuple(dataclasses.replace(i, mtu=1450) if i.name == "cni0" else i
                                                      for i in node.interfaces))
    assert overlay_health(node) == ()

    broken = dataclasses.replace(node, neigh=tuple(n for n in node.neigh if str(n.ip) != "10.244.3.0"))
    problems = overlay_health(broken)
    assert [(p.what, p.ok) for p in problems] == [("neigh", False), ("fdb", True)]
    assert problems[0].explanation.startswith("Route 10.244.3.0/24: No usable neighbour entry for next hop 10.244.3.0")
    assert "9a:5f:1e:03:03:03 -> 192.168.56.13" in problems[1].explanation

    extra, _ = parse_bridge_fdb("9a:5f:1e:02:02:02 dev flannel.1 dst 192.168.56.99 self permanent\n", "fdb2")
    [dup] = overlay_health(dataclasses.replace(node, fdb=node.fdb + extra))
    assert not dup.ok and "192.168.56.12, 192.168.56.99" in dup.explanation and str(dup.evidence[-1]) == "fdb2:1"

    moved = tuple(dataclasses.replace(i, addresses=(ipaddress.ip_interface("192.168.56.111/24"),))
                  if i.name == "eth0" else i for i in node.interfaces)
    moved_routes = tuple(r for r in node.routes if not (r.table == "local" and str(r.dst) == "192.168.56.11/32"))
    [gone] = overlay_health(dataclasses.replace(node, interfaces=moved, routes=moved_routes))
    assert gone.what == "device" and "local 192.168.56.11, which is no longer an address" in gone.explanation

    env, _ = parse_subnet_env("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.5.1/24\nFLANNEL_MTU=1500\n",
                              "subnet.env")
    values, refs, _ = parse_sysctl("net.ipv4.ip_forward = 0\nnet.bridge.bridge-nf-call-iptables = 0\n", "sysctl")
    found = overlay_health(dataclasses.replace(node, subnet_env=env, sysctl=values, sysctl_sources=refs))
    assert [(f.what, f.ok) for f in found] == [("subnet", False), ("mtu", False), ("sysctl", False),
                                               ("sysctl", False)]
    assert "cni0 has 10.244.1.1/24 but subnet.env says FLANNEL_SUBNET=10.244.5.1/24" in found[0].explanation
    assert [str(e) for e in found[0].evidence][-1] == "subnet.env:2"
    assert "FLANNEL_MTU=1500" in found[1].explanation
    assert [str(e) for e in found[2].evidence] == ["sysctl:1"] and [str(e) for e in found[3].evidence] == ["sysctl:2"]
