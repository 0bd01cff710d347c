"""simulate against the lab's real recordings (samples/*/scenario.json: what the kernels did).

Each sample is a `k8s-trace lab run` of flannel-style nodes in network namespaces: the node
bundles are the real dumps, the client outcome is what really happened. `simulate` must predict
it from the dumps alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.engines.simulate import simulate_packet
from analyzer.inputs.bundle import load_bundle

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
#: what the dumps cannot show, so simulate cannot predict it: it must say so instead (the text of an
#: assumption every outcome carries)
NOT_IN_THE_DUMPS: dict[tuple[str, str], str] = {
    # the FORWARD DROP is in iptables-legacy, which node2's iptables-save (nf_tables) does not show
    ("iptables-split", "tcp"): "iptables-legacy holds rules too",
}


def _steps() -> list:
    out = []
    for path in sorted(SAMPLES.glob("*/scenario.json")):
        doc = json.loads(path.read_text())
        for i, step in enumerate(doc["steps"]):
            out.append(pytest.param(path.parent, step, id=f"{path.parent.name}-{i}"))
    return out


@pytest.mark.parametrize("root,step", _steps())
def test_simulate_predicts_the_recorded_outcome(root: Path, step: dict) -> None:
    unseen = NOT_IN_THE_DUMPS.get((root.name, step["proto"]))
    doc = json.loads((root / "scenario.json").read_text())
    nodes = [load_bundle(root / n["name"]) for n in doc["nodes"]]
    result = step["result"]
    runs = result["results"] if result["op"] == "http-many" else [result]
    host, _, port = runs[0]["target"].rpartition(":") if step["proto"] != "icmp" else (runs[0]["target"], "", "")
    size = result.get("size")  # ping payload: + 8 ICMP + 20 IP
    # no start node or interface given: simulate's own guess (an outside client's packets to a node
    # address start on that node and arrive on the NIC holding it, eth1 of the rp-filter sample)
    r = simulate_packet(nodes, step["client_ip"], host, step["proto"], 40000, int(port) if port else None,
                        length=size + 28 if size else None, df=bool(result.get("df", True)))
    assert sum(o.probability for o in r.outcomes) == pytest.approx(1.0)
    live = [o for o in r.outcomes if o.probability > 0]
    if unseen is not None:
        assert all(any(unseen in a for a in o.assumptions) for o in live), [o.assumptions for o in live]
        return
    outcome = step["outcome"]
    if outcome == "ok":
        assert all(o.status in ("forwarded", "local") and o.reply_status == "delivered" for o in live), live
        served = {x.get("served_by") for x in runs}
        pods = {p["ip"]: p["name"] for p in doc["pods"]}
        predicted = {pods.get((o.dnat or f"{host}:").rsplit(":", 1)[0], o.node) for o in live}
        if len(runs) > 1:  # every endpoint the clients reached is one simulate predicted
            assert served <= predicted, (served, predicted)
    elif outcome == "refused":
        assert [(o.status, o.reject_with) for o in live] == [("rejected", "icmp-port-unreachable")]
    elif outcome == "frag-needed":
        mtu = result["errors"][0]["mtu"]
        assert [(o.status, o.reject_with) for o in live] == [("rejected", f"icmp-frag-needed mtu {mtu}")]
    elif outcome == "timeout":
        assert all(o.status in ("dropped", "rejected") or o.reply_status in ("no-route-back", "dropped")
                   for o in live), live
        # a reject names its rule: an iptables Rule, or the nftables rule in the last hop's evidence
        assert all(o.decided_by is not None or o.status != "rejected" or (o.hops and o.hops[-1].evidence)
                   for o in live)
    else:
        pytest.fail(f"unexpected recorded outcome {outcome}")


def test_blocked_vxlan_names_the_input_rule_of_the_receiving_node() -> None:
    root = SAMPLES / "vxlan-blocked"
    if not root.is_dir():
        pytest.skip("samples/vxlan-blocked is absent")
    nodes = [load_bundle(root / n) for n in ("node1", "node2")]
    [o] = simulate_packet(nodes, "10.244.1.2", "10.244.2.2", "tcp", 40000, 8080).outcomes
    assert o.status == "rejected" and o.node == "node2"
    # CentOS's catch-all REJECT (line 21) comes before the ACCEPT of UDP 8472 (line 22); its
    # counters in the dump show the two VXLAN packets it rejected
    assert o.decided_by.chain == "INPUT" and o.decided_by.line == 21
    assert o.decided_by.text.endswith("-A INPUT -j REJECT --reject-with icmp-host-prohibited")
    assert o.decided_by.counters == (2, 220)
    assert "the client, which sees a timeout" in o.explanation
    outer = [h for h in o.hops if h.action == "OUTER"]
    assert [h.node for h in outer] == ["node1", "node2"]


def test_hairpin_off_is_dropped_by_the_bridge_with_the_ip_link_line() -> None:
    root = SAMPLES / "hairpin-off"
    if not root.is_dir():
        pytest.skip("samples/hairpin-off is absent")
    nodes = [load_bundle(root / n) for n in ("node1", "node2")]
    [o] = simulate_packet(nodes, "10.244.1.2", "10.96.0.100", "tcp", 40000, 80).outcomes
    assert o.status == "dropped" and o.node == "node1"
    last = o.hops[-1]
    assert last.kind == "bridge" and "hairpin" in last.explanation
    assert any(ref.file.endswith("ip-addr") and "hairpin off" in ref.text for ref in last.evidence)


def test_reply_bridged_without_br_netfilter_is_not_un_dnatted() -> None:
    root = SAMPLES / "br-netfilter-off"
    if not root.is_dir():
        pytest.skip("samples/br-netfilter-off is absent")
    nodes = [load_bundle(root / n) for n in ("node1", "node2")]
    [o] = simulate_packet(nodes, "10.244.1.2", "10.96.0.100", "tcp", 40000, 80).outcomes
    assert (o.status, o.reply_status) == ("forwarded", "dropped")
    last = o.reply[-1]
    assert last.action == "BRIDGED" and "conntrack never undoes the DNAT" in last.explanation
    assert [ref.line for ref in last.evidence] and last.evidence[0].file.endswith("node1/sysctl")
    # the same cluster with br_netfilter on (the healthy samples): the reply is un-DNATed
    healthy = [load_bundle(SAMPLES / "two-endpoints" / n) for n in ("node1", "node2")]
    for out in simulate_packet(healthy, "10.244.1.2", "10.96.0.100", "tcp", 40000, 80).outcomes:
        assert out.reply_status == "delivered"


def test_conntrack_of_the_client_shows_how_the_random_choice_fell() -> None:
    """Without a source port, simulate sums up the node's existing connections from the client to
    the service per endpoint (12 recorded connections over two endpoints); with the port of one of
    them, that one connection."""
    import subprocess
    import sys

    root = SAMPLES / "two-endpoints"
    if not root.is_dir():
        pytest.skip("samples/two-endpoints is absent")

    def run(src: str) -> list[str]:
        out = subprocess.run([sys.executable, "-m", "analyzer", "simulate", str(root / "node1"), str(root / "node2"),
                              "--src", src, "--dst", "10.96.0.100:80", "--proto", "tcp"],
                             capture_output=True, text=True, check=True)
        return [line for line in out.stdout.splitlines() if line.startswith("conntrack on")]

    lines = run("10.244.1.2")
    assert len(lines) == 2, lines
    counts = {}
    for line in lines:
        n, of = line.split(": ", 1)[1].split(" connections")[0].split(" of its ")
        counts[line.split(" go to ")[1].split()[0]] = (int(n), int(of))
    assert set(counts) == {"10.244.1.3:8080", "10.244.2.2:8080"}
    assert sum(n for n, _ in counts.values()) == 12 and {of for _, of in counts.values()} == {12}
    entries = [line for line in (root / "node1" / "conntrack").read_text().splitlines()
               if "dst=10.96.0.100" in line and "src=10.244.1.2 " in line]
    port = entries[0].split("sport=")[1].split()[0]
    [one] = run(f"10.244.1.2:{port}")
    assert "already tracks this connection" in one


def test_forwarding_off_drops_at_the_route_lookup_with_the_sysctl_lines() -> None:
    root = SAMPLES / "ip-forward-off"
    if not root.is_dir():
        pytest.skip("samples/ip-forward-off is absent")
    nodes = [load_bundle(root / n) for n in ("node1", "node2")]
    [o] = simulate_packet(nodes, "10.244.1.2", "10.244.2.2", "tcp", 40000, 8080).outcomes
    assert (o.status, o.node) == ("dropped", "node2")
    last = o.hops[-1]
    assert (last.node, last.kind, last.action) == ("node2", "route", "DROPPED")
    assert "came in on flannel.1, where forwarding is off" in last.explanation
    assert "before the FORWARD chain" in last.explanation
    sysctl = [ref for ref in last.evidence if ref.file.endswith("node2/sysctl")]
    assert [ref.text.strip() for ref in sysctl][:1] == ["net.ipv4.ip_forward = 0"]
    assert not any(h.hook == "FORWARD" for h in o.hops if h.node == "node2"), "FORWARD is never reached"
    # node1 (forwarding on) routes the same client's packets on: the drop is node2's alone
    assert any(h.node == "node1" and h.kind == "route" and h.action == "ROUTED" for h in o.hops)


def test_strict_rp_filter_drops_what_the_second_nic_receives() -> None:
    root = SAMPLES / "rp-filter"
    if not root.is_dir():
        pytest.skip("samples/rp-filter is absent")
    nodes = [load_bundle(root / n) for n in ("node1", "node2")]
    [o] = simulate_packet(nodes, "203.0.113.10", "198.51.100.11", "tcp", 40000, 30080, "eth1",
                          start_node="node1").outcomes
    assert (o.status, o.node, o.dnat) == ("dropped", "node1", "10.244.2.2:8080")
    last = o.hops[-1]
    assert (last.kind, last.action) == ("route", "DROPPED") and "reverse-path filter (rp_filter=1, strict) on eth1" \
        in last.explanation and "leaves via eth0, not eth1" in last.explanation
    texts = [ref.text.strip() for ref in last.evidence]
    assert "net.ipv4.conf.eth1.rp_filter = 1" in texts and "default via 192.168.56.1 dev eth0" in texts
    # without being told: the node holding the address (listed second here), entered by the NIC holding it
    [guess] = simulate_packet(nodes[::-1], "203.0.113.10", "198.51.100.11", "tcp", 40000, 30080).outcomes
    assert (guess.status, guess.node) == ("dropped", "node1")
    assert any("198.51.100.11 is eth1's address" in a for a in guess.assumptions), guess.assumptions
    # the same NodePort on eth0's address (the route back's interface) passes, as it did live
    [ok] = simulate_packet(nodes, "203.0.113.10", "192.168.56.11", "tcp", 40000, 30080, "eth0",
                           start_node="node1").outcomes
    assert (ok.status, ok.reply_status) == ("forwarded", "delivered")


def test_split_is_an_assumption_of_the_walk() -> None:
    """What simulate cannot see it says: the walk through node2 carries the split as an assumption."""
    root = SAMPLES / "iptables-split"
    if not root.is_dir():
        pytest.skip("samples/iptables-split is absent")
    nodes = [load_bundle(root / n) for n in ("node1", "node2")]
    [o] = simulate_packet(nodes, "10.244.1.2", "10.244.2.2", "tcp", 40000, 8080).outcomes
    assert o.status == "forwarded"  # by what the dump shows
    said = [a for a in o.assumptions if "iptables-legacy holds rules too" in a]
    assert len(said) == 1 and "node2/iptables-save:61" in said[0] and "iptables-legacy-save" in said[0], o.assumptions
    # node1's dumps show one backend: nothing said of it
    assert not [a for a in o.assumptions if a.startswith("node1's iptables-save")]
