"""IPTABLES_BACKEND_SPLIT: the packet stops where the node's iptables-save lets it through, and the
dumps tell that the other iptables backend holds rules too (the kernel runs both)."""

from __future__ import annotations

import shutil
from pathlib import Path

from explaincheck import codes, explain, only_flow, sample, vanishing_vxlan


def test_the_recorded_split_names_the_legacy_tables() -> None:
    root = sample("iptables-split")
    flow = only_flow(explain(root / "node1", root / "node2"))
    assert flow["status"] == "dropped"
    found = codes(flow)
    assert "DUMPS_DISAGREE" not in found
    f = found["IPTABLES_BACKEND_SPLIT"]
    assert (f["node"], f["severity"], f["checkable"]) == ("node2", "warning", True)
    assert "iptables-legacy's, which this dump does not show" in f["message"], f["message"]
    assert "iptables-legacy-save" in f["fix"] and "iptables-legacy -F" in f["fix"]
    assert "iptables-legacy" in f["message_zh"] and "两套表" in f["message_zh"], f["message_zh"]
    lines = [e for e in f["evidence"] if e.get("line")]
    # the bundle's iptables-legacy-save names the deciding policy, with its counters
    assert lines[0]["file"].endswith("node2/iptables-legacy-save") and lines[0]["text"].startswith(":FORWARD DROP")
    assert "The bundle's iptables-legacy-save shows it: `:FORWARD DROP" in f["message"], f["message"]
    assert lines[1]["file"].endswith("node2/iptables-save")
    assert "iptables-legacy tables present" in lines[1]["text"]
    assert [e for e in f["evidence"] if e.get("packet")], f["evidence"]


def test_legacy_iptables_save_beside_tables_of_iptables_nft(tmp_path: Path) -> None:
    node = tmp_path / "node2"
    shutil.copytree(sample("cross-node") / "node2", node,
                    ignore=shutil.ignore_patterns("*.pcap", "*.pcapng", "conntrack"))
    vanishing_vxlan(node)
    save = node / "iptables-save"
    # what iptables-legacy-save writes: no "(nf_tables)" in its headers (one before each table)
    save.write_text(save.read_text().replace(" (nf_tables)", ""))
    (node / "nft-ruleset").write_text(
        "# Warning: table ip filter is managed by iptables-nft, do not touch!\n"
        "table ip filter {\n"
        "\tchain FORWARD {\n"
        "\t\ttype filter hook forward priority filter; policy drop;\n"
        "\t}\n"
        "}\n")
    flow = only_flow(explain(node))
    f = codes(flow)["IPTABLES_BACKEND_SPLIT"]
    assert "iptables-save (legacy)" in f["message"] and "iptables-nft's" in f["message"], f["message"]
    assert "iptables-nft-save" in f["fix"]
    assert any(e.get("file", "").endswith("nft-ruleset") and e.get("line") == 2 for e in f["evidence"]), f["evidence"]


def test_one_backend_is_no_split(tmp_path: Path) -> None:
    """The same vanishing packet on a node whose dumps show one backend only: DUMPS_DISAGREE, as before."""
    node = tmp_path / "node2"
    shutil.copytree(sample("cross-node") / "node2", node,
                    ignore=shutil.ignore_patterns("*.pcap", "*.pcapng", "conntrack"))
    vanishing_vxlan(node)
    found = codes(only_flow(explain(node)))
    assert "DUMPS_DISAGREE" in found and "IPTABLES_BACKEND_SPLIT" not in found


def test_empty_legacy_tables_are_no_split(tmp_path: Path) -> None:
    """iptables-nft warns whenever legacy tables exist, even empty ones (an `iptables-legacy -L` makes
    them): where the bundle's iptables-legacy-save shows nothing that can stop a packet, the stop is
    not theirs, and DUMPS_DISAGREE says so."""
    root = sample("iptables-split")
    node = tmp_path / "node2"
    shutil.copytree(root / "node2", node)
    legacy = node / "iptables-legacy-save"
    legacy.write_text(legacy.read_text().replace(":FORWARD DROP", ":FORWARD ACCEPT"))
    flow = only_flow(explain(root / "node1", node))
    found = codes(flow)
    assert "IPTABLES_BACKEND_SPLIT" not in found and "DUMPS_DISAGREE" in found
