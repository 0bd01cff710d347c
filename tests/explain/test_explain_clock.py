"""Stitching across nodes whose capture clocks disagree by seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from explaincheck import copy_sample, explain, only_flow, shift_pcap

SHIFT = 7.25


@pytest.mark.parametrize("name", ["cross-node", "vxlan-blocked"])
def test_stitching_survives_a_clock_shift_of_one_node(tmp_path: Path, name: str) -> None:
    straight = only_flow(explain(copy_sample(name, tmp_path / "a")))
    shifted_dir = copy_sample(name, tmp_path / "b")
    for pcap in (shifted_dir / "node2").glob("*.pcap"):
        shift_pcap(pcap, SHIFT)
    doc = explain(shifted_dir)
    flow = only_flow(doc)
    for key in ("kind", "status"):
        assert flow[key] == straight[key]
    assert [h["observed"] for h in flow["hops"]] == [h["observed"] for h in straight["hops"]]
    assert [f["code"] for f in flow["findings"]] == [f["code"] for f in straight["findings"]]
    offsets = {o["node"]: o for o in doc["clock_offsets"]}
    assert offsets["node1"]["offset"] == 0
    assert offsets["node2"]["offset"] == pytest.approx(-SHIFT, abs=0.01)
    assert "seen on both" in offsets["node2"]["basis"]
    # corrected timing: node2's copies sit right after node1's, not seconds later
    events = flow["ladder"]["events"]
    assert max(e["rel"] for e in events) < 5.0 if name == "cross-node" else True
    lanes = {lane["id"]: lane for lane in flow["ladder"]["lanes"]}
    syn_times = {(lanes[e["lane"]]["node"], lanes[e["lane"]]["interface"]): e["ts"]
                 for e in reversed(events) if e["label"] == "SYN" and e["dir"] == "fwd"}
    assert 0 <= syn_times[("node2", "eth0")] - syn_times[("node1", "eth0")] < 0.05
    assert flow["first_seen"] == pytest.approx(straight["first_seen"], abs=0.01)


def test_shift_pcap_moves_every_record(tmp_path: Path) -> None:
    from analyzer.inputs.capture import read_capture

    src = copy_sample("cross-node", tmp_path) / "node1" / "eth0.pcap"
    before = [f.ts for f in read_capture(src)]
    shift_pcap(src, 2.5)
    after = [f.ts for f in read_capture(src)]
    assert len(before) == len(after) > 0
    assert all(abs(b + 2.5 - a) < 1e-6 for a, b in zip(after, before, strict=True))


def test_nat_twins_on_two_nodes_are_stitched_and_placed_by_the_dumps(tmp_path: Path) -> None:
    # only node1's veth (before DNAT) and node2's captures (after DNAT): no node saw both copies
    rec = copy_sample("service-remote", tmp_path)
    for name in ("any.pcap", "cni0.pcap", "eth0.pcap", "flannel.1.pcap"):
        (rec / "node1" / name).unlink()
    (rec / "node2" / "any.pcap").unlink()
    flow = only_flow(explain(rec))
    assert flow["kind"] == "pod-to-service" and flow["status"] == "delivered"
    [t] = flow["translations"]
    assert (t["type"], t["from"], t["to"], t["node"]) == ("dnat", "10.96.0.100:80", "10.244.2.2:8080", "node1")
    assert t["rule"] is not None and "DNAT" in t["rule"]["text"]
