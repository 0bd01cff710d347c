"""``lab up`` / ``lab down`` / ``lab exec``: a lab left running, remembered in /run/k8s-trace-lab/.

The state file lists every namespace, ``/etc/netns`` directory and process group ``lab up``
created, so ``lab down`` removes exactly those (and kills anything else still running inside
them). ``lab down --force`` also sweeps namespaces that carry the lab's own resolv.conf marker,
for a lab whose state file was lost (a reboot clears /run anyway).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from analyzer.errors import LabError
from analyzer.lab import build as build_mod
from analyzer.lab.netns import (
    NETNS_ETC,
    PREFIX,
    Sandbox,
    check_host,
    close_shielded,
    delete_namespace,
    existing_namespaces,
    kill_namespace_processes,
)
from analyzer.lab.run import bring_up, describe, signals_unwind
from analyzer.lab.scenarios import Scenario
from analyzer.lab.topology import EXTERNAL, ROUTER, SWITCH, LabParams

STATE_DIR = Path("/run/k8s-trace-lab")
MARKER = "# k8s-trace lab namespace"


def state_path(tag: str) -> Path:
    return STATE_DIR / (f"lab-{tag}.json" if tag else "lab.json")


def read_state(tag: str) -> dict[str, Any]:
    path = state_path(tag)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab is up ({path} does not exist); start one with `k8s-trace lab up SCENARIO`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise LabError(f"{path}: unreadable lab state: {exc}") from None


def lab_up(sc: Scenario, params: LabParams) -> dict[str, Any]:
    """Build the scenario's cluster and servers, leave them running, write the state file."""
    check_host()
    path = state_path(params.tag)
    if path.exists():
        raise LabError(f"a lab is already up ({path}); remove it with `k8s-trace lab down`"
                       + (f" --tag {params.tag}" if params.tag else ""))
    cluster = sc.cluster(params)
    sb = Sandbox()
    try:
        with signals_unwind():
            bring_up(sb, sc, cluster)
            # flanneld's /run/flannel/subnet.env per node; `lab exec NODE` points K8S_TRACE_SUBNET_ENV
            # at it (a file in /etc/netns/NS/ would be bind-mounted over /etc, not /run/flannel)
            subnet_envs = {}
            for node in cluster.nodes:
                env_path = STATE_DIR / f"{params.ns(node.name)}.subnet.env"
                STATE_DIR.mkdir(parents=True, exist_ok=True)
                env_path.write_text(build_mod.subnet_env(cluster, node, ipmasq=not sc.faults.no_masquerade))
                subnet_envs[node.name] = str(env_path)
            objects = {name: params.ns(name) for name in
                       [SWITCH, ROUTER, EXTERNAL, *(n.name for n in cluster.nodes), *(p.name for p in cluster.pods)]}
            state = {
                "scenario": sc.name,
                "path": str(path),
                "created_at": round(time.time(), 3),
                "namespaces": list(sb.namespaces),
                "etc_dirs": [str(p) for p in sb.etc_dirs],
                "process_groups": [proc.popen.pid for proc in sb.procs],
                "objects": objects,
                "subnet_env": subnet_envs,
                "cluster": describe(sc, cluster),
            }
            STATE_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(state, indent=2) + "\n")
    except BaseException:
        problems = close_shielded(sb)
        if problems:
            raise LabError("lab up failed and its teardown left something behind: " + "; ".join(problems)) from None
        raise
    for proc in sb.procs:  # the servers outlive this command; their pipes are no longer read
        for stream in (proc.popen.stdout, proc.popen.stderr):
            if stream is not None:
                stream.close()
    return state


def lab_down(tag: str, force: bool = False) -> tuple[list[str], list[str]]:
    """Remove what `lab up` created; returns (namespaces removed, problems)."""
    check_host()
    path = state_path(tag)
    if path.exists():
        state = read_state(tag)
    elif force:
        state = {"namespaces": [], "etc_dirs": [], "process_groups": []}
    else:
        read_state(tag)  # raises "no lab is up"
        raise AssertionError("unreachable")
    namespaces = list(state["namespaces"])
    if force:
        prefix = f"{PREFIX}{tag}-" if tag else PREFIX
        for ns in sorted(existing_namespaces()):
            marker = NETNS_ETC / ns / "resolv.conf"
            with contextlib.suppress(OSError):
                if ns.startswith(prefix) and ns not in namespaces and marker.read_text().startswith(MARKER):
                    namespaces.append(ns)
    problems: list[str] = []
    for pgid in state["process_groups"]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    removed = []
    present = existing_namespaces()
    for ns in reversed(namespaces):
        if not ns.startswith(PREFIX):
            problems.append(f"refusing to delete namespace {ns!r} (not a lab namespace)")
            continue
        if ns not in present:
            continue
        problems += kill_namespace_processes(ns)
        failure = delete_namespace(ns)
        if failure is None:
            removed.append(ns)
        else:
            problems.append(f"namespace {ns}: {failure}")
    etc_dirs = [Path(p) for p in state["etc_dirs"]] + [NETNS_ETC / ns for ns in namespaces]
    for etc in etc_dirs:
        if etc.name.startswith(PREFIX) and etc.parent == NETNS_ETC:
            shutil.rmtree(etc, ignore_errors=True)
            if etc.exists():
                problems.append(f"{etc} could not be removed")
    for env_path in state.get("subnet_env", {}).values():
        Path(env_path).unlink(missing_ok=True)
    if not problems:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # only when no other lab is up
            STATE_DIR.rmdir()
    return removed, problems


def namespace_for(tag: str, name: str) -> tuple[str, dict[str, str], str]:
    """Namespace of lab object `name` (pod, node, switch, router, external), the environment to add,
    and the object's hostname."""
    state = read_state(tag)
    objects = state["objects"]
    by_ns = {ns: obj for obj, ns in objects.items()}
    if name not in objects and name not in by_ns:
        raise LabError(f"no lab object {name!r}; this lab has: {', '.join(objects)}")
    obj = name if name in objects else by_ns[name]
    env = {}
    if obj in state.get("subnet_env", {}):
        env["K8S_TRACE_SUBNET_ENV"] = state["subnet_env"][obj]
    return objects[obj], env, obj
