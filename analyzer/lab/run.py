"""``lab run``: build a scenario, start servers and captures, run the clients, dump, tear down.

``run_scenario`` always tears the lab down (try/finally, and SIGTERM/SIGHUP are turned into an
exception so the finally runs too); ``scenario.json`` records what was asked, what was
expected and what the clients actually saw.
"""

from __future__ import annotations

import contextlib
import json
import platform
import signal
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from analyzer.errors import LabError
from analyzer.lab import build as build_mod
from analyzer.lab.capture import FLUSH_WAIT, node_interfaces, start_captures, stop_captures
from analyzer.lab.dump import dump_node, kubectl_json
from analyzer.lab.netns import Sandbox, check_host, close_shielded
from analyzer.lab.rules import firewalld_nft, node_rules
from analyzer.lab.scenarios import Scenario, Step
from analyzer.lab.topology import EXTERNAL, Cluster, LabParams

AGENTS = str(Path(__file__).resolve().with_name("agents.py"))
SCHEMA = "k8s-trace.lab-scenario/1"


class Interrupted(BaseException):
    """SIGTERM/SIGHUP during a lab run: unwind through every finally, then exit 130."""


@contextmanager
def signals_unwind():
    """Turn SIGTERM and SIGHUP into an exception (SIGINT already raises KeyboardInterrupt)."""

    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def agent(*args: str) -> list[str]:
    return [sys.executable, AGENTS, *args]


def resolve(cluster: Cluster, target: str) -> str:
    kind, _, name = target.partition(":")
    if kind == "pod":
        return cluster.pod(name).ip
    if kind == "svc":
        return cluster.service(name).cluster_ip
    if kind == "node":
        return cluster.node(name).ip
    if kind == "ingress":  # the node's second NIC (Faults.second_nic_on)
        return cluster.node(name).ingress_ip(cluster.params)
    if kind == "external":
        return cluster.external_ip
    raise LabError(f"unknown traffic target {target!r}")


def client_argv(step: Step, address: str) -> list[str]:
    if step.op == "http":
        return agent("http", address, str(step.port), "--path", step.path, "--timeout", str(step.timeout),
                     "--count", str(step.count))
    if step.op == "dns":
        return agent("dns", address, step.name, "--port", str(step.port or 53), "--timeout", str(step.timeout))
    if step.op == "ping":
        argv = agent("ping", address, "--size", str(step.size), "--count", str(step.count),
                     "--timeout", str(min(step.timeout, 1.0)))
        return argv + (["--df"] if step.df else [])
    raise LabError(f"unknown client operation {step.op!r}")


def outcome(result: dict[str, Any]) -> str:
    """The client's experience in one word, comparable with Expect.client."""
    if result.get("op") == "http-many":
        words = {outcome(r) for r in result["results"]}
        return words.pop() if len(words) == 1 else "mixed"
    if result.get("op") == "ping" and (any(e.get("mtu") for e in result.get("errors", [])) or any(
        e.get("error") == "message-too-long" for e in result.get("errors", [])
    )):
        return "frag-needed"
    if result.get("ok"):
        return "ok"
    return str(result.get("error") or "failed")


def start_servers(sb: Sandbox, sc: Scenario, cluster: Cluster) -> list[dict[str, Any]]:
    started = []
    for pod_name, args in sc.servers(cluster):
        ns = cluster.params.ns(pod_name)
        sb.start(ns, agent(*args), label=f"{args[0]} in {pod_name}", ready="ready\n", hostname=pod_name)
        started.append({"pod": pod_name, "server": args[0], "args": args[1:]})
    if sc.external_server:
        sb.start(cluster.params.ns(EXTERNAL), agent("http-server", "--port", "80", "--name", EXTERNAL),
                 label="http-server on external", ready="ready\n", hostname=EXTERNAL)
        started.append({"pod": EXTERNAL, "server": "http-server", "args": ["--port", "80"]})
    return started


def load_rules(sb: Sandbox, sc: Scenario, cluster: Cluster, out: dict[str, str] | None = None) -> None:
    for node in cluster.nodes:
        text = node_rules(cluster, node, sc.faults)
        sb.ns_run(cluster.params.ns(node.name), ["iptables-restore"], input=text)
        if node.name in sc.faults.firewalld_nft_on:
            sb.ns_run(cluster.params.ns(node.name), ["nft", "-f", "-"], input=firewalld_nft())
        if node.name in sc.faults.legacy_forward_drop_on:
            # Docker (or an old image) with the legacy backend: the kernel runs its tables beside nf_tables'
            sb.ns_run(cluster.params.ns(node.name), ["iptables-legacy", "-P", "FORWARD", "DROP"])
        if out is not None:
            out[node.name] = text


def bring_up(sb: Sandbox, sc: Scenario, cluster: Cluster) -> dict[str, Any]:
    """Topology, rules and servers: the lab as `lab up` leaves it."""
    missing = build_mod.build(sb, cluster, sc.faults)
    load_rules(sb, sc, cluster)
    servers = start_servers(sb, sc, cluster)
    return {"missing_sysctls": missing, "servers": servers}


def describe(sc: Scenario, cluster: Cluster) -> dict[str, Any]:
    p = cluster.params
    return {
        "schema": SCHEMA,
        "scenario": sc.name,
        "summary": sc.summary,
        "shows": sc.shows,
        "params": asdict(p),
        "faults": asdict(sc.faults),
        "nodes": [{"name": n.name, "namespace": p.ns(n.name), "ip": n.ip, "pod_cidr": n.subnet,
                   "cni0": n.gateway, "vtep_ip": n.vtep_ip if p.backend == "vxlan" else None,
                   "vtep_mac": n.vtep_mac if p.backend == "vxlan" else None} for n in cluster.nodes],
        "pods": [{"name": q.name, "namespace": q.namespace, "node": q.node, "ip": q.ip, "veth": q.veth,
                  "netns": p.ns(q.name), "labels": dict(q.labels)} for q in cluster.pods],
        "services": [{"name": f"{s.namespace}/{s.name}", "cluster_ip": s.cluster_ip, "type": s.type,
                      "ports": [asdict(sp) for sp in s.ports],
                      "endpoints": [f"{cluster.pod(e).ip}" for e in s.endpoints]} for s in cluster.services],
        "external": {"ip": cluster.external_ip, "router": [cluster.router_node_side, cluster.router_external_side],
                     "netns": p.ns(EXTERNAL)},
        "backend": p.backend,
    }


def run_scenario(sc: Scenario, base: LabParams, out_dir: Path, *, command: str | None = None,
                 progress=None) -> dict[str, Any]:  # noqa: ANN001
    """Run one scenario end to end; returns the scenario.json document (also written to out_dir)."""
    check_host()
    say = progress or (lambda _msg: None)
    cluster = sc.cluster(base)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = describe(sc, cluster)
    doc["command"] = command or f"k8s-trace lab run {sc.name} --out {out_dir}"
    doc["host"] = {"kernel": platform.release(), "python": platform.python_version()}
    start = time.monotonic()
    doc["started_at"] = round(time.time(), 3)
    sb = Sandbox()
    error: BaseException | None = None
    problems: list[str] = []
    # SIGTERM/SIGHUP unwind like Ctrl-C for the whole run; the teardown itself ignores all three
    with signals_unwind():
        try:
            say(f"building {len(cluster.nodes)} nodes, {len(cluster.pods)} pods ({cluster.params.backend})")
            up = bring_up(sb, sc, cluster)
            doc["missing_sysctls"] = up["missing_sysctls"]
            doc["servers"] = up["servers"]
            say("starting captures")
            captures = []
            for node in cluster.nodes:
                ns = cluster.params.ns(node.name)
                captures.append((node.name, start_captures(sb, ns, node.name, out_dir / node.name,
                                                           node_interfaces(sb, ns))))
            doc["steps"] = run_steps(sb, sc, cluster, say)
            time.sleep(FLUSH_WAIT)  # the last packets reach every capture point and tcpdump gets them
            say("stopping captures")
            doc["captures"] = []
            for node_name, started in captures:
                for res in stop_captures(sb, node_name, started):
                    doc["captures"].append({"node": res.node, "interface": res.interface,
                                            "file": str(res.path.relative_to(out_dir)),
                                            "packets": res.packets, "dropped": res.dropped})
            say("dumping nodes")
            doc["dumps"] = {}
            for node in cluster.nodes:
                env = build_mod.subnet_env(cluster, node, ipmasq=not sc.faults.no_masquerade)
                doc["dumps"][node.name] = dump_node(cluster.params.ns(node.name), node.name,
                                                    out_dir / node.name, env)
            (out_dir / cluster.nodes[0].name / "kubectl.json").write_text(kubectl_json(cluster))
            doc["dumps"][cluster.nodes[0].name]["kubectl.json"] = "written by the lab (API view)"
        except BaseException as exc:
            error = exc
        finally:
            say("tearing down")
            problems = close_shielded(sb)
            doc["teardown"] = {"problems": problems}
            doc["duration_s"] = round(time.monotonic() - start, 2)
            if error is None:
                doc["matches_expected"] = all(s["matches_expected"] for s in doc["steps"])
                text = json.dumps(doc, indent=2) + "\n"
                (out_dir / "scenario.json").write_text(text)
                doc = json.loads(text)  # what callers get is exactly what the file says (lists, not tuples)
    if error is not None:
        if isinstance(error, Interrupted):
            raise KeyboardInterrupt(str(error)) from None
        raise error
    if problems:
        raise LabError("teardown left something behind: " + "; ".join(problems))
    return doc


def run_steps(sb: Sandbox, sc: Scenario, cluster: Cluster, say) -> list[dict[str, Any]]:  # noqa: ANN001
    steps = []
    for step in sc.steps:
        address = resolve(cluster, step.target)
        ns = cluster.params.ns(step.client)
        say(f"{step.client}: {step.op} {address}{':' + str(step.port) if step.port else ''}")
        argv = client_argv(step, address)
        result = sb.run_client(ns, argv, timeout=step.timeout * max(step.count, 1) * 3 + 10)
        seen = outcome(result)
        record: dict[str, Any] = {
            "client": step.client,
            "client_ip": cluster.pod(step.client).ip if step.client != EXTERNAL else cluster.external_ip,
            "op": step.op,
            "target": step.target,
            "address": f"{address}:{step.port}" if step.port else address,
            "proto": "udp" if step.op == "dns" else "icmp" if step.op == "ping" else "tcp",
            "expected": asdict(step.expect),
            "outcome": seen,
            "matches_expected": seen == step.expect.client,
            "result": result,
        }
        if result.get("op") == "http-many":
            record["served_by"] = dict(Counter(r.get("served_by") for r in result["results"]))
        steps.append(record)
    return steps

