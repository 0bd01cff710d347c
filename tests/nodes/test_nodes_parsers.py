"""The node-dump parsers on real iproute2 output (tests/nodes/data/real, made by make_real.sh in a
namespace on this machine) and on handwritten variants from other versions and tools."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from analyzer.inputs.bridge_fdb import parse_bridge_fdb
from analyzer.inputs.conntrack import parse_conntrack
from analyzer.inputs.ip_addr import merge_interfaces, parse_ip_addr
from analyzer.inputs.ip_neigh import parse_ip_neigh
from analyzer.inputs.ip_route import parse_ip_route
from analyzer.inputs.ip_rule import parse_ip_rule
from analyzer.inputs.kubectl import looks_like_kubectl, parse_kubectl
from analyzer.inputs.subnet_env import parse_subnet_env
from analyzer.inputs.sysctl import parse_sysctl

REAL = Path(__file__).resolve().parent / "data" / "real"
ip = ipaddress.ip_address
net = ipaddress.ip_network


def real(name: str) -> str:
    return (REAL / name).read_text()


@pytest.mark.parametrize("name", ["ip-route", "ip-route.json"])
def test_real_routes_text_and_json_agree(name: str) -> None:
    routes, warnings = parse_ip_route(real(name), name)
    assert warnings == ()
    by = {(r.table, r.type, str(r.dst), str(r.via)): r for r in routes}
    assert ("main", "blackhole", "10.99.0.0/16", "None") in by
    assert ("main", "unreachable", "10.98.0.0/16", "None") in by
    prohibit = by[("main", "prohibit", "10.97.0.0/16", "None")]
    assert prohibit.metric == 10
    vx = by[("main", "unicast", "10.244.2.0/24", "10.244.2.0")]
    assert vx.onlink and vx.dev == "flannel.1"
    assert by[("main", "unicast", "172.16.0.0/12", "192.168.56.254")].mtu == 1400
    assert by[("main", "unicast", "172.16.0.0/12", "192.168.56.253")].metric == 100
    t100 = by[("100", "unicast", "0.0.0.0/0", "192.168.56.3")]
    assert t100.src == ip("192.168.56.11")
    local = by[("local", "local", "10.244.1.0/32", "None")]
    assert local.dev == "flannel.1" and local.scope == "host"
    assert by[("local", "broadcast", "10.244.1.255/32", "None")].dev == "cni0"
    assert by[("main", "unicast", "fd00:56::/64", "None")].family == 6
    assert len(routes) == 36


def test_route_lines_keep_file_and_line() -> None:
    routes, _ = parse_ip_route(real("ip-route"), "n1/ip-route")
    blackhole = next(r for r in routes if r.type == "blackhole")
    assert str(blackhole.source) == "n1/ip-route:6"
    assert blackhole.source.text.strip() == "blackhole 10.99.0.0/16"


def test_route_variants_from_other_versions() -> None:
    text = textwrap.dedent("""\
        default via 10.0.2.2 dev enp0s3 proto dhcp src 10.0.2.15 metric 100
        10.244.0.0/24 dev cni0  proto kernel  scope link  src 10.244.0.1
        10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink
        10.244.2.0/24 via 192.168.56.12 dev enp0s8
        10.1.0.0/16 proto static
        \tnexthop via 10.0.2.3 dev enp0s3 weight 1
        \tnexthop via 10.0.2.4 dev enp0s3 weight 1
        throw 10.5.0.0/16 table 7
        this is garbage
        10.7.0.0/16 via 10.0.2.9 dev enp0s3 frobnicate
        """)
    routes, warnings = parse_ip_route(text, "r")
    assert [str(r.dst) for r in routes] == [
        "0.0.0.0/0", "10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.1.0.0/16", "10.5.0.0/16",
        "10.7.0.0/16"]
    assert routes[0].proto == "dhcp" and routes[0].metric == 100 and routes[0].src == ip("10.0.2.15")
    multi = routes[4]
    assert multi.nexthops == ((ip("10.0.2.3"), "enp0s3"), (ip("10.0.2.4"), "enp0s3"))
    assert multi.via == ip("10.0.2.3") and multi.dev == "enp0s3"
    assert routes[5].type == "throw" and routes[5].table == "7"
    assert len(warnings) == 2
    assert warnings[0].startswith("r:9: unrecognised route line")
    assert warnings[1].startswith("r:10: unrecognised route option 'frobnicate'")


@pytest.mark.parametrize("name", ["ip-rule", "ip-rule.json"])
def test_real_rules(name: str) -> None:
    rules, warnings = parse_ip_rule(real(name), name)
    assert warnings == ()
    assert [r.pref for r in rules] == [0, 1000, 1001, 1002, 1003, 32766, 32767]
    fw = rules[1]
    assert (fw.fwmark, fw.fwmask, fw.table) == (0x4000, 0x4000, "100")
    assert (rules[2].src, rules[2].dst) == (net("10.244.1.0/24"), net("10.10.0.0/16"))
    assert rules[3].invert and rules[3].iif == "lo" and rules[3].table == "main"
    assert rules[4].action == "blackhole" and rules[4].dst == net("10.250.0.0/16")


def test_rule_garbage_is_a_warning() -> None:
    rules, warnings = parse_ip_rule("0:\tfrom all lookup local\nnonsense here\n100: from all weird 3 lookup 5\n", "ru")
    assert [r.pref for r in rules] == [0, 100]
    assert warnings[0] == "ru:2: unrecognised rule line: nonsense here"
    assert warnings[1].startswith("ru:3: unrecognised rule token 'weird'")


@pytest.mark.parametrize("addr,link", [("ip-addr", "ip-link"), ("ip-addr.json", "ip-link.json")])
def test_real_interfaces(addr: str, link: str) -> None:
    a, wa = parse_ip_addr(real(addr), addr)
    lk, wl = parse_ip_addr(real(link), link)
    assert wa == () and wl == ()
    ifaces = {i.name: i for i in merge_interfaces(a, lk)}
    assert set(ifaces) == {"lo", "eth0-peer", "eth0", "cni0", "pod-eth0", "veth1a2b3c4d", "flannel.1",
                           "kube-ipvs0"}
    fl = ifaces["flannel.1"]
    assert fl.kind == "vxlan" and fl.mtu == 1450 and fl.mac == "9a:5f:1e:01:01:01"
    assert fl.vxlan is not None
    assert (fl.vxlan.vni, fl.vxlan.port, fl.vxlan.local, fl.vxlan.dev, fl.vxlan.learning) == (
        1, 8472, ip("192.168.56.11"), "eth0", False)
    assert ipaddress.ip_interface("10.244.1.0/32") in fl.addresses
    veth = ifaces["veth1a2b3c4d"]
    assert veth.kind == "veth" and veth.master == "cni0" and veth.up
    assert veth.hairpin is False and veth.hairpin_source is not None  # bridge_slave ... hairpin off
    assert ifaces["cni0"].hairpin is None and fl.hairpin is None  # not bridge ports
    assert ifaces["cni0"].kind == "bridge"
    assert ifaces["lo"].kind == "loopback"
    assert ifaces["kube-ipvs0"].state == "DOWN" and not ifaces["kube-ipvs0"].up
    if not addr.endswith(".json"):
        assert veth.peer == "pod-eth0"
        assert str(fl.vxlan.source).startswith("ip-addr:")


def test_addr_other_versions_and_peer_index() -> None:
    text = textwrap.dedent("""\
        5: veth3f1a@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue master cni0 state UP group default
            link/ether 3e:1b:aa:10:20:30 brd ff:ff:ff:ff:ff:ff link-netnsid 0
            inet6 fe80::3c1b:aaff:fe10:2030/64 scope link
               valid_lft forever preferred_lft forever
        6: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN group default qlen 1000
            link/ipip 0.0.0.0 brd 0.0.0.0
            ipip any remote any local any ttl inherit nopmtudisc
            inet 10.244.1.0/32 scope global tunl0
        7: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420
            link/none
            inet 10.9.0.1 peer 10.9.0.2/32 scope global wg0
            what is this
        """)
    ifaces, warnings = parse_ip_addr(text, "a")
    veth, tunl, wg = ifaces
    assert veth.peer_index == 3 and veth.link_netnsid == 0 and veth.mtu == 1450
    assert tunl.kind == "ipip" and tunl.tunnel is not None and tunl.tunnel.local is None
    assert tunl.addresses == (ipaddress.ip_interface("10.244.1.0/32"),)
    assert wg.addresses == (ipaddress.ip_interface("10.9.0.1/32"),)
    assert warnings == ("a:12: unrecognised interface line: what is this",)


@pytest.mark.parametrize("name", ["bridge-fdb", "bridge-fdb.json"])
def test_real_fdb(name: str) -> None:
    entries, warnings = parse_bridge_fdb(real(name), name)
    assert warnings == ()
    assert len(entries) == 25
    vtep = {e.mac: e for e in entries if e.dev == "flannel.1"}
    e = vtep["9a:5f:1e:02:02:02"]
    assert e.dst == ip("192.168.56.12") and e.is_self and e.permanent
    port = next(e for e in entries if e.mac == "0a:58:0a:f4:01:01")
    assert port.master == "cni0" and port.permanent and not port.is_self


def test_fdb_variants() -> None:
    text = ("00:00:00:00:00:00 dev vxlan0 dst 10.0.0.2 vni 42 port 4789 self permanent\n"
            "AA:BB:CC:DD:EE:FF dev eth1 vlan 10 master br0 static\n"
            "not-a-mac dev x\n")
    entries, warnings = parse_bridge_fdb(text, "f")
    assert entries[0].vni == 42 and entries[0].port == 4789 and entries[0].dst == ip("10.0.0.2")
    assert entries[1].mac == "aa:bb:cc:dd:ee:ff" and entries[1].vlan == 10 and entries[1].static
    assert warnings == ("f:3: unrecognised fdb line: not-a-mac dev x",)


@pytest.mark.parametrize("name", ["ip-neigh", "ip-neigh.json"])
def test_real_neigh(name: str) -> None:
    entries, warnings = parse_ip_neigh(real(name), name)
    assert warnings == ()
    by = {str(e.ip): e for e in entries}
    assert by["10.244.2.0"].lladdr == "9a:5f:1e:02:02:02" and by["10.244.2.0"].states == {"PERMANENT"}
    assert by["192.168.56.1"].states == {"REACHABLE"} and by["192.168.56.1"].usable
    assert by["192.168.56.99"].states == {"FAILED"} and not by["192.168.56.99"].usable


def test_neigh_variants() -> None:
    text = ("10.244.2.0 dev flannel.1 lladdr 9a:5f:1e:02:02:02 PERMANENT\n"
            "10.0.0.5 dev eth0 lladdr 00:11:22:33:44:55 router STALE\n"
            "fe80::1 dev eth0 lladdr 00:11:22:33:44:66 router NOARP\n"
            "10.0.0.7 dev eth0  INCOMPLETE\n"
            "garbage\n")
    entries, warnings = parse_ip_neigh(text, "n")
    assert [sorted(e.states) for e in entries] == [["PERMANENT"], ["STALE"], ["NOARP"], ["INCOMPLETE"]]
    assert entries[1].router and entries[2].ip.version == 6
    assert warnings == ("n:5: unrecognised neighbour line: garbage",)


CONNTRACK = textwrap.dedent("""\
    tcp      6 86395 ESTABLISHED src=10.244.1.5 dst=10.96.0.10 sport=40000 dport=53 src=10.244.2.7 dst=10.244.1.5 sport=53 dport=40000 [ASSURED] mark=0 use=1
    udp      17 28 src=10.244.1.5 dst=10.96.0.10 sport=51234 dport=53 [UNREPLIED] src=10.244.2.7 dst=10.244.1.5 sport=53 dport=51234 mark=16384 zone=3 use=1
    icmp     1 29 src=10.244.1.5 dst=8.8.8.8 type=8 code=0 id=7 src=8.8.8.8 dst=192.168.56.11 type=0 code=0 id=7 mark=0 use=1
    ipv4     2 tcp      6 118 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=0 secctx=system_u:object_r:unlabeled_t:s0 use=1
    this is no conntrack line
    conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.
    """)


def test_conntrack() -> None:
    entries, warnings = parse_conntrack(CONNTRACK, "ct")
    assert [e.proto for e in entries] == ["tcp", "udp", "icmp", "tcp"]
    tcp, udp, icmp, ext = entries
    assert tcp.state == "ESTABLISHED" and tcp.assured and tcp.dnat and not tcp.snat
    assert tcp.orig is not None and tcp.orig.dport == 53 and tcp.reply is not None
    assert tcp.reply.src == ip("10.244.2.7")
    assert udp.unreplied and udp.mark == 16384 and udp.zone == 3 and udp.state is None and udp.timeout == 28
    assert icmp.snat and icmp.orig is not None and icmp.orig.icmp_type == 8 and icmp.orig.icmp_id == 7
    assert ext.family == "ipv4" and ext.state == "SYN_SENT" and ext.unreplied
    assert str(ext.source) == "ct:4"
    assert len(warnings) == 1 and warnings[0].startswith("ct:5: unrecognised conntrack line")


def test_subnet_env() -> None:
    text = ("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\n"
            "FLANNEL_IPMASQ=true\nFLANNEL_ENABLE_IPV4=true\nrandom words\nFLANNEL_MTU=lots\n")
    env, warnings = parse_subnet_env(text, "subnet.env")
    assert env is not None
    assert env.network == net("10.244.0.0/16") and env.subnet == ipaddress.ip_interface("10.244.1.1/24")
    assert env.mtu == 1450 and env.ipmasq is True
    assert str(env.lines["FLANNEL_SUBNET"]) == "subnet.env:2"
    assert warnings == ("subnet.env:6: unrecognised subnet.env line: random words",
                        "subnet.env:7: bad FLANNEL_MTU value 'lots' (invalid literal for int() with base 10: 'lots')")
    assert parse_subnet_env("", "e")[0] is None


def test_sysctl() -> None:
    text = ("net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.rp_filter = 2\n"
            "sysctl: permission denied on key 'x'\nnet.bridge.bridge-nf-call-iptables=1\n???\n")
    values, refs, warnings = parse_sysctl(text, "sysctl")
    assert values == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "2",
                      "net.bridge.bridge-nf-call-iptables": "1"}
    assert str(refs["net.bridge.bridge-nf-call-iptables"]) == "sysctl:4"
    assert warnings == ("sysctl:5: unrecognised sysctl line: ???",)


KUBECTL = """{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "node2"},
            "status": {"podIP": "10.244.2.7", "podIPs": [{"ip": "10.244.2.7"}], "hostIP": "192.168.56.12",
                       "phase": "Running"}
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "externalTrafficPolicy": "Local",
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]}
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "web-abcde", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [{"addresses": ["10.244.2.7"], "conditions": {"ready": true}, "nodeName": "node2",
                           "targetRef": {"kind": "Pod", "name": "web-1"}}],
            "ports": [{"port": 8080, "protocol": "TCP"}]
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node2", "annotations": {"flannel.alpha.coreos.com/backend-type": "vxlan"}},
            "spec": {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.56.12"}]}
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    ],
    "kind": "List"
}
"""


def test_kubectl_list() -> None:
    assert looks_like_kubectl(KUBECTL)
    inv, warnings = parse_kubectl(KUBECTL, "kubectl.json")
    pod = inv.pod_by_ip("10.244.2.7")
    assert pod is not None and pod.name == "web-1" and pod.node == "node2"
    svc = inv.service_by_ip("10.96.0.20")
    assert svc is not None and svc.type == "NodePort" and svc.external_traffic_policy == "Local"
    assert svc.ports[0].node_port == 30080 and svc.ports[0].target_port == 8080
    [ep] = inv.endpoints_of("default", "web")
    assert ep.ip == ip("10.244.2.7") and ep.ports[0].port == 8080 and ep.pod == "web-1"
    [node] = inv.nodes
    assert node.internal_ip == "192.168.56.12" and node.pod_cidr == net("10.244.2.0/24")
    assert str(pod.source) == "kubectl.json:7"
    assert warnings == ("kubectl.json:36: ConfigMap 'cm' ignored",)


def test_kubectl_separate_documents_and_garbage() -> None:
    text = ('{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"}, "spec": {}}\n'
            '{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "b"}}\n{ broken')
    inv, warnings = parse_kubectl(text, "k")
    assert [n.name for n in inv.nodes] == ["a", "b"]
    assert str(inv.nodes[1].source) == "k:2"
    assert len(warnings) == 1 and warnings[0].startswith("k:3: unrecognised JSON")


def test_link_statistics_text_and_json() -> None:
    new = textwrap.dedent("""\
        4: cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP mode DEFAULT group default qlen 1000
            link/ether 0a:58:0a:f4:01:01 brd ff:ff:ff:ff:ff:ff promiscuity 0
            RX:  bytes packets errors dropped  missed   mcast
              123456    1000      0      17       0       0
            RX errors:  length    crc  frame   fifo  missed
                             0      0      0      0       0
            TX:  bytes packets errors dropped carrier collsns
               98765     900      0       3       0       0
        """)
    old = textwrap.dedent("""\
        4: cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP mode DEFAULT qlen 1000
            link/ether 0a:58:0a:f4:01:01 brd ff:ff:ff:ff:ff:ff
            RX: bytes  packets  errors  dropped overrun mcast
            123456     1000     0       17      0       0
            TX: bytes  packets  errors  dropped carrier collsns
            98765      900      0       3       0       0
        """)
    js = ('[{"ifindex":4,"ifname":"cni0","flags":["UP"],"mtu":1450,"link_type":"ether","address":"0a:58:0a:f4:01:01",'
          '"stats64":{"rx":{"bytes":123456,"packets":1000,"errors":0,"dropped":17},'
          '"tx":{"bytes":98765,"packets":900,"errors":0,"dropped":3}}}]')
    for text in (new, old, js):
        [iface], warnings = parse_ip_addr(text, "s")
        assert warnings == ()
        assert (iface.stats["rx_packets"], iface.stats["rx_dropped"], iface.stats["tx_packets"],
                iface.stats["tx_dropped"]) == (1000, 17, 900, 3)
        assert iface.stats_source is not None
    assert parse_ip_addr(new, "s")[0][0].stats["rx_crc"] == 0
    assert str(parse_ip_addr(new, "s")[0][0].stats_source) == "s:3"


def test_merge_keeps_addresses_of_addr_and_counters_of_link() -> None:
    addr, _ = parse_ip_addr("4: cni0: <UP> mtu 1450\n    link/ether 0a:58:0a:f4:01:01 brd ff:ff:ff:ff:ff:ff\n"
                            "    inet 10.244.1.1/24 scope global cni0\n", "ip-addr")
    link, _ = parse_ip_addr("4: cni0: <UP> mtu 1450\n    link/ether 0a:58:0a:f4:01:01 brd ff:ff:ff:ff:ff:ff\n"
                            "    bridge forward_delay 1500\n    RX:  bytes packets errors dropped  missed   mcast\n"
                            "       10       1      0       5       0       0\n", "ip-link")
    [cni] = merge_interfaces(addr, link)
    assert cni.kind == "bridge" and cni.addresses == (ipaddress.ip_interface("10.244.1.1/24"),)
    assert cni.stats["rx_dropped"] == 5 and str(cni.stats_source) == "ip-link:4"


@pytest.mark.parametrize("name,parser", [("ip-route.json", parse_ip_route), ("ip-rule.json", parse_ip_rule),
                                         ("ip-addr.json", parse_ip_addr), ("bridge-fdb.json", parse_bridge_fdb),
                                         ("ip-neigh.json", parse_ip_neigh)])
def test_pretty_json_records_keep_their_line(name: str, parser) -> None:  # noqa: ANN001
    import json

    items = json.loads(real(name))
    pretty = json.dumps(items, indent=4)  # the layout of `ip -j -p`
    starts = [n for n, line in enumerate(pretty.splitlines(), start=1) if line == "    {"]
    records, warnings = parser(pretty, name)
    assert warnings == ()
    assert [r.source.line for r in records] == starts[: len(records)]
    assert len(set(starts)) == len(items) > 1


def test_find_conntrack_and_kube_lookups() -> None:
    from analyzer.model.node import NodeSnapshot

    entries, _ = parse_conntrack(CONNTRACK, "ct")
    inv, _ = parse_kubectl(KUBECTL, "kubectl.json")
    node = NodeSnapshot(name="n1", conntrack=entries, kube=inv)
    entry, direction = node.find_conntrack("tcp", "10.244.1.5", "10.96.0.10", 40000, 53)
    assert direction == "orig" and entry.state == "ESTABLISHED"
    entry, direction = node.find_conntrack("tcp", "10.244.2.7", "10.244.1.5", 53, 40000)  # the reply, un-DNATed
    assert direction == "reply" and entry.orig is not None and entry.orig.dst == ip("10.96.0.10")
    assert node.find_conntrack("udp", "10.244.2.7", "10.244.1.5", 53, 40000) is None
    assert node.find_conntrack("icmp", "8.8.8.8", "192.168.56.11") is not None
    assert inv.node_by_ip("192.168.56.12").name == "node2"
    assert inv.node_of_pod_ip("10.244.2.200").name == "node2"
    assert inv.node_by_ip("10.0.0.1") is None and inv.node_of_pod_ip("10.244.9.9") is None


def test_hairpin_mode_of_bridge_ports() -> None:
    text = textwrap.dedent("""\
        7: veth0a@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue master cni0 state UP mode DEFAULT
            link/ether 2a:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff link-netnsid 0 promiscuity 1
            veth
            bridge_slave state forwarding priority 32 cost 2 hairpin on guard off root_block off
        """)
    (veth,), warnings = parse_ip_addr(text, "ip-link")
    assert warnings == ()
    assert veth.hairpin is True and veth.hairpin_source is not None and veth.hairpin_source.line == 4
