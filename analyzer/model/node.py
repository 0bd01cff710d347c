"""A node as its dumps describe it: interfaces, routes, rules, FDB, neighbours, flannel, conntrack.

Every record keeps the ``SourceRef`` (file, 1-based line, verbatim text) it was parsed from, so a
report can point at the exact line behind each decision. ``NodeSnapshot`` is what
``analyzer.inputs.bundle.load_bundle`` returns and what the routing, overlay, netfilter and
explain engines consume. Standard library only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from analyzer.model.netfilter import RuleSet
from analyzer.model.nft import NftRuleset
from analyzer.model.refs import SourceRef

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

#: route types the kernel knows (``ip route`` prints all but unicast by name)
ROUTE_TYPES = frozenset(
    {"unicast", "local", "broadcast", "multicast", "anycast", "blackhole", "unreachable", "prohibit",
     "throw", "nat"}
)
#: route types that drop the packet at the lookup
DROP_ROUTE_TYPES = frozenset({"blackhole", "unreachable", "prohibit"})
#: well-known routing table ids (/etc/iproute2/rt_tables)
TABLE_IDS: Mapping[str, int] = {"local": 255, "main": 254, "default": 253, "unspec": 0}
TABLE_NAMES: Mapping[int, str] = {v: k for k, v in TABLE_IDS.items()}
#: flannel's default VXLAN port (the Linux kernel default, not IANA's 4789)
FLANNEL_VXLAN_PORT = 8472


def table_name(table: str | int) -> str:
    """Normalise a table id or name: 254 -> "main", "254" -> "main", "100" -> "100"."""
    text = str(table)
    if text.isdigit():
        return TABLE_NAMES.get(int(text), text)
    return text


@dataclass(frozen=True, slots=True)
class Route:
    """One line of ``ip route show table all`` (or an entry of ``ip -j route``)."""

    dst: IPNetwork  # "default" is 0.0.0.0/0 (or ::/0)
    source: SourceRef
    table: str = "main"
    type: str = "unicast"
    dev: str | None = None
    via: IPAddress | None = None
    metric: int = 0
    src: IPAddress | None = None  # preferred source address
    scope: str | None = None  # global (default for unicast) / link / host
    proto: str | None = None  # kernel / boot / static / dhcp / bird ...
    onlink: bool = False
    mtu: int | None = None
    tos: int | None = None
    nexthops: tuple[tuple[IPAddress | None, str | None], ...] = ()  # multipath: (via, dev)

    @property
    def is_default(self) -> bool:
        return self.dst.prefixlen == 0

    @property
    def family(self) -> int:
        return self.dst.version


@dataclass(frozen=True, slots=True)
class IpRule:
    """One policy-routing rule of ``ip rule show``: selectors, then an action."""

    pref: int
    source: SourceRef
    action: str = "table"  # table / goto / blackhole / unreachable / prohibit / nop
    table: str | None = None  # for action "table" ("lookup main")
    goto: int | None = None
    src: IPNetwork | None = None  # None: "from all"
    dst: IPNetwork | None = None  # None: "to all" (not printed)
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    tos: int | None = None
    invert: bool = False  # "not": the selectors must NOT match
    suppress_prefixlength: int | None = None
    family: int = 4


@dataclass(frozen=True, slots=True)
class FdbEntry:
    """One line of ``bridge fdb show``: where a MAC lives (a bridge port, or a VXLAN remote)."""

    mac: str  # lower-case aa:bb:cc:dd:ee:ff
    source: SourceRef
    dev: str | None = None
    dst: IPAddress | None = None  # VXLAN remote VTEP (underlay address)
    vlan: int | None = None
    master: str | None = None  # the bridge this port belongs to
    is_self: bool = False  # "self": the device's own table (VXLAN FDB)
    permanent: bool = False
    static: bool = False
    vni: int | None = None
    port: int | None = None
    via: str | None = None
    extern_learn: bool = False


@dataclass(frozen=True, slots=True)
class NeighEntry:
    """One line of ``ip neigh show``: an L3 -> L2 mapping on a device."""

    ip: IPAddress
    source: SourceRef
    dev: str | None = None
    lladdr: str | None = None
    states: frozenset[str] = frozenset()  # PERMANENT NOARP REACHABLE STALE DELAY PROBE FAILED INCOMPLETE NONE
    router: bool = False
    proxy: bool = False

    @property
    def usable(self) -> bool:
        """True when the kernel can use this entry to address a frame (has a MAC, not FAILED)."""
        return self.lladdr is not None and not self.states & {"FAILED", "INCOMPLETE"}


@dataclass(frozen=True, slots=True)
class VxlanInfo:
    """The ``vxlan id 1 local 192.168.56.11 dev eth0 srcport 0 0 dstport 8472 nolearning`` details."""

    vni: int
    source: SourceRef
    port: int | None = None  # dstport; None when the dump does not say (kernel default 8472)
    local: IPAddress | None = None
    remote: IPAddress | None = None  # "remote"/"group"
    dev: str | None = None
    learning: bool = True
    ttl: int | None = None

    @property
    def udp_port(self) -> int:
        return self.port if self.port is not None else FLANNEL_VXLAN_PORT


@dataclass(frozen=True, slots=True)
class TunnelInfo:
    """An IP tunnel device's endpoints (``ipip remote any local 192.168.56.11 ...``)."""

    mode: str  # ipip / sit / gre / ip6tnl
    source: SourceRef
    local: IPAddress | None = None
    remote: IPAddress | None = None  # None: "any" (flannel's ipip backend uses per-route remotes)
    dev: str | None = None


@dataclass(frozen=True, slots=True)
class Interface:
    """A network device from ``ip -d link show`` and/or ``ip -d addr show``."""

    name: str
    source: SourceRef  # the header line "5: veth0@if4: <BROADCAST,...> mtu 1450 ..."
    index: int | None = None
    peer: str | None = None  # what follows "@": "if5" (veth peer index in another netns) or a name
    flags: frozenset[str] = frozenset()
    mtu: int | None = None
    mac: str | None = None
    kind: str | None = None  # veth / bridge / vxlan / ipip / dummy / loopback / ether / tun ...
    master: str | None = None
    state: str | None = None  # operstate: UP / DOWN / UNKNOWN / LOWERLAYERDOWN
    addresses: tuple[IPInterface, ...] = ()
    address_sources: tuple[SourceRef, ...] = ()  # one per address, same order
    vxlan: VxlanInfo | None = None
    tunnel: TunnelInfo | None = None
    link_netnsid: int | None = None
    #: ``ip -s link`` counters: rx_packets, rx_errors, rx_dropped, tx_packets, tx_dropped ... (empty if not dumped)
    stats: Mapping[str, int] = field(default_factory=dict)
    stats_source: SourceRef | None = None  # the "RX: bytes packets ..." header line
    #: bridge port's hairpin mode (``ip -d link``: ``bridge_slave ... hairpin on|off``); None if not dumped
    hairpin: bool | None = None
    hairpin_source: SourceRef | None = None  # the ``bridge_slave`` line

    @property
    def up(self) -> bool:
        return "UP" in self.flags

    @property
    def is_vxlan(self) -> bool:
        return self.vxlan is not None or self.kind == "vxlan"

    @property
    def is_ipip(self) -> bool:
        return self.kind == "ipip" or self.name == "tunl0" or (self.tunnel is not None and self.tunnel.mode == "ipip")

    @property
    def peer_index(self) -> int | None:
        if self.peer and self.peer.startswith("if") and self.peer[2:].isdigit():
            return int(self.peer[2:])
        return None


@dataclass(frozen=True, slots=True)
class SubnetEnv:
    """flannel's ``/run/flannel/subnet.env``."""

    source: SourceRef  # the file (line 1)
    network: IPNetwork | None = None  # FLANNEL_NETWORK: the whole cluster's pod CIDR
    subnet: IPInterface | None = None  # FLANNEL_SUBNET: this node's pod subnet (10.244.1.1/24)
    mtu: int | None = None
    ipmasq: bool | None = None
    ipv6_network: IPNetwork | None = None
    ipv6_subnet: IPInterface | None = None
    lines: Mapping[str, SourceRef] = field(default_factory=dict)  # key -> its line


@dataclass(frozen=True, slots=True)
class ConntrackTuple:
    src: IPAddress
    dst: IPAddress
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None


@dataclass(frozen=True, slots=True)
class ConntrackEntry:
    """One line of ``conntrack -L``."""

    proto: str  # tcp / udp / icmp / icmpv6 / sctp / unknown
    source: SourceRef
    orig: ConntrackTuple | None = None
    reply: ConntrackTuple | None = None
    protonum: int | None = None
    family: str = "ipv4"
    timeout: int | None = None
    state: str | None = None  # TCP: ESTABLISHED, SYN_SENT, TIME_WAIT ...
    assured: bool = False
    unreplied: bool = False
    mark: int | None = None
    zone: int | None = None
    use: int | None = None

    @property
    def dnat(self) -> bool:
        """The destination was rewritten (the reply comes from someone else than orig.dst)."""
        return self.orig is not None and self.reply is not None and self.reply.src != self.orig.dst

    @property
    def snat(self) -> bool:
        return self.orig is not None and self.reply is not None and self.reply.dst != self.orig.src


@dataclass(frozen=True, slots=True)
class KubePod:
    name: str
    namespace: str
    source: SourceRef
    ip: IPAddress | None = None
    ips: tuple[IPAddress, ...] = ()
    node: str | None = None
    host_ip: IPAddress | None = None
    host_network: bool = False
    phase: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    protocol: str = "TCP"
    name: str | None = None
    target_port: int | str | None = None
    node_port: int | None = None


@dataclass(frozen=True, slots=True)
class KubeService:
    name: str
    namespace: str
    source: SourceRef
    type: str = "ClusterIP"
    cluster_ip: IPAddress | None = None  # None for headless ("None")
    cluster_ips: tuple[IPAddress, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    external_traffic_policy: str | None = None
    internal_traffic_policy: str | None = None
    external_ips: tuple[IPAddress, ...] = ()
    load_balancer_ips: tuple[IPAddress, ...] = ()
    load_balancer_source_ranges: tuple[IPNetwork, ...] = ()
    session_affinity: str | None = None
    selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KubeEndpoint:
    """One address of an EndpointSlice (or legacy Endpoints), with its ports."""

    service: str
    namespace: str
    ip: IPAddress
    source: SourceRef
    ports: tuple[ServicePort, ...] = ()  # port = the endpoint port
    ready: bool = True
    serving: bool | None = None
    terminating: bool | None = None
    node: str | None = None
    pod: str | None = None


@dataclass(frozen=True, slots=True)
class KubeNode:
    name: str
    source: SourceRef
    addresses: tuple[tuple[str, str], ...] = ()  # (type, address): ("InternalIP", "192.168.56.11")
    pod_cidr: IPNetwork | None = None
    pod_cidrs: tuple[IPNetwork, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)  # flannel.alpha.coreos.com/* etc.

    @property
    def internal_ip(self) -> str | None:
        return next((a for t, a in self.addresses if t == "InternalIP"), None)


@dataclass(frozen=True, slots=True)
class KubeInventory:
    """What ``kubectl get pods,svc,endpointslices,nodes -A -o json`` says (any subset)."""

    pods: tuple[KubePod, ...] = ()
    services: tuple[KubeService, ...] = ()
    endpoints: tuple[KubeEndpoint, ...] = ()
    nodes: tuple[KubeNode, ...] = ()

    def merged(self, other: KubeInventory) -> KubeInventory:
        return KubeInventory(
            self.pods + other.pods, self.services + other.services, self.endpoints + other.endpoints,
            self.nodes + other.nodes,
        )

    def pod_by_ip(self, ip: str | IPAddress) -> KubePod | None:
        addr = ipaddress.ip_address(str(ip))
        return next((p for p in self.pods if (p.ip == addr or addr in p.ips) and not p.host_network), None)

    def service_by_ip(self, ip: str | IPAddress) -> KubeService | None:
        addr = ipaddress.ip_address(str(ip))
        return next((s for s in self.services if s.cluster_ip == addr or addr in s.cluster_ips
                     or addr in s.external_ips or addr in s.load_balancer_ips), None)

    def endpoints_of(self, namespace: str, service: str) -> tuple[KubeEndpoint, ...]:
        return tuple(e for e in self.endpoints if e.namespace == namespace and e.service == service)

    def node_by_ip(self, ip: str | IPAddress) -> KubeNode | None:
        """The node that has ``ip`` among its addresses (InternalIP, ExternalIP...)."""
        text = str(ipaddress.ip_address(str(ip)))
        return next((n for n in self.nodes if any(a == text for _, a in n.addresses)), None)

    def node_of_pod_ip(self, ip: str | IPAddress) -> KubeNode | None:
        """The node whose podCIDR holds ``ip`` (where a pod address lives, even without a Pod object)."""
        addr = ipaddress.ip_address(str(ip))
        for node in self.nodes:
            for cidr in node.pod_cidrs or ((node.pod_cidr,) if node.pod_cidr is not None else ()):
                if cidr.version == addr.version and addr in cidr:
                    return node
        return None


@dataclass(frozen=True, slots=True)
class CaptureFile:
    """A capture inside a bundle: ``<iface>.pcap`` was taken on interface ``<iface>`` ("any": -i any)."""

    path: str  # a path that can be opened (extracted from a tarball if needed)
    interface: str | None
    display: str = ""  # how to name it to the user (``n1-k8s-trace.tar.gz/n1/cni0.pcap``)


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """Everything one node's bundle says about that node."""

    name: str
    files: Mapping[str, str] = field(default_factory=dict)  # kind ("ip-route"...) -> source name
    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[IpRule, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    neigh: tuple[NeighEntry, ...] = ()
    subnet_env: SubnetEnv | None = None
    conntrack: tuple[ConntrackEntry, ...] = ()
    sysctl: Mapping[str, str] = field(default_factory=dict)
    kube: KubeInventory | None = None
    ruleset: RuleSet | None = None  # iptables-save (IPv4, or a bare dump of either family)
    captures: tuple[CaptureFile, ...] = ()
    warnings: tuple[str, ...] = ()
    sysctl_sources: Mapping[str, SourceRef] = field(default_factory=dict)
    ip6ruleset: RuleSet | None = None  # ip6tables-save
    kernel: str | None = None  # `uname -srm` of the node ("Linux 6.1.0-18-amd64 x86_64")
    collected_at: str | None = None  # UTC time the dumps were taken (ISO 8601), to line up with captures
    nft: NftRuleset | None = None  # `nft list ruleset`: the tables iptables-save does not show (firewalld)
    #: `iptables-legacy-save` where iptables-save is iptables-nft's: the legacy tables the kernel also runs
    legacy_ruleset: RuleSet | None = None

    # -- lookups -------------------------------------------------------------------------------
    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def local_addresses(self) -> tuple[IPAddress, ...]:
        """Every address configured on the node (interfaces, plus ``local`` routes of the dump)."""
        seen: dict[IPAddress, None] = {}
        for iface in self.interfaces:
            for addr in iface.addresses:
                seen.setdefault(addr.ip, None)
        for route in self.routes:
            if route.type == "local" and route.table == "local" and route.dst.num_addresses == 1:
                seen.setdefault(route.dst.network_address, None)
        return tuple(seen)

    def interface_of_address(self, ip: str | IPAddress) -> Interface | None:
        addr = ipaddress.ip_address(str(ip))
        return next((i for i in self.interfaces if any(a.ip == addr for a in i.addresses)), None)

    def find_conntrack(self, proto: str, src: str | IPAddress, dst: str | IPAddress, sport: int | None = None,
                       dport: int | None = None) -> tuple[ConntrackEntry, str] | None:
        """The conntrack entry a packet belongs to, and whether it travels in its "orig" or "reply"
        direction (as the kernel looks a packet up: either tuple may match)."""
        s_addr, d_addr = ipaddress.ip_address(str(src)), ipaddress.ip_address(str(dst))
        for entry in self.conntrack:
            if entry.proto != proto:
                continue
            for direction, tup in (("orig", entry.orig), ("reply", entry.reply)):
                if tup is None or tup.src != s_addr or tup.dst != d_addr:
                    continue
                if (sport is None or tup.sport in (None, sport)) and (dport is None or tup.dport in (None, dport)):
                    return entry, direction
        return None

    def vxlan_devices(self) -> tuple[Interface, ...]:
        return tuple(i for i in self.interfaces if i.is_vxlan)

    def overlay_device(self) -> Interface | None:
        """flannel.1 (or flannel.<vni>), else the first VXLAN device, else an ipip/tunl0 device."""
        vx = self.vxlan_devices()
        for iface in vx:
            if iface.name.startswith("flannel."):
                return iface
        if vx:
            return vx[0]
        return next((i for i in self.interfaces if i.is_ipip), None)

    # -- flannel view ---------------------------------------------------------------------------
    @property
    def pod_cidr(self) -> IPNetwork | None:
        """This node's pod subnet: FLANNEL_SUBNET, else cni0's network, else the node's podCIDR."""
        if self.subnet_env is not None and self.subnet_env.subnet is not None:
            return self.subnet_env.subnet.network
        cni = self.interface("cni0")
        if cni is not None:
            v4 = [a for a in cni.addresses if a.version == 4]
            if v4:
                return v4[0].network
        if self.kube is not None:
            for node in self.kube.nodes:
                if node.name == self.name and node.pod_cidr is not None:
                    return node.pod_cidr
        return None

    @property
    def cluster_cidr(self) -> IPNetwork | None:
        """The whole cluster's pod network (FLANNEL_NETWORK)."""
        if self.subnet_env is not None and self.subnet_env.network is not None:
            return self.subnet_env.network
        return None

    @property
    def backend(self) -> str:
        """vxlan / host-gw / ipip / udp / none / unknown, inferred from devices and routes."""
        pod = self.pod_cidr
        cluster = self.cluster_cidr

        def is_pod_route(r: Route) -> bool:
            if r.type != "unicast" or r.dst.prefixlen == 0:
                return False
            if pod is not None and r.dst.version == pod.version and r.dst.overlaps(pod):
                return False
            if cluster is not None and r.dst.version == cluster.version:
                return r.dst.subnet_of(cluster)  # type: ignore[arg-type]
            return True

        vx = {i.name for i in self.vxlan_devices()}
        tun = {i.name for i in self.interfaces if i.kind == "ipip" or i.name == "tunl0"}
        udp = {i.name for i in self.interfaces if i.kind == "tun" and i.name.startswith("flannel")}
        remote = [r for r in self.routes if r.table == "main" and is_pod_route(r)]
        if any(r.dev in vx for r in remote):
            return "vxlan"
        if any(r.dev in tun for r in remote):
            return "ipip"
        if any(r.dev in udp for r in remote) or (udp and not vx):
            return "udp"
        if cluster is not None and any(r.via is not None and r.dev not in vx | tun for r in remote):
            return "host-gw"
        if vx:
            return "vxlan"
        if tun:
            return "ipip"
        if cluster is not None and not remote and pod is not None:
            return "none"
        return "unknown"

    @property
    def node_ip(self) -> IPAddress | None:
        """The underlay address: flannel.1's ``local``, else the default route's source."""
        dev = self.overlay_device()
        if dev is not None and dev.vxlan is not None and dev.vxlan.local is not None:
            return dev.vxlan.local
        if dev is not None and dev.tunnel is not None and dev.tunnel.local is not None:
            return dev.tunnel.local
        defaults = sorted(
            (r for r in self.routes if r.is_default and r.table == "main" and r.type == "unicast"
             and r.family == 4),
            key=lambda r: r.metric,
        )
        for route in defaults:
            if route.src is not None:
                return route.src
            iface = self.interface(route.dev) if route.dev else None
            if iface is not None:
                for addr in iface.addresses:
                    if addr.version == 4 and (route.via is None or route.via in addr.network):
                        return addr.ip
                v4 = [a for a in iface.addresses if a.version == 4]
                if v4:
                    return v4[0].ip
        if self.kube is not None:
            for node in self.kube.nodes:
                if node.name == self.name and node.internal_ip:
                    return ipaddress.ip_address(node.internal_ip)
        return None

    @property
    def uplink(self) -> Interface | None:
        """The device carrying the node's underlay address (or the default route's device)."""
        ip = self.node_ip
        if ip is not None:
            iface = self.interface_of_address(ip)
            if iface is not None:
                return iface
        for route in self.routes:
            if route.is_default and route.dev and route.table == "main":
                return self.interface(route.dev)
        return None


# -- results of the routing and overlay engines (engines/routing.py, engines/overlay.py) ----------

@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What the kernel's FIB lookup decides for one destination, with everything it weighed."""

    dst: IPAddress
    kind: str  # unicast / local / broadcast / blackhole / unreachable / prohibit / no-route / rp-filter
    explanation: str
    candidates: tuple[Route, ...] = ()  # every matching route of the tables looked at, best first
    chosen: Route | None = None
    rule: IpRule | None = None  # the ip rule whose table gave the answer
    table: str | None = None
    out_interface: str | None = None
    next_hop: IPAddress | None = None  # gateway, or the destination itself when on-link
    pref_src: IPAddress | None = None
    evidence: tuple[SourceRef, ...] = ()
    src: IPAddress | None = None
    iif: str | None = None
    mark: int = 0
    onlink: bool = False
    rules_tried: tuple[IpRule, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def delivered_locally(self) -> bool:
        return self.kind in ("local", "broadcast")

    @property
    def dropped(self) -> bool:
        return self.kind in ("blackhole", "unreachable", "prohibit", "no-route", "rp-filter")


@dataclass(frozen=True, slots=True)
class OverlayStep:
    """One lookup on the way into the tunnel (neighbour, FDB, device), with its evidence."""

    what: str  # "route" / "neigh" / "fdb" / "device"
    explanation: str
    evidence: tuple[SourceRef, ...] = ()
    ok: bool = True


@dataclass(frozen=True, slots=True)
class OverlayDecision:
    """How a routed packet enters the overlay: VXLAN, IPIP, or host-gw (plain routing to a node)."""

    type: str  # vxlan / ipip / host-gw
    status: str  # ok / missing-neigh / missing-fdb / missing-device
    explanation: str
    device: str | None = None
    next_hop: IPAddress | None = None
    vtep_mac: str | None = None
    local: IPAddress | None = None  # outer source (the device's local address)
    remote: IPAddress | None = None  # outer destination (the remote node)
    vni: int | None = None
    port: int | None = None  # UDP destination port (VXLAN), None for IPIP / host-gw
    outer_proto: int | None = None  # 17 for VXLAN, 4 for IPIP, None for host-gw
    mtu: int | None = None
    neigh: NeighEntry | None = None
    fdb: FdbEntry | None = None
    steps: tuple[OverlayStep, ...] = ()
    evidence: tuple[SourceRef, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class VtepMapping:
    """A remote node's underlay address mapped back to the pod subnet behind it."""

    remote: IPAddress
    subnet: IPNetwork | None
    vtep_mac: str | None = None
    device: str | None = None
    explanation: str = ""
    evidence: tuple[SourceRef, ...] = ()
