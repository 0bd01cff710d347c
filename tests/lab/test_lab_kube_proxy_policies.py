"""kube-proxy (iptables mode) rules for every combination of traffic policies: every chain a rule
jumps to is declared (kube-proxy's UsesClusterEndpoints: a service reachable from outside keeps its
KUBE-SVC- chain even with both policies Local), and the kernel takes the text."""

from __future__ import annotations

import itertools
import re
import subprocess

import pytest

from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec, generate_rules

BUILTIN = {"ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "SNAT", "MASQUERADE", "MARK", "LOG"}
COMBOS = list(itertools.product(("Cluster", "Local"), ("Cluster", "Local"), (None, 30080)))


def _spec(internal: str, external: str, node_port: int | None) -> ServicePortSpec:
    return ServicePortSpec(
        namespace="default", name="web", cluster_ip="10.96.0.100", port=80, port_name="http",
        endpoints=(Endpoint("10.244.1.5", 8080, local=True), Endpoint("10.244.2.2", 8080)),
        node_port=node_port, internal_traffic_policy=internal, external_traffic_policy=external)


@pytest.mark.parametrize(("internal", "external", "node_port"), COMBOS)
def test_every_jump_target_is_declared(internal: str, external: str, node_port: int | None) -> None:
    text = generate_rules([_spec(internal, external, node_port)], node_ip="192.168.56.11",
                          pod_cidr="10.244.1.0/24")
    declared = set(re.findall(r"^:(\S+)", text, re.M))
    targets = set(re.findall(r" -[jg] (\S+)", text))
    assert targets - BUILTIN - declared == set(), text
    if node_port is not None:
        # reachable from outside: pods reaching the NodePort short-circuit to KUBE-SVC (cluster-wide)
        assert re.search(r"^:KUBE-SVC-\S+", text, re.M), text


def test_both_policies_local_with_a_node_port_loads_into_the_kernel(netns: None) -> None:
    text = generate_rules([_spec("Local", "Local", 30080)], node_ip="192.168.56.11", pod_cidr="10.244.1.0/24")
    ns = "k8st-kppol"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        done = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"], input=text, text=True,
                              capture_output=True, check=False)
        assert done.returncode == 0, done.stderr
        saved = subprocess.run(["ip", "netns", "exec", ns, "iptables-save", "-t", "nat"], text=True,
                               capture_output=True, check=True).stdout
        assert re.search(r"pod traffic for default/web:http external destinations\" -j KUBE-SVC-", saved), saved
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
