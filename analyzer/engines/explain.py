"""Every sentence explain shows a user, in English and Chinese.

The other explain engines decide *what* happened (hops, status, findings) and pass the facts
here as keyword parameters; this module only words them. Keeping the wording in one place keeps
the two languages in step and lets the reports stay free of prose.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache

from analyzer.model.explain import PathHop

Text = dict[str, str]


class _Blank(dict):
    """str.format_map helper: a missing parameter renders as '?' rather than raising."""

    def __missing__(self, key: str) -> str:
        return "?"


def _fmt(template: str, params: Mapping[str, object]) -> str:
    return template.format_map(_Blank({k: ("?" if v is None else v) for k, v in params.items()}))


# ----------------------------------------------------------------------------- hops

#: (kind, action) -> (English, Chinese). Parameters come from ``PathHop.facts`` plus node/interface.
HOP_TEXT: dict[tuple[str, str], tuple[str, str]] = {
    ("pod", "send"): (
        "Pod {ip} sends the packet out of its eth0; the other end of that veth pair sits in the node.",
        "Pod {ip} 从自己的 eth0 发出数据包；这对 veth 的另一端在节点上。",
    ),
    ("pod", "deliver"): (
        "The packet reaches pod {ip} through its eth0, where the server socket receives it.",
        "数据包经 eth0 到达 pod {ip}，由其中的服务端套接字接收。",
    ),
    ("veth", "enter"): (
        "The node's end of the pod's veth pair ({interface}) receives the frame and hands it to the bridge it is attached to.",
        "pod veth 对在节点上的一端（{interface}）收到帧，交给它所连接的网桥。",
    ),
    ("veth", "exit"): (
        "The bridge sends the frame out of the veth port ({interface}) that leads into the destination pod.",
        "网桥把帧从通往目标 pod 的 veth 端口（{interface}）发出。",
    ),
    ("bridge", "bridge"): (
        "The Linux bridge {interface} (the pods' default gateway, {gateway}) switches the frame; "
        "a packet for another subnet goes up to the node's IP stack for routing.",
        "Linux 网桥 {interface}（pod 的默认网关 {gateway}）交换该帧；去往其他网段的包交给节点 IP 协议栈路由。",
    ),
    ("bridge", "switch"): (
        "The Linux bridge {interface} switches the frame straight from the sender's port to the destination pod's "
        "port (same node, same subnet: no routing); with br_netfilter the iptables hooks still see it. A capture "
        "on the bridge device shows a switched frame only in promiscuous mode.",
        "Linux 网桥 {interface} 把帧直接从发送方端口交换到目标 pod 的端口（同一节点、同一网段，不经路由）；"
        "启用 br_netfilter 时 iptables 钩子仍会处理它。网桥设备上的抓包只有在混杂模式下才能看到被交换的帧。",
    ),
    ("bridge", "exit"): (
        "The node routes the packet to the bridge {interface}, which forwards it to the port of the destination pod.",
        "节点把数据包路由到网桥 {interface}，网桥再转发到目标 pod 所在端口。",
    ),
    ("netfilter", "prerouting"): (
        "netfilter PREROUTING (nat): kube-proxy's service rules (the KUBE-SERVICES chain in iptables mode, the services "
        "chain of table ip kube-proxy in nftables mode) look for a service address; {what}",
        "netfilter PREROUTING（nat）：kube-proxy 的服务规则（iptables 模式下的 KUBE-SERVICES 链，nftables 模式下 table ip "
        "kube-proxy 的 services 链）匹配服务地址；{what_zh}",
    ),
    ("netfilter", "output"): (
        "netfilter OUTPUT: packets the node sends itself go through kube-proxy's rules too; {what}",
        "netfilter OUTPUT：节点自身发出的包同样经过 kube-proxy 的规则；{what_zh}",
    ),
    ("netfilter", "forward"): (
        "netfilter FORWARD (filter: iptables, and nftables tables hooked there) decides whether the node may route this "
        "packet between interfaces; "
        "then POSTROUTING (nat) may rewrite the source. {what}",
        "netfilter FORWARD（filter：iptables 及挂在该钩子上的 nftables 表）决定节点是否转发该包；随后 POSTROUTING（nat）可能改写源地址。"
        "{what_zh}",
    ),
    ("netfilter", "input"): (
        "iptables INPUT on {node}: the {tunnel} packet ({carried}) is addressed to the node itself, so the host "
        "firewall must accept it before the kernel decapsulates it. {what}",
        "{node} 上的 iptables INPUT：{tunnel} 包（{carried_zh}）发往节点本身，主机防火墙必须先放行，内核才能解封装。{what_zh}",
    ),
    ("netfilter", "local-input"): (
        "iptables INPUT on {node}: the packet is for the node itself; kube-proxy's KUBE-EXTERNAL-SERVICES and "
        "KUBE-NODEPORTS chains and the host firewall decide whether a local socket gets it.",
        "{node} 上的 iptables INPUT：数据包发往节点本身；kube-proxy 的 KUBE-EXTERNAL-SERVICES、KUBE-NODEPORTS 链和主机防火墙决定本地套接字能否收到它。",
    ),
    ("netfilter", "postrouting"): (
        "netfilter POSTROUTING (nat): flannel's and kube-proxy's masquerade rules rewrite a pod source "
        "leaving the cluster to the node's address. {what}",
        "netfilter POSTROUTING（nat）：flannel 与 kube-proxy 的伪装（masquerade）规则把离开集群的 pod 源地址改写为节点地址。{what_zh}",
    ),
    ("route", "route"): (
        "Routing on {node}: the kernel picks the most specific route for {dst}{route}.",
        "{node} 上的路由：内核为 {dst} 选择最具体的路由{route_zh}。",
    ),
    ("vtep", "encap"): (
        "The VXLAN device {interface} wraps the frame in UDP {port} (VNI {vni}) addressed to the peer node's "
        "VTEP {peer}, using its neighbour (VTEP MAC) and FDB (VTEP MAC -> node address) entries.",
        "VXLAN 设备 {interface} 用 UDP {port}（VNI {vni}）封装该帧，发往对端节点 VTEP {peer}；依据邻居表（VTEP MAC）和 FDB（VTEP MAC -> 节点地址）。",
    ),
    ("vtep", "decap"): (
        "The VXLAN device {interface} removes the outer headers; the inner pod-to-pod packet re-enters the IP stack.",
        "VXLAN 设备 {interface} 剥去外层头部；内层 pod 到 pod 的包重新进入 IP 协议栈。",
    ),
    ("nic", "transmit"): (
        "The node's network interface {interface} puts the packet on the wire{outer}.",
        "节点网卡 {interface} 把数据包发到线路上{outer_zh}。",
    ),
    ("nic", "receive"): (
        "The node's network interface {interface} receives the packet from the wire{outer}.",
        "节点网卡 {interface} 从线路上收到数据包{outer_zh}。",
    ),
    ("underlay", "carry"): (
        "The underlay network carries the packet between the nodes ({outer}); firewalls and security groups on "
        "the way must allow it.",
        "底层网络在节点之间传送该包（{outer}）；沿途的防火墙和安全组必须放行。",
    ),
    ("external", "send"): (
        "The external client {ip} sends the packet to the node.",
        "外部客户端 {ip} 向节点发送数据包。",
    ),
    ("external", "deliver"): (
        "The packet leaves the cluster toward {ip}.",
        "数据包离开集群，发往 {ip}。",
    ),
    ("host", "send"): (
        "The node {node} itself ({ip}) sends the packet.",
        "节点 {node} 本身（{ip}）发出数据包。",
    ),
    ("host", "deliver"): (
        "The packet is delivered to a socket of the node {node} itself ({ip}).",
        "数据包交付给节点 {node} 本身（{ip}）的套接字。",
    ),
}


def hop_explanation(hop: PathHop) -> Text:
    return dict(_hop_explanation(hop.kind, hop.action, hop.node, hop.interface, hop.label, hop.facts))


@lru_cache(maxsize=4096)
def _hop_explanation(kind: str, action: str, node: str | None, interface: str | None, label: str,
                     facts: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Cached: thousands of flows share a handful of distinct hops (and their strings)."""
    hop = PathHop(id="", node=node, interface=interface, kind=kind, action=action, label=label, facts=facts)
    return tuple(_word_hop(hop).items())


def _word_hop(hop: PathHop) -> Text:
    params: dict[str, object] = {"node": hop.node or "the node", "interface": hop.interface or "?"}
    params.update(dict(hop.facts))
    params.setdefault("what", "")
    params.setdefault("what_zh", params["what"])
    params.setdefault("route", "")
    params.setdefault("route_zh", params["route"])
    params.setdefault("outer", "")
    params.setdefault("outer_zh", params["outer"])
    params.setdefault("tunnel", "VXLAN")
    if "ipproto" in params:
        params.setdefault("carried", f"IP protocol {params['ipproto']}")
        params.setdefault("carried_zh", f"IP 协议 {params['ipproto']}")
    params.setdefault("carried", f"UDP {params.get('port', '?')}")
    params.setdefault("carried_zh", params["carried"])
    en, zh = HOP_TEXT.get((hop.kind, hop.action), ("{label}", "{label}"))
    params.setdefault("label", hop.label)
    return {"en": _fmt(en, params).strip(), "zh": _fmt(zh, params).strip()}


# ----------------------------------------------------------------------------- verdicts

STATUS_TEXT: dict[str, tuple[str, str]] = {
    "delivered": ("delivered", "已送达"),
    "refused": ("refused", "被拒绝连接"),
    "rejected": ("rejected", "被拒绝"),
    "dropped": ("dropped", "被丢弃"),
    "no-reply": ("no reply", "无应答"),
    "incomplete": ("incomplete capture", "抓包不完整"),
}


#: ICMP (type, code) -> what it means, in words (en, zh): the errors a Kubernetes path produces
ICMP_MEANING: dict[tuple[int, int], tuple[str, str]] = {
    (3, 0): ("net unreachable", "网络不可达"),
    (3, 1): ("host unreachable", "主机不可达"),
    (3, 3): ("port unreachable: iptables REJECT's default, or no socket", "端口不可达：iptables REJECT 的默认回应，或没有监听套接字"),
    (3, 4): ("fragmentation needed", "需要分片"),
    (3, 9): ("network administratively prohibited", "网络被管理性禁止"),
    (3, 10): ("host administratively prohibited: iptables REJECT --reject-with icmp-host-prohibited",
              "主机被管理性禁止：iptables REJECT --reject-with icmp-host-prohibited"),
    (3, 13): ("communication administratively prohibited: a firewall's REJECT", "通信被管理性禁止：防火墙的 REJECT"),
    (11, 0): ("TTL exceeded in transit: a routing loop?", "传输中 TTL 超时：路由环路？"),
}

_RP_WORDS_ZH = {"strict": "严格", "loose": "宽松"}
#: why the reverse-path filter refused a source (engines/routing.py's _reverse_path_filter)
_RP_WHY_ZH: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(a), b) for a, b in (
    (r"^the route back to source (\S+) leaves via (\S+), not (\S+) where the packet came in$",
     r"回到源地址 \1 的路由经 \2 离开，而不是数据包进入的 \3"),
    (r"^there is no usable route back to source (\S+) \((\S+)\)$", r"没有回到源地址 \1 的可用路由（\2）"),
    (r"^source (\S+) is one of the node's own addresses \(a martian source\)$",
     r"源地址 \1 是节点自身的地址（martian 源地址）"),
))


def _rp_why_zh(why: str) -> str:
    return next((p.sub(r, why) for p, r in _RP_WHY_ZH if p.match(why)), why)


_REASON_ZH: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = tuple(
    (re.compile(a), b) for a, b in (
    (r"^the server answered$", "服务端有应答"),
    (r"^the server reset the connection$", "服务端重置了连接"),
    (r"^the destination answered port unreachable$", "目标回复端口不可达"),
    (r"^ICMP fragmentation needed \(MTU (\S+)\) from (\S+)$", r"来自 \2 的 ICMP 需要分片（MTU \1）"),
    (r"^ICMP (\d+)/(\d+) from (\S+)$", r"来自 \3 的 ICMP \1/\2"),
    (r"^no packet from the client was captured$", "没有抓到客户端发出的包"),
    (r"^nothing came back$", "没有任何回包"),
    # the route lookups simulate drops at (engines/routing.py)
    (r"^(\S+) is not one of the node's addresses and it came in on (\S+), where forwarding is off \((.+)\): the "
     r"kernel does not route it on \(it would leave by (\S+)\) and drops it silently, before the FORWARD chain, "
     r"without an ICMP error\.?$",
     r"\1 不是节点自身的地址，它从 \2 进入，而该设备关闭了转发（\3）：内核不再路由它（本应经 \4 离开），"
     r"在 FORWARD 链之前静默丢弃，不发送 ICMP 差错"),
    (r"^[Tt]he reverse-path filter \(rp_filter=(\d), (strict|loose)\) on (\S+) drops it: (.+?)\.?$",
     lambda m: f"{m[3]} 上的{_RP_WORDS_ZH.get(m[2], m[2])}反向路径过滤（rp_filter={m[1]}）丢弃了它：{_rp_why_zh(m[4])}"),
    (r"^a capture point on the path never saw it$", "路径上的某个抓包点没有看到它"),
    (r"^the capture starts in the middle of the connection$", "抓包从连接中途开始"),
    (r"^the capture ends (\d+) ms after the flow's first packet: too soon for an answer$",
     r"抓包在该流的第一个包之后 \1 ms 就结束了：来不及等到应答"),
    (r"^the answer reached the client from (\S+), not from (\S+) \(not un-DNATed\), and the client reset it$",
     r"应答以 \1 而不是 \2 的身份到达客户端（没有撤销 DNAT），客户端将其重置"),
    (r"^the answer reached the client from (\S+), not from (\S+) \(not un-DNATed\)$",
     r"应答以 \1 而不是 \2 的身份到达客户端（没有撤销 DNAT）"),
))
_ONLY_ERROR = "; only the ICMP error was captured, not the flow's own packets"


def reason_zh(reason: str) -> str:
    """The Chinese of a status reason (the fixed phrases of ``answer_status`` and explain's own);
    a reason from elsewhere (a simulated rule's explanation) stays as it is."""
    tail = ""
    if reason.endswith(_ONLY_ERROR):
        reason, tail = reason[: -len(_ONLY_ERROR)], "；只抓到了 ICMP 错误报文，没有抓到该流自身的包"
    meaning = ""
    m = re.search(r" \(([^()]*)\)$", reason)
    if m is not None and reason.startswith("ICMP ") and not reason.startswith("ICMP fragmentation"):
        zh = next((z for e, z in ICMP_MEANING.values() if e == m.group(1)), None)
        if zh is not None:
            reason, meaning = reason[: m.start()], f"（{zh}）"
    for pattern, repl in _REASON_ZH:
        if pattern.match(reason):
            return pattern.sub(repl, reason) + meaning + tail
    return reason + meaning + tail


def verdict(
    *,
    proto: str,
    client: str,
    server: str,
    status: str,
    reason: str,
    last_seen: str | None,
    failed_at: str | None,
    via: str | None = None,
    reply_failed: bool = False,
) -> Text:
    """One sentence: what happened to the flow and where (``reply_failed``: the forward packets
    arrived and the answer is what failed)."""
    head = f"{proto.upper()} {client} -> {server}"
    via_en = f" (via {via})" if via else ""
    via_zh = f"（经 {via}）" if via else ""
    if status == "delivered":
        return {"en": f"{head}{via_en}: delivered, the server answered.", "zh": f"{head}{via_zh}：已送达，服务端有应答。"}
    if status == "refused":
        return {"en": f"{head}{via_en}: refused: {reason}.", "zh": f"{head}{via_zh}：连接被拒绝：{reason_zh(reason)}。"}
    if status == "rejected":
        at = f" at {failed_at}" if failed_at else ""
        at_zh = f"在 {failed_at} " if failed_at else ""
        return {"en": f"{head}{via_en}: rejected{at}: {reason}.",
                "zh": f"{head}{via_zh}：{at_zh}被拒绝：{reason_zh(reason)}。"}
    if status == "dropped" and reply_failed:
        at = f" at {failed_at}" if failed_at else ""
        at_zh = f"在 {failed_at} " if failed_at else ""
        return {"en": f"{head}{via_en}: the server answered, but the answer went wrong on the way back{at}: {reason}.",
                "zh": f"{head}{via_zh}：服务端有应答，但应答在返回途中{at_zh}出错：{reason_zh(reason)}。"}
    if status == "dropped":
        seen = f" last seen at {last_seen}," if last_seen else ""
        seen_zh = f"最后出现在 {last_seen}，" if last_seen else ""
        return {
            "en": f"{head}{via_en}: dropped;{seen} never seen at {failed_at or 'the next capture point'}.",
            "zh": f"{head}{via_zh}：被丢弃；{seen_zh}未出现在 {failed_at or '下一个抓包点'}。",
        }
    if status == "no-reply":
        seen = f" last seen at {last_seen}" if last_seen else ""
        seen_zh = f"，最后出现在 {last_seen}" if last_seen else ""
        return {
            "en": f"{head}{via_en}: no reply{seen}; no capture shows where it stopped.",
            "zh": f"{head}{via_zh}：无应答{seen_zh}；没有抓包能显示它在何处停止。",
        }
    return {
        "en": f"{head}{via_en}: too little was captured to decide ({reason}).",
        "zh": f"{head}{via_zh}：抓到的包太少，无法判断（{reason_zh(reason)}）。",
    }


# ----------------------------------------------------------------------------- findings

#: code -> (message, message_zh, fix, fix_zh); parameters from diagnose.py.
FINDING_TEXT: dict[str, tuple[str, str, str, str]] = {
    "OVERLAY_PORT_BLOCKED": (
        "VXLAN packets (UDP {port}) from {peer} to {node_ip} are {how} on {node}: {observed}",
        "从 {peer} 发往 {node_ip} 的 VXLAN 包（UDP {port}）在 {node} 上被{how_zh}：{observed_zh}",
        "{first}Allow the overlay port between the nodes on {node}: "
        "`iptables -I INPUT -p udp --dport {port} -s {peer} -j ACCEPT` "
        "(firewalld: `firewall-cmd --permanent --add-port={port}/udp && firewall-cmd --reload`); "
        "also open UDP {port} in any cloud security group between {peer} and {node_ip}.",
        "{first_zh}在 {node} 上放行节点之间的 overlay 端口："
        "`iptables -I INPUT -p udp --dport {port} -s {peer} -j ACCEPT`"
        "（firewalld：`firewall-cmd --permanent --add-port={port}/udp && firewall-cmd --reload`）；"
        "云安全组中也要放行 {peer} 与 {node_ip} 之间的 UDP {port}。",
    ),
    "SERVICE_NO_ENDPOINTS": (
        "Service {service} ({addr}) has no ready endpoints; {observed}",
        "服务 {service}（{addr}）没有就绪的后端；{observed_zh}",
        "Check the service's selector and its pods: `kubectl get endpointslices -n {namespace} "
        "-l kubernetes.io/service-name={name}` and `kubectl get pods -n {namespace} --show-labels`; "
        "make the pods Ready or fix the selector.",
        "检查服务的 selector 与 pod：`kubectl get endpointslices -n {namespace} "
        "-l kubernetes.io/service-name={name}` 和 `kubectl get pods -n {namespace} --show-labels`；"
        "让 pod 就绪或修正 selector。",
    ),
    "NO_LOCAL_ENDPOINTS": (
        "Service {service} uses externalTrafficPolicy: Local and node {node} has no endpoint of it, so "
        "kube-proxy drops {addr} there: {observed}",
        "服务 {service} 使用 externalTrafficPolicy: Local，而节点 {node} 上没有它的后端，kube-proxy 在此丢弃 {addr}：{observed_zh}",
        "Send the traffic only to nodes that run a pod of the service (load balancer health checks on "
        "healthCheckNodePort), or set `externalTrafficPolicy: Cluster` if the client address need not be kept.",
        "只把流量发往运行该服务 pod 的节点（负载均衡器对 healthCheckNodePort 做健康检查），"
        "或在无需保留客户端地址时设置 `externalTrafficPolicy: Cluster`。",
    ),
    "MTU_EXCEEDED": (
        "Packets of {size} bytes exceed the path MTU {mtu} on {node}{where}: {observed}",
        "{size} 字节的包超过了 {node}{where_zh} 的路径 MTU {mtu}：{observed_zh}",
        "Give pods an MTU that fits the overlay: the VXLAN device's MTU ({mtu}) at most, i.e. the underlay MTU "
        "minus 50 bytes (flannel writes it to /run/flannel/subnet.env as FLANNEL_MTU and the CNI config uses it); "
        "check `ip link show` in the pod and on {node}, and let ICMP 'fragmentation needed' through.",
        "为 pod 设置适合 overlay 的 MTU：不超过 VXLAN 设备的 MTU（{mtu}），即底层 MTU 减 50 字节"
        "（flannel 写在 /run/flannel/subnet.env 的 FLANNEL_MTU，CNI 配置使用它）；"
        "在 pod 内和 {node} 上用 `ip link show` 检查，并放行 ICMP“需要分片”报文。",
    ),
    "MISSING_MASQUERADE": (
        "Pod address {pod} leaves {node} toward {dst} without being rewritten to the node's address, so the "
        "reply cannot find its way back: {observed}",
        "Pod 地址 {pod} 未被改写为节点地址就从 {node} 发往 {dst}，回包无法返回：{observed_zh}",
        "Restore the masquerade rule for traffic leaving the pod network on {node}: "
        "`iptables -t nat -A POSTROUTING -s {cluster} ! -d {cluster} -j MASQUERADE` "
        "(flannel adds it when started with --ip-masq; subnet.env FLANNEL_IPMASQ=true).",
        "在 {node} 上恢复离开 pod 网络流量的 MASQUERADE 规则："
        "`iptables -t nat -A POSTROUTING -s {cluster} ! -d {cluster} -j MASQUERADE`"
        "（flannel 以 --ip-masq 启动时会添加；subnet.env 中 FLANNEL_IPMASQ=true）。",
    ),
    "MISSING_ROUTE": (
        "Node {node} has no route for {dst} (pod subnet {cidr}){chosen}; {observed}",
        "节点 {node} 没有去往 {dst}（pod 网段 {cidr}）的路由{chosen_zh}；{observed_zh}",
        "Check that flanneld runs on {node} and sees node {peer}'s lease; the route should read "
        "`{cidr} via {gw} dev {dev} onlink` (restart flanneld, or add it by hand: `ip route add {cidr} via {gw} dev {dev} onlink`).",
        "检查 {node} 上的 flanneld 是否运行并能看到节点 {peer} 的租约；路由应为 "
        "`{cidr} via {gw} dev {dev} onlink`（重启 flanneld，或手动添加：`ip route add {cidr} via {gw} dev {dev} onlink`）。",
    ),
    "MISSING_NEIGH": (
        "Node {node} routes {cidr} via {gw} on {dev}, but has no usable neighbour entry for {gw} on {dev}, "
        "so the kernel cannot build the inner Ethernet header; {observed}",
        "节点 {node} 经 {dev} 上的 {gw} 路由 {cidr}，但 {dev} 上没有 {gw} 的可用邻居表项，内核无法构造内层以太网头；{observed_zh}",
        "Restart flanneld on {node} so it reprograms the VTEP entries, or add it: "
        "`ip neigh replace {gw} lladdr <VTEP MAC of {peer}> dev {dev} nud permanent`.",
        "重启 {node} 上的 flanneld 以重新下发 VTEP 表项，或手动添加："
        "`ip neigh replace {gw} lladdr <{peer} 的 VTEP MAC> dev {dev} nud permanent`。",
    ),
    "MISSING_FDB": (
        "Node {node}'s VXLAN device {dev} has no FDB entry for VTEP MAC {mac} (the neighbour of {gw}), so it does "
        "not know which node address to send the encapsulated packet to; {observed}",
        "节点 {node} 的 VXLAN 设备 {dev} 没有 VTEP MAC {mac}（{gw} 的邻居）的 FDB 表项，不知道封装后的包发往哪个节点地址；{observed_zh}",
        "Restart flanneld on {node}, or add the entry: `bridge fdb append {mac} dev {dev} dst {peer_ip}`.",
        "重启 {node} 上的 flanneld，或手动添加：`bridge fdb append {mac} dev {dev} dst {peer_ip}`。",
    ),
    "HAIRPIN": (
        "Pod {pod} reaches itself through its service {service}: kube-proxy DNATs the packet back to {pod}, so "
        "the bridge {bridge} on {node} must send the frame out of the port it came in on ({dev}), and that port's "
        "hairpin mode is off; {observed}",
        "pod {pod} 通过自己的服务 {service} 访问自身：kube-proxy 把数据包 DNAT 回 {pod}，{node} 上的网桥 {bridge} "
        "必须把帧从进入的端口（{dev}）发回，而该端口的 hairpin 模式是关闭的；{observed_zh}",
        "Turn hairpin mode on for the pods' veths on {node}: `ip link set {dev} type bridge_slave hairpin on` "
        "(now), and for good kubelet `--hairpin-mode=hairpin-veth` or `\"hairpinMode\": true` in the flannel CNI "
        "config (/etc/cni/net.d/10-flannel.conflist).",
        "为 {node} 上的 pod veth 打开 hairpin 模式：`ip link set {dev} type bridge_slave hairpin on`（立即生效）；"
        "长期方案是 kubelet `--hairpin-mode=hairpin-veth`，或在 flannel CNI 配置"
        "（/etc/cni/net.d/10-flannel.conflist）中设置 `\"hairpinMode\": true`。",
    ),
    "DUMPS_DISAGREE": (
        "The captures show the packet stop at {where}, yet {node}'s dumps{when}, walked like the kernel, let it "
        "through ({outcome}): something they do not show stops it there.",
        "抓包显示数据包停在 {where}，但按内核方式推演 {node} 的转储{when_zh}，它应当通过（{outcome_zh}）：是转储中看不到的"
        "东西在那里拦下了它。",
        "Dump {node} again right after reproducing the problem (`k8s-trace collect` takes captures and dumps together) "
        "and compare: rules or routes may have changed since; include `nft list ruleset` (tables iptables-save does "
        "not show); then look for what netfilter dumps cannot show: an eBPF/XDP program (`bpftool net`), a cloud "
        "security group or hypervisor firewall, the device's state (`ip -d link`); `pwru` or an nftables trace "
        "(`nft monitor trace`) on {node} names the kernel function that drops it.",
        "在复现问题后立即重新收集 {node} 的转储（`k8s-trace collect` 同时抓包和转储）并对比：规则或路由可能已变化；"
        "包含 `nft list ruleset`（iptables-save 看不到的表）；再排查 netfilter 转储无法体现的东西：eBPF/XDP 程序"
        "（`bpftool net`）、云安全组或虚拟化防火墙、设备状态（`ip -d link`）；在 {node} 上用 `pwru` 或 nftables 跟踪"
        "（`nft monitor trace`）可以指出丢包的内核函数。",
    ),
    "IPTABLES_BACKEND_SPLIT": (
        "The captures show the packet stop at {where}, yet {node}'s iptables-save ({shown}), walked like the kernel, "
        "lets it through ({outcome}); and that dump tells that the other iptables backend holds rules too ({tell}): "
        "the kernel runs the tables of iptables-legacy and iptables-nft both, and {hidden}'s, which this dump does "
        "not show, are where it most likely stopped.{found}",
        "抓包显示数据包停在 {where}，但按内核方式推演 {node} 的 iptables-save（{shown}），它应当通过（{outcome_zh}）；"
        "而该转储表明另一个 iptables 后端中也有规则（{tell}）：内核会同时执行 iptables-legacy 和 iptables-nft 两套表，"
        "{hidden} 的规则不在这份转储里，最可能就是它们拦下了数据包。{found_zh}",
        "Show the hidden rules with `{save}` on {node} (compare `iptables-legacy-save` and `iptables-nft-save`). Make "
        "every component use one backend: kube-proxy's and flannel's images pick the one that already holds more "
        "rules, while Docker, an old image or a host firewall script may write to the other; point the host's "
        "`iptables` at the same one (`update-alternatives --set iptables /usr/sbin/iptables-nft`, likewise "
        "ip6tables), empty the other backend, its policies too (`{cmd} -F` alone keeps a DROP policy): `{cmd} -P INPUT ACCEPT; "
        "{cmd} -P FORWARD ACCEPT; {cmd} -P OUTPUT ACCEPT; for t in filter nat mangle raw; do {cmd} -t $t -F; "
        "{cmd} -t $t -X; done`, and restart the component that wrote it so it writes to the chosen backend.",
        "在 {node} 上用 `{save}` 查看看不到的规则（对比 `iptables-legacy-save` 和 `iptables-nft-save`）。让所有组件使用"
        "同一个后端：kube-proxy 和 flannel 的镜像会选择已有规则更多的后端，而 Docker、旧镜像或主机防火墙脚本可能写入"
        "另一个；把主机的 `iptables` 指向同一个后端（`update-alternatives --set iptables /usr/sbin/iptables-nft`，"
        "ip6tables 同理），清空另一个后端，包括其默认策略（单用 `{cmd} -F` 不会改掉 DROP 策略）：`{cmd} -P INPUT ACCEPT; "
        "{cmd} -P FORWARD ACCEPT; {cmd} -P OUTPUT ACCEPT; for t in filter nat mangle raw; do {cmd} -t $t -F; "
        "{cmd} -t $t -X; done`，并重启写入它们的组件，使其写入选定的后端。",
    ),
    "BRIDGE_NF_CALL_DISABLED": (
        "The answer to {client} came back from {real}, not from {service}: on {node} it was bridged across "
        "{bridge} without passing iptables, so conntrack never undid the DNAT ({setting}); the client does not "
        "know {real} and {reacts}. {observed}",
        "{client} 收到的应答来自 {real}，而不是 {service}：它在 {node} 上经网桥 {bridge} 直接转发，没有经过 "
        "iptables，conntrack 没有撤销 DNAT（{setting_zh}）；客户端不认识 {real}，{reacts_zh}。{observed_zh}",
        "Load br_netfilter and let bridged traffic through iptables on {node}: `modprobe br_netfilter && "
        "sysctl -w net.bridge.bridge-nf-call-iptables=1`; for good, `br_netfilter` in "
        "/etc/modules-load.d/k8s.conf and `net.bridge.bridge-nf-call-iptables = 1` in /etc/sysctl.d/k8s.conf "
        "(kubeadm's preflight checks both).",
        "在 {node} 上加载 br_netfilter，让桥接流量经过 iptables：`modprobe br_netfilter && "
        "sysctl -w net.bridge.bridge-nf-call-iptables=1`；长期方案是在 /etc/modules-load.d/k8s.conf 中写入 "
        "`br_netfilter`，在 /etc/sysctl.d/k8s.conf 中写入 `net.bridge.bridge-nf-call-iptables = 1`"
        "（kubeadm 的 preflight 会检查这两项）。",
    ),
    "IP_FORWARD_DISABLED": (
        "{node} did not route {src} -> {dst} on: the packet came in on {iif} and never went further. {cause} "
        "{observed}",
        "{node} 没有继续路由 {src} -> {dst}：数据包从 {iif} 进入后再也没有继续前进。{cause_zh}{observed_zh}",
        "Turn forwarding on on {node}: `{command}`; keep it across reboots with `net.ipv4.ip_forward = 1` in "
        "/etc/sysctl.d/99-kubernetes.conf (then `sysctl --system`), and look for whatever set it to 0 (a sysctl.d "
        "file, a hardening profile). kubeadm's preflight requires it, and flannel and kube-proxy expect it: a node "
        "without it routes no pod traffic. Check with `sysctl net.ipv4.ip_forward net.ipv4.conf.all.forwarding`"
        " and `iptables -S FORWARD` on {node}.",
        "在 {node} 上开启转发：`{command}`；在 /etc/sysctl.d/99-kubernetes.conf 中写入 `net.ipv4.ip_forward = 1`"
        "（再执行 `sysctl --system`）使其重启后仍生效，并找出把它设为 0 的配置（sysctl.d 文件、安全加固配置）。"
        "kubeadm 的 preflight 要求开启它，flannel 和 kube-proxy 也依赖它：没有它，节点不转发任何 pod 流量。"
        "在 {node} 上用 `sysctl net.ipv4.ip_forward net.ipv4.conf.all.forwarding` 和 `iptables -S FORWARD` 检查。",
    ),
    "RP_FILTER_DROP": (
        "{node} dropped {src} -> {dst}{dnat} that came in on {iif}: the reverse-path filter is {words} there "
        "({setting}), so the route back to the source {client} must leave by {iif}, and it leaves by {back_dev} "
        "(`{back_line}`). The kernel takes the packet for a spoofed ('martian') source and drops it at the route "
        "lookup, silently, before the FORWARD chain. {observed}",
        "{node} 丢弃了从 {iif} 进入的 {src} -> {dst}{dnat_zh}：那里的反向路径过滤为{words_zh}模式（{setting}），"
        "回到源地址 {client} 的路由必须经 {iif} 离开，而它经 {back_dev} 离开（`{back_line}`）。内核把它当作伪造"
        "（martian）源地址，在路由查找时静默丢弃，早于 FORWARD 链。{observed_zh}",
        "On {node}, either make the path symmetric, a route back to the clients of {iif} through it (e.g. "
        "`ip route add {client_net} via {gw} dev {iif}`), or make the filter loose on {iif}: "
        "`sysctl -w net.ipv4.conf.{iif}.rp_filter=2` (the kernel uses the larger of conf.all and conf.{iif}; loose "
        "mode still drops sources with no route back at all) and persist it as `net.ipv4.conf.{iif}.rp_filter = 2` "
        "in /etc/sysctl.d/. Multi-homed nodes that take NodePort or load-balancer traffic on a second NIC need one "
        "of the two.",
        "在 {node} 上，要么让路径对称：为 {iif} 的客户端添加经由它的回程路由（例如 "
        "`ip route add {client_net} via {gw} dev {iif}`）；要么在 {iif} 上改用宽松模式："
        "`sysctl -w net.ipv4.conf.{iif}.rp_filter=2`（内核取 conf.all 与 conf.{iif} 中较大的值；宽松模式仍会丢弃"
        "完全没有回程路由的源地址），并在 /etc/sysctl.d/ 中写入 `net.ipv4.conf.{iif}.rp_filter = 2` 使其持久。"
        "在第二块网卡上接收 NodePort 或负载均衡流量的多网卡节点必须二选一。",
    ),
    "FORWARD_BLOCKED": (
        "The FORWARD chain on {node} {how} pod traffic {src} -> {dst}: {observed}",
        "{node} 上的 FORWARD 链{how_zh} pod 流量 {src} -> {dst}：{observed_zh}",
        "Accept pod traffic in FORWARD on {node} before the drop: "
        "`iptables -I FORWARD -s {cluster} -j ACCEPT && iptables -I FORWARD -d {cluster} -j ACCEPT` "
        "(flannel's FLANNEL-FWD chain does this; Docker sets the FORWARD policy to DROP).",
        "在 {node} 的 FORWARD 链中、在丢弃规则之前放行 pod 流量："
        "`iptables -I FORWARD -s {cluster} -j ACCEPT && iptables -I FORWARD -d {cluster} -j ACCEPT`"
        "（flannel 的 FLANNEL-FWD 链即做此事；Docker 会把 FORWARD 默认策略设为 DROP）。",
    ),
    "BAD_OVERLAY_CHECKSUM": (
        "{count} VXLAN packets arrive at {node} with a wrong outer UDP checksum (receiver-side capture), so the "
        "kernel discards them: {observed}",
        "{count} 个 VXLAN 包到达 {node} 时外层 UDP 校验和错误（接收端抓包），内核将其丢弃：{observed_zh}",
        "Turn off the broken checksum offload on the sender's VXLAN device: "
        "`ethtool -K flannel.1 tx-checksum-ip-generic off` on {peer} (flannel >= 0.21 does this itself).",
        "在发送端关闭有缺陷的 VXLAN 校验和卸载：在 {peer} 上执行 "
        "`ethtool -K flannel.1 tx-checksum-ip-generic off`（flannel >= 0.21 会自动处理）。",
    ),
    "CONNTRACK_DNS_RACE": (
        "{client} sent parallel DNS queries from one socket (port {port}); one was answered and the other was "
        "retried after {delay:.1f} s, the signature of the conntrack insert race: {observed}",
        "{client} 从同一套接字（端口 {port}）并发发送 DNS 查询；一个得到应答，另一个在 {delay:.1f} 秒后重试，这是 conntrack 插入竞争的特征：{observed_zh}",
        "Add `options single-request-reopen` (glibc) to the pod's resolv.conf via dnsConfig, use "
        "NodeLocal DNSCache, or upgrade the kernel (fixed in 5.0+).",
        "通过 dnsConfig 在 pod 的 resolv.conf 中加入 `options single-request-reopen`（glibc），"
        "或使用 NodeLocal DNSCache，或升级内核（5.0+ 已修复）。",
    ),
    "CONNECTION_REFUSED": (
        "{server} answered {how}: nothing listens on port {port} there.",
        "{server} 以 {how} 应答：该处没有进程监听端口 {port}。",
        "Check that the server process listens on {port} on the right address (`ss -lntup` in the pod) and that "
        "the service's targetPort matches the container port.",
        "检查服务进程是否在正确地址上监听 {port}（在 pod 中执行 `ss -lntup`），以及服务的 targetPort 是否与容器端口一致。",
    ),
    "RETRANSMISSIONS": (
        "{count} TCP segment(s) were sent again (seen at {where}): the first copy was lost or not acknowledged in "
        "time.",
        "{count} 个 TCP 报文段被重传（见于 {where}）：第一份丢失或未及时得到确认。",
        "Look at where the first copies stop in the hop table; loss on the underlay, an MTU mismatch or a "
        "saturated node are the usual causes.",
        "在逐跳表中查看第一份报文在何处消失；常见原因是底层网络丢包、MTU 不匹配或节点过载。",
    ),
}


def finding_text(code: str, params: Mapping[str, object]) -> tuple[str, str, str, str]:
    """(message, message_zh, fix, fix_zh) for a finding code with its parameters."""
    p = dict(params)
    for key in list(p):
        if key.endswith("_zh"):
            continue
        p.setdefault(f"{key}_zh", p[key])
    en, zh, fix, fix_zh = FINDING_TEXT[code]
    return _fmt(en, p), _fmt(zh, p), _fmt(fix, p), _fmt(fix_zh, p)


#: Checks that need dumps, listed in ``not_checkable`` when only captures were given.
NOT_CHECKABLE_WITHOUT_DUMPS: dict[str, str] = {
    "MISSING_ROUTE": "the routing table (ip-route) was not given: routes cannot be checked",
    "MISSING_FDB": "the VXLAN FDB (bridge-fdb) was not given: VTEP entries cannot be checked",
    "MISSING_NEIGH": "the neighbour table (ip-neigh) was not given: VTEP neighbours cannot be checked",
    "FORWARD_BLOCKED": "no iptables-save was given: the FORWARD chain cannot be checked",
    "SERVICE_NO_ENDPOINTS": "no iptables-save or kubectl JSON was given: service endpoints cannot be checked",
    "NO_LOCAL_ENDPOINTS": "no iptables-save or kubectl JSON was given: externalTrafficPolicy cannot be checked",
    "OVERLAY_PORT_BLOCKED": "no iptables-save was given: the host firewall's INPUT chain cannot be checked",
    "MISSING_MASQUERADE": "no iptables-save was given: the POSTROUTING MASQUERADE rules cannot be checked",
    "IP_FORWARD_DISABLED": "no sysctl dump was given: whether a node forwards IPv4 (net.ipv4.ip_forward) cannot be "
                           "checked",
}

NOT_CHECKABLE_ZH: dict[str, str] = {
    "MISSING_ROUTE": "未提供路由表（ip-route）：无法检查路由",
    "MISSING_FDB": "未提供 VXLAN FDB（bridge-fdb）：无法检查 VTEP 表项",
    "MISSING_NEIGH": "未提供邻居表（ip-neigh）：无法检查 VTEP 邻居",
    "FORWARD_BLOCKED": "未提供 iptables-save：无法检查 FORWARD 链",
    "SERVICE_NO_ENDPOINTS": "未提供 iptables-save 或 kubectl JSON：无法检查服务后端",
    "NO_LOCAL_ENDPOINTS": "未提供 iptables-save 或 kubectl JSON：无法检查 externalTrafficPolicy",
    "OVERLAY_PORT_BLOCKED": "未提供 iptables-save：无法检查主机防火墙的 INPUT 链",
    "MISSING_MASQUERADE": "未提供 iptables-save：无法检查 POSTROUTING 的 MASQUERADE 规则",
    "IP_FORWARD_DISABLED": "未提供 sysctl 转储：无法检查节点是否转发 IPv4（net.ipv4.ip_forward）",
}
