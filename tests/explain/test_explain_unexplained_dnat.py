"""The captures show a DNAT that no rule in the dumps makes (kube-proxy in IPVS mode, or nftables
mode without `nft list ruleset`): the dumps' walk is another packet's (here: the ClusterIP routed to
the default gateway, masqueraded by flannel's rule), so none of it is reported for the flow; the
captures' answer stands, and the gap is said once."""

from __future__ import annotations

from pathlib import Path

from explaincheck import copy_sample, explain, only_flow


def _without_kube_proxy(tmp_path: Path) -> Path:
    root = copy_sample("service-remote", tmp_path)
    for node in ("node1", "node2"):
        save = root / node / "iptables-save"
        save.write_text("".join(line for line in save.read_text().splitlines(keepends=True) if "KUBE" not in line))
    return root


def test_no_dumps_only_translation_when_the_dumps_miss_the_observed_dnat(tmp_path: Path) -> None:
    root = _without_kube_proxy(tmp_path)
    doc = explain(root / "node1", root / "node2")
    flow = only_flow(doc)
    assert flow["status"] == "delivered"
    assert [(t["type"], t["from"], t["to"]) for t in flow["translations"]] == [
        ("dnat", "10.96.0.100:80", "10.244.2.2:8080")], flow["translations"]
    said = [w for w in doc["warnings"] if "rewritten to 10.244.2.2:8080" in w]
    assert len(said) == 1 and "no rule in the dumps does it" in said[0], doc["warnings"]


def test_the_iptables_sample_keeps_its_rule_evidence(tmp_path: Path) -> None:
    root = copy_sample("service-remote", tmp_path)
    doc = explain(root / "node1", root / "node2")
    (dnat,) = [t for t in only_flow(doc)["translations"] if t["type"] == "dnat"]
    assert dnat["rule"] is not None and dnat["rule"]["chain"].startswith("KUBE-SEP-"), dnat
    assert not [w for w in doc["warnings"] if "no rule in the dumps" in w]
