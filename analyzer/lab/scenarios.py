"""The lab's scenarios: a cluster, the faults applied to it, the traffic, and what should happen.

Each scenario states, per traffic step, the outcome the client must see (``ok`` / ``timeout`` /
``refused`` ...) and what ``k8s-trace explain`` should conclude from the recording (``kind``,
``status``, ``encapsulation``, ``translations``, ``finding`` and the node it names), in the
vocabulary of the JSON contract. ``lab run`` writes both into ``scenario.json`` next to the
actual client results.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from analyzer.lab.topology import Cluster, Faults, LabParams, Service, ServicePort, make_cluster, service_ip

WEB_PORT = 8080  # container port of the web pods
NODE_PORT = 30080


@dataclass(frozen=True, slots=True)
class Expect:
    client: str  # what the client sees: ok | timeout | refused | frag-needed | mixed...
    kind: str
    status: str
    encapsulation: tuple[str, ...] = ()  # contract encapsulation types in path order
    translations: tuple[str, ...] = ()  # contract translation types in path order
    finding: str | None = None
    finding_node: str | None = None
    mixed_encapsulation: bool = False  # per connection: some flows with `encapsulation`, some without


@dataclass(frozen=True, slots=True)
class Step:
    """One client action. `target` is pod:NAME, svc:NAME, node:NAME, ingress:NAME (the node's second
    NIC) or external."""

    client: str  # lab name of the namespace the client runs in (a pod, or "external")
    op: str  # http | dns | ping
    target: str
    port: int | None
    expect: Expect
    path: str = "/"
    count: int = 1
    size: int = 56  # ping payload
    df: bool = False
    timeout: float = 2.0
    name: str = "web.default.svc.cluster.local"  # dns


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    shows: str  # one paragraph for learners: what the recording shows
    pods: tuple[tuple[str, int, tuple[tuple[str, str], ...]], ...]
    services: tuple[tuple[str, str, tuple[ServicePort, ...], tuple[str, ...], str], ...]  # name, ip key, ports, endpoints, type
    steps: tuple[Step, ...]
    params: dict = field(default_factory=dict)  # LabParams overrides
    faults: Faults = Faults()
    external_server: bool = False

    def lab_params(self, base: LabParams) -> LabParams:
        return replace(base, **self.params)

    def cluster(self, params: LabParams) -> Cluster:
        """The cluster for `params` as given (start from ``lab_params`` to get the scenario's own knobs)."""
        services = []
        ip_offsets = {"web": 100, "dns": 10, "empty": 200}
        for name, ip_key, ports, endpoints, svc_type in self.services:
            ns = "kube-system" if name == "kube-dns" else "default"
            services.append(Service(name=name, namespace=ns, cluster_ip=service_ip(params, ip_offsets[ip_key]),
                                    ports=ports, endpoints=endpoints, type=svc_type))
        return make_cluster(params, [(n, i, dict(lbl)) for n, i, lbl in self.pods], services)

    def check(self, params: LabParams) -> None:
        """ValueError when this scenario cannot run with `params` (e.g. too few nodes for its pods)."""
        params.validate()
        for name, index, _labels in self.pods:
            if index > params.nodes:
                raise ValueError(f"scenario {self.name} needs at least {index} nodes (pod {name} runs on "
                                 f"node{index}); --nodes is {params.nodes}")
        if self.params.get("backend") == "host-gw" and params.backend != "host-gw":
            raise ValueError(f"scenario {self.name} is about the host-gw backend")
        if (self.faults.block_vxlan_on or self.faults.firewalld_nft_on or self.faults.missing_fdb) \
                and params.backend != "vxlan":
            raise ValueError(f"scenario {self.name} breaks VXLAN: it needs --backend vxlan")

    def servers(self, cluster: Cluster) -> list[tuple[str, list[str]]]:
        """(pod name, agent argv) of every server to start."""
        out = []
        for pod in cluster.pods:
            role = dict(pod.labels).get("app")
            if role == "web":
                out.append((pod.name, ["http-server", "--port", str(WEB_PORT), "--name", pod.name]))
            elif role == "kube-dns":
                web = next((s.cluster_ip for s in cluster.services if s.name == "web"), "10.96.0.100")
                out.append((pod.name, ["dns-server", "--port", "53", "--a", web, "--aaaa", "fd00:10:96::100"]))
        return out


WEB = (("app", "web"),)
CLIENT = (("app", "client"),)
DNS = (("app", "kube-dns"),)
HTTP = (ServicePort("http", 80, WEB_PORT),)
HTTP_NODEPORT = (ServicePort("http", 80, WEB_PORT, node_port=NODE_PORT),)
DNS_PORTS = (ServicePort("dns", 53, 53, protocol="UDP"),)

OK_CROSS = Expect("ok", "pod-to-pod-cross-node", "delivered", ("vxlan",))

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="cross-node",
        summary="pod-to-pod across nodes over flannel VXLAN",
        shows="An HTTP request from client (node1) to web (node2): cni0 -> flannel.1 -> VXLAN UDP 8472 on the "
              "underlay (VNI 1) -> flannel.1 -> cni0 on node2, and the reply the same way back.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(),
        steps=(Step("client", "http", "pod:web", WEB_PORT, OK_CROSS),),
    ),
    Scenario(
        name="same-node",
        summary="pod-to-pod on one node (cni0 bridge only)",
        shows="Both pods hang off node1's cni0: the request is bridged from one veth to the other, no "
              "routing and no encapsulation.",
        pods=(("client", 1, CLIENT), ("web", 1, WEB)),
        services=(),
        steps=(Step("client", "http", "pod:web", WEB_PORT, Expect("ok", "pod-to-pod-same-node", "delivered")),),
    ),
    Scenario(
        name="service-remote",
        summary="pod-to-service, the only endpoint on the other node",
        shows="client connects to the ClusterIP of default/web; kube-proxy's DNAT on node1 rewrites it to "
              "web's pod IP on node2, so the packet leaves node1 inside VXLAN; the reply is un-NATed on node1.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(("web", "web", HTTP, ("web",), "ClusterIP"),),
        steps=(Step("client", "http", "svc:web", 80,
                    Expect("ok", "pod-to-service", "delivered", ("vxlan",), ("dnat",))),),
    ),
    Scenario(
        name="vxlan-blocked",
        summary="UDP 8472 rejected by a CentOS-style INPUT chain on the receiving node",
        shows="node2's INPUT chain ends in `-j REJECT --reject-with icmp-host-prohibited` before its accept "
              "for UDP 8472: every VXLAN packet from node1 is answered by an ICMP host-prohibited on the "
              "underlay, and the client times out.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(),
        faults=Faults(block_vxlan_on=("node2",)),
        steps=(Step("client", "http", "pod:web", WEB_PORT,
                    Expect("timeout", "pod-to-pod-cross-node", "rejected", ("vxlan",),
                           finding="OVERLAY_PORT_BLOCKED", finding_node="node2")),),
    ),
    Scenario(
        name="no-endpoints",
        summary="a service without endpoints: kube-proxy's filter REJECT",
        shows="default/empty has no ready endpoint, so kube-proxy's KUBE-SERVICES filter rule rejects the SYN "
              "on node1 with ICMP port unreachable and the client's connect() fails at once.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(("empty", "empty", HTTP, (), "ClusterIP"),),
        steps=(Step("client", "http", "svc:empty", 80,
                    Expect("refused", "pod-to-service", "rejected", finding="SERVICE_NO_ENDPOINTS",
                           finding_node="node1")),),
    ),
    Scenario(
        name="external-masq",
        summary="pod-to-external with flannel's MASQUERADE",
        shows="client fetches from 203.0.113.10 behind the lab router; FLANNEL-POSTRTG masquerades the pod "
              "address to node1's 192.168.56.11 on the way out, and the reply comes back to it.",
        pods=(("client", 1, CLIENT),),
        services=(),
        external_server=True,
        steps=(Step("client", "http", "external", 80,
                    Expect("ok", "pod-to-external", "delivered", translations=("masquerade",))),),
    ),
    Scenario(
        name="external-no-masq",
        summary="pod-to-external without MASQUERADE (FLANNEL-POSTRTG missing): no reply",
        shows="Without FLANNEL-POSTRTG the packet leaves node1 with the pod source 10.244.1.2; the external "
              "host answers toward its router, which has no route to the pod network, so no reply arrives.",
        pods=(("client", 1, CLIENT),),
        services=(),
        external_server=True,
        faults=Faults(no_masquerade=True),
        steps=(Step("client", "http", "external", 80,
                    Expect("timeout", "pod-to-external", "no-reply", finding="MISSING_MASQUERADE",
                           finding_node="node1")),),
    ),
    Scenario(
        name="mtu",
        summary="pod MTU 1500 over a 1450 VXLAN device",
        shows="Pods think their MTU is 1500 but flannel.1 carries 1450. A 40 kB HTTP response: web's first "
              "full-size segments are answered by node2 (from its cni0 address) with ICMP fragmentation-needed, "
              "next-hop MTU 1450; web lowers its segment size and the transfer completes (path MTU discovery "
              "working). Then a 1500-byte DF ping: node1 answers the first with fragmentation-needed and never "
              "encapsulates it; the second fails inside the client (EMSGSIZE) because its kernel cached the "
              "path MTU. Captures show 64 kB TCP frames: the kernel's GSO super-packets, cut to size later.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(),
        params={"pod_mtu": 1500},
        steps=(
            # HTTP first: once the DF ping has taught the client the 1450 path MTU, it would advertise a
            # smaller MSS and the transfer would never meet the limit
            Step("client", "http", "pod:web", WEB_PORT, Expect("ok", "pod-to-pod-cross-node", "delivered",
                 ("vxlan",), finding="MTU_EXCEEDED", finding_node="node2"), path="/bytes/40000", timeout=5.0),
            # the echo request never gets encapsulated: node1 answers it before flannel.1
            Step("client", "ping", "pod:web", None, Expect("frag-needed", "pod-to-pod-cross-node", "rejected",
                 finding="MTU_EXCEEDED", finding_node="node1"), size=1472, df=True, count=2),
        ),
    ),
    Scenario(
        name="host-gw",
        summary="cross-node pod-to-pod with flannel's host-gw backend (no encapsulation)",
        shows="host-gw programs `10.244.2.0/24 via 192.168.56.12 dev eth0`: the pod packet crosses the "
              "underlay as is, no VXLAN.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(),
        params={"backend": "host-gw", "pod_mtu": 1500},
        steps=(Step("client", "http", "pod:web", WEB_PORT, Expect("ok", "pod-to-pod-cross-node", "delivered")),),
    ),
    Scenario(
        name="nodeport",
        summary="NodePort from an external host, endpoint on the other node",
        shows="203.0.113.10 connects to node1:30080; KUBE-NODEPORTS marks it for masquerade and DNATs it to "
              "web on node2, KUBE-POSTROUTING masquerades it to node1's flannel.1 address, and it crosses "
              "the overlay.",
        pods=(("web", 2, WEB),),
        services=(("web", "web", HTTP_NODEPORT, ("web",), "NodePort"),),
        steps=(Step("external", "http", "node:node1", NODE_PORT,
                    Expect("ok", "external-to-service", "delivered", ("vxlan",), ("dnat", "masquerade"))),),
    ),
    Scenario(
        name="missing-fdb",
        summary="a missing FDB entry for the remote VTEP on the sending node",
        shows="node1 has the route and the neighbour for node2's VTEP but no `bridge fdb` entry for its MAC: "
              "flannel.1 has nowhere to send the frame and drops it; nothing reaches the underlay.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(),
        faults=Faults(missing_fdb=(("node1", "node2"),)),
        steps=(Step("client", "http", "pod:web", WEB_PORT,
                    Expect("timeout", "pod-to-pod-cross-node", "dropped", finding="MISSING_FDB",
                           finding_node="node1")),),
    ),
    Scenario(
        name="forward-drop",
        summary="FORWARD policy DROP (as Docker sets it) and no FLANNEL-FWD on the receiving node",
        shows="node2's filter FORWARD policy is DROP and flannel's FLANNEL-FWD accept rules are missing: the "
              "SYN crosses the underlay inside VXLAN, comes out of node2's flannel.1, and is dropped by the "
              "FORWARD policy before cni0; the client times out.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(),
        faults=Faults(forward_drop_on=("node2",)),
        steps=(Step("client", "http", "pod:web", WEB_PORT,
                    Expect("timeout", "pod-to-pod-cross-node", "dropped", ("vxlan",), finding="FORWARD_BLOCKED",
                           finding_node="node2")),),
    ),
    Scenario(
        name="ip-forward-off",
        summary="net.ipv4.ip_forward = 0 on the receiving node",
        shows="node2 has `net.ipv4.ip_forward = 0` (a host where nobody set it: kubeadm's preflight and flannel "
              "both expect 1). client's SYN crosses the underlay inside VXLAN, reaches node2's eth0 and comes "
              "out of flannel.1 decapsulated, but the kernel does not route it on to cni0: with forwarding off "
              "on flannel.1 the input route lookup for a foreign address fails and the packet is dropped "
              "without an ICMP error and before any FORWARD rule sees it. client retransmits and times out.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(),
        faults=Faults(no_ip_forward_on=("node2",)),
        steps=(Step("client", "http", "pod:web", WEB_PORT,
                    Expect("timeout", "pod-to-pod-cross-node", "dropped", ("vxlan",), finding="IP_FORWARD_DISABLED",
                           finding_node="node2")),),
    ),
    Scenario(
        name="iptables-split",
        summary="two iptables backends on the receiving node: a legacy FORWARD DROP that iptables-save does not show",
        shows="node2's iptables is iptables-nft, as kube-proxy's and flannel's rules are, but something (Docker, an "
              "old image, a firewall script) ran iptables-legacy and set its FORWARD policy to DROP. The kernel runs "
              "the tables of both backends: the SYN crosses the underlay inside VXLAN and comes out of node2's "
              "flannel.1, then the legacy FORWARD chain drops it before cni0. node2's iptables-save (nf_tables) "
              "accepts it; it only warns, at its end, that iptables-legacy tables are present. The client times "
              "out.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(),
        faults=Faults(legacy_forward_drop_on=("node2",)),
        steps=(Step("client", "http", "pod:web", WEB_PORT,
                    Expect("timeout", "pod-to-pod-cross-node", "dropped", ("vxlan",), finding="IPTABLES_BACKEND_SPLIT",
                           finding_node="node2")),),
    ),
    Scenario(
        name="rp-filter",
        summary="NodePort through a second NIC whose route back is the other NIC, with strict rp_filter",
        shows="node1 has a second NIC, eth1 on 198.51.100.0/24, that the router also reaches it by; its default "
              "route stays on eth0, and its `net.ipv4.conf.all.rp_filter` is 1 (strict, as RHEL sets it). "
              "203.0.113.10 first connects to the NodePort on node1's eth0 address: it works. Then to the same "
              "NodePort on node1's eth1 address: the SYN arrives on eth1 and is DNATed to web, but the route back "
              "to 203.0.113.10 leaves by eth0, not eth1, so the reverse-path filter drops it at the route lookup "
              "(a 'martian source' to the kernel), silently; the client times out.",
        pods=(("web", 2, WEB),),
        services=(("web", "web", HTTP_NODEPORT, ("web",), "NodePort"),),
        faults=Faults(second_nic_on=("node1",), rp_filter_strict_on=("node1",)),
        steps=(
            Step("external", "http", "node:node1", NODE_PORT,
                 Expect("ok", "external-to-service", "delivered", ("vxlan",), ("dnat", "masquerade"))),
            Step("external", "http", "ingress:node1", NODE_PORT,
                 Expect("timeout", "external-to-service", "dropped", (), ("dnat",), finding="RP_FILTER_DROP",
                        finding_node="node1")),
        ),
    ),
    Scenario(
        name="hairpin",
        summary="a pod reaching itself through its own service, with and without hairpin mode",
        shows="web connects to the ClusterIP of its own service. With br_netfilter the SYN is DNATed back to "
              "web while it is being bridged, so it must leave through the very bridge port it came in on: "
              "the veth has hairpin mode on (flannel's CNI config sets hairpinMode), KUBE-SEP's "
              "`-s <pod> -j KUBE-MARK-MASQ` masquerades it to cni0's 10.244.1.1, and web answers itself.",
        pods=(("web", 1, WEB),),
        services=(("web", "web", HTTP, ("web",), "ClusterIP"),),
        steps=(Step("web", "http", "svc:web", 80,
                    Expect("ok", "pod-to-service", "delivered", (), ("dnat", "masquerade"))),),
    ),
    Scenario(
        name="hairpin-off",
        summary="a pod reaching itself through its own service without hairpin mode: dropped by the bridge",
        shows="The same as `hairpin` but web's veth has hairpin mode off (`ip -d link` says `hairpin off`): the "
              "bridge will not send the DNATed SYN (10.244.1.2 -> 10.244.1.2:8080) back out of the port it came "
              "from, so it never reaches POSTROUTING (the MASQUERADE counter stays at 0) and the client times "
              "out.",
        pods=(("web", 1, WEB),),
        services=(("web", "web", HTTP, ("web",), "ClusterIP"),),
        faults=Faults(no_hairpin=True),
        steps=(Step("web", "http", "svc:web", 80,
                    Expect("timeout", "pod-to-service", "dropped", (), ("dnat",), finding="HAIRPIN",
                           finding_node="node1")),),
    ),
    Scenario(
        name="vxlan-blocked-nft",
        summary="UDP 8472 rejected by firewalld's nftables zone on the receiving node, invisible to iptables-save",
        shows="node2 runs firewalld with its nftables backend (RHEL 8+, Fedora): its public zone opens ssh, the "
              "API server and kubelet, not flannel's UDP 8472. iptables-save shows nothing wrong (its INPUT accepts "
              "everything); the table `inet firewalld`, which only `nft list ruleset` shows, rejects the VXLAN "
              "packets with ICMP 3/13 (`reject with icmpx admin-prohibited`). The client times out.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(),
        faults=Faults(firewalld_nft_on=("node2",)),
        steps=(Step("client", "http", "pod:web", WEB_PORT,
                    Expect("timeout", "pod-to-pod-cross-node", "rejected", ("vxlan",), finding="OVERLAY_PORT_BLOCKED",
                           finding_node="node2")),),
    ),
    Scenario(
        name="br-netfilter-off",
        summary="a pod and its service's endpoint on one node with bridge-nf-call-iptables = 0",
        shows="node1's `net.bridge.bridge-nf-call-iptables` is 0 (br_netfilter not loaded, or turned off). "
              "client's SYN to the ClusterIP is routed through cni0's address, so PREROUTING DNATs it to web on "
              "the same bridge. web's SYN/ACK goes straight back across the bridge: bridged, not routed, and "
              "without br_netfilter conntrack never sees it to undo the DNAT. client gets a SYN/ACK from "
              "10.244.1.3:8080 instead of 10.96.0.100:80, answers it with a reset, and times out.",
        pods=(("client", 1, CLIENT), ("web", 1, WEB)),
        services=(("web", "web", HTTP, ("web",), "ClusterIP"),),
        faults=Faults(no_br_netfilter_on=("node1",)),
        steps=(Step("client", "http", "svc:web", 80,
                    Expect("timeout", "pod-to-service", "dropped", (), ("dnat",), finding="BRIDGE_NF_CALL_DISABLED",
                           finding_node="node1")),),
    ),
    Scenario(
        name="two-endpoints",
        summary="a service with two endpoints, one local and one remote",
        shows="default/web has web-1 on node1 and web-2 on node2; kube-proxy's `-m statistic --mode random "
              "--probability 0.5` picks one per connection: some go over the bridge, some over VXLAN.",
        pods=(("client", 1, CLIENT), ("web-1", 1, WEB), ("web-2", 2, WEB)),
        services=(("web", "web", HTTP, ("web-1", "web-2"), "ClusterIP"),),
        steps=(Step("client", "http", "svc:web", 80, Expect("ok", "pod-to-service", "delivered", ("vxlan",),
                                                           ("dnat",), mixed_encapsulation=True), count=12),),
    ),
    Scenario(
        name="dns",
        summary="DNS to the cluster DNS service over UDP (A and AAAA from one socket)",
        shows="client sends an A and an AAAA query back to back from one UDP socket to 10.96.0.10:53; both "
              "are DNATed to the coredns pod on node2 and answered.",
        pods=(("client", 1, CLIENT), ("coredns", 2, DNS), ("web", 2, WEB)),
        services=(("kube-dns", "dns", DNS_PORTS, ("coredns",), "ClusterIP"), ("web", "web", HTTP, ("web",), "ClusterIP")),
        steps=(Step("client", "dns", "svc:kube-dns", 53,
                    Expect("ok", "pod-to-service", "delivered", ("vxlan",), ("dnat",))),),
    ),
    Scenario(
        name="three-node",
        summary="a three-node cluster: pod-to-pod and a service spread over two remote nodes",
        shows="Three nodes, each with its own /24 and VTEP; node1 holds FDB/neighbour/route entries for both "
              "others. The client reaches a pod on node3 directly and a service whose endpoints are on node2 "
              "and node3.",
        pods=(("client", 1, CLIENT), ("web-2", 2, WEB), ("web-3", 3, WEB)),
        services=(("web", "web", HTTP, ("web-2", "web-3"), "ClusterIP"),),
        params={"nodes": 3},
        steps=(
            Step("client", "http", "pod:web-3", WEB_PORT, OK_CROSS),
            Step("client", "http", "svc:web", 80, Expect("ok", "pod-to-service", "delivered", ("vxlan",), ("dnat",)),
                 count=6),
        ),
    ),
)


NFT = {"kube_proxy_mode": "nftables"}

#: kube-proxy's nftables mode: the iptables scenarios' twins. Their expectations are what the kernel does,
#: the same as their iptables twins': the mode changes the rules, not the packets' fate.
NFT_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="service-nft",
        summary="pod-to-service with kube-proxy in nftables mode, the only endpoint on the other node",
        shows="As service-remote, but kube-proxy runs in nftables mode (GA in Kubernetes 1.33): iptables-save "
              "shows flannel's chains only, and the `table ip kube-proxy` that `nft list ruleset` shows does the "
              "work: nat-prerouting jumps to services, `ip daddr . meta l4proto . th dport vmap @service-ips` "
              "sends 10.96.0.100 . tcp . 80 to the service chain, `numgen random mod 1` to the endpoint chain, "
              "whose `dnat to 10.244.2.2:8080` rewrites the SYN before it leaves node1 inside VXLAN.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(("web", "web", HTTP, ("web",), "ClusterIP"),),
        params=NFT,
        steps=(Step("client", "http", "svc:web", 80,
                    Expect("ok", "pod-to-service", "delivered", ("vxlan",), ("dnat",))),),
    ),
    Scenario(
        name="nodeport-nft",
        summary="NodePort from an external host with kube-proxy in nftables mode, endpoint on the other node",
        shows="As nodeport, in kube-proxy's nftables mode: 203.0.113.10 connects to node1:30080; the services "
              "chain matches `ip daddr @nodeport-ips` and `vmap @service-nodeports` sends tcp . 30080 to the "
              "external- chain, which jumps to mark-for-masquerade and goes to the service chain; the endpoint "
              "chain DNATs to web on node2, and nat-postrouting's masquerading chain (mark 0x4000) masquerades "
              "it to node1's flannel.1 address before it crosses the overlay.",
        pods=(("web", 2, WEB),),
        services=(("web", "web", HTTP_NODEPORT, ("web",), "NodePort"),),
        params=NFT,
        steps=(Step("external", "http", "node:node1", NODE_PORT,
                    Expect("ok", "external-to-service", "delivered", ("vxlan",), ("dnat", "masquerade"))),),
    ),
    Scenario(
        name="no-endpoints-nft",
        summary="a service without endpoints with kube-proxy in nftables mode: reject-chain",
        shows="As no-endpoints, in kube-proxy's nftables mode: default/empty has no ready endpoint, so its "
              "ClusterIP is in the no-endpoint-services map (`10.96.0.200 . tcp . 80 : goto reject-chain`); "
              "filter-forward's `ct state new jump service-endpoints-check` looks the SYN up there on node1 and "
              "reject-chain's `reject` answers ICMP port unreachable: the client's connect() fails at once.",
        pods=(("client", 1, CLIENT), ("web", 2, WEB)),
        services=(("empty", "empty", HTTP, (), "ClusterIP"),),
        params=NFT,
        steps=(Step("client", "http", "svc:empty", 80,
                    Expect("refused", "pod-to-service", "rejected", finding="SERVICE_NO_ENDPOINTS",
                           finding_node="node1")),),
    ),
)


SCENARIOS = (*SCENARIOS, *NFT_SCENARIOS)


def scenario(name: str) -> Scenario:
    """The scenario called `name`; KeyError if none."""
    for sc in SCENARIOS:
        if sc.name == name:
            return sc
    raise KeyError(name)
