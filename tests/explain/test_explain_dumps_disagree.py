"""DUMPS_DISAGREE: the captures show the packet stop where the node's dumps let it through, and no
finding explains it. Said, with the place, the packets and the rules that let it pass; never on
a sample whose failure has a cause."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from explaincheck import codes, explain, only_flow, sample, vanishing_vxlan

T0 = 1_700_000_000.0


def test_vxlan_vanishes_behind_a_node_whose_dumps_accept_it(tmp_path: Path) -> None:
    node = tmp_path / "node2"
    shutil.copytree(sample("cross-node") / "node2", node,
                    ignore=shutil.ignore_patterns("*.pcap", "*.pcapng", "conntrack"))
    vanishing_vxlan(node, T0)
    flow = only_flow(explain(node))
    assert flow["status"] == "dropped", flow["verdict"]["en"]
    f = codes(flow)["DUMPS_DISAGREE"]
    assert (f["node"], f["severity"], f["checkable"]) == ("node2", "warning", True)
    assert "node2's dumps" in f["message"] and "let it through" in f["message"]
    # when the dumps were taken (the bundle's date file), in each language's words
    taken = re.search(r"\(taken (\S+)\)", f["message"])
    assert taken is not None, f["message"]
    assert f"（收集于 {taken.group(1)}）" in f["message_zh"] and "taken" not in f["message_zh"], f["message_zh"]
    # the simulator's outcome in Chinese too, not its English sentence
    assert "delivered to pod 10.244.2.2:8080 on node2" in f["message"], f["message"]
    assert "送达 node2 上的 Pod 10.244.2.2:8080（经 cni0）" in f["message_zh"], f["message_zh"]
    assert "delivered" not in f["message_zh"], f["message_zh"]
    assert [e["packet"] for e in f["evidence"] if e["packet"]], f["evidence"]
    assert "nft list ruleset" in f["fix"] and "pwru" in f["fix"]


def test_never_on_a_sample_whose_failure_has_a_cause() -> None:
    roots = sorted(p for p in (Path(__file__).resolve().parents[2] / "samples").iterdir() if p.is_dir())
    assert roots
    for root in roots:
        for flow in explain(root)["flows"]:
            assert "DUMPS_DISAGREE" not in codes(flow), (root, flow["verdict"]["en"])


def test_outcome_in_chinese_for_each_simulated_ending() -> None:
    from types import SimpleNamespace

    from analyzer.engines.diagnose import _outcome_zh

    pkt = SimpleNamespace(endpoint=lambda which: {"dst": "10.244.2.2:8080"}[which])
    fwd = SimpleNamespace(status="forwarded", node="node1", packet=pkt, out_interface="flannel.1",
                          next_hop="10.244.2.0", delivered_to=None)
    assert _outcome_zh(fwd) == "node1 将其从 flannel.1 转发出去，下一跳 10.244.2.0"
    local = SimpleNamespace(status="local", node="node2", packet=pkt, out_interface=None, delivered_to="node node2")
    assert _outcome_zh(local) == "node2 本机接收，目的地址 10.244.2.2:8080"
