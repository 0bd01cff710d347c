"""Findings the lab does not record, from captures crafted byte by byte (tests/builders.py) next to
real dumps of a lab node (samples/cross-node/node2) edited the way the fault would leave them."""

from __future__ import annotations

import shutil
from pathlib import Path

from builders import ether, ipv4, tcp, udp, vxlan, write_pcap
from explaincheck import codes, explain, only_flow, sample

T0 = 1_700_000_000.0
CLIENT, SERVER = "10.244.1.2", "10.244.2.2"
N1, N2 = "192.168.56.11", "192.168.56.12"


def _syn(ident: int, *, sport: int = 40000) -> bytes:
    return ether(ipv4(tcp(sport=sport, dport=8080, flags="S", seq=1000, mss=1410), src=CLIENT, dst=SERVER,
                      ident=ident, df=True, ttl=63))


def _vxlan(inner: bytes, *, checksum: int | None = None) -> bytes:
    return ether(ipv4(udp(vxlan(inner, vni=1), sport=51000, dport=8472, checksum=checksum), src=N1, dst=N2))


def _node2(tmp_path: Path) -> Path:
    """node2's real dumps without its captures."""
    node = tmp_path / "node2"
    shutil.copytree(sample("cross-node") / "node2", node,
                    ignore=shutil.ignore_patterns("*.pcap", "*.pcapng", "conntrack"))
    return node


def test_forward_policy_drop_on_the_receiving_node(tmp_path: Path) -> None:
    node = _node2(tmp_path)
    rules = node / "iptables-save"
    text = rules.read_text().replace(":FORWARD ACCEPT", ":FORWARD DROP")
    text = "\n".join(line for line in text.splitlines() if "-A FLANNEL-FWD" not in line) + "\n"
    rules.write_text(text)
    syns = [(T0 + t, _syn(100 + i)) for i, t in enumerate((0.0, 1.0, 3.0))]
    write_pcap(node / "eth0.pcap", [(ts, _vxlan(f)) for ts, f in syns])
    write_pcap(node / "flannel.1.pcap", syns)
    write_pcap(node / "cni0.pcap", [])
    doc = explain(node)
    flow = only_flow(doc)
    assert (flow["kind"], flow["status"]) == ("pod-to-pod-cross-node", "dropped"), flow["verdict"]["en"]
    hops = {(h["node"], h["interface"], h["kind"]): h for h in flow["hops"]}
    assert hops[("node2", "flannel.1", "vtep")]["observed"] is True
    assert hops[("node2", "cni0", "bridge")]["observed"] is False
    failed = [h for h in flow["hops"] if h["failed"]]
    assert [(h["node"], h["kind"]) for h in failed] == [("node2", "netfilter")]
    f = codes(flow)["FORWARD_BLOCKED"]
    assert f["node"] == "node2" and f["checkable"] is True
    assert any(e["line"] and ":FORWARD DROP" in e["text"] for e in f["evidence"])
    assert "iptables -I FORWARD -s 10.244.0.0/16 -j ACCEPT" in f["fix"]
    assert "BAD_OVERLAY_CHECKSUM" not in codes(flow)
    assert "RETRANSMISSIONS" in codes(flow)


def test_bad_outer_checksum_on_the_receiving_side(tmp_path: Path) -> None:
    node = _node2(tmp_path)
    syns = [(T0 + t, _syn(200 + i)) for i, t in enumerate((0.0, 1.0))]
    write_pcap(node / "eth0.pcap", [(ts, _vxlan(f, checksum=0x1234)) for ts, f in syns])
    write_pcap(node / "flannel.1.pcap", [])
    flow = only_flow(explain(node))
    assert flow["status"] == "dropped"
    f = codes(flow)["BAD_OVERLAY_CHECKSUM"]
    assert f["node"] == "node2" and "ethtool -K flannel.1 tx-checksum-ip-generic off" in f["fix"]
    assert len([e for e in f["evidence"] if e["packet"]]) == 2
    # the same packets delivered (decapsulated and answered) are offload, not a finding
    node_ok = tmp_path / "ok"
    shutil.copytree(node, node_ok)
    reply = ether(ipv4(tcp(sport=8080, dport=40000, flags="SA", seq=5, ack=1001), src=SERVER, dst=CLIENT, ident=9))
    write_pcap(node_ok / "flannel.1.pcap", [syns[0], (T0 + 0.001, reply)])
    flow = only_flow(explain(node_ok))
    assert flow["status"] == "delivered" and "BAD_OVERLAY_CHECKSUM" not in codes(flow)


def test_connection_refused_by_the_server(tmp_path: Path) -> None:
    syn = ether(ipv4(tcp(sport=40001, dport=8080, flags="S", seq=7), src="10.244.1.2", dst="10.244.1.3", ident=1))
    rst = ether(ipv4(tcp(sport=8080, dport=40001, flags="RA", seq=0, ack=8), src="10.244.1.3", dst="10.244.1.2",
                     ident=0))
    cap = write_pcap(tmp_path / "cni0.pcap", [(T0, syn), (T0 + 0.0002, rst)])
    flow = only_flow(explain(cap))
    assert (flow["kind"], flow["status"]) == ("pod-to-pod-same-node", "refused")
    f = codes(flow)["CONNECTION_REFUSED"]
    assert "8080" in f["message"] and f["evidence"][0]["packet"] == 2


def test_conntrack_dns_race(tmp_path: Path) -> None:
    def query(qid: int, qtype: int, ident: int, ts: float) -> tuple[float, bytes]:
        payload = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00" + \
            qtype.to_bytes(2, "big") + b"\x00\x01"
        return ts, ether(ipv4(udp(payload, sport=45000, dport=53), src="10.244.1.2", dst="10.96.0.10", ident=ident))

    def answer(qid: int, ts: float) -> tuple[float, bytes]:
        payload = qid.to_bytes(2, "big") + b"\x81\x80" + b"\x00" * 8
        return ts, ether(ipv4(udp(payload, sport=53, dport=45000), src="10.96.0.10", dst="10.244.1.2", ident=77))

    frames = [query(1, 1, 10, T0), query(2, 28, 11, T0 + 0.0004), answer(1, T0 + 0.002),
              query(2, 28, 12, T0 + 5.0004), answer(2, T0 + 5.002)]
    cap = write_pcap(tmp_path / "cni0.pcap", frames)
    flow = only_flow(explain(cap))
    assert flow["kind"] == "pod-to-service" and flow["status"] == "delivered"
    f = codes(flow)["CONNTRACK_DNS_RACE"]
    assert f["severity"] == "warning" and "5.0 s" in f["message"]
    assert [e["packet"] for e in f["evidence"]] == [1, 2, 4]


def test_any_capture_copies_are_not_retransmissions(tmp_path: Path) -> None:
    # one SYN seen on veth, cni0 and eth0 of one node (same IP ID, microseconds apart), answered
    syn = ether(ipv4(tcp(sport=40002, dport=80, flags="S", seq=1), src="10.244.1.2", dst="203.0.113.10", ident=5))
    out = ether(ipv4(tcp(sport=40002, dport=80, flags="S", seq=1), src="10.244.1.2", dst="203.0.113.10", ident=5,
                     ttl=63))
    ack = ether(ipv4(tcp(sport=80, dport=40002, flags="SA", seq=9, ack=2), src="203.0.113.10", dst="10.244.1.2",
                     ident=3))
    cap = write_pcap(tmp_path / "cap.pcap", [(T0, syn), (T0 + 1e-5, syn), (T0 + 2e-5, out), (T0 + 0.01, ack)])
    flow = only_flow(explain(cap))
    assert flow["status"] == "delivered"
    assert "RETRANSMISSIONS" not in codes(flow)
    # the same SYN sent again a second later (new IP ID) is one
    again = ether(ipv4(tcp(sport=40002, dport=80, flags="S", seq=1), src="10.244.1.2", dst="203.0.113.10", ident=6))
    cap = write_pcap(tmp_path / "cap2.pcap", [(T0, syn), (T0 + 1.0, again), (T0 + 1.01, ack)])
    flow = only_flow(explain(cap))
    assert codes(flow)["RETRANSMISSIONS"]["evidence"][0]["packet"] == 2


def test_tso_super_segment_is_not_an_mtu_problem(tmp_path: Path) -> None:
    # the sender's veth shows one 2896-byte segment (TSO); the NIC sends it as two 1448-byte ones
    big = ether(ipv4(tcp(b"x" * 2896, sport=40003, dport=80, flags="PA", seq=1, ack=1), src="10.244.1.2",
                     dst="203.0.113.10", ident=20, df=True))
    parts = [ether(ipv4(tcp(b"x" * 1448, sport=40003, dport=80, flags="A", seq=1 + k * 1448, ack=1),
                        src="10.244.1.2", dst="203.0.113.10", ident=21 + k, df=True)) for k in range(2)]
    ack = ether(ipv4(tcp(sport=80, dport=40003, flags="A", seq=1, ack=2897), src="203.0.113.10", dst="10.244.1.2",
                     ident=4))
    cap = write_pcap(tmp_path / "cap.pcap", [(T0, big), (T0 + 1e-5, parts[0]), (T0 + 2e-5, parts[1]),
                                              (T0 + 0.01, ack)])
    flow = only_flow(explain(cap))
    assert flow["status"] != "dropped"
    assert "MTU_EXCEEDED" not in codes(flow) and "RETRANSMISSIONS" not in codes(flow)


def test_external_traffic_policy_local_without_a_local_endpoint(tmp_path: Path) -> None:
    from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec, generate_rules

    node = tmp_path / "node1"
    shutil.copytree(sample("nodeport") / "node1", node, ignore=shutil.ignore_patterns("*.pcap", "conntrack"))
    spec = ServicePortSpec(namespace="default", name="web", cluster_ip="10.96.0.100", port=80, port_name="http",
                           endpoints=(Endpoint("10.244.2.2", 8080, local=False),), node_port=30080,
                           external_traffic_policy="Local", health_check_node_port=31000)
    (node / "iptables-save").write_text(generate_rules([spec], pod_cidr="10.244.1.0/24", node_ip=N1))
    syns = [(T0 + t, ether(ipv4(tcp(sport=50000, dport=30080, flags="S", seq=1), src="203.0.113.10", dst=N1,
                                ident=40 + i))) for i, t in enumerate((0.0, 1.0, 3.0))]
    write_pcap(node / "eth0.pcap", syns)
    flow = only_flow(explain(node))
    assert flow["kind"] == "external-to-service"
    assert flow["status"] == "dropped", flow["verdict"]["en"]
    f = codes(flow)["NO_LOCAL_ENDPOINTS"]
    assert f["node"] == "node1" and "default/web:http" in f["message"]
    assert any(e["line"] and "has no local endpoints" in e["text"] for e in f["evidence"])
    assert "FORWARD_BLOCKED" not in codes(flow)


def _missing_fdb_with(tmp_path: Path, dump: str, drop: str) -> dict:
    """The missing-fdb recording with one more line removed from node1's ``dump``."""
    rec = tmp_path / "rec"
    shutil.copytree(sample("missing-fdb"), rec)
    path = rec / "node1" / dump
    lines = path.read_text().splitlines()
    kept = [line for line in lines if not line.startswith(drop)]
    assert len(kept) == len(lines) - 1
    path.write_text("\n".join(kept) + "\n")
    return only_flow(explain(rec))


def test_missing_route_to_the_remote_pod_subnet(tmp_path: Path) -> None:
    flow = _missing_fdb_with(tmp_path, "ip-route", "10.244.2.0/24 via 10.244.2.0 dev flannel.1")
    f = codes(flow)["MISSING_ROUTE"]
    assert f["node"] == "node1" and "10.244.2.0/24" in f["message"]
    assert any(e["line"] and e["text"].startswith("default via 192.168.56.1") for e in f["evidence"])
    assert "ip route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink" in f["fix"]
    assert "MISSING_FDB" not in codes(flow)


def test_missing_neighbour_for_the_remote_vtep(tmp_path: Path) -> None:
    flow = _missing_fdb_with(tmp_path, "ip-neigh", "10.244.2.0 dev flannel.1")
    f = codes(flow)["MISSING_NEIGH"]
    assert f["node"] == "node1" and "10.244.2.0" in f["message"] and "flannel.1" in f["message"]
    assert any(e["line"] and "10.244.2.0/24 via 10.244.2.0 dev flannel.1" in e["text"] for e in f["evidence"])
    assert "ip neigh replace 10.244.2.0" in f["fix"]
    assert "MISSING_FDB" not in codes(flow)


def test_vxlan_on_a_custom_port_needs_vxlan_port(tmp_path: Path) -> None:
    syn = _syn(300)
    synack = ether(ipv4(tcp(sport=8080, dport=40000, flags="SA", seq=9, ack=1001), src=SERVER, dst=CLIENT, ident=301))
    frames = [(T0, ether(ipv4(udp(vxlan(syn, vni=4), sport=51000, dport=4790), src=N1, dst=N2))),
              (T0 + 0.001, ether(ipv4(udp(vxlan(synack, vni=4), sport=51001, dport=4790), src=N2, dst=N1)))]
    cap = write_pcap(tmp_path / "eth0.pcap", frames)
    plain = explain(cap)
    assert all(f["proto"] == "udp" for f in plain["flows"])  # just node-to-node UDP
    doc = explain(cap, vxlan_ports=[4790])
    flow = only_flow(doc)
    assert (flow["kind"], flow["status"]) == ("pod-to-pod-cross-node", "delivered")
    [e] = flow["encapsulation"]
    assert (e["type"], e["vni"], e["port"]) == ("vxlan", 4, 4790)
    assert {n["name"] for n in doc["nodes"]} == {N1, N2}


def test_an_icmp_error_alone_is_a_flow(tmp_path: Path) -> None:
    """``tcpdump icmp``: the error about a packet whose own copies were not captured still tells
    the flow and what happened to it (here an MTU problem), instead of being dropped as noise."""
    from builders import icmp_frag_needed

    quoted = ipv4(tcp(b"x" * 1400, sport=40000, dport=80, flags="PA", seq=1), src=CLIENT, dst=SERVER, ident=9,
                  df=True)
    err = ether(ipv4(icmp_frag_needed(bytes(quoted)[:28], mtu=1450), src="10.244.1.1", dst=CLIENT))
    write_pcap(tmp_path / "icmp.pcap", [(T0, err), (T0 + 1, err)])
    flow = only_flow(explain(tmp_path / "icmp.pcap"))
    assert (flow["client"]["ip"], flow["client"]["port"], flow["server"]["ip"], flow["server"]["port"]) == (
        CLIENT, 40000, SERVER, 80)
    assert flow["status"] == "rejected", flow["verdict"]["en"]
    assert "only the ICMP error was captured" in flow["verdict"]["en"]
    f = codes(flow)["MTU_EXCEEDED"]
    assert [e["packet"] for e in f["evidence"] if e["packet"]] == [1, 2]
