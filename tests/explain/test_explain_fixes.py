"""Regressions reported by the report engineer: each test failed before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

from builders import ether, icmp, ipv4, tcp, write_pcap
from explaincheck import codes, explain, only_flow, sample

T0 = 1_700_000_000.0


def _no_endpoints_node1(tmp_path: Path) -> Path:
    node = tmp_path / "node1"
    shutil.copytree(sample("no-endpoints") / "node1", node,
                    ignore=shutil.ignore_patterns("*.pcap", "*.pcapng", "conntrack"))
    return node


def test_port_unreachable_in_the_cluster_ips_name_is_the_no_endpoints_reject(tmp_path: Path) -> None:
    """kube-proxy's REJECT may answer from the ClusterIP itself (ICMP 3/3 with the service as
    source): that is a rejected connection (SERVICE_NO_ENDPOINTS), not a server refusing it."""
    node = _no_endpoints_node1(tmp_path)
    syn_ip = ipv4(tcp(sport=40974, dport=80, flags="S", seq=7), src="10.244.1.2", dst="10.96.0.200", ident=77)
    reject = ipv4(icmp(bytes(syn_ip)[:28], type=3, code=3, rest=b"\0\0\0\0"), src="10.96.0.200", dst="10.244.1.2",
                  ident=5)
    write_pcap(node / "vethcc7ddf2d.pcap", [(T0, ether(syn_ip)), (T0 + 0.0001, ether(reject))])
    flow = only_flow(explain(node))
    assert (flow["kind"], flow["status"]) == ("pod-to-service", "rejected"), flow["verdict"]["en"]
    f = codes(flow)["SERVICE_NO_ENDPOINTS"]
    assert f["node"] == "node1" and f["checkable"] is True
    assert "CONNECTION_REFUSED" not in codes(flow)
    assert any(e["line"] and "has no endpoints" in e["text"] for e in f["evidence"])
    assert "from 10.96.0.200 itself" in f["message"]
    # a pod answering port unreachable for its own address still refuses
    syn2 = ipv4(tcp(sport=40975, dport=81, flags="S", seq=7), src="10.244.1.2", dst="10.244.1.3", ident=78)
    unreach = ipv4(icmp(bytes(syn2)[:28], type=3, code=3, rest=b"\0\0\0\0"), src="10.244.1.3", dst="10.244.1.2")
    write_pcap(node / "vethcc7ddf2d.pcap", [(T0, ether(syn2)), (T0 + 0.0001, ether(unreach))])
    assert only_flow(explain(node))["status"] == "refused"


def _strip_overlay_details(node: Path, *, drop_underlay_address: bool) -> None:
    """What a bundle collected without ``ip -d`` looks like (and without a default route)."""
    for name in ("ip-addr", "ip-link"):
        f = node / name
        lines = [ln for ln in f.read_text().splitlines() if not ln.strip().startswith("vxlan id")]
        if drop_underlay_address and name == "ip-addr":
            lines = [ln for ln in lines if "192.168.56." not in ln]
        f.write_text("\n".join(lines) + "\n")
    route = node / "ip-route"
    route.write_text("".join(ln for ln in route.read_text().splitlines(keepends=True) if not ln.startswith("default")))


def test_bundle_nodes_absorb_what_the_vxlan_headers_show(tmp_path: Path) -> None:
    """Without VXLAN details in ip-addr, each node once (by its bundle name) with its underlay
    address, and the clock offset measured from the VXLAN packets both eth0 captures hold."""
    from explaincheck import shift_pcap

    for drop in (False, True):
        root = tmp_path / f"drop{drop}"
        for name in ("node1", "node2"):
            shutil.copytree(sample("cross-node") / name, root / name)
            _strip_overlay_details(root / name, drop_underlay_address=drop)
        for pcap in (root / "node2").glob("*.pcap"):
            shift_pcap(pcap, 3.0)
        doc = explain(root / "node1", root / "node2")
        nodes = {n["name"]: n for n in doc["nodes"]}
        assert sorted(nodes) == ["node1", "node2"], doc["nodes"]
        assert nodes["node1"]["addresses"] == ["192.168.56.11"] and nodes["node2"]["addresses"] == ["192.168.56.12"]
        assert all(n["backend"] == "vxlan" and n["inferred"] is False for n in nodes.values())
        flow = only_flow(doc)
        assert (flow["kind"], flow["status"]) == ("pod-to-pod-cross-node", "delivered")
        off = {o["node"]: o for o in doc["clock_offsets"]}
        assert "no packet seen" not in off["node2"]["basis"], off
        assert abs(off["node2"]["offset"] - off["node1"]["offset"] + 3.0) < 0.01, off


def test_any_capture_in_a_bundle_names_each_copy_by_its_interface_index(tmp_path: Path) -> None:
    """An SLL2 frame carries the interface index; the bundle's ip link names it, so each copy
    lands on its own hop (not placed by order) and the ladder's lanes are the real interfaces."""
    from analyzer.inputs.capture import read_capture

    node = tmp_path / "node1"
    shutil.copytree(sample("cross-node") / "node1", node,
                    ignore=shutil.ignore_patterns("[!a]*.pcap", "*.pcapng"))
    assert [p.name for p in node.glob("*.pcap")] == ["any.pcap"]
    index = {n + 1: int.from_bytes(f.data[4:8], "big") for n, f in enumerate(read_capture(node / "any.pcap"))}
    names = {2: "eth0", 3: "cni0", 4: "flannel.1", 5: "vethcc7ddf2d"}
    flow = only_flow(explain(node))
    assert [lane["label"] for lane in flow["ladder"]["lanes"]] == [
        "node1 vethcc7ddf2d", "node1 cni0", "node1 flannel.1", "node1 eth0"]
    placed = 0
    for hop in flow["hops"] + (flow["reply"] or []):
        for p in hop["packets"]:
            assert names[index[p["packet"]]] == hop["interface"], (hop["kind"], hop["interface"], p)
            placed += 1
    assert placed >= 8


def test_a_reused_ip_id_with_the_same_payload_later_is_not_a_nat_twin(tmp_path: Path) -> None:
    """IP IDs wrap every 65,536 packets: two unrelated UDP flows with a fixed payload meet the
    same ID seconds apart (the 1M-packet bench lost 20,000 flows that way); a rewrite is within
    milliseconds, so only near copies are one packet NAT'd."""
    from builders import udp

    def dgram(src: str, sport: int, dst: str, ident: int) -> bytes:
        return ether(ipv4(udp(b"health-check" * 3, sport=sport, dport=9000), src=src, dst=dst, ident=ident))

    cap = tmp_path / "cap.pcap"
    write_pcap(cap, [(T0, dgram("10.244.1.2", 40000, "10.244.2.2", 7)),
                     (T0 + 30.0, dgram("10.244.1.3", 41000, "10.244.2.3", 7))])
    doc = explain(cap)
    assert len(doc["flows"]) == 2, [(f["client"]["ip"], f["server"]["ip"]) for f in doc["flows"]]
    assert all(f["translations"] == [] for f in doc["flows"])
    # the same datagram rewritten (DNAT to a pod) a few microseconds later is one flow
    write_pcap(cap, [(T0, dgram("10.244.1.2", 40000, "10.96.0.50", 7)),
                     (T0 + 0.00002, dgram("10.244.1.2", 40000, "10.244.2.2", 7))])
    flow = only_flow(explain(cap))
    assert [t["type"] for t in flow["translations"]] == ["dnat"]
