"""The kube-proxy/flannel rule generator: real chain hashes and line-for-line real rule shapes."""

from __future__ import annotations

from pathlib import Path

from analyzer.inputs.iptables_save import parse_iptables_save
from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec, chain_hash, generate_rules, probability_text


def _service1() -> ServicePortSpec:
    eps = tuple(Endpoint(f"10.244.1.{i}", 8080) for i in (4, 5, 6))
    return ServicePortSpec("default", "service1", "10.108.64.11", 8080, eps, port_name="fileserver")


def test_chain_hash_is_kube_proxys() -> None:
    # names taken from ../shared/corpus/real-iptables/02 (kubeadm v1.29.4)
    assert "KUBE-SVC-" + chain_hash("default/service1:fileservertcp") == "KUBE-SVC-YJOPSEYCAQBFRA2J"
    assert "KUBE-SEP-" + chain_hash("default/service1:fileservertcp10.244.1.5:8080") == "KUBE-SEP-3WH7PNCF552PK7QF"
    assert probability_text(3) == "0.33333333349"
    assert probability_text(2) == "0.50000000000"
    assert probability_text(5) == "0.20000000019"


def test_generated_lines_are_the_real_dumps_lines(corpus_dir: Path) -> None:
    real = (corpus_dir / "real-iptables" / "02-ubuntu-kubeadm-flannel-service1.txt").read_text().splitlines()
    text = generate_rules([_service1()], cluster_cidr="10.244.0.0/16", pod_cidr="10.244.0.0/24")
    generated = text.splitlines()
    wanted = [line for line in real if line.startswith((
        "-A KUBE-SVC-YJOPSEYCAQBFRA2J", "-A KUBE-SEP-3WH7PNCF552PK7QF", "-A KUBE-SEP-5RGOO3QK7HUWX7JR",
        "-A KUBE-SEP-DQ3TQJSNULRJFVPB", "-A FLANNEL-", "-A KUBE-POSTROUTING", "-A KUBE-MARK-MASQ",
        "-A KUBE-FORWARD", "-A KUBE-FIREWALL", '-A KUBE-SERVICES -d 10.108.64.11/32 -p tcp -m comment '
        '--comment "default/service1:fileserver'))]
    assert len(wanted) == 27
    missing = [line for line in wanted if line not in generated]
    assert missing == []


def test_generated_rules_parse_cleanly_and_cover_every_shape() -> None:
    specs = [
        _service1(),
        ServicePortSpec("default", "empty", "10.96.0.20", 80),
        ServicePortSpec("default", "np", "10.96.0.21", 80, (Endpoint("10.244.1.9", 8080, local=False),),
                        node_port=30080, external_traffic_policy="Local"),
        ServicePortSpec("default", "lb", "10.96.0.22", 443, (Endpoint("10.244.0.7", 8443, local=True),),
                        node_port=30443, load_balancer_ips=("203.0.113.10",),
                        load_balancer_source_ranges=("198.51.100.0/24",), external_traffic_policy="Local"),
        ServicePortSpec("default", "sticky", "10.96.0.23", 53, (Endpoint("10.244.0.8", 53), Endpoint("10.244.1.8", 53)),
                        protocol="UDP", session_affinity_seconds=10800, external_ips=("192.0.2.50",)),
    ]
    text = generate_rules(specs, pod_cidr="10.244.0.0/24", node_ip="192.168.0.10")
    rs = parse_iptables_save(text, "gen.save")
    assert rs.warnings == ()
    nat = rs.table("nat")
    assert any(r.comment == "default/empty has no endpoints" and r.target == "REJECT"
               for r in rs.chain("filter", "KUBE-SERVICES").rules)
    ext = [c for c in nat.chains if c.startswith("KUBE-EXT-")]
    assert len(ext) == 3
    drops = [r for r in rs.chain("filter", "KUBE-EXTERNAL-SERVICES").rules if r.target == "DROP"]
    assert [r.comment for r in drops] == ["default/np has no local endpoints"]
    assert [c for c in nat.chains if c.startswith("KUBE-FW-")]
    assert [c for c in nat.chains if c.startswith("KUBE-SVL-")]
    assert rs.find("-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-")
    assert rs.find("-m recent --set --name KUBE-SEP-")
    fw = rs.chain("filter", "KUBE-PROXY-FIREWALL").rules
    assert len(fw) == 1 and fw[0].target == "DROP"


def test_external_ip_and_udp_nodeport_lines_are_k3s_lines(corpus_dir: Path) -> None:
    real = (corpus_dir / "real-iptables" / "03-k3s-flannel-kube-router-nftables.txt").read_text().splitlines()
    specs = [
        ServicePortSpec("kube-system", "traefik", "10.43.85.149", 80, (Endpoint("192.168.1.105", 80, local=True),),
                        port_name="web", external_ips=("100.90.167.160",)),
        ServicePortSpec("default", "tuby-dlna", "10.43.181.51", 1900, (Endpoint("192.168.1.105", 1900, local=True),),
                        port_name="dlna-udp", protocol="UDP", node_port=32197),
    ]
    generated = generate_rules(specs, cluster_cidr="10.42.0.0/16", pod_cidr="10.42.0.0/24").splitlines()
    names = ("KUBE-EXT-UQMCRMJZLI3FTLDP", "KUBE-SVC-UQMCRMJZLI3FTLDP", "KUBE-SEP-G64LDQDZAJHDGIT6",
             "KUBE-EXT-5TL63OHMAKD6HCC7", "KUBE-SVC-5TL63OHMAKD6HCC7", "KUBE-SEP-PQ2LHDKKDGM72FNX")
    wanted = [line for line in real if line.startswith(tuple(f"-A {n} " for n in names))
              or (line.startswith(("-A KUBE-SERVICES ", "-A KUBE-NODEPORTS ")) and any(n in line for n in names))]
    assert len(wanted) == 16
    assert [line for line in wanted if line not in generated] == []
    # and nothing else for these services: the generated chains hold exactly the real lines
    ours = [line for line in generated if any(f" {n} " in line or line.endswith(f" {n}") for n in names)
            and line.startswith("-A ")]
    assert sorted(ours) == sorted(wanted)
