"""Two flannel VXLAN node bundles written as real command output (for the simulate tests).

node1 192.168.56.11, pods 10.244.1.0/24 (pod 10.244.1.5 behind veth-a); node2 192.168.56.12,
pods 10.244.2.0/24 (pod 10.244.2.7 behind veth-b). Each node has the kube-proxy rules of
``services`` (from analyzer.lab.kube_proxy) and flannel's rules for its own subnet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from analyzer.lab.kube_proxy import ServicePortSpec, generate_rules

NODES = {
    "node1": {"ip": "192.168.56.11", "n": 1, "mac": "9a:5f:1e:01:01:01", "eth_mac": "52:54:00:00:56:0b",
              "pod": "10.244.1.5", "pod_mac": "6a:07:e5:55:07:80", "veth": "veth-a"},
    "node2": {"ip": "192.168.56.12", "n": 2, "mac": "9a:5f:1e:02:02:02", "eth_mac": "52:54:00:00:56:0c",
              "pod": "10.244.2.7", "pod_mac": "6a:07:e5:55:07:81", "veth": "veth-b"},
}


def _addr(me: dict) -> str:
    n = me["n"]
    return f"""\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default qlen 1000
    link/ether {me['eth_mac']} brd ff:ff:ff:ff:ff:ff promiscuity 0
    inet {me['ip']}/24 scope global eth0
       valid_lft forever preferred_lft forever
3: cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP group default qlen 1000
    link/ether 0a:58:0a:f4:0{n}:01 brd ff:ff:ff:ff:ff:ff promiscuity 0
    bridge forward_delay 1500 hello_time 200 max_age 2000
    inet 10.244.{n}.1/24 scope global cni0
       valid_lft forever preferred_lft forever
4: {me['veth']}@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue master cni0 state UP group default qlen 1000
    link/ether aa:5e:09:a9:6b:7{n} brd ff:ff:ff:ff:ff:ff link-netnsid 0 promiscuity 1
    veth
    bridge_slave state forwarding priority 32 cost 2 hairpin on
5: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN group default qlen 1000
    link/ether {me['mac']} brd ff:ff:ff:ff:ff:ff promiscuity 0
    vxlan id 1 local {me['ip']} dev eth0 srcport 0 0 dstport 8472 nolearning ttl auto ageing 300
    inet 10.244.{n}.0/32 scope global flannel.1
       valid_lft forever preferred_lft forever
"""


def _route(me: dict, other: dict) -> str:
    n, o = me["n"], other["n"]
    return f"""\
default via 192.168.56.1 dev eth0
10.244.{n}.0/24 dev cni0 proto kernel scope link src 10.244.{n}.1
10.244.{o}.0/24 via 10.244.{o}.0 dev flannel.1 onlink
192.168.56.0/24 dev eth0 proto kernel scope link src {me['ip']}
"""


def write_bundles(root: Path, services: Sequence[ServicePortSpec], *, forward_policy: str = "ACCEPT",
                  drop_node2_fdb: bool = False, extra_filter: Sequence[str] = ()) -> list[Path]:
    out = []
    for name, me in NODES.items():
        other = next(v for k, v in NODES.items() if k != name)
        d = root / name
        d.mkdir(parents=True)
        (d / "node").write_text(name + "\n")
        (d / "ip-addr").write_text(_addr(me))
        (d / "ip-route").write_text(_route(me, other))
        (d / "ip-neigh").write_text(
            f"10.244.{other['n']}.0 dev flannel.1 lladdr {other['mac']} PERMANENT\n"
            f"{me['pod']} dev cni0 lladdr {me['pod_mac']} REACHABLE\n"
            "192.168.56.1 dev eth0 lladdr 52:54:00:00:56:01 REACHABLE\n")
        fdb = f"{me['pod_mac']} dev {me['veth']} master cni0\n"
        if not (drop_node2_fdb and name == "node1"):
            fdb += f"{other['mac']} dev flannel.1 dst {other['ip']} self permanent\n"
        (d / "bridge-fdb").write_text(fdb)
        (d / "subnet.env").write_text(f"FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.{me['n']}.1/24\n"
                                      "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
        local_services = [s.__class__(**{**{f: getattr(s, f) for f in s.__dataclass_fields__},
                                         "endpoints": tuple(e.__class__(e.ip, e.port, e.ip.startswith(
                                             f"10.244.{me['n']}.")) for e in s.endpoints)})
                          for s in services]
        (d / "iptables-save").write_text(generate_rules(
            local_services, cluster_cidr="10.244.0.0/16", pod_cidr=f"10.244.{me['n']}.0/24", node_ip=me["ip"],
            forward_policy=forward_policy, extra_filter=extra_filter))
        out.append(d)
    return out
