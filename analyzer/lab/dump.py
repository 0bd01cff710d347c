"""Dump a lab node exactly as ``k8s-trace collect`` dumps a real one.

Each (file, command) pair of ``analyzer.inputs.bundle.BUNDLE_COMMANDS`` runs with ``sh -c``
inside the node's network namespace, in a private UTS namespace whose hostname is the node name
(so ``hostname`` answers ``node1``, not the host's name), with ``K8S_TRACE_SUBNET_ENV`` pointing
at the node's subnet.env. A command that fails or prints nothing (``kubectl`` is not installed
in the lab) leaves no file, as on a real node; the API view is written by ``kubectl_json``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from analyzer.inputs.bundle import BUNDLE_COMMANDS
from analyzer.lab.netns import ns_argv
from analyzer.lab.topology import Cluster

#: bundle files the lab writes itself instead of running the command (there is no API server)
LAB_WRITES = frozenset({"kubectl.json"})


def dump_node(ns: str, hostname: str, out_dir: Path, subnet_env: str | None) -> dict[str, str]:
    """Run every bundle command in ns; returns {file: "ok" | "empty" | "exit N"}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env_file = out_dir / ".subnet.env.src"
    if subnet_env is not None:
        env_file.write_text(subnet_env)
        env["K8S_TRACE_SUBNET_ENV"] = str(env_file)
    else:
        env["K8S_TRACE_SUBNET_ENV"] = "/nonexistent/subnet.env"
    status: dict[str, str] = {}
    try:
        for name, command in BUNDLE_COMMANDS:
            if name in LAB_WRITES:
                continue
            argv = ns_argv(ns, ["sh", "-c", command], hostname)
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                status[name] = f"failed: {exc}"
                continue
            if done.returncode != 0 and not done.stdout.strip():
                status[name] = f"exit {done.returncode}"
                continue
            if not done.stdout.strip():
                status[name] = "empty"
                continue
            (out_dir / name).write_text(done.stdout)
            status[name] = "ok"
    finally:
        env_file.unlink(missing_ok=True)
    return status


def kubectl_json(cluster: Cluster) -> str:
    """`kubectl get pods,svc,endpointslices,nodes -A -o json` as the API server would answer it."""
    items: list[dict] = []
    for pod in cluster.pods:
        items.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels)},
            "spec": {"nodeName": pod.node},
            "status": {"phase": "Running", "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
                       "hostIP": cluster.node(pod.node).ip},
        })
    for svc in cluster.services:
        ports = []
        for sp in svc.ports:
            port = {"name": sp.name, "port": sp.port, "targetPort": sp.target_port, "protocol": sp.protocol}
            if sp.node_port:
                port["nodePort"] = sp.node_port
            ports.append(port)
        items.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc.name, "namespace": svc.namespace},
            "spec": {"type": svc.type, "clusterIP": svc.cluster_ip, "clusterIPs": [svc.cluster_ip],
                     "ports": ports, "externalTrafficPolicy": svc.external_traffic_policy
                     if svc.type != "ClusterIP" else None},
        })
        endpoints = []
        for pod_name in svc.endpoints:
            pod = cluster.pod(pod_name)
            endpoints.append({"addresses": [pod.ip], "conditions": {"ready": True}, "nodeName": pod.node,
                              "targetRef": {"kind": "Pod", "name": pod.name, "namespace": pod.namespace}})
        items.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{svc.name}-lab", "namespace": svc.namespace,
                         "labels": {"kubernetes.io/service-name": svc.name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": sp.name, "port": sp.target_port, "protocol": sp.protocol} for sp in svc.ports],
        })
    for node in cluster.nodes:
        items.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "annotations": {
                "flannel.alpha.coreos.com/backend-type": cluster.params.backend,
                "flannel.alpha.coreos.com/backend-data": json.dumps({"VNI": cluster.params.vni,
                                                                     "VtepMAC": node.vtep_mac}),
                "flannel.alpha.coreos.com/public-ip": node.ip}},
            "spec": {"podCIDR": node.subnet, "podCIDRs": [node.subnet]},
            "status": {"addresses": [{"type": "InternalIP", "address": node.ip},
                                     {"type": "Hostname", "address": node.name}]},
        })
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}, indent=2) + "\n"
