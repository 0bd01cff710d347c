"""``kubectl get pods,svc,endpointslices,nodes -A -o json`` (a List, single objects, or several
documents one after another) -> ``KubeInventory``. Legacy ``Endpoints`` objects are read too."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from analyzer.model.node import (
    IPAddress,
    KubeEndpoint,
    KubeInventory,
    KubeNode,
    KubePod,
    KubeService,
    ServicePort,
)
from analyzer.model.refs import SourceRef


def looks_like_kubectl(text: str) -> bool:
    head = text.lstrip()[:4096]
    return head.startswith("{") and '"apiVersion"' in head and '"kind"' in head


def parse_kubectl(text: str, source: str) -> tuple[KubeInventory, tuple[str, ...]]:
    warnings: list[str] = []
    objects: list[tuple[dict[str, Any], int]] = []
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            doc, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            warnings.append(f"{source}:{exc.lineno}: unrecognised JSON ({exc.msg}); rest of the file skipped")
            break
        _flatten(doc, text.count("\n", 0, pos) + 1, objects)
        pos = end
    pods: list[KubePod] = []
    services: list[KubeService] = []
    endpoints: list[KubeEndpoint] = []
    nodes: list[KubeNode] = []
    cursor = 0
    lines = text.splitlines()
    for obj, doc_line in objects:
        kind = obj.get("kind")
        meta = obj.get("metadata")
        name = str(meta.get("name", "?")) if isinstance(meta, dict) else "?"
        line, cursor = _find_line(text, f'"name": "{name}"', cursor, doc_line)
        ref = SourceRef(source, line, lines[line - 1].strip() if 0 < line <= len(lines) else "")
        try:
            if kind == "Pod":
                pods.append(_pod(obj, ref))
            elif kind == "Service":
                services.append(_service(obj, ref))
            elif kind == "EndpointSlice":
                endpoints.extend(_slice(obj, ref))
            elif kind == "Endpoints":
                endpoints.extend(_endpoints(obj, ref))
            elif kind == "Node":
                nodes.append(_node(obj, ref))
            else:
                warnings.append(f"{source}:{line}: {kind or 'object without kind'} {name!r} ignored")
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            warnings.append(f"{source}:{line}: unrecognised {kind} {name!r} ({exc})")
    if not objects and not warnings:
        warnings.append(f"{source}:1: no Kubernetes objects found")
    return KubeInventory(tuple(pods), tuple(services), tuple(endpoints), tuple(nodes)), tuple(warnings)


def _flatten(doc: Any, line: int, out: list[tuple[dict[str, Any], int]]) -> None:
    if isinstance(doc, list):
        for item in doc:
            _flatten(item, line, out)
    elif isinstance(doc, dict):
        if isinstance(doc.get("items"), list):
            for item in doc["items"]:
                _flatten(item, line, out)
        elif "kind" in doc:
            out.append((doc, line))


def _find_line(text: str, needle: str, cursor: int, fallback: int) -> tuple[int, int]:
    at = text.find(needle, cursor)
    if at < 0:
        at = text.find(needle.replace(": ", ":"), cursor)
    if at < 0:
        return fallback, cursor
    return text.count("\n", 0, at) + 1, at + len(needle)


def _ip(value: Any) -> IPAddress | None:
    if not value or value == "None":
        return None
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _ips(values: Any) -> tuple[IPAddress, ...]:
    return tuple(ip for ip in (_ip(v) for v in values or []) if ip is not None)


def _pod(obj: dict[str, Any], ref: SourceRef) -> KubePod:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    return KubePod(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        source=ref,
        ip=_ip(status.get("podIP")),
        ips=_ips(p.get("ip") for p in status.get("podIPs") or []),
        node=spec.get("nodeName"),
        host_ip=_ip(status.get("hostIP")),
        host_network=bool(spec.get("hostNetwork", False)),
        phase=status.get("phase"),
        labels=dict(meta.get("labels") or {}),
    )


def _port(p: dict[str, Any]) -> ServicePort:
    return ServicePort(
        port=int(p["port"]),
        protocol=p.get("protocol", "TCP"),
        name=p.get("name") or None,
        target_port=p.get("targetPort"),
        node_port=int(p["nodePort"]) if p.get("nodePort") else None,
    )


def _service(obj: dict[str, Any], ref: SourceRef) -> KubeService:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ingress = ((status.get("loadBalancer") or {}).get("ingress")) or []
    return KubeService(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        source=ref,
        type=spec.get("type", "ClusterIP"),
        cluster_ip=_ip(spec.get("clusterIP")),
        cluster_ips=_ips(spec.get("clusterIPs")),
        ports=tuple(_port(p) for p in spec.get("ports") or []),
        external_traffic_policy=spec.get("externalTrafficPolicy"),
        internal_traffic_policy=spec.get("internalTrafficPolicy"),
        external_ips=_ips(spec.get("externalIPs")),
        load_balancer_ips=_ips(i.get("ip") for i in ingress) + _ips([spec.get("loadBalancerIP")]),
        load_balancer_source_ranges=tuple(
            ipaddress.ip_network(r, strict=False) for r in spec.get("loadBalancerSourceRanges") or []
        ),
        session_affinity=spec.get("sessionAffinity"),
        selector=dict(spec.get("selector") or {}),
    )


def _slice(obj: dict[str, Any], ref: SourceRef) -> tuple[KubeEndpoint, ...]:
    meta = obj.get("metadata") or {}
    service = (meta.get("labels") or {}).get("kubernetes.io/service-name", meta.get("name", "?"))
    ports = tuple(
        ServicePort(port=int(p["port"]), protocol=p.get("protocol", "TCP"), name=p.get("name") or None)
        for p in obj.get("ports") or [] if p.get("port") is not None
    )
    out = []
    for ep in obj.get("endpoints") or []:
        cond = ep.get("conditions") or {}
        target = ep.get("targetRef") or {}
        for address in ep.get("addresses") or []:
            ip = _ip(address)
            if ip is None:
                continue
            out.append(KubeEndpoint(
                service=service, namespace=meta.get("namespace", "default"), ip=ip, source=ref, ports=ports,
                ready=cond.get("ready", True) is not False, serving=cond.get("serving"),
                terminating=cond.get("terminating"), node=ep.get("nodeName"),
                pod=target.get("name") if target.get("kind") == "Pod" else None,
            ))
    return tuple(out)


def _endpoints(obj: dict[str, Any], ref: SourceRef) -> tuple[KubeEndpoint, ...]:
    meta = obj.get("metadata") or {}
    out = []
    for subset in obj.get("subsets") or []:
        ports = tuple(
            ServicePort(port=int(p["port"]), protocol=p.get("protocol", "TCP"), name=p.get("name") or None)
            for p in subset.get("ports") or []
        )
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(key) or []:
                ip = _ip(address.get("ip"))
                if ip is None:
                    continue
                target = address.get("targetRef") or {}
                out.append(KubeEndpoint(
                    service=meta.get("name", "?"), namespace=meta.get("namespace", "default"), ip=ip,
                    source=ref, ports=ports, ready=ready, node=address.get("nodeName"),
                    pod=target.get("name") if target.get("kind") == "Pod" else None,
                ))
    return tuple(out)


def _node(obj: dict[str, Any], ref: SourceRef) -> KubeNode:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    cidrs = tuple(ipaddress.ip_network(c, strict=False) for c in spec.get("podCIDRs") or [])
    pod_cidr = ipaddress.ip_network(spec["podCIDR"], strict=False) if spec.get("podCIDR") else None
    return KubeNode(
        name=meta["name"],
        source=ref,
        addresses=tuple((a.get("type", ""), a.get("address", "")) for a in status.get("addresses") or []),
        pod_cidr=pod_cidr or (cidrs[0] if cidrs else None),
        pod_cidrs=cidrs,
        annotations={k: str(v) for k, v in (meta.get("annotations") or {}).items()},
    )
