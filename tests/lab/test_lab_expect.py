"""expect.compare: each kind of disagreement between explain and a scenario is reported."""

from __future__ import annotations

import copy

from analyzer.lab.expect import compare


def _scenario(**expected) -> dict:
    exp = {"client": "timeout", "kind": "pod-to-pod-cross-node", "status": "rejected", "encapsulation": ["vxlan"],
           "translations": [], "finding": "OVERLAY_PORT_BLOCKED", "finding_node": "node2",
           "mixed_encapsulation": False}
    exp.update(expected)
    return {"scenario": "s", "steps": [{"op": "http", "client_ip": "10.244.1.2", "address": "10.244.2.2:8080",
                                        "proto": "tcp", "expected": exp, "result": {"op": "http"}}]}


def _flow(**changes) -> dict:
    flow = {"id": "f1", "proto": "tcp", "client": {"ip": "10.244.1.2", "port": 40000},
            "server": {"ip": "10.244.2.2", "port": 8080}, "kind": "pod-to-pod-cross-node", "status": "rejected",
            "encapsulation": [{"type": "vxlan", "vni": 1}], "translations": [],
            "findings": [{"code": "OVERLAY_PORT_BLOCKED", "node": "node2"}, {"code": "RETRANSMISSIONS", "node": "node2"}]}
    flow.update(changes)
    return flow


def test_agreement_is_silent() -> None:
    assert compare(_scenario(), {"flows": [_flow()]}) == []


def test_each_disagreement_is_named() -> None:
    sc = _scenario()
    assert compare(sc, {"flows": []}) == ["s step 1 (http 10.244.1.2 -> 10.244.2.2:8080): no flow in the explain output"]
    assert compare(sc, {"flows": [_flow(server={"ip": "10.244.2.2", "port": 9999})]})[0].endswith("no flow in the explain output")
    (p,) = compare(sc, {"flows": [_flow(status="no-reply")]})
    assert "status no-reply, expected rejected" in p
    (p,) = compare(sc, {"flows": [_flow(kind="other")]})
    assert "kind other, expected pod-to-pod-cross-node" in p
    (p,) = compare(sc, {"flows": [_flow(encapsulation=[])]})
    assert "encapsulation [], expected ['vxlan']" in p
    (p,) = compare(sc, {"flows": [_flow(translations=[{"type": "dnat"}])]})
    assert "translations ['dnat'], expected []" in p
    (p,) = compare(sc, {"flows": [_flow(findings=[{"code": "RETRANSMISSIONS", "node": "node2"}])]})
    assert "lacks finding OVERLAY_PORT_BLOCKED" in p
    (p,) = compare(sc, {"flows": [_flow(findings=[{"code": "OVERLAY_PORT_BLOCKED", "node": "node1"}])]})
    assert "on ['node1'], expected on node2" in p


def test_mixed_encapsulation_needs_both_kinds_and_the_connection_count() -> None:
    sc = _scenario(kind="pod-to-service", status="delivered", finding=None, finding_node=None,
                   translations=["dnat"], mixed_encapsulation=True)
    step = sc["steps"][0]
    step["address"] = "10.96.0.100:80"
    step["result"] = {"op": "http-many", "results": [{}, {}]}
    remote = _flow(kind="pod-to-service", status="delivered", server={"ip": "10.96.0.100", "port": 80},
                   translations=[{"type": "dnat"}], findings=[])
    local = copy.deepcopy(remote)
    local["encapsulation"] = []
    assert compare(sc, {"flows": [remote, local]}) == []
    (p,) = compare(sc, {"flows": [remote, copy.deepcopy(remote)]})
    assert "some flows with ['vxlan'] and some without" in p
    problems = compare(sc, {"flows": [remote, local, copy.deepcopy(local)]})
    assert problems == ["s step 1 (http 10.244.1.2 -> 10.96.0.100:80): 3 flows for 2 connections"]
