"""The lab cluster as data: nodes, pods, services, and the addresses flannel would give them.

``Cluster`` is pure data (no I/O): ``build.py`` turns it into namespaces and links, and
``rules.py`` into iptables rules (plus kube-proxy's nftables table when ``LabParams.kube_proxy_mode``
is ``nftables``). Addresses follow flannel's defaults: node N (1-based) owns
``10.244.N.0/24``; its ``cni0`` is ``.1``; its ``flannel.1`` is ``.0/32``; pods count from ``.2``.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass

SWITCH = "switch"
ROUTER = "router"
EXTERNAL = "external"
KUBE_PROXY_MODES = ("iptables", "nftables")


@dataclass(frozen=True, slots=True)
class LabParams:
    """The knobs every scenario accepts (``lab run --nodes 3 --pod-mtu 1500 ...``)."""

    nodes: int = 2
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    node_cidr: str = "192.168.56.0/24"
    external_cidr: str = "203.0.113.0/24"
    ingress_cidr: str = "198.51.100.0/24"  # a second network the router reaches nodes by (Faults.second_nic_on)
    backend: str = "vxlan"  # vxlan | host-gw
    vxlan_port: int = 8472
    vni: int = 1
    vxlan_mtu: int = 1450
    pod_mtu: int = 1450
    underlay_mtu: int = 1500
    node_port_range: str = "30000-32767"
    tag: str = ""  # inserted in namespace names: k8sl-<tag>-node1 (tests run with a unique tag)
    # kube-proxy's mode: "iptables" (KUBE-* chains in the iptables-restore input) or "nftables" (the
    # `table ip kube-proxy` of kube-proxy's nftables proxier, loaded with nft -f; iptables keeps flannel's)
    kube_proxy_mode: str = "iptables"

    def ns(self, name: str) -> str:
        return f"k8sl-{self.tag}-{name}" if self.tag else f"k8sl-{name}"

    def validate(self) -> None:
        """Raise ValueError for parameters no cluster can be built from."""
        nets = {}
        for key in ("pod_cidr", "service_cidr", "node_cidr", "external_cidr", "ingress_cidr"):
            try:
                nets[key] = ipaddress.ip_network(getattr(self, key))
            except ValueError as exc:
                raise ValueError(f"{key.replace('_', '-')}: {exc}") from None
            if nets[key].version != 4:
                raise ValueError(f"{key.replace('_', '-')}: the lab is IPv4 only")
        if nets["pod_cidr"].prefixlen > 22:
            raise ValueError(f"pod CIDR {self.pod_cidr} is too small for one /24 per node")
        if nets["pod_cidr"].num_addresses // 256 < self.nodes + 1:
            raise ValueError(f"pod CIDR {self.pod_cidr} has no /24 left for {self.nodes} nodes")
        if nets["service_cidr"].prefixlen > 24:
            raise ValueError(f"service CIDR {self.service_cidr} is too small (needs at least a /24)")
        names = list(nets)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if nets[a].overlaps(nets[b]):
                    raise ValueError(f"{a.replace('_', '-')} {nets[a]} overlaps {b.replace('_', '-')} {nets[b]}")
        if self.backend not in ("vxlan", "host-gw"):
            raise ValueError(f"unknown backend {self.backend!r} (vxlan or host-gw)")
        if self.kube_proxy_mode not in KUBE_PROXY_MODES:
            raise ValueError(f"unknown kube-proxy mode {self.kube_proxy_mode!r} (iptables or nftables)")
        if len(self.tag) > 24:
            raise ValueError("--tag is too long (24 characters at most)")


@dataclass(frozen=True, slots=True)
class Node:
    index: int  # 1-based
    name: str
    ip: str  # underlay address on eth0
    subnet: str  # this node's pod /24
    vtep_mac: str  # flannel.1's MAC (flanneld stores it in the node annotation)

    @property
    def gateway(self) -> str:  # cni0
        return str(ipaddress.ip_network(self.subnet).network_address + 1)

    @property
    def vtep_ip(self) -> str:  # flannel.1 (/32)
        return str(ipaddress.ip_network(self.subnet).network_address)

    def ingress_ip(self, params: LabParams) -> str:  # eth1, with Faults.second_nic_on
        return str(ipaddress.ip_network(params.ingress_cidr).network_address + 10 + self.index)


@dataclass(frozen=True, slots=True)
class Pod:
    name: str  # also the pod's hostname
    namespace: str  # Kubernetes namespace, e.g. default
    node: str
    ip: str
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def veth(self) -> str:
        """Host-side veth name as the CNI bridge plugin makes it: veth + 8 hex digits."""
        return "veth{:08x}".format(zlib.crc32(f"{self.namespace}/{self.name}".encode()))


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    target_port: int
    protocol: str = "TCP"  # TCP | UDP
    node_port: int | None = None


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    namespace: str
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    endpoints: tuple[str, ...]  # pod names (all ready)
    type: str = "ClusterIP"  # ClusterIP | NodePort
    external_traffic_policy: str = "Cluster"


@dataclass(frozen=True, slots=True)
class Cluster:
    params: LabParams
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    external_ip: str = ""
    router_node_side: str = ""
    router_external_side: str = ""

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def pod(self, name: str) -> Pod:
        return next(p for p in self.pods if p.name == name)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    @property
    def cluster_dns(self) -> str:
        return str(ipaddress.ip_network(self.params.service_cidr).network_address + 10)


def service_ip(params: LabParams, offset: int) -> str:
    return str(ipaddress.ip_network(params.service_cidr).network_address + offset)


def make_cluster(params: LabParams, pods: list[tuple[str, int, dict[str, str]]],
                 services: list[Service] | None = None) -> Cluster:
    """Nodes node1..nodeN with flannel subnets, and pods given as (name, node index, labels)."""
    pod_net = ipaddress.ip_network(params.pod_cidr)
    node_net = ipaddress.ip_network(params.node_cidr)
    ext_net = ipaddress.ip_network(params.external_cidr)
    if pod_net.prefixlen > 22:
        raise ValueError(f"pod CIDR {params.pod_cidr} is too small for /24 node subnets")
    subnets = list(pod_net.subnets(new_prefix=24))
    nodes = tuple(
        Node(index=i, name=f"node{i}", ip=str(node_net.network_address + 10 + i), subnet=str(subnets[i]),
             vtep_mac=f"0e:6c:61:62:00:{i:02x}")
        for i in range(1, params.nodes + 1)
    )
    counters = {n.index: 2 for n in nodes}
    pod_objs = []
    for name, index, labels in pods:
        if index > params.nodes:
            continue
        subnet = ipaddress.ip_network(nodes[index - 1].subnet)
        pod_objs.append(Pod(name=name, namespace="default", node=f"node{index}",
                            ip=str(subnet.network_address + counters[index]),
                            labels=tuple(sorted(labels.items()))))
        counters[index] += 1
    return Cluster(
        params=params, nodes=nodes, pods=tuple(pod_objs), services=tuple(services or ()),
        external_ip=str(ext_net.network_address + 10),
        router_node_side=str(node_net.network_address + 1),
        router_external_side=str(ext_net.network_address + 1),
    )


@dataclass(frozen=True, slots=True)
class Faults:
    """Deliberate breakage a scenario applies on top of a healthy cluster."""

    block_vxlan_on: tuple[str, ...] = ()  # nodes with a CentOS-style INPUT REJECT before the 8472 accept
    no_masquerade: bool = False  # FLANNEL-POSTRTG left out on every node
    missing_fdb: tuple[tuple[str, str], ...] = ()  # (on node, toward node): FDB entry not programmed
    forward_drop_on: tuple[str, ...] = ()  # nodes with FORWARD policy DROP (Docker's) and no FLANNEL-FWD
    no_hairpin: bool = False  # pod veths without hairpin mode (flannel's CNI config turns it on)
    no_br_netfilter_on: tuple[str, ...] = ()  # nodes with net.bridge.bridge-nf-call-iptables = 0
    firewalld_nft_on: tuple[str, ...] = ()  # nodes with firewalld's nftables zone table (VXLAN port not opened)
    no_ip_forward_on: tuple[str, ...] = ()  # nodes with net.ipv4.ip_forward = 0 (a host that never had it set)
    # nodes with a second NIC, eth1 on the ingress network (the router reaches them by it; their
    # default route stays on eth0, so answers to outside clients leave by eth0)
    second_nic_on: tuple[str, ...] = ()
    rp_filter_strict_on: tuple[str, ...] = ()  # nodes with net.ipv4.conf.all.rp_filter = 1 (RHEL's default)
    # nodes where something wrote to the other iptables backend (iptables-legacy): its FORWARD policy DROP,
    # which the node's iptables-save (nf_tables) does not show
    legacy_forward_drop_on: tuple[str, ...] = ()
