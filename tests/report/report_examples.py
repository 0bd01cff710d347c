"""Hand-written explain documents (docs/explain-document.md) for the report tests.

They follow a two-node flannel VXLAN cluster as the lab builds it: n1 192.168.56.11 (pods
10.244.1.0/24), n2 192.168.56.12 (pods 10.244.2.0/24), flannel.1 VNI 1 on UDP 8472, kube-proxy in
iptables mode. Each builder returns a fresh dict, so a test may mutate what it gets.
"""

from __future__ import annotations

import copy
from typing import Any

GENERATED_AT = "2026-11-21T20:00:00Z"
T0 = 1763755200.0  # 2025-11-21 20:00:00 UTC: first packet of each example

N1 = {"name": "n1", "addresses": ["192.168.56.11"], "pod_cidr": "10.244.1.0/24", "backend": "vxlan"}
N2 = {"name": "n2", "addresses": ["192.168.56.12"], "pod_cidr": "10.244.2.0/24", "backend": "vxlan"}

HOSTILE = "<script>alert(1)</script>"


def _ep(ip: str, port: int | None, role: str, name: str | None = None, node: str | None = None) -> dict[str, Any]:
    return {"ip": ip, "port": port, "role": role, "name": name, "node": node}


def _expl(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh": zh}


def _pk(file: str, *nums: int, ts: float = T0) -> list[dict[str, Any]]:
    return [{"file": file, "packet": n, "ts": ts + i * 0.0001} for i, n in enumerate(nums)]


def _rule(file: str, line: int, table: str, chain: str, text: str) -> dict[str, Any]:
    return {"file": file, "line": line, "table": table, "chain": chain, "text": text}


def _hop(
    hid: str,
    node: str | None,
    interface: str | None,
    kind: str,
    action: str,
    observed: bool | None,
    explanation: dict[str, str],
    *,
    packets: list[dict[str, Any]] | None = None,
    evidence: list[dict[str, Any]] | None = None,
    failed: bool = False,
) -> dict[str, Any]:
    packets = packets or []
    ev = [{"file": p["file"], "packet": p["packet"], "line": None, "text": None} for p in packets[:1]]
    return {
        "id": hid, "node": node, "interface": interface, "kind": kind, "action": action,
        "observed": observed, "evidence": ev + (evidence or []), "explanation": explanation,
        "packets": packets, "failed": failed,
    }


def _graph(hops: list[dict[str, Any]], labels: dict[int, tuple[str, str]],
           names: dict[str, str] | None = None) -> dict[str, Any]:
    """Graph nodes from hops in order; ``labels[i]`` is (kind, label) of the edge leaving hop i."""
    names = names or {}
    nodes = [
        {"id": h["id"], "label": names.get(h["id"]) or h["interface"] or h["kind"], "kind": h["kind"],
         "node": h["node"], "interface": h["interface"], "observed": h["observed"],
         "failed": h["failed"], "hop": i}
        for i, h in enumerate(hops)
    ]
    edges = []
    for i in range(len(hops) - 1):
        kind, label = labels.get(i, ("plain", ""))
        edges.append({"src": hops[i]["id"], "dst": hops[i + 1]["id"], "label": label, "kind": kind})
    return {"nodes": nodes, "edges": edges}


def _ev(lane: str, rel: float, file: str, packet: int, direction: str, label: str,
        outer: str | None = None) -> dict[str, Any]:
    return {"lane": lane, "ts": T0 + rel, "rel": rel, "file": file, "packet": packet, "dir": direction,
            "label": label, "outer": outer}


# ---------------------------------------------------------------------------------------------
# shared pieces of a cross-node VXLAN path: client pod on n1 -> server pod on n2

VXLAN_LABEL = "VXLAN vni 1 192.168.56.11 -> 192.168.56.12:8472"
DECAP_LABEL = "decap VXLAN vni 1"

E_POD = {
    "pod": _expl("The client's socket sends the packet out of eth0 inside the pod's network namespace.",
                 "客户端的套接字从 Pod 网络命名空间里的 eth0 发出报文。"),
    "veth": _expl("The pod's eth0 is one end of a veth pair; the packet appears on the node end and enters the cni0 bridge.",
                  "Pod 的 eth0 是 veth 对的一端；报文出现在节点一端并进入 cni0 网桥。"),
    "cni0": _expl("cni0 is the node's pod bridge and the pods' default gateway; the packet is for another subnet, so it is handed to IP routing.",
                  "cni0 是节点的 Pod 网桥，也是 Pod 的默认网关；报文发往其他子网，因此交给 IP 路由。"),
    "forward": _expl("The filter table's FORWARD chain decides whether the node may forward the packet; flannel adds ACCEPT rules for the pod CIDR.",
                     "filter 表的 FORWARD 链决定节点是否转发该报文；flannel 为 Pod 网段添加了 ACCEPT 规则。"),
    "route": _expl("The route for the other node's pod subnet points at flannel.1 with the remote VTEP address as the gateway.",
                   "去往另一节点 Pod 子网的路由指向 flannel.1，网关是远端 VTEP 地址。"),
    "vtep_out": _expl("flannel.1 looks up the remote VTEP's MAC (neighbour table) and node address (FDB) and wraps the frame in VXLAN over UDP 8472.",
                      "flannel.1 查邻居表得到远端 VTEP 的 MAC，查 FDB 得到节点地址，再把帧封装进 UDP 8472 的 VXLAN。"),
    "eth0_out": _expl("The encapsulated packet leaves the node's underlay NIC addressed node to node.",
                      "封装后的报文以节点到节点的地址从节点的底层网卡发出。"),
    "underlay": _expl("The physical or cloud network carries the UDP packet between the node addresses; it never sees pod addresses.",
                      "物理或云网络在节点地址之间传送该 UDP 报文；它看不到 Pod 地址。"),
    "eth0_in": _expl("The VXLAN packet arrives on the receiving node's NIC.",
                     "VXLAN 报文到达接收节点的网卡。"),
    "input": _expl("UDP 8472 is addressed to the node itself, so it passes the filter INPUT chain before the VXLAN driver gets it.",
                   "UDP 8472 的目的地是节点本身，所以在 VXLAN 驱动接收之前要先经过 filter 表的 INPUT 链。"),
    "vtep_in": _expl("flannel.1 strips the outer headers; the inner packet looks as if it arrived on an Ethernet port.",
                     "flannel.1 去掉外层报头；内层报文就像从一个以太网口收到一样。"),
    "forward_in": _expl("The inner packet is routed to cni0 and passes FORWARD on the receiving node.",
                        "内层报文被路由到 cni0，并经过接收节点的 FORWARD 链。"),
    "cni0_in": _expl("cni0 delivers the frame to the veth of the destination pod (bridge FDB).",
                     "cni0 按网桥 FDB 把帧交给目的 Pod 的 veth。"),
    "pod_in": _expl("The packet reaches the server pod's eth0 and its socket.",
                    "报文到达服务端 Pod 的 eth0 和它的套接字。"),
}

FWD_RULE_N1 = "-A FORWARD -s 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT"
FWD_RULE_N2 = "-A FORWARD -d 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT"


def _cross_node_hops(*, client_veth: str, server_veth: str, n2_state: str = "ok",
                     base: int = 1) -> list[dict[str, Any]]:
    """Hops of a pod on n1 reaching a pod on n2 over VXLAN.

    ``n2_state``: "ok" (delivered), "input-drop" (the peer's INPUT chain drops UDP 8472).
    """
    c1v, c1e, c2e, c2v = "n1/" + client_veth + ".pcap", "n1/eth0.pcap", "n2/eth0.pcap", "n2/" + server_veth + ".pcap"
    dropped = n2_state == "input-drop"
    hops = [
        _hop("n1:pod", "n1", "eth0", "pod", "SENT", None, E_POD["pod"]),
        _hop("n1:veth", "n1", client_veth, "veth", "RECEIVED", True, E_POD["veth"],
             packets=_pk(c1v, base, base + 2, base + 3)),
        _hop("n1:cni0", "n1", "cni0", "bridge", "ROUTED", None, E_POD["cni0"]),
        _hop("n1:forward", "n1", None, "netfilter", "PERMITTED", None, E_POD["forward"],
             evidence=[{"file": "n1/iptables-save", "packet": None, "line": 41, "text": FWD_RULE_N1}]),
        _hop("n1:route", "n1", "flannel.1", "route", "FORWARDED", None, E_POD["route"],
             evidence=[{"file": "n1/ip-route", "packet": None, "line": 4,
                        "text": "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink"}]),
        _hop("n1:flannel.1", "n1", "flannel.1", "vtep", "ENCAPSULATED", None, E_POD["vtep_out"],
             evidence=[{"file": "n1/bridge-fdb", "packet": None, "line": 7,
                        "text": "9e:2a:11:c0:7b:01 dev flannel.1 dst 192.168.56.12 self permanent"},
                       {"file": "n1/ip-neigh", "packet": None, "line": 2,
                        "text": "10.244.2.0 dev flannel.1 lladdr 9e:2a:11:c0:7b:01 PERMANENT"}]),
        _hop("n1:eth0", "n1", "eth0", "nic", "TRANSMITTED", True, E_POD["eth0_out"],
             packets=_pk(c1e, base, base + 2, base + 3, ts=T0 + 0.00004)),
        _hop("underlay", None, None, "underlay", "CARRIED", None, E_POD["underlay"]),
        _hop("n2:eth0", "n2", "eth0", "nic", "RECEIVED", True, E_POD["eth0_in"],
             packets=_pk(c2e, base, base + 2, base + 3, ts=T0 + 0.00031)),
        _hop("n2:input", "n2", None, "netfilter",
             "DROPPED" if dropped else "PERMITTED", None, E_POD["input"],
             evidence=([{"file": "n2/iptables-save", "packet": None, "line": 7, "text": ":INPUT DROP [1207:98811]"}]
                       if dropped else []),
             failed=dropped),
        _hop("n2:flannel.1", "n2", "flannel.1", "vtep", "DECAPSULATED", False if dropped else None,
             E_POD["vtep_in"]),
        _hop("n2:forward", "n2", None, "netfilter", "PERMITTED", None, E_POD["forward_in"],
             evidence=[] if dropped else [{"file": "n2/iptables-save", "packet": None, "line": 42, "text": FWD_RULE_N2}]),
        _hop("n2:cni0", "n2", "cni0", "bridge", "BRIDGED", None, E_POD["cni0_in"]),
        _hop("n2:veth", "n2", server_veth, "veth", "TRANSMITTED", not dropped, E_POD["pod_in"],
             packets=[] if dropped else _pk(c2v, base, base + 2, base + 3, ts=T0 + 0.00036)),
        _hop("n2:pod", "n2", "eth0", "pod", "DELIVERED", None, E_POD["pod_in"]),
    ]
    if dropped:
        for h in hops[hops.index(next(h for h in hops if h["id"] == "n2:input")) + 1:]:
            h["action"] = "NOT REACHED"
    return hops


def _cross_node_edges(extra: dict[int, tuple[str, str]] | None = None) -> dict[int, tuple[str, str]]:
    labels = {5: ("encap", VXLAN_LABEL), 9: ("decap", DECAP_LABEL)}
    labels.update(extra or {})
    return labels


def _lanes(client_veth: str, server_veth: str) -> list[dict[str, Any]]:
    return [
        {"id": "n1/" + client_veth, "label": client_veth, "node": "n1", "interface": client_veth},
        {"id": "n1/eth0", "label": "eth0", "node": "n1", "interface": "eth0"},
        {"id": "n2/eth0", "label": "eth0", "node": "n2", "interface": "eth0"},
        {"id": "n2/" + server_veth, "label": server_veth, "node": "n2", "interface": server_veth},
    ]


def _tcp_ladder(client_veth: str, server_veth: str, *, payload: str = "len=78 HTTP GET /") -> dict[str, Any]:
    lanes = _lanes(client_veth, server_veth)
    L = [ln["id"] for ln in lanes]
    files = ["n1/" + client_veth + ".pcap", "n1/eth0.pcap", "n2/eth0.pcap", "n2/" + server_veth + ".pcap"]
    vx = "VXLAN vni 1"
    events = []
    seq = [("fwd", "SYN", 0.0, 1), ("rev", "SYN/ACK", 0.000612, 2), ("fwd", "ACK", 0.000701, 3),
           ("fwd", payload, 0.000744, 4), ("rev", "len=612 HTTP 200 OK", 0.001502, 5),
           ("fwd", "FIN/ACK", 0.001690, 6), ("rev", "FIN/ACK", 0.002101, 7), ("fwd", "ACK", 0.002310, 8)]
    for direction, label, rel, n in seq:
        order = range(4) if direction == "fwd" else range(3, -1, -1)
        for step, li in enumerate(order):
            events.append(_ev(L[li], round(rel + step * 0.00009, 6), files[li], n, direction, label,
                              vx if li in (1, 2) else None))
    return {"lanes": lanes, "events": events}


def _doc(flows: list[dict[str, Any]], *, nodes: list[dict[str, Any]] | None = None,
         inputs: list[dict[str, Any]] | None = None, captures: list[dict[str, Any]] | None = None,
         findings: list[dict[str, Any]] | None = None, not_checkable: list[dict[str, Any]] | None = None,
         warnings: list[str] | None = None, clock_offsets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    sev = {"error": 0, "warning": 0, "info": 0}
    for f in flows:
        by_status[f["status"]] = by_status.get(f["status"], 0) + 1
        by_kind[f["kind"]] = by_kind.get(f["kind"], 0) + 1
        for x in f["findings"]:
            sev[x["severity"]] += 1
    for x in findings or []:
        sev[x["severity"]] += 1
    return {
        "schema": "k8s-trace.explain/1",
        "tool": {"name": "k8s-trace", "version": "0.1.0"},
        "generated_at": GENERATED_AT,
        "inputs": inputs if inputs is not None else [
            {"path": "n1", "type": "bundle", "node": "n1", "interface": None},
            {"path": "n2", "type": "bundle", "node": "n2", "interface": None},
        ],
        "nodes": nodes if nodes is not None else [copy.deepcopy(N1), copy.deepcopy(N2)],
        "captures": captures if captures is not None else [
            {"path": "n1/eth0.pcap", "node": "n1", "interface": "eth0", "frames": 412, "first_ts": T0 - 3.2,
             "last_ts": T0 + 9.8, "link": "ethernet"},
            {"path": "n2/eth0.pcap", "node": "n2", "interface": "eth0", "frames": 398, "first_ts": T0 - 3.1,
             "last_ts": T0 + 9.9, "link": "ethernet"},
        ],
        "clock_offsets": clock_offsets if clock_offsets is not None else [
            {"node": "n1", "offset": 0.0, "basis": "reference node"},
            {"node": "n2", "offset": -2.503117, "basis": "12 VXLAN packets seen on both underlays"},
        ],
        "summary": {"flows": len(flows), "by_status": by_status, "by_kind": by_kind, "findings": sev},
        "flows": flows,
        "findings": findings or [],
        "not_checkable": not_checkable or [],
        "warnings": warnings or [],
    }


def _encap(observed: bool | None = True) -> dict[str, Any]:
    return {"type": "vxlan", "vni": 1, "port": 8472, "outer_src": "192.168.56.11",
            "outer_dst": "192.168.56.12", "observed": observed}


# ---------------------------------------------------------------------------------------------

def vxlan_flow(fid: str = "f1", *, client_name: str = "default/client-7d9f8b6c5-x2kqp",
               client_veth: str = "veth3a1f9c2e", payload: str = "len=78 HTTP GET /") -> dict[str, Any]:
    hops = _cross_node_hops(client_veth=client_veth, server_veth="veth77c0d1aa")
    return {
        "id": fid, "proto": "tcp",
        "client": _ep("10.244.1.5", 41234, "pod", client_name, "n1"),
        "server": _ep("10.244.2.7", 80, "pod", "default/web-0", "n2"),
        "kind": "pod-to-pod-cross-node", "status": "delivered",
        "verdict": {"en": "Delivered: 10.244.1.5 on n1 reached 10.244.2.7:80 on n2 through VXLAN (vni 1) and got answers.",
                    "zh": "已送达：n1 上的 10.244.1.5 经 VXLAN（vni 1）到达 n2 上的 10.244.2.7:80，并收到了回应。"},
        "translations": [], "encapsulation": [_encap()],
        "hops": hops, "findings": [],
        "packets": 32, "bytes": 3518, "first_seen": T0, "last_seen": T0 + 0.00258,
        "graph": _graph(hops, _cross_node_edges(), {"n1:pod": "client-7d9f8b6c5-x2kqp" if client_name.startswith("default/client") else client_name.split("/")[-1],
                                                      "n2:pod": "web-0", "n1:forward": "FORWARD", "n2:forward": "FORWARD",
                                                      "n2:input": "INPUT", "n1:route": "route", "underlay": "192.168.56.0/24"}),
        "ladder": _tcp_ladder(client_veth, "veth77c0d1aa", payload=payload),
    }


def delivered_vxlan() -> dict[str, Any]:
    """A delivered cross-node VXLAN TCP flow with full graph and ladder."""
    return _doc([vxlan_flow()], inputs=[
        {"path": "n1", "type": "bundle", "node": "n1", "interface": None},
        {"path": "n2", "type": "bundle", "node": "n2", "interface": None},
        {"path": "n1/veth3a1f9c2e.pcap", "type": "capture", "node": "n1", "interface": "veth3a1f9c2e"},
        {"path": "n1/eth0.pcap", "type": "capture", "node": "n1", "interface": "eth0"},
        {"path": "n2/eth0.pcap", "type": "capture", "node": "n2", "interface": "eth0"},
        {"path": "n2/veth77c0d1aa.pcap", "type": "capture", "node": "n2", "interface": "veth77c0d1aa"},
    ])


DNAT_RULE = ("-A KUBE-SEP-3WUTGBSLBPYCPN6F -p tcp -m comment --comment \"default/web:http\" "
             "-m tcp -j DNAT --to-destination 10.244.2.7:80")
MASQ_RULE = ("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
             "-j MASQUERADE --random-fully")


def service_flows() -> list[dict[str, Any]]:
    hops = _cross_node_hops(client_veth="veth3a1f9c2e", server_veth="veth77c0d1aa", base=11)
    nat = _hop("n1:prerouting", "n1", None, "netfilter", "DNAT", None,
               _expl("kube-proxy's KUBE-SERVICES chain matches the ClusterIP; KUBE-SVC picks an endpoint and its KUBE-SEP chain rewrites the destination to the pod.",
                     "kube-proxy 的 KUBE-SERVICES 链匹配 ClusterIP；KUBE-SVC 选出一个端点，其 KUBE-SEP 链把目的地址改写为该 Pod。"),
               evidence=[{"file": "n1/iptables-save", "packet": None, "line": 88,
                          "text": "-A KUBE-SVC-LOLE4ISW44XBNF3G -m comment --comment \"default/web:http -> 10.244.2.7:80\" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-3WUTGBSLBPYCPN6F"},
                         {"file": "n1/iptables-save", "packet": None, "line": 95, "text": DNAT_RULE}])
    post = _hop("n1:postrouting", "n1", None, "netfilter", "MASQUERADE", None,
                _expl("The packet was marked 0x4000 by KUBE-MARK-MASQ, so KUBE-POSTROUTING rewrites its source to the outgoing interface's address (flannel.1: 10.244.1.0).",
                      "报文被 KUBE-MARK-MASQ 打上 0x4000 标记，所以 KUBE-POSTROUTING 把源地址改为出接口地址（flannel.1：10.244.1.0）。"),
                evidence=[{"file": "n1/iptables-save", "packet": None, "line": 63, "text": MASQ_RULE}])
    # PREROUTING (DNAT), the route lookup, FORWARD, POSTROUTING (MASQUERADE), then flannel.1
    hops = hops[:3] + [nat, hops[4], hops[3], post] + hops[5:]
    hops[1]["packets"] = _pk("n1/veth3a1f9c2e.pcap", 11, 13, 14)
    hops[1]["evidence"] = [{"file": "n1/veth3a1f9c2e.pcap", "packet": 11, "line": None,
                            "text": "10.244.1.5:50310 > 10.96.0.10:80 SYN"}]
    edges = {3: ("nat", "DNAT 10.96.0.10:80 -> 10.244.2.7:80"), 6: ("nat", "MASQUERADE 10.244.1.5:50310 -> 10.244.1.0:50310"),
             7: ("encap", VXLAN_LABEL), 11: ("decap", DECAP_LABEL)}
    svc = {
        "id": "f2", "proto": "tcp",
        "client": _ep("10.244.1.5", 50310, "pod", "default/client-7d9f8b6c5-x2kqp", "n1"),
        "server": _ep("10.96.0.10", 80, "service", "default/web:http", None),
        "kind": "pod-to-service", "status": "delivered",
        "verdict": {"en": "Delivered: service default/web:http (10.96.0.10:80) was DNATed on n1 to 10.244.2.7:80 on n2, masqueraded to 10.244.1.0 and carried over VXLAN.",
                    "zh": "已送达：Service default/web:http（10.96.0.10:80）在 n1 上被 DNAT 到 n2 上的 10.244.2.7:80，源地址伪装为 10.244.1.0，经 VXLAN 传送。"},
        "translations": [
            {"type": "dnat", "node": "n1", "from": "10.96.0.10:80", "to": "10.244.2.7:80", "observed": True,
             "rule": _rule("n1/iptables-save", 95, "nat", "KUBE-SEP-3WUTGBSLBPYCPN6F", DNAT_RULE)},
            {"type": "masquerade", "node": "n1", "from": "10.244.1.5:50310", "to": "10.244.1.0:50310",
             "observed": True, "rule": _rule("n1/iptables-save", 63, "nat", "KUBE-POSTROUTING", MASQ_RULE)},
        ],
        "encapsulation": [_encap()],
        "hops": hops, "findings": [],
        "reply": [
            _hop("n2:pod", "n2", "eth0", "pod", "SENT", None,
                 _expl("web-0 answers 10.244.1.0, the masqueraded source it saw.", "web-0 回应它看到的伪装后的源地址 10.244.1.0。")),
            _hop("n2:eth0", "n2", "eth0", "nic", "TRANSMITTED", True,
                 _expl("The reply goes back over VXLAN to n1.", "回包经 VXLAN 回到 n1。"), packets=_pk("n2/eth0.pcap", 12, 15)),
            _hop("n1:conntrack", "n1", None, "netfilter", "UN-NAT", None,
                 _expl("conntrack reverses both translations: the source becomes 10.96.0.10:80 again and the destination 10.244.1.5:50310.",
                       "conntrack 反向还原两次地址转换：源地址变回 10.96.0.10:80，目的地址变回 10.244.1.5:50310。"),
                 evidence=[{"file": "n1/conntrack", "packet": None, "line": 3,
                            "text": "tcp 6 86397 ESTABLISHED src=10.244.1.5 dst=10.96.0.10 sport=50310 dport=80 "
                                    "src=10.244.2.7 dst=10.244.1.0 sport=80 dport=50310 [ASSURED] mark=0 use=1"}]),
            _hop("n1:veth", "n1", "veth3a1f9c2e", "veth", "DELIVERED", True,
                 _expl("The client pod receives the answer from the service address.", "客户端 Pod 收到来自 Service 地址的回应。"),
                 packets=_pk("n1/veth3a1f9c2e.pcap", 12, 15)),
        ],
        "packets": 40, "bytes": 4410, "first_seen": T0 + 1.0, "last_seen": T0 + 1.0031,
        "graph": _graph(hops, edges, {"n1:pod": "client-7d9f8b6c5-x2kqp", "n2:pod": "web-0", "n1:prerouting": "PREROUTING",
                                      "n1:postrouting": "POSTROUTING", "n1:forward": "FORWARD", "n2:forward": "FORWARD",
                                      "n2:input": "INPUT", "n1:route": "route", "underlay": "192.168.56.0/24"}),
        "ladder": _tcp_ladder("veth3a1f9c2e", "veth77c0d1aa"),
    }
    for ev in svc["ladder"]["events"]:
        ev["rel"] = ev["rel"]
        ev["packet"] += 10
        ev["ts"] += 1.0
    ext_hops = [
        _hop("n1:pod", "n1", "eth0", "pod", "SENT", None, E_POD["pod"]),
        _hop("n1:veth", "n1", "veth3a1f9c2e", "veth", "RECEIVED", True, E_POD["veth"],
             packets=_pk("n1/veth3a1f9c2e.pcap", 31, 33)),
        _hop("n1:cni0", "n1", "cni0", "bridge", "ROUTED", None, E_POD["cni0"]),
        _hop("n1:postrouting", "n1", None, "netfilter", "MASQUERADE", None,
             _expl("flannel's rule masquerades pod traffic leaving the pod network, so the reply can find its way back to this node.",
                   "flannel 的规则对离开 Pod 网络的流量做地址伪装，使回包能回到本节点。"),
             evidence=[{"file": "n1/iptables-save", "packet": None, "line": 70,
                        "text": "-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully"}]),
        _hop("n1:eth0", "n1", "eth0", "nic", "TRANSMITTED", True,
             _expl("The packet leaves with the node's address as its source.", "报文以节点地址作为源地址发出。"),
             packets=_pk("n1/eth0.pcap", 57, 59)),
        _hop("external", None, None, "external", "ANSWERED", True,
             _expl("The external server answers the node's address; conntrack reverses the masquerade.",
                   "外部服务器回应节点地址；conntrack 会反向还原地址伪装。")),
    ]
    ext = {
        "id": "f3", "proto": "tcp",
        "client": _ep("10.244.1.5", 38120, "pod", "default/client-7d9f8b6c5-x2kqp", "n1"),
        "server": _ep("93.184.216.34", 443, "external", None, None),
        "kind": "pod-to-external", "status": "delivered",
        "verdict": {"en": "Delivered: 10.244.1.5 reached 93.184.216.34:443, masqueraded to 192.168.56.11 on n1.",
                    "zh": "已送达：10.244.1.5 到达 93.184.216.34:443，在 n1 上被伪装为 192.168.56.11。"},
        "translations": [{"type": "masquerade", "node": "n1", "from": "10.244.1.5:38120", "to": "192.168.56.11:38120",
                          "observed": True, "rule": _rule("n1/iptables-save", 70, "nat", "FLANNEL-POSTRTG",
                                                          "-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully")}],
        "encapsulation": [], "hops": ext_hops, "findings": [],
        "packets": 18, "bytes": 6120, "first_seen": T0 + 2.0, "last_seen": T0 + 2.21,
        "graph": _graph(ext_hops, {3: ("nat", "MASQUERADE 10.244.1.5:38120 -> 192.168.56.11:38120")},
                        {"n1:pod": "client-7d9f8b6c5-x2kqp", "n1:postrouting": "POSTROUTING", "external": "93.184.216.34"}),
        "ladder": {"lanes": _lanes("veth3a1f9c2e", "x")[:2],
                   "events": [_ev("n1/veth3a1f9c2e", 0.0, "n1/veth3a1f9c2e.pcap", 31, "fwd", "SYN"),
                              _ev("n1/eth0", 0.00005, "n1/eth0.pcap", 57, "fwd", "SYN"),
                              _ev("n1/eth0", 0.0212, "n1/eth0.pcap", 58, "rev", "SYN/ACK"),
                              _ev("n1/veth3a1f9c2e", 0.02125, "n1/veth3a1f9c2e.pcap", 32, "rev", "SYN/ACK"),
                              _ev("n1/veth3a1f9c2e", 0.0213, "n1/veth3a1f9c2e.pcap", 33, "fwd", "ACK"),
                              _ev("n1/eth0", 0.02135, "n1/eth0.pcap", 59, "fwd", "ACK")]},
    }
    return [svc, ext]


def service_dnat_masq() -> dict[str, Any]:
    """A pod-to-service flow with DNAT and MASQUERADE, and a masqueraded pod-to-external flow."""
    return _doc(service_flows())


OVERLAY_FIX = ("# on n2: allow flannel VXLAN from the other node\n"
               "iptables -I INPUT -p udp --dport 8472 -s 192.168.56.11 -d 192.168.56.12 -j ACCEPT\n"
               "# or with firewalld:\n"
               "firewall-cmd --permanent --add-port=8472/udp && firewall-cmd --reload")


def overlay_blocked_flow() -> dict[str, Any]:
    hops = _cross_node_hops(client_veth="veth3a1f9c2e", server_veth="veth77c0d1aa", n2_state="input-drop", base=40)
    for h in hops:
        if h["id"] in ("n1:veth", "n1:eth0", "n2:eth0"):
            h["packets"] = _pk(h["packets"][0]["file"], 40, 41, 42, 43)
    edges = _cross_node_edges({9: ("drop", "dropped: INPUT policy DROP, UDP 8472 not accepted")})
    ladder = {"lanes": _lanes("veth3a1f9c2e", "veth77c0d1aa"), "events": []}
    for k, rel in enumerate((0.0, 1.0152, 3.0471, 7.1102)):
        label = "SYN" if k == 0 else "SYN (retransmission)"
        ladder["events"] += [
            _ev("n1/veth3a1f9c2e", rel, "n1/veth3a1f9c2e.pcap", 40 + k, "fwd", label),
            _ev("n1/eth0", rel + 0.00004, "n1/eth0.pcap", 40 + k, "fwd", label, "VXLAN vni 1"),
            _ev("n2/eth0", rel + 0.00031, "n2/eth0.pcap", 40 + k, "fwd", label, "VXLAN vni 1"),
        ]
    return {
        "id": "f4", "proto": "tcp",
        "client": _ep("10.244.1.5", 41300, "pod", "default/client-7d9f8b6c5-x2kqp", "n1"),
        "server": _ep("10.244.2.7", 80, "pod", "default/web-0", "n2"),
        "kind": "pod-to-pod-cross-node", "status": "dropped",
        "verdict": {"en": "Dropped on n2: the VXLAN packets reached n2's eth0 but its INPUT chain (policy DROP) does not accept UDP 8472, so they never reached flannel.1.",
                    "zh": "在 n2 上被丢弃：VXLAN 报文到达了 n2 的 eth0，但其 INPUT 链（策略 DROP）不放行 UDP 8472，报文没有到达 flannel.1。"},
        "translations": [], "encapsulation": [_encap()],
        "hops": hops,
        "findings": [{
            "code": "OVERLAY_PORT_BLOCKED", "severity": "error", "node": "n2",
            "message": "n2's INPUT chain drops VXLAN (UDP 8472) from 192.168.56.11: 4 packets seen on n2/eth0, none on flannel.1.",
            "message_zh": "n2 的 INPUT 链丢弃来自 192.168.56.11 的 VXLAN（UDP 8472）：n2/eth0 上看到 4 个报文，flannel.1 上一个也没有。",
            "evidence": [
                {"file": "n2/eth0.pcap", "packet": 40, "line": None, "text": "192.168.56.11:47512 > 192.168.56.12:8472 VXLAN vni 1 [10.244.1.5:41300 > 10.244.2.7:80 SYN]"},
                {"file": "n2/iptables-save", "packet": None, "line": 7, "text": ":INPUT DROP [1207:98811]"},
                {"file": "n2/iptables-save", "packet": None, "line": 19, "text": "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"},
            ],
            "fix": OVERLAY_FIX,
            "fix_zh": OVERLAY_FIX.replace("# on n2: allow flannel VXLAN from the other node", "# 在 n2 上：放行来自另一节点的 flannel VXLAN")
                                 .replace("# or with firewalld:", "# 或者使用 firewalld："),
            "checkable": True,
        }, {
            "code": "RETRANSMISSIONS", "severity": "warning", "node": "n1",
            "message": "The SYN was sent 4 times (1 s, 2 s, 4 s backoff) without an answer.",
            "message_zh": "SYN 发送了 4 次（1 秒、2 秒、4 秒退避），都没有回应。",
            "evidence": [{"file": "n1/veth3a1f9c2e.pcap", "packet": n, "line": None, "text": "SYN seq=1811325507"} for n in (41, 42, 43)],
            "fix": None, "checkable": True,
        }],
        "packets": 12, "bytes": 1080, "first_seen": T0, "last_seen": T0 + 7.1105,
        "graph": _graph(hops, edges, {"n1:pod": "client-7d9f8b6c5-x2kqp", "n2:pod": "web-0", "n1:forward": "FORWARD",
                                      "n2:forward": "FORWARD", "n2:input": "INPUT", "n1:route": "route",
                                      "underlay": "192.168.56.0/24"}),
        "ladder": ladder,
    }


def overlay_blocked() -> dict[str, Any]:
    """An OVERLAY_PORT_BLOCKED dropped flow; the failing hop is n2's INPUT chain."""
    doc = _doc([overlay_blocked_flow()])
    doc["captures"].insert(0, {"path": "n1/veth3a1f9c2e.pcap", "node": "n1", "interface": "veth3a1f9c2e",
                               "frames": 57, "first_ts": T0 - 3.0, "last_ts": T0 + 9.0, "link": "ethernet"})
    doc["captures"].append({"path": "n2/flannel.1.pcap", "node": "n2", "interface": "flannel.1", "frames": 0,
                            "first_ts": None, "last_ts": None, "link": "ethernet"})
    return doc


REJECT_RULE = ("-A KUBE-SERVICES -d 10.96.45.2/32 -p tcp -m comment --comment \"default/api:http has no endpoints\" "
               "-m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable")


def no_endpoints_flow() -> dict[str, Any]:
    hops = [
        _hop("n1:pod", "n1", "eth0", "pod", "SENT", None, E_POD["pod"]),
        _hop("n1:veth", "n1", "veth3a1f9c2e", "veth", "RECEIVED", True, E_POD["veth"],
             packets=_pk("n1/veth3a1f9c2e.pcap", 71)),
        _hop("n1:cni0", "n1", "cni0", "bridge", "ROUTED", None, E_POD["cni0"]),
        _hop("n1:filter", "n1", None, "netfilter", "REJECTED", None,
             _expl("kube-proxy installs a REJECT rule in the filter table for a service without ready endpoints; the client gets ICMP port unreachable at once.",
                   "对于没有就绪端点的 Service，kube-proxy 在 filter 表中安装 REJECT 规则；客户端立即收到 ICMP 端口不可达。"),
             evidence=[{"file": "n1/iptables-save", "packet": None, "line": 23, "text": REJECT_RULE}], failed=True),
    ]
    graph = _graph(hops, {}, {"n1:pod": "client-7d9f8b6c5-x2kqp", "n1:filter": "KUBE-SERVICES"})
    graph["nodes"].append({"id": "svc", "label": "default/api:http", "kind": "service", "node": None, "interface": None,
                           "observed": None, "failed": False, "hop": None})
    graph["edges"].append({"src": "n1:filter", "dst": "svc", "label": "REJECT icmp-port-unreachable", "kind": "drop"})
    return {
        "id": "f5", "proto": "tcp",
        "client": _ep("10.244.1.5", 52002, "pod", "default/client-7d9f8b6c5-x2kqp", "n1"),
        "server": _ep("10.96.45.2", 80, "service", "default/api:http", None),
        "kind": "pod-to-service", "status": "rejected",
        "verdict": {"en": "Rejected on n1: service default/api:http has no ready endpoints, so kube-proxy's REJECT rule answered with ICMP port unreachable.",
                    "zh": "在 n1 上被拒绝：Service default/api:http 没有就绪端点，kube-proxy 的 REJECT 规则回应了 ICMP 端口不可达。"},
        "translations": [], "encapsulation": [], "hops": hops,
        "findings": [{
            "code": "SERVICE_NO_ENDPOINTS", "severity": "error", "node": "n1",
            "message": "Service default/api:http (10.96.45.2:80) has no ready endpoints; kube-proxy rejects its connections.",
            "message_zh": "Service default/api:http（10.96.45.2:80）没有就绪端点；kube-proxy 拒绝它的连接。",
            "evidence": [{"file": "n1/veth3a1f9c2e.pcap", "packet": 72, "line": None,
                          "text": "10.96.45.2 > 10.244.1.5 ICMP 3/3 port unreachable"},
                         {"file": "n1/iptables-save", "packet": None, "line": 23, "text": REJECT_RULE}],
            "fix": "kubectl -n default get endpointslices -l kubernetes.io/service-name=api\n"
                   "kubectl -n default describe service api   # check the selector matches ready pods",
            "fix_zh": "kubectl -n default get endpointslices -l kubernetes.io/service-name=api\n"
                      "kubectl -n default describe service api   # 检查选择器是否匹配就绪的 Pod",
            "checkable": True,
        }],
        "packets": 2, "bytes": 162, "first_seen": T0 + 5.0, "last_seen": T0 + 5.00011,
        "graph": graph,
        "ladder": {"lanes": _lanes("veth3a1f9c2e", "x")[:1],
                   "events": [_ev("n1/veth3a1f9c2e", 0.0, "n1/veth3a1f9c2e.pcap", 71, "fwd", "SYN"),
                              _ev("n1/veth3a1f9c2e", 0.00011, "n1/veth3a1f9c2e.pcap", 72, "rev", "ICMP 3/3")]},
    }


def rejected_no_endpoints() -> dict[str, Any]:
    """A service without endpoints: kube-proxy's REJECT."""
    return _doc([no_endpoints_flow()], nodes=[copy.deepcopy(N1)],
                inputs=[{"path": "n1", "type": "bundle", "node": "n1", "interface": None}],
                captures=[{"path": "n1/veth3a1f9c2e.pcap", "node": "n1", "interface": "veth3a1f9c2e", "frames": 90,
                           "first_ts": T0, "last_ts": T0 + 9.0, "link": "ethernet"}],
                clock_offsets=[])


def capture_only() -> dict[str, Any]:
    """One `tcpdump -i any` capture of n1, no dumps: inferred hops, suspicions, not_checkable."""
    hops = [
        _hop("n1:pod", "n1", "eth0", "pod", "SENT", None, E_POD["pod"]),
        _hop("n1:veth", "n1", "veth3a1f9c2e", "veth", "RECEIVED", True, E_POD["veth"],
             packets=_pk("any.pcap", 3, 9, 21)),
        _hop("n1:flannel.1", "n1", "flannel.1", "vtep", "ENCAPSULATED", True, E_POD["vtep_out"],
             packets=_pk("any.pcap", 4, 10, 22)),
        _hop("n1:eth0", "n1", "eth0", "nic", "TRANSMITTED", True, E_POD["eth0_out"],
             packets=_pk("any.pcap", 5, 11, 23)),
        _hop("underlay", None, None, "underlay", "CARRIED", None, E_POD["underlay"]),
        _hop("peer", "192.168.56.12", None, "host", "UNKNOWN", None,
             _expl("Nothing was captured on the receiving node, so what happened there cannot be seen.",
                   "接收节点上没有抓包，因此无法看到那里发生了什么。")),
    ]
    graph = _graph(hops, {2: ("encap", VXLAN_LABEL)}, {"n1:pod": "10.244.1.5", "peer": "192.168.56.12 (n2?)",
                                                      "underlay": "underlay"})
    lanes = [{"id": "any/veth3a1f9c2e", "label": "veth3a1f9c2e", "node": "n1", "interface": "veth3a1f9c2e"},
             {"id": "any/flannel.1", "label": "flannel.1", "node": "n1", "interface": "flannel.1"},
             {"id": "any/eth0", "label": "eth0", "node": "n1", "interface": "eth0"}]
    events = []
    for k, (rel, n) in enumerate(((0.0, 3), (1.0211, 9), (3.0644, 21))):
        label = "SYN" if k == 0 else "SYN (retransmission)"
        events += [_ev("any/veth3a1f9c2e", rel, "any.pcap", n, "fwd", label),
                   _ev("any/flannel.1", rel + 0.00002, "any.pcap", n + 1, "fwd", label),
                   _ev("any/eth0", rel + 0.00003, "any.pcap", n + 2, "fwd", label, "VXLAN vni 1")]
    flow = {
        "id": "f1", "proto": "tcp",
        "client": _ep("10.244.1.5", 41400, "pod", None, "n1"),
        "server": _ep("10.244.2.7", 80, "pod", None, None),
        "kind": "pod-to-pod-cross-node", "status": "no-reply",
        "verdict": {"en": "No reply: the SYN left n1 encapsulated in VXLAN towards 192.168.56.12 three times and nothing came back; without a capture on the other node the place of the loss is unknown.",
                    "zh": "无回应：SYN 三次被封装进 VXLAN 从 n1 发往 192.168.56.12，没有任何回包；另一节点没有抓包，无法确定丢失的位置。"},
        "translations": [], "encapsulation": [_encap()], "hops": hops,
        "findings": [{
            "code": "OVERLAY_PORT_BLOCKED", "severity": "info", "node": None,
            "message": "Suspicion: VXLAN packets to 192.168.56.12:8472 got no answer; a firewall on that node may drop UDP 8472. Capture there or give its dumps to confirm.",
            "message_zh": "疑似：发往 192.168.56.12:8472 的 VXLAN 报文没有回应；该节点上的防火墙可能丢弃了 UDP 8472。请在那里抓包或提供其转储以确认。",
            "evidence": [{"file": "any.pcap", "packet": 5, "line": None, "text": "192.168.56.11:40211 > 192.168.56.12:8472 VXLAN vni 1"}],
            "fix": None, "checkable": False,
        }],
        "packets": 9, "bytes": 882, "first_seen": T0, "last_seen": T0 + 3.0645,
        "graph": graph, "ladder": {"lanes": lanes, "events": events},
    }
    dns = {
        "id": "f2", "proto": "udp",
        "client": _ep("10.244.1.5", 53311, "pod", None, "n1"),
        "server": _ep("10.96.0.10", 53, "service", None, None),
        "kind": "pod-to-service", "status": "incomplete",
        "verdict": {"en": "Incomplete: one DNS query to 10.96.0.10:53 at the end of the capture; too little to say more.",
                    "zh": "不完整：抓包末尾只有一个发往 10.96.0.10:53 的 DNS 查询，信息太少，无法判断。"},
        "translations": [{"type": "dnat", "node": "n1", "from": "10.96.0.10:53", "to": None, "observed": False, "rule": None}],
        "encapsulation": [], "hops": [], "findings": [],
        "packets": 1, "bytes": 74, "first_seen": T0 + 9.9, "last_seen": T0 + 9.9,
    }
    return _doc(
        [flow, dns],
        nodes=[{"name": "n1", "addresses": ["192.168.56.11"], "pod_cidr": "10.244.1.0/24", "backend": "vxlan"},
               {"name": "192.168.56.12", "addresses": ["192.168.56.12"], "pod_cidr": None, "backend": "unknown"}],
        inputs=[{"path": "any.pcap", "type": "capture", "node": "n1", "interface": "any"}],
        captures=[{"path": "any.pcap", "node": "n1", "interface": "any", "frames": 26, "first_ts": T0 - 0.5,
                   "last_ts": T0 + 9.9, "link": "sll2"}],
        clock_offsets=[],
        not_checkable=[
            {"code": "FORWARD_BLOCKED", "reason": "needs iptables-save of the nodes"},
            {"code": "MISSING_FDB", "reason": "needs bridge-fdb of n1"},
            {"code": "SERVICE_NO_ENDPOINTS", "reason": "needs iptables-save or kubectl.json to name services and their endpoints"},
        ],
        warnings=["any.pcap: packet 26: truncated record (60 of 98 bytes); skipped"],
    )


def hostile() -> dict[str, Any]:
    """Markup and control characters in every kind of untrusted string."""
    flow = vxlan_flow("f1", client_name=f"default/{HOSTILE}", client_veth="veth\"><img src=x onerror=alert(2)>",
                      payload=f"len=96 HTTP GET /{HOSTILE}")
    flow["hops"][3]["evidence"][0]["text"] = f"-A FORWARD -m comment --comment \"{HOSTILE}\" -j ACCEPT"
    flow["hops"][1]["evidence"].append({"file": "n1/veth.pcap", "packet": 4, "line": None,
                                        "text": f"HTTP GET /{HOSTILE} Host: web"})
    flow["verdict"]["en"] = "Delivered, but the payload carried <b>markup</b> & a \x1b[31mterminal escape\x1b[0m."
    flow["findings"] = [{
        "code": "RETRANSMISSIONS", "severity": "warning", "node": "n1",
        "message": f"Retransmitted payload {HOSTILE}",
        "evidence": [{"file": "n1/iptables-save", "packet": None, "line": 12,
                      "text": f"-A KUBE-SERVICES -m comment --comment \"{HOSTILE}\" -j KUBE-SVC-X"}],
        "fix": "echo '</pre><script>alert(3)</script>'", "checkable": True,
    }]
    flow["translations"] = [{"type": "dnat", "node": "n1", "from": "10.96.0.1:80", "to": "10.244.2.7:80", "observed": True,
                             "rule": _rule("n1/iptables-save", 12, "nat", "KUBE-SEP-<X>",
                                           f"-A KUBE-SEP-X -m comment --comment \"{HOSTILE}\" -j DNAT --to-destination 10.244.2.7:80")}]
    flow["graph"]["edges"][3]["label"] = f"DNAT {HOSTILE}"
    flow["graph"]["edges"][3]["kind"] = "nat"
    doc = _doc([flow], warnings=[f"n1/iptables-save:99: unknown match \"{HOSTILE}\"; line skipped"],
               not_checkable=[{"code": "MISSING_FDB", "reason": f"needs bridge-fdb of {HOSTILE}"}])
    doc["nodes"][0]["name"] = "n1"
    doc["inputs"] = [{"path": f"{HOSTILE}.pcap", "type": "capture", "node": "n1", "interface": "eth0"}]
    return doc


def all_examples() -> dict[str, Any]:
    """One document holding the flows of every example (for the browser test and the filter)."""
    flows = (delivered_vxlan()["flows"] + service_dnat_masq()["flows"] + overlay_blocked()["flows"]
             + rejected_no_endpoints()["flows"])
    hostile_flow = hostile()["flows"][0]
    hostile_flow["id"] = "f6"
    flows.append(hostile_flow)
    no_reply = capture_only()["flows"][0]
    no_reply["id"] = "f7"
    flows.append(no_reply)
    for i, f in enumerate(flows, 1):
        f["id"] = f"f{i}"
    doc = _doc(flows, warnings=hostile()["warnings"], not_checkable=capture_only()["not_checkable"])
    doc["captures"] = overlay_blocked()["captures"]
    return doc


EXAMPLES = {
    "delivered_vxlan": delivered_vxlan,
    "service_dnat_masq": service_dnat_masq,
    "overlay_blocked": overlay_blocked,
    "rejected_no_endpoints": rejected_no_endpoints,
    "capture_only": capture_only,
    "hostile": hostile,
}
