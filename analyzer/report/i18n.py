"""UI strings of the reports in English and Chinese.

Data texts (verdicts, hop explanations, finding messages and fixes) come from the explain
document itself (``verdict["zh"]``, ``explanation["zh"]``, ``message_zh``/``fix_zh``); this module
holds only the words of the report around them. ``text(lang, key)`` falls back to English for a
key a language lacks, so a missing translation never breaks a report.
"""

from __future__ import annotations

from typing import Any

LANGS = ("en", "zh")

STATUSES = ("delivered", "refused", "rejected", "dropped", "no-reply", "incomplete")

_EN: dict[str, str] = {
    "title": "k8s-trace report",
    "generated": "generated",
    "summary": "Summary",
    "flows": "Flows",
    "inputs": "Inputs",
    "nodes": "Nodes",
    "captures": "Captures",
    "clock_offsets": "Clock offsets",
    "node": "node",
    "addresses": "addresses",
    "pod_cidr": "pod CIDR",
    "backend": "backend",
    "path": "path",
    "type": "type",
    "interface": "interface",
    "frames": "frames",
    "first": "first",
    "last": "last",
    "link": "link type",
    "offset": "offset",
    "basis": "basis",
    "status": "status",
    "kind": "kind",
    "proto": "proto",
    "client": "client",
    "server": "server",
    "nat": "NAT",
    "encap": "encapsulation",
    "packets": "packets",
    "bytes": "bytes",
    "duration": "duration",
    "findings": "Findings",
    "global_findings": "Findings not tied to one flow",
    "warnings": "Warnings",
    "not_checkable": "Not checkable without more input",
    "verdict": "Verdict",
    "path_title": "Path",
    "ladder_title": "Packets across capture points",
    "hops_title": "Hops",
    "reply_title": "Reply direction",
    "hop": "hop",
    "action": "action",
    "seen": "seen",
    "evidence": "evidence",
    "explanation": "what happens here",
    "fix": "fix",
    "copy": "copy",
    "copied": "copied",
    "filter": "Filter",
    "filter_placeholder": "address, name, kind, finding code… ( / )",
    "observed": "observed",
    "inferred": "inferred (no capture there)",
    "absent": "absent (captured there, packet not seen)",
    "failed_here": "packet died here",
    "obs_short": "seen",
    "inf_short": "inferred",
    "abs_short": "absent",
    "failed_short": "FAILED",
    "legend": "legend",
    "no_graph": "No path graph in this document for this flow.",
    "no_ladder": "The document has no packet events for this flow.",
    "no_flows": "No flows.",
    "glossary": "Glossary",
    "severity": "severity",
    "code": "code",
    "reason": "reason",
    "none": "none",
    "unknown": "unknown",
    "to_top": "top",
    "fwd": "client → server",
    "rev": "server → client",
    "time": "time",
    "lane": "capture point",
    "underlay": "underlay",
    "band_underlay": "underlay",
    "problems": "What went wrong",
    "problems_more": "… and {count} more failing flows: see the table below.",
    "band_unknown": "node ?",
    "lane_empty": "no packet of this flow",
    "other_findings": "Findings on flows that were delivered",
    "omitted": "{count} more flows are listed in the table only: detail sections are drawn for {limit} flows, failing ones first. The JSON output has every flow in full.",
    "pods_word": "pods",
    "nat_not_seen": "not seen in a capture",
    "band_service": "service",
    "band_external": "external",
    "rel_time": "time since the flow's first packet",
    "translations": "translations",
    "rule": "rule",
    "checkable_no": "suspicion: needs dumps to confirm",
    "noscript": "Filtering needs JavaScript; all flows are shown.",
    "summary_line": "{flows} flows",
    "summary_line_one": "{flows} flow",
    "legend_nat": "NAT",
    "legend_encap": "encap / decap",
    "legend_drop": "drop",
    "text_hop_legend": "marks: + seen in a capture, ? inferred from dumps, x captured there but absent, ! failed here",
    "text_more_packets": "more",
}

_ZH: dict[str, str] = {
    "title": "k8s-trace 报告",
    "generated": "生成时间",
    "summary": "概要",
    "flows": "流",
    "inputs": "输入",
    "nodes": "节点",
    "captures": "抓包文件",
    "clock_offsets": "时钟偏差",
    "node": "节点",
    "addresses": "地址",
    "pod_cidr": "Pod 网段",
    "backend": "后端",
    "path": "路径",
    "type": "类型",
    "interface": "接口",
    "frames": "帧数",
    "first": "首包",
    "last": "末包",
    "link": "链路类型",
    "offset": "偏差",
    "basis": "依据",
    "status": "状态",
    "kind": "类别",
    "proto": "协议",
    "client": "客户端",
    "server": "服务端",
    "nat": "地址转换",
    "encap": "封装",
    "packets": "包数",
    "bytes": "字节",
    "duration": "时长",
    "findings": "诊断结果",
    "global_findings": "不属于单个流的诊断结果",
    "warnings": "警告",
    "not_checkable": "缺少输入、无法检查的项目",
    "verdict": "结论",
    "path_title": "路径",
    "ladder_title": "各抓包点上的报文",
    "hops_title": "逐跳详情",
    "reply_title": "回包方向",
    "hop": "跳",
    "action": "动作",
    "seen": "是否看到",
    "evidence": "证据",
    "explanation": "这一跳做了什么",
    "fix": "修复",
    "copy": "复制",
    "copied": "已复制",
    "filter": "筛选",
    "filter_placeholder": "地址、名称、类别、诊断代码…（/）",
    "observed": "已观测到",
    "inferred": "推断（该处没有抓包）",
    "absent": "缺失（该处有抓包，但没有看到报文）",
    "failed_here": "报文在此处丢失",
    "obs_short": "已观测",
    "inf_short": "推断",
    "abs_short": "缺失",
    "failed_short": "失败",
    "legend": "图例",
    "no_graph": "文档中没有这个流的路径图。",
    "no_ladder": "文档中没有这个流的报文事件。",
    "no_flows": "没有流。",
    "glossary": "术语表",
    "severity": "级别",
    "code": "代码",
    "reason": "原因",
    "none": "无",
    "unknown": "未知",
    "to_top": "顶部",
    "fwd": "客户端 → 服务端",
    "rev": "服务端 → 客户端",
    "time": "时间",
    "lane": "抓包点",
    "underlay": "底层网络",
    "band_underlay": "底层网络",
    "problems": "出了什么问题",
    "problems_more": "……另有 {count} 个失败的流：见下表。",
    "band_unknown": "节点 ?",
    "lane_empty": "没有该流的报文",
    "other_findings": "已送达的流上的诊断结果",
    "omitted": "另有 {count} 个流只在表中列出：详情部分最多绘制 {limit} 个流，失败的流优先。JSON 输出包含所有流的完整内容。",
    "pods_word": "Pod 网段",
    "nat_not_seen": "抓包中未见",
    "band_service": "Service",
    "band_external": "外部",
    "rel_time": "距该流首包的时间",
    "translations": "地址转换",
    "rule": "规则",
    "checkable_no": "疑似问题：需要节点转储才能确认",
    "noscript": "筛选功能需要 JavaScript；当前显示全部流。",
    "summary_line": "{flows} 个流",
    "legend_nat": "地址转换",
    "legend_encap": "封装 / 解封装",
    "legend_drop": "丢弃",
    "text_hop_legend": "标记：+ 抓包中看到，? 由转储推断，x 该处有抓包但没有看到，! 在此失败",
    "text_more_packets": "更多",
}

_STATUS: dict[str, dict[str, str]] = {
    "en": {
        "delivered": "delivered",
        "refused": "refused",
        "rejected": "rejected",
        "dropped": "dropped",
        "no-reply": "no reply",
        "incomplete": "incomplete",
    },
    "zh": {
        "delivered": "已送达",
        "refused": "连接被拒",
        "rejected": "被拒绝",
        "dropped": "被丢弃",
        "no-reply": "无回应",
        "incomplete": "不完整",
    },
}

_KIND: dict[str, dict[str, str]] = {
    "en": {},
    "zh": {
        "same-pod": "同一 Pod 内",
        "pod-to-pod-same-node": "同节点 Pod 到 Pod",
        "pod-to-pod-cross-node": "跨节点 Pod 到 Pod",
        "pod-to-service": "Pod 到 Service",
        "pod-to-external": "Pod 到外部",
        "external-to-service": "外部到 Service",
        "node-to-pod": "节点到 Pod",
        "pod-to-node": "Pod 到节点",
        "other": "其他",
    },
}

_SEVERITY: dict[str, dict[str, str]] = {
    "en": {"error": "error", "warning": "warning", "info": "info"},
    "zh": {"error": "错误", "warning": "警告", "info": "提示"},
}

#: (term, English meaning, Chinese meaning)
GLOSSARY: tuple[tuple[str, str, str], ...] = (
    (
        "veth",
        "A virtual Ethernet cable with two ends: one end is eth0 inside the pod's network namespace, "
        "the other (vethXXXX) sits on the node and is plugged into the cni0 bridge.",
        "虚拟以太网线，有两端：一端是 Pod 网络命名空间里的 eth0，另一端（vethXXXX）在节点上，接在 cni0 网桥上。",
    ),
    (
        "cni0",
        "The Linux bridge on each node that joins the pods' veths; it holds the gateway address of "
        "the node's pod subnet (e.g. 10.244.1.1/24).",
        "每个节点上的 Linux 网桥，连接各个 Pod 的 veth；它持有本节点 Pod 子网的网关地址（例如 10.244.1.1/24）。",
    ),
    (
        "flannel.1",
        "flannel's VXLAN device. Packets routed to another node's pod subnet go out through it and "
        "are wrapped in VXLAN (UDP 8472) towards that node.",
        "flannel 的 VXLAN 设备。发往其他节点 Pod 子网的报文经它发出，并被封装成 VXLAN（UDP 8472）发往该节点。",
    ),
    (
        "VTEP",
        "VXLAN Tunnel End Point: the address (the node's IP) and MAC of a VXLAN device that "
        "encapsulates and decapsulates. flannel programs the remote VTEPs into the neighbour table "
        "and the bridge FDB.",
        "VXLAN 隧道端点：执行封装和解封装的 VXLAN 设备的地址（节点 IP）和 MAC。flannel 把远端 VTEP 写入邻居表和网桥 FDB。",
    ),
    (
        "VXLAN",
        "Virtual eXtensible LAN: an Ethernet frame carried inside UDP (flannel: port 8472, IANA: 4789) "
        "between node addresses, tagged with a 24-bit network identifier (VNI).",
        "虚拟可扩展局域网：把以太网帧装进节点地址之间的 UDP 报文（flannel 用 8472 端口，IANA 为 4789），并带 24 位网络标识（VNI）。",
    ),
    (
        "DNAT",
        "Destination NAT: kube-proxy rewrites a service address (ClusterIP:port) to one backend pod "
        "address in the nat table's PREROUTING/OUTPUT chains.",
        "目的地址转换：kube-proxy 在 nat 表的 PREROUTING/OUTPUT 链里把 Service 地址（ClusterIP:端口）改写为某个后端 Pod 地址。",
    ),
    (
        "MASQUERADE",
        "Source NAT to the address of the outgoing interface, done in POSTROUTING; used for pod "
        "traffic leaving the cluster and for traffic kube-proxy marks with 0x4000.",
        "在 POSTROUTING 中把源地址改为出接口地址的源地址转换；用于离开集群的 Pod 流量和被 kube-proxy 打上 0x4000 标记的流量。",
    ),
    (
        "conntrack",
        "The kernel's connection tracking table. NAT is decided on a connection's first packet and "
        "applied to every later packet, in both directions, from this table.",
        "内核的连接跟踪表。地址转换在连接的第一个报文上决定，之后两个方向的所有报文都按这张表转换。",
    ),
    (
        "KUBE-SVC / KUBE-SEP",
        "kube-proxy's iptables chains: KUBE-SVC-… picks one endpoint of a service (with -m statistic), "
        "KUBE-SEP-… holds the DNAT to that endpoint's pod address.",
        "kube-proxy 的 iptables 链：KUBE-SVC-… 为一个 Service 选择一个端点（使用 -m statistic），KUBE-SEP-… 执行到该端点 Pod 地址的 DNAT。",
    ),
    (
        "table ip kube-proxy (nftables mode)",
        "kube-proxy's nftables mode keeps its rules in nft list ruleset, not in iptables-save: the "
        "services chain looks the destination up in the @service-ips map (NodePorts in "
        "@service-nodeports), a service-… chain picks one endpoint with numgen random mod N (1/N "
        "each), an endpoint-… chain holds the DNAT; mark-for-masquerade sets mark 0x4000 and "
        "masquerading masquerades marked packets; @no-endpoint-services sends services without "
        "endpoints to reject-chain, and cluster-ips-check drops unallocated ClusterIPs.",
        "kube-proxy 的 nftables 模式把规则放在 nft list ruleset 中，而不在 iptables-save 里：services "
        "链在 @service-ips 映射中查找目的地址（NodePort 在 @service-nodeports 中），service-… 链用 "
        "numgen random mod N 选择一个端点（各 1/N），endpoint-… 链执行 DNAT；mark-for-masquerade 打上 "
        "0x4000 标记，masquerading 对带标记的报文做 MASQUERADE；@no-endpoint-services 把没有端点的 Service "
        "交给 reject-chain 拒绝，cluster-ips-check 丢弃未分配的 ClusterIP。",
    ),
)


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"unknown report language {lang!r} (choose from {', '.join(LANGS)})")
    return lang


def text(lang: str, key: str, **fmt: Any) -> str:
    """The UI string ``key`` in ``lang``; with a count argument equal to 1, its ``_one`` form if any."""
    table = _ZH if lang == "zh" else _EN
    if any(v == 1 and not isinstance(v, bool) for v in fmt.values()) and f"{key}_one" in table:
        key = f"{key}_one"
    value = table.get(key) or _EN[key]
    return value.format(**fmt) if fmt else value


def _raw(value: Any) -> str:
    """A value with no translation, shown as it is but made printable (it comes from the document)."""
    from analyzer.report.fmt import clean  # fmt uses i18n too; import at call time

    return clean(value)


def status_word(lang: str, status: Any) -> str:
    if not status:
        return text(lang, "unknown")
    if not isinstance(status, str):
        return _raw(status)
    return _STATUS.get(lang, {}).get(status) or _STATUS["en"].get(status) or _raw(status)


def kind_word(lang: str, kind: Any) -> str:
    if not kind:
        return text(lang, "unknown")
    if not isinstance(kind, str):
        return _raw(kind)
    return _KIND.get(lang, {}).get(kind) or _raw(kind)


def severity_word(lang: str, severity: Any) -> str:
    if not severity:
        return text(lang, "unknown")
    if not isinstance(severity, str):
        return _raw(severity)
    return _SEVERITY.get(lang, {}).get(severity) or _raw(severity)


_SEVERITY_PLURAL = {"error": "errors", "warning": "warnings", "info": "info"}


def severity_count(lang: str, severity: str, count: int) -> str:
    """``2 errors``, ``1 warning``, ``3 错误``."""
    word = severity_word(lang, severity)
    if lang == "en" and count != 1:
        word = _SEVERITY_PLURAL.get(severity, word)
    return f"{count} {word}"


def glossary(lang: str) -> list[tuple[str, str]]:
    return [(term, zh if lang == "zh" else en) for term, en, zh in GLOSSARY]


def pick(lang: str, value: Any) -> str:
    """The ``lang`` text of a ``{"en", "zh"}`` dict (English when missing), or ``value`` itself."""
    if isinstance(value, dict):
        got = value.get(lang) or value.get("en") or ""
        return str(got)
    return "" if value is None else str(value)


def finding_text(lang: str, finding: dict[str, Any], key: str) -> str:
    """``message``/``fix`` of a finding in ``lang`` (``message_zh``...), English when missing."""
    if lang != "en":
        local = finding.get(f"{key}_{lang}")
        if local:
            return str(local)
    value = finding.get(key)
    return "" if value is None else str(value)
