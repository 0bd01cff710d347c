"""explain on fresh recordings: the lab builds the cluster in namespaces, runs the traffic, records
every interface and the dumps, tears down; explain must agree with what the kernel did."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from explaincheck import codes, explain, only_flow

pytestmark = pytest.mark.netns


def _record(name: str, out: Path) -> dict:
    from analyzer.lab import run as run_mod
    from analyzer.lab.netns import existing_namespaces
    from analyzer.lab.scenarios import scenario
    from analyzer.lab.topology import LabParams

    sc = scenario(name)
    tag = f"F{os.getpid() % 10000}{name.replace('-', '')[:4]}"

    def ours() -> set[str]:  # other tests may run labs of their own meanwhile
        return {n for n in existing_namespaces() if f"-{tag}-" in n}

    assert ours() == set()
    doc = run_mod.run_scenario(sc, replace(sc.lab_params(LabParams()), tag=tag), out)
    assert ours() == set()
    return doc


@pytest.mark.parametrize(("name", "kind", "status", "nat", "finding", "node"), [
    ("service-remote", "pod-to-service", "delivered", ["dnat"], None, None),
    ("vxlan-blocked", "pod-to-pod-cross-node", "rejected", [], "OVERLAY_PORT_BLOCKED", "node2"),
])
def test_fresh_recording(tmp_path: Path, netns: None, name: str, kind: str, status: str, nat: list[str],
                         finding: str | None, node: str | None) -> None:
    rec = _record(name, tmp_path / name)
    assert rec["matches_expected"], rec["steps"]
    flow = only_flow(explain(tmp_path / name))
    assert (flow["kind"], flow["status"]) == (kind, status), flow["verdict"]["en"]
    assert [t["type"] for t in flow["translations"]] == nat
    assert [e["type"] for e in flow["encapsulation"]] == ["vxlan"]
    if finding:
        assert codes(flow)[finding]["node"] == node
    # one -i any capture of the client's node alone tells the same story
    alone = only_flow(explain(tmp_path / name / "node1" / "any.pcap"))
    assert (alone["kind"], alone["status"]) == (kind, status)
