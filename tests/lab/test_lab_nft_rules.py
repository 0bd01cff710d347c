"""kube-proxy's nftables mode in the lab: the generated ``table ip kube-proxy`` and how scenarios get it.

The names are checked against the examples kube-proxy's own source gives for them
(``pkg/proxy/nftables/proxier.go``); the whole ruleset is loaded with ``nft -f`` into a scratch
namespace and must come back from ``nft list ruleset`` as generated (element order aside, which
is the kernel's hash order).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import replace

import pytest

from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec
from analyzer.lab.kube_proxy_nft import (
    endpoint_chain_base,
    generate_ruleset,
    hash_and_truncate,
    nft_duration,
    service_chain_base,
)
from analyzer.lab.rules import node_nft, node_rules, without_kube_proxy
from analyzer.lab.scenarios import NFT_SCENARIOS, SCENARIOS, scenario
from analyzer.lab.topology import LabParams

E = Endpoint


def _spec(name: str, cip: str, port: int, eps: tuple[Endpoint, ...], **kw) -> ServicePortSpec:
    return ServicePortSpec("default", name, cip, port, eps, **({"port_name": "http"} | kw))


#: every shape the generator knows: several endpoints, UDP, no endpoints with a NodePort, external and
#: load-balancer IPs with source ranges and session affinity under externalTrafficPolicy Local, both
#: policies Local without a local endpoint, an unnamed port
SPECS = (
    _spec("web", "10.96.0.100", 80, (E("10.244.2.2", 8080),)),
    _spec("web2", "10.96.0.101", 80, (E("10.244.1.3", 8080, True), E("10.244.2.3", 8080), E("10.244.2.4", 8080)),
          node_port=30080),
    _spec("empty", "10.96.0.200", 80, (), node_port=30081),
    ServicePortSpec("kube-system", "kube-dns", "10.96.0.10", 53, (E("10.244.2.5", 53),), port_name="dns",
                    protocol="udp"),
    _spec("loc", "10.96.0.102", 443, (E("10.244.1.4", 8443, True), E("10.244.2.6", 8443)), port_name="",
          node_port=30443, external_traffic_policy="Local", external_ips=("192.0.2.5",),
          load_balancer_ips=("192.0.2.6",), load_balancer_source_ranges=("198.51.100.0/24", "203.0.113.0/24"),
          session_affinity_seconds=10800),
    _spec("loc2", "10.96.0.103", 80, (E("10.244.2.7", 80),), port_name="p", node_port=30444,
          external_traffic_policy="Local", internal_traffic_policy="Local", load_balancer_ips=("192.0.2.7",)),
)


def _chains(text: str) -> dict[str, list[str]]:
    """chain name -> its rule lines (comment/type lines left out)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["chain"]:
            current = words[1]
            out[current] = []
        elif words == ["}"]:
            current = None
        elif current and words and words[0] not in ("type", "comment"):
            out[current].append(" ".join(words))
    return out


def _elements(text: str, name: str) -> list[str]:
    m = re.search(rf"(?:set|map) {re.escape(name)} {{[^}}]*?elements = {{(.*?)}}", text, re.S)
    return [e.strip() for e in m.group(1).split(",")] if m else []


def _normalised(text: str) -> list[str]:
    """Whitespace collapsed, blank lines dropped, each element list sorted (nft lists them in hash order)."""
    def sort(m: re.Match) -> str:
        return "elements = { " + ", ".join(sorted(e.strip() for e in m.group(1).split(","))) + " }"
    text = re.sub(r"elements = \{(.*?)\}", sort, text, flags=re.S)
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ names


def test_names_are_kube_proxys_own_examples() -> None:
    # the examples in proxier.go's comments on servicePortChainNameBase / servicePortEndpointChainNameBase
    spec = ServicePortSpec("ns1", "svc1", "172.30.0.41", 80, port_name="p80")
    assert service_chain_base(spec) == "ULMVA6XW-ns1/svc1/tcp/p80"
    assert endpoint_chain_base(spec, E("10.180.0.1", 80)) == "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"


def test_ipv6_endpoint_colons_become_dots_and_long_names_are_cut() -> None:
    spec = ServicePortSpec("ns1", "svc1", "fd00::1", 80, port_name="p80")
    base = endpoint_chain_base(spec, E("fd00:10:180::1", 80))
    assert base.endswith("-ns1/svc1/tcp/p80__fd00.10.180..1/80") and ":" not in base
    assert base == hash_and_truncate("ns1/svc1/tcp/p80__fd00.10.180..1/80")
    long = hash_and_truncate("n" * 300)
    assert len(long) == 240 and long.endswith("...") and long[8] == "-"
    # the hash is of the whole name, so names that differ only past the cut still differ
    assert hash_and_truncate("n" * 300)[:8] != hash_and_truncate("n" * 299 + "m")[:8]


@pytest.mark.parametrize(("seconds", "text"), [(10800, "3h"), (90, "1m30s"), (10, "10s"), (86461, "1d1m1s")])
def test_durations_as_nft_prints_them(seconds: int, text: str) -> None:
    assert nft_duration(seconds) == text


# ------------------------------------------------------------------------------------------ shapes


def test_service_with_endpoints_dispatches_through_service_ips_to_dnat() -> None:
    text = generate_ruleset(SPECS, nodeport_ips=("192.168.56.11",))
    chains = _chains(text)
    svc = "service-" + service_chain_base(SPECS[1])
    eps = ["endpoint-" + endpoint_chain_base(SPECS[1], ep) for ep in SPECS[1].endpoints]
    assert f"10.96.0.101 . tcp . 80 : goto {svc}" in _elements(text, "service-ips")
    assert chains[svc] == [
        "ip daddr 10.96.0.101 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        f"numgen random mod 3 vmap {{ 0 : goto {eps[0]}, 1 : goto {eps[1]}, 2 : goto {eps[2]} }}",
    ]
    assert chains[eps[1]] == ["ip saddr 10.244.2.3 jump mark-for-masquerade",
                              "meta l4proto tcp dnat to 10.244.2.3:8080"]
    # NodePort: the external- chain marks for masquerade, then goes to the service chain
    ext = "external-" + service_chain_base(SPECS[1])
    assert f"tcp . 30080 : goto {ext}" in _elements(text, "service-nodeports")
    assert chains[ext] == ["jump mark-for-masquerade", f"goto {svc}"]
    assert chains["services"] == ["ip daddr . meta l4proto . th dport vmap @service-ips",
                                  "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"]
    assert _elements(text, "nodeport-ips") == ["192.168.56.11"]
    # UDP: its own protocol in the map key, the masquerade match and the DNAT
    dns = "service-" + service_chain_base(SPECS[3])
    assert chains[dns][0] == "ip daddr 10.96.0.10 udp dport 53 ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    assert f"10.96.0.10 . udp . 53 : goto {dns}" in _elements(text, "service-ips")


def test_service_without_endpoints_goes_to_reject_chain_and_has_no_chains() -> None:
    text = generate_ruleset(SPECS, nodeport_ips=("192.168.56.11",))
    chains = _chains(text)
    assert '10.96.0.200 . tcp . 80 comment "default/empty:http" : goto reject-chain' in \
        _elements(text, "no-endpoint-services")
    assert 'tcp . 30081 comment "default/empty:http" : goto reject-chain' in _elements(text, "no-endpoint-nodeports")
    assert not any("/empty/" in name for name in chains)
    assert "10.96.0.200" in _elements(text, "cluster-ips")
    assert not any(e.startswith("10.96.0.200 ") for e in _elements(text, "service-ips"))
    assert chains["reject-chain"] == ["reject"]
    assert chains["filter-forward"] == ["ct state new jump service-endpoints-check",
                                        "ct state new jump cluster-ips-check"]
    assert chains["cluster-ips-check"] == [
        'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
        'ip daddr 10.96.0.0/12 drop comment "Drop traffic to unallocated ClusterIPs"']


def test_local_policy_affinity_and_source_ranges() -> None:
    text = generate_ruleset(SPECS, nodeport_ips=("192.168.56.11",))
    chains = _chains(text)
    base = service_chain_base(SPECS[4])
    local_ep, remote_ep = ("endpoint-" + endpoint_chain_base(SPECS[4], ep) for ep in SPECS[4].endpoints)
    assert chains[f"external-{base}"] == [
        f'ip saddr 10.244.0.0/16 goto service-{base} comment "short-circuit pod traffic"',
        'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
        f'fib saddr type local goto service-{base} comment "short-circuit local traffic"',
        f"goto local-{base}",
    ]
    assert chains[f"local-{base}"][-1] == f"numgen random mod 1 vmap {{ 0 : goto {local_ep} }}"
    affinity = local_ep.replace("endpoint-", "affinity-", 1)
    assert chains[f"local-{base}"][0] == f"ip saddr @{affinity} goto {local_ep}"
    assert f"update @{affinity} {{ ip saddr }}" in chains[local_ep]
    assert remote_ep in chains  # reachable through the Cluster-policy chain pods are short-circuited to
    assert re.search(rf"set {re.escape(affinity)} {{\s+type ipv4_addr\s+size 65535\s+flags dynamic,timeout\s+"
                     r"timeout 3h\s+}", text)
    assert chains[f"firewall-{base}"] == ["ip saddr != { 198.51.100.0/24, 203.0.113.0/24 } drop"]
    assert f"192.0.2.6 . tcp . 443 : goto firewall-{base}" in _elements(text, "firewall-ips")
    # internal and external Local without a local endpoint: drop, not reject, for the ClusterIP, the
    # NodePort and the load balancer IP; the external- chain keeps only its short-circuit rules, to the
    # Cluster-policy chain (UsesClusterEndpoints: the service is reachable from outside)
    base2 = service_chain_base(SPECS[5])
    assert 'tcp . 30444 comment "default/loc2:p" : drop' in _elements(text, "no-endpoint-nodeports")
    assert {'10.96.0.103 . tcp . 80 comment "default/loc2:p" : drop',
            '192.0.2.7 . tcp . 80 comment "default/loc2:p" : drop'} <= set(_elements(text, "no-endpoint-services"))
    assert chains[f"external-{base2}"][-1] == f'fib saddr type local goto service-{base2} comment "short-circuit local traffic"'
    ep2 = "endpoint-" + endpoint_chain_base(SPECS[5], SPECS[5].endpoints[0])
    assert chains[f"service-{base2}"] == [f"numgen random mod 1 vmap {{ 0 : goto {ep2} }}"]
    assert f"local-{base2}" not in chains


def test_nodeport_addresses_all_uses_fib_and_no_set() -> None:
    text = generate_ruleset(SPECS, nodeport_ips=None)
    assert "set nodeport-ips" not in text
    chains = _chains(text)
    assert chains["services"][1] == \
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"
    assert chains["nodeport-endpoints-check"] == \
        ["ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"]


def test_ipv6_table_takes_only_ipv6_services() -> None:
    v6 = ServicePortSpec("default", "web6", "fd00:10:96::100", 80, (E("fd00:10:244:2::2", 8080),), port_name="http")
    text = generate_ruleset((*SPECS, v6), family="ip6", cluster_cidr="fd00:10:244::/56",
                            service_cidrs=("10.96.0.0/12", "fd00:10:96::/112"), nodeport_ips=("fd00::11",))
    assert text.startswith("table ip6 kube-proxy {")
    assert _elements(text, "cluster-ips") == ["fd00:10:96::100"]
    chains = _chains(text)
    ep = "endpoint-" + endpoint_chain_base(v6, v6.endpoints[0])
    assert chains[ep] == ["ip6 saddr fd00:10:244:2::2 jump mark-for-masquerade",
                          "meta l4proto tcp dnat to [fd00:10:244:2::2]:8080"]
    assert 'ip6 daddr fd00:10:96::/112 drop comment "Drop traffic to unallocated ClusterIPs"' in \
        chains["cluster-ips-check"]


# ------------------------------------------------------------------------------------------ the kernel


def _nft_round_trip(text: str, tag: str) -> str:
    ns = f"k8sl-t{os.getpid() % 100000}{tag}-nftrt"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=10)
    try:
        done = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True,
                              capture_output=True, timeout=20, check=False)
        assert done.returncode == 0, done.stderr
        return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], text=True,
                              capture_output=True, timeout=20, check=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


@pytest.mark.parametrize(("family", "nodeport_ips"), [("ip", ("192.168.56.11",)), ("ip", None), ("ip6", ("fd00::11",))])
def test_ruleset_loads_and_lists_back_as_generated(netns: None, family: str, nodeport_ips) -> None:  # noqa: ANN001
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (.ci/run installs nftables)")
    specs = SPECS
    kw = {}
    if family == "ip6":
        specs = (ServicePortSpec("default", "web6", "fd00:10:96::100", 80,
                                 (E("fd00:10:244:2::2", 8080), E("fd00:10:244:1::3", 8080, True)),
                                 port_name="http", node_port=30080, session_affinity_seconds=60),
                 ServicePortSpec("default", "none6", "fd00:10:96::200", 80, (), port_name="http"))
        kw = {"cluster_cidr": "fd00:10:244::/56", "service_cidrs": ("fd00:10:96::/112",)}
    text = generate_ruleset(specs, nodeport_ips=nodeport_ips, node_ip="192.168.56.11", family=family, **kw)
    listed = _nft_round_trip(text, family.replace("6", "six") + ("all" if nodeport_ips is None else ""))
    assert _normalised(listed) == _normalised(text)


# ------------------------------------------------------------------------------------------ the lab


def test_nft_scenarios_are_shipped_and_found_by_name() -> None:
    names = [sc.name for sc in NFT_SCENARIOS]
    assert names == ["service-nft", "nodeport-nft", "no-endpoints-nft"]
    assert [sc.name for sc in SCENARIOS][-3:] == names
    for sc in NFT_SCENARIOS:
        assert scenario(sc.name) is sc
        params = sc.lab_params(LabParams())
        assert params.kube_proxy_mode == "nftables"
        sc.check(params)


@pytest.mark.parametrize(("nft_name", "twin"), [("service-nft", "service-remote"), ("nodeport-nft", "nodeport"),
                                                ("no-endpoints-nft", "no-endpoints")])
def test_nft_scenarios_are_their_iptables_twins_but_for_the_mode(nft_name: str, twin: str) -> None:
    sc, tw = scenario(nft_name), scenario(twin)
    assert (sc.pods, sc.services, sc.faults) == (tw.pods, tw.services, tw.faults)
    assert [s.expect for s in sc.steps] == [s.expect for s in tw.steps]
    assert [(s.client, s.op, s.target, s.port) for s in sc.steps] == [(s.client, s.op, s.target, s.port)
                                                                      for s in tw.steps]
    nft_cluster = sc.cluster(sc.lab_params(LabParams()))
    ipt_cluster = tw.cluster(tw.lab_params(LabParams()))
    assert replace(nft_cluster.params, kube_proxy_mode="iptables") == ipt_cluster.params
    for node_nftmode, node_ipt in zip(nft_cluster.nodes, ipt_cluster.nodes, strict=True):
        ipt = node_rules(ipt_cluster, node_ipt, tw.faults)
        nft_iptables = node_rules(nft_cluster, node_nftmode, sc.faults)
        assert "KUBE-" in ipt and "KUBE-" not in nft_iptables and "FLANNEL-POSTRTG" in nft_iptables
        assert nft_iptables == without_kube_proxy(ipt)
        assert node_nft(ipt_cluster, node_ipt) is None
        table = node_nft(nft_cluster, node_nftmode)
        assert table is not None and table.startswith("table ip kube-proxy {")
        assert _elements(table, "nodeport-ips") == [node_nftmode.ip]


def test_service_nft_table_sends_the_cluster_ip_to_web() -> None:
    sc = scenario("service-nft")
    cluster = sc.cluster(sc.lab_params(LabParams()))
    web, svc = cluster.pod("web"), cluster.service("web")
    table = node_nft(cluster, cluster.node("node1"))
    chains = _chains(table)
    svc_chain = "service-" + hash_and_truncate("default/web/tcp/http")
    ep_chain = "endpoint-" + hash_and_truncate(f"default/web/tcp/http__{web.ip}/8080")
    assert _elements(table, "service-ips") == [f"{svc.cluster_ip} . tcp . 80 : goto {svc_chain}"]
    assert chains[ep_chain][-1] == f"meta l4proto tcp dnat to {web.ip}:8080"
    assert f"ip daddr {cluster.params.service_cidr} drop" in chains["cluster-ips-check"][1]


def test_unknown_kube_proxy_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="kube-proxy mode 'ipvs'"):
        replace(LabParams(), kube_proxy_mode="ipvs").validate()
