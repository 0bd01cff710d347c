"""Turn a fresh recording into a shipped sample: drop empty captures (with a note), write READMEs.

``make_sample`` works on a directory ``lab run`` just wrote; ``write_index`` writes
``samples/README.md`` from the ``scenario.json`` of every sample below it, so the index always
says what the recordings really show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAFETY = """\
## Safety

Every lab address lives only inside network namespaces the lab creates itself (all named
`k8sl-...`): the nodes, pods, the underlay switch, the router and the "external" host are
namespaces joined by veth pairs created inside them. Nothing is attached to the host's own
namespace, no lab namespace has a route toward the host's network, and each lab namespace gets
its own `/etc/netns/<ns>/resolv.conf` pointing at the cluster DNS address inside the lab (and an
`nsswitch.conf` with `hosts: files dns`), so no resolver lookup leaves the lab. `lab run` removes every namespace, process and `/etc/netns` entry
it created when it ends, also after an error or Ctrl-C.
"""


def make_sample(out_dir: Path, doc: dict[str, Any], explain_problems: list[str] | None = None) -> dict[str, Any]:
    """Trim a recording in place and write its README.md; returns the updated scenario document.

    `explain_problems` is what ``expect.compare`` said about ``explain`` on this recording (None:
    not checked).
    """
    removed = []
    for cap in doc["captures"]:
        path = out_dir / cap["file"]
        if cap.get("packets") == 0 and path.exists():
            path.unlink()
            cap["removed"] = "empty capture (0 packets), not shipped"
            removed.append(cap["file"])
    doc["sample"] = {"removed_empty_captures": removed}
    if explain_problems is not None:
        doc["sample"]["explain_check"] = explain_problems or "agrees with every expectation"
    (out_dir / "scenario.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out_dir / "README.md").write_text(sample_readme(doc, str(out_dir)))
    return doc


def _outcome_line(step: dict[str, Any]) -> str:
    exp = step["expected"]
    line = f"- `{step['client']}` ({step['client_ip']}) {step['op']} to `{step['target']}` ({step['address']}): " \
           f"**{step['outcome']}**"
    served = step.get("served_by")
    if served:
        line += " (served by " + ", ".join(f"{k} x{v}" for k, v in sorted(served.items(), key=str)) + ")"
    line += f"; expected {exp['client']}" + (" - as expected" if step["matches_expected"] else " - DIFFERENT")
    verdict = f"{exp['kind']} / {exp['status']}"
    if exp.get("encapsulation") and exp.get("mixed_encapsulation"):
        verdict += (", encapsulation " + "+".join(exp["encapsulation"]) + " for the connections sent to a "
                    "remote endpoint, none for the local one")
    elif exp.get("encapsulation"):
        verdict += ", encapsulation " + "+".join(exp["encapsulation"])
    if exp.get("translations"):
        verdict += ", translations " + "+".join(exp["translations"])
    if exp.get("finding"):
        verdict += f", finding {exp['finding']} on {exp['finding_node']}"
    return line + f"\n  - `explain` should say: {verdict}"


def _errors(step: dict[str, Any]) -> list[str]:
    result = step["result"]
    out = []
    for err in result.get("errors", []):
        text = f"  - packet {err['seq']}: {err['error']}"
        if err.get("from"):
            text += f" from {err['from']}"
        if err.get("mtu"):
            text += f" (next-hop MTU {err['mtu']})"
        out.append(text)
    return out


def sample_readme(doc: dict[str, Any], where: str | None = None) -> str:
    """The sample's README; `where` is its directory as the user names it (default samples/<scenario>)."""
    where = (where or f"samples/{doc['scenario']}").rstrip("/")
    nodes = ", ".join(f"{n['name']} {n['ip']} (pods {n['pod_cidr']})" for n in doc["nodes"])
    pods = ", ".join(f"{p['name']} {p['ip']} on {p['node']}" for p in doc["pods"])
    lines = [
        f"# Sample `{doc['scenario']}`: {doc['summary']}",
        "",
        doc["shows"],
        "",
        "## What happened",
        "",
    ]
    for step in doc["steps"]:
        lines.append(_outcome_line(step))
        lines += _errors(step)
    check = doc.get("sample", {}).get("explain_check")
    if isinstance(check, str):
        lines += ["", f"Checked when recorded: `k8s-trace explain` on this sample {check}."]
    elif check:
        lines += ["", "Checked when recorded: `k8s-trace explain` disagrees:", *(f"- {p}" for p in check)]
    lines += [
        "",
        "## The cluster",
        "",
        f"- backend: {doc['backend']}" + (f", VNI {doc['params']['vni']} on UDP {doc['params']['vxlan_port']}"
                                          if doc["backend"] == "vxlan" else ""),
        f"- nodes: {nodes}",
        f"- pods: {pods}",
    ]
    for svc in doc["services"]:
        ports = ", ".join(f"{p['port']}/{p['protocol']}" + (f" (NodePort {p['node_port']})" if p["node_port"] else "")
                          for p in svc["ports"])
        eps = ", ".join(svc["endpoints"]) or "none"
        lines.append(f"- service {svc['name']}: {svc['cluster_ip']} {ports}, endpoints {eps}")
    if doc.get("external"):
        lines.append(f"- external host: {doc['external']['ip']} behind the lab router")
    faults = {k: v for k, v in doc["faults"].items() if v}
    if faults:
        lines.append("- deliberate faults: " + ", ".join(f"{k}={v}" for k, v in faults.items()))
    lines += ["", "## Files", "",
              "One bundle directory per node (dumps as `k8s-trace collect` takes them, plus one capture per "
              "interface and `any.pcap`), and `scenario.json` (parameters, expected and actual outcomes, "
              "tcpdump's own packet counters).", ""]
    for cap in doc["captures"]:
        note = cap.get("removed") or f"{cap['packets']} packet{'s' if cap['packets'] != 1 else ''}"
        lines.append(f"- `{cap['file']}`: {note}")
    node_dirs = " ".join(f"{where}/{n['name']}" for n in doc["nodes"])
    lines += [
        "",
        "## Try it",
        "",
        "```",
        f"k8s-trace explain {node_dirs}",
        "```",
        "",
        "## How it was made",
        "",
        "```",
        f"sudo {doc['command']}",
        "```",
        "",
        f"Recorded in {doc['duration_s']} s on Linux {doc['host']['kernel']} (build, traffic, dumps and teardown).",
        "",
    ]
    return "\n".join(lines)


def write_index(samples_dir: Path) -> Path:
    """samples/README.md: one line per sample, from its scenario.json."""
    rows = []
    for doc_path in sorted(samples_dir.glob("*/scenario.json")):
        doc = json.loads(doc_path.read_text())
        outcomes = "; ".join(
            f"{s['outcome']}" + (f" ({s['expected']['finding']})" if s["expected"].get("finding") else "")
            for s in doc["steps"]
        )
        rows.append(f"| [{doc['scenario']}]({doc['scenario']}/README.md) | {doc['summary']} | {outcomes} |")
    text = "\n".join([
        "# Samples: real recordings of flannel-style clusters",
        "",
        "Each directory is one `k8s-trace lab run` of a scenario: a bundle per node (the dumps "
        "`k8s-trace collect` takes, and a tcpdump capture of every interface plus `any.pcap`) and "
        "`scenario.json` (what ran, what was expected, what the clients saw). The packets are real "
        "kernel packets from network namespaces, not synthesized. Empty captures were removed (each "
        "README lists them).",
        "",
        "| sample | what it shows | client outcome |",
        "|---|---|---|",
        *rows,
        "",
        "Explain one: `k8s-trace explain samples/cross-node/node1 samples/cross-node/node2`. "
        "The HTML report of every sample: `k8s-trace lab reports --samples samples --out reports` (no root "
        "needed).",
        "",
        "Regenerate them all (root, Linux; two to five seconds each): "
        "`sudo k8s-trace lab samples --out samples`. See `docs/lab.md` for the lab itself.",
        "",
        SAFETY,
    ])
    path = samples_dir / "README.md"
    path.write_text(text)
    return path
