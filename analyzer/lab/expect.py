"""Check an explain document against what a lab recording's ``scenario.json`` expects.

Pure data in, problems out: ``compare`` takes the two JSON documents (the explain one per the
contract, ``k8s-trace.explain/1``) and returns one line per disagreement, so the same check runs in
the tests, in ``lab check`` and on the shipped samples. Each traffic step is matched to the flows
whose client address, server address as the client addressed it, and protocol are the step's;
every such flow must have the expected kind, status, encapsulation types and translation types
(in path order), and carry the expected finding on the expected node. Other findings (e.g.
``RETRANSMISSIONS`` on a timed-out connection) are allowed.
"""

from __future__ import annotations

from typing import Any


def step_flows(step: dict[str, Any], explain: dict[str, Any]) -> list[dict[str, Any]]:
    """The explain flows that a scenario step produced."""
    host, _, port = step["address"].partition(":")
    out = []
    for flow in explain.get("flows", []):
        if flow.get("proto") != step["proto"]:
            continue
        if flow["client"].get("ip") != step["client_ip"] or flow["server"].get("ip") != host:
            continue
        if port and str(flow["server"].get("port")) != port:
            continue
        out.append(flow)
    return out


def _types(items: list[dict[str, Any]]) -> list[str]:
    return [item["type"] for item in items]


def compare(scenario: dict[str, Any], explain: dict[str, Any]) -> list[str]:
    """Every way `explain` disagrees with the expectations recorded in `scenario`."""
    problems: list[str] = []
    name = scenario["scenario"]
    for number, step in enumerate(scenario["steps"], 1):
        exp = step["expected"]
        where = f"{name} step {number} ({step['op']} {step['client_ip']} -> {step['address']})"
        flows = step_flows(step, explain)
        if not flows:
            problems.append(f"{where}: no flow in the explain output")
            continue
        connections = step["result"].get("results") if step["result"].get("op") == "http-many" else None
        if connections is not None and step["proto"] == "tcp" and len(flows) != len(connections):
            problems.append(f"{where}: {len(flows)} flows for {len(connections)} connections")
        encaps = []
        for flow in flows:
            fid = flow.get("id", "?")
            if flow["kind"] != exp["kind"]:
                problems.append(f"{where}: flow {fid} kind {flow['kind']}, expected {exp['kind']}")
            if flow["status"] != exp["status"]:
                problems.append(f"{where}: flow {fid} status {flow['status']}, expected {exp['status']}")
            got_enc = _types(flow.get("encapsulation", []))
            encaps.append(got_enc)
            if not exp.get("mixed_encapsulation") and got_enc != list(exp.get("encapsulation") or []):
                problems.append(f"{where}: flow {fid} encapsulation {got_enc}, expected {list(exp['encapsulation'])}")
            got_tr = _types(flow.get("translations", []))
            if got_tr != list(exp.get("translations") or []):
                problems.append(f"{where}: flow {fid} translations {got_tr}, expected {list(exp['translations'])}")
            if exp.get("finding"):
                nodes = [f.get("node") for f in flow.get("findings", []) if f.get("code") == exp["finding"]]
                if not nodes:
                    codes = [f.get("code") for f in flow.get("findings", [])]
                    problems.append(f"{where}: flow {fid} lacks finding {exp['finding']} (has {codes})")
                elif exp.get("finding_node") and exp["finding_node"] not in nodes:
                    problems.append(f"{where}: flow {fid} finding {exp['finding']} on {nodes}, "
                                    f"expected on {exp['finding_node']}")
        if exp.get("mixed_encapsulation"):
            wanted = list(exp.get("encapsulation") or [])
            kinds = {tuple(e) for e in encaps}
            if kinds != {(), tuple(wanted)}:
                problems.append(f"{where}: encapsulations {sorted(kinds)}, expected some flows with {wanted} "
                                "and some without")
    return problems
