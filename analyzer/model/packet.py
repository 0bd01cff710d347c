"""Captured frames and their decoded layers.

``RawFrame`` is what the capture reader yields; ``DecodedPacket`` is what the decoder makes of
its bytes: a tuple of layers, outermost first, each a frozen dataclass with its ``offset`` and
``length`` inside the frame (0-based byte offsets) plus typed fields, and the notes about
anything malformed or cut off.

Layer ``name`` values are the ones of the JSON contract (``../shared/contract/README.md``):
eth, vlan, sll, sll2, arp, ipv4, ipv6, icmp, icmpv6, tcp, udp, sctp, vxlan, geneve, ipip,
ip6in4, gre, flannel-udp, raw, plus ``mpls`` (an MPLS label stack, decoded so that the IP
packet behind it is seen; an extension of the contract's list, seen only on MPLS links). ``ipip``, ``ip6in4`` and ``flannel-udp`` are zero-length marker layers:
these encapsulations have no header of their own, the marker says where the tunnel starts.

Layers after an ICMP/ICMPv6 error belong to the packet it quotes: ``DecodedPacket.quote_start``
is the index of the first of them (``None`` when nothing is quoted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, TypeVar, dataclass_transform

_T = TypeVar("_T")


def _slot_writes(cls: type) -> tuple[str, str, dict[str, Any]]:
    """The parameter list, the slot-writing body (indented, on ``self``) and the namespace of
    generated code that fills every field of the frozen slots dataclass ``cls``."""
    params, body = [], []
    ns: dict[str, Any] = {}
    for i, f in enumerate(fields(cls)):
        if f.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: default_factory is not supported")
        if f.default is MISSING:
            params.append(f.name)
        else:
            ns[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
        ns[f"_s{i}"] = getattr(cls, f.name).__set__
        body.append(f"    _s{i}(self, {f.name})\n")
    return ", ".join(params), "".join(body), ns


def frozen_builder(cls: type[_T]) -> Callable[..., _T]:
    """A fast constructor for the frozen slots dataclass ``cls``, same signature as ``cls(...)``.

    A frozen dataclass ``__init__`` sets each field through ``object.__setattr__``, which costs
    about three times more than writing the slot directly; a decoder that builds seven layers
    per frame, millions of times, feels it. The returned function writes the slots through their
    descriptors instead: the object is exactly what ``cls(...)`` gives (equal, hashable, frozen
    afterwards). Fields with a ``default_factory`` are not supported.
    """
    params, body, ns = _slot_writes(cls)
    ns.update(_new=object.__new__, _cls=cls)
    exec(f"def build({params}):\n    self = _new(_cls)\n{body}    return self\n", ns)  # noqa: S102
    build: Callable[..., _T] = ns["build"]
    build.__doc__ = f"Build a {cls.__name__} (fast path of {cls.__name__}(...))."
    return build


@dataclass_transform(frozen_default=True)
def fast_frozen(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True, slots=True)`` with the fast ``__init__`` of ``frozen_builder``."""
    made = dataclass(frozen=True, slots=True)(cls)
    params, body, ns = _slot_writes(made)
    exec(f"def __init__(self, {params}):\n{body}", ns)  # noqa: S102 (generated from the field names)
    made.__init__ = ns["__init__"]  # type: ignore[misc]
    return made

#: tunnel layer names (contract ``tunnels[].type``)
TUNNEL_NAMES = frozenset({"vxlan", "geneve", "ipip", "ip6in4", "gre", "flannel-udp"})
#: transport layer names (contract ``l4.proto``)
TRANSPORT_NAMES = frozenset({"tcp", "udp", "sctp", "icmp", "icmpv6"})
#: ICMP types that quote the offending packet
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})
ICMPV6_ERROR_TYPES = frozenset({1, 2, 3, 4})


@fast_frozen
class RawFrame:
    """One record of a capture file, undecoded. ``number`` is 1-based, as Wireshark shows it."""

    file: str
    number: int
    ts: float
    linktype: int
    data: bytes
    wire_len: int
    interface: str | None


@dataclass(frozen=True, slots=True)
class Layer:
    """Base of every layer: where it sits in the frame (0-based byte offset, header length)."""

    name: ClassVar[str] = "?"
    offset: int
    length: int


@fast_frozen
class Ethernet(Layer):
    name: ClassVar[str] = "eth"
    dst: str
    src: str
    ethertype: int  # values <= 1500 are an 802.3 length (LLC follows)


@fast_frozen
class VLAN(Layer):
    name: ClassVar[str] = "vlan"
    tpid: int  # 0x8100 (802.1Q) or 0x88a8 (802.1ad S-tag), or 0x9100
    vid: int
    pcp: int
    dei: int
    ethertype: int


@fast_frozen
class MPLS(Layer):
    name: ClassVar[str] = "mpls"
    labels: tuple[int, ...]  # the whole label stack, outermost first
    ttl: int


@fast_frozen
class SLL(Layer):
    name: ClassVar[str] = "sll"
    pkttype: int  # 0 to us, 1 broadcast, 2 multicast, 3 other host, 4 outgoing
    arphrd: int
    addr: str  # link-layer source address (lower-case hex pairs)
    protocol: int


@fast_frozen
class SLL2(Layer):
    name: ClassVar[str] = "sll2"
    protocol: int
    ifindex: int  # resolve with the node's `ip link` dump
    arphrd: int
    pkttype: int
    addr: str


@fast_frozen
class ARP(Layer):
    name: ClassVar[str] = "arp"
    op: int
    hwtype: int
    ptype: int
    sender_mac: str | None
    sender_ip: str | None
    target_mac: str | None
    target_ip: str | None


@fast_frozen
class IPv4(Layer):
    name: ClassVar[str] = "ipv4"
    src: str
    dst: str
    proto: int
    ttl: int
    tos: int
    total_len: int  # as in the header (0 for TSO-offloaded captures)
    ident: int
    df: bool
    mf: bool
    frag_offset: int  # bytes
    checksum: int
    options: tuple[int, ...]  # option type bytes, in order (EOL/NOP included)


@fast_frozen
class IPv6(Layer):
    """IPv6 header plus its extension headers (``length`` covers both)."""

    name: ClassVar[str] = "ipv6"
    src: str
    dst: str
    next_header: int  # of the fixed header
    proto: int  # upper-layer protocol after the extension headers
    hop_limit: int
    traffic_class: int
    flow_label: int
    payload_len: int
    ext_headers: tuple[int, ...]  # protocol numbers of the extension headers, in order
    frag_id: int | None
    frag_offset: int  # bytes
    mf: bool


@fast_frozen
class ICMP(Layer):
    name: ClassVar[str] = "icmp"
    type: int
    code: int
    checksum: int
    ident: int | None  # echo / timestamp / address mask
    seq: int | None
    mtu: int | None  # next-hop MTU of "fragmentation needed" (type 3 code 4)
    gateway: str | None  # redirect
    is_error: bool


@fast_frozen
class ICMPv6(Layer):
    name: ClassVar[str] = "icmpv6"
    type: int
    code: int
    checksum: int
    ident: int | None
    seq: int | None
    mtu: int | None  # packet too big
    target: str | None  # neighbour solicitation / advertisement target
    is_error: bool


@fast_frozen
class TCP(Layer):
    name: ClassVar[str] = "tcp"
    sport: int
    dport: int
    seq: int | None  # None only in a short quote inside an ICMP error
    ack: int | None
    flags: int | None  # FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128
    window: int | None
    header_len: int | None
    mss: int | None
    wscale: int | None
    payload_len: int | None  # from the IP lengths


@fast_frozen
class UDP(Layer):
    name: ClassVar[str] = "udp"
    sport: int
    dport: int
    ulen: int
    checksum: int
    checksum_ok: bool | None  # checked for tunnel carriers only; None: 0 (unused) or not verifiable
    payload_len: int | None
    app: str | None = None  # one-line summary of a well-known payload (DNS on port 53)


@fast_frozen
class SCTP(Layer):
    name: ClassVar[str] = "sctp"
    sport: int
    dport: int
    vtag: int | None


@fast_frozen
class VXLAN(Layer):
    name: ClassVar[str] = "vxlan"
    flags: int  # 16 bits (G, I, D, A bits of VXLAN-GBP included)
    vni: int
    group_policy: int  # VXLAN-GBP group policy id (0 for plain VXLAN)


@fast_frozen
class GENEVE(Layer):
    name: ClassVar[str] = "geneve"
    version: int
    vni: int
    protocol: int  # 0x6558 Ethernet, 0x0800 IPv4, 0x86dd IPv6
    oam: bool
    critical: bool
    options: tuple[tuple[int, int, int], ...]  # (class, type, data length) of each option


@fast_frozen
class IPIP(Layer):
    """Zero-length marker: the next IP header is encapsulated in the previous one."""

    name: ClassVar[str] = "ipip"
    outer_proto: int  # 4 (IPv4 payload) or 41 (IPv6 payload)


@fast_frozen
class IP6in4(Layer):
    """Zero-length marker: IPv6 carried in IPv4 (protocol 41, SIT/6in4)."""

    name: ClassVar[str] = "ip6in4"
    outer_proto: int


@fast_frozen
class GRE(Layer):
    """GRE header; for PPTP (GRE version 1) ``length`` includes the PPP header behind it."""

    name: ClassVar[str] = "gre"
    version: int
    protocol: int
    flags: int  # first 16 bits: C 0x8000, R 0x4000, K 0x2000, S 0x1000, A 0x0080 (v1)
    checksum: int | None
    key: int | None
    seq: int | None
    ack: int | None
    ppp_protocol: int | None


@fast_frozen
class FlannelUDP(Layer):
    """Zero-length marker: flannel's UDP backend, a raw IP packet as UDP payload."""

    name: ClassVar[str] = "flannel-udp"
    port: int


@fast_frozen
class Raw(Layer):
    """Bytes that no decoder claimed (unknown protocol, LLC, unsupported link type)."""

    name: ClassVar[str] = "raw"
    what: str  # why it stayed raw, e.g. "ethertype 0x88cc" or "IP protocol 89"


@dataclass(frozen=True, slots=True)
class DecodedPacket:
    layers: tuple[Layer, ...]
    notes: tuple[str, ...] = ()
    quote_start: int | None = None  # index of the first layer quoted inside an ICMP error
    payload_offset: int | None = None  # start of the innermost non-quoted L4 payload
    payload_end: int | None = None  # its end by the IP/UDP lengths (may lie beyond the captured bytes)

    def to_contract(self, number: int, ts: float, interface: str | None) -> dict[str, Any]:
        """The ``decode --format jsonl`` object of the contract for this frame.

        ``ip`` has every IP header, quoted ones included (as tshark counts them); ``quoted_from``
        (an extension) is the index in ``ip`` of the first quoted header, or null. ``l4`` is the
        innermost transport outside any ICMP quote. ``tunnels`` lists every tunnel layer in
        order (as tshark counts them), quoted ones included and marked ``"quoted": true``.
        """
        ips: list[dict[str, Any]] = []
        tunnels: list[dict[str, Any]] = []
        l4: dict[str, Any] | None = None
        quoted_from: int | None = None
        qs = self.quote_start
        for i, layer in enumerate(self.layers):
            quoted = qs is not None and i >= qs
            name = layer.name
            if isinstance(layer, IPv4 | IPv6):
                if quoted and quoted_from is None:
                    quoted_from = len(ips)
                ips.append({"src": layer.src, "dst": layer.dst, "proto": layer.proto})
            elif name in TUNNEL_NAMES:
                tunnel: dict[str, Any] = {"type": name, "vni": getattr(layer, "vni", None)}
                if quoted:
                    tunnel["quoted"] = True  # inside the packet an ICMP error quotes, not around this frame
                tunnels.append(tunnel)
            elif name in TRANSPORT_NAMES and not quoted:
                if isinstance(layer, ICMP | ICMPv6):
                    l4 = {"proto": name, "sport": None, "dport": None, "type": layer.type, "code": layer.code}
                else:
                    l4 = {"proto": name, "sport": layer.sport, "dport": layer.dport}  # type: ignore[attr-defined]
        return {
            "frame": number,
            "ts": ts,
            "interface": interface,
            "layers": [layer.name for layer in self.layers],
            "ip": ips,
            "l4": l4,
            "tunnels": tunnels,
            "notes": list(self.notes),
            "quoted_from": quoted_from,
        }


# --- one-line summary (``k8s-trace decode`` text, evidence excerpts) ------------------------------

_TCP_FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"),
                   (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"))
_ICMP_NAMES = {0: "echo reply", 3: "destination unreachable", 4: "source quench", 5: "redirect",
               8: "echo request", 9: "router advertisement", 10: "router solicitation",
               11: "time exceeded", 12: "parameter problem", 13: "timestamp request",
               14: "timestamp reply", 17: "address mask request", 18: "address mask reply"}
_UNREACH = {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
            4: "fragmentation needed", 9: "net prohibited", 10: "host prohibited", 13: "administratively prohibited"}
_ICMPV6_NAMES = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded",
                 4: "parameter problem", 128: "echo request", 129: "echo reply", 130: "MLD query",
                 131: "MLD report", 133: "router solicitation", 134: "router advertisement",
                 135: "neighbor solicitation", 136: "neighbor advertisement", 137: "redirect",
                 143: "MLDv2 report"}
_UNREACH6 = {0: "no route", 1: "administratively prohibited", 3: "address unreachable", 4: "port unreachable"}


def tcp_flag_text(flags: int) -> str:
    """``[SYN, ACK]`` as tshark writes it (bit order)."""
    return "[" + ", ".join(n for bit, n in _TCP_FLAG_NAMES if flags & bit) + "]"


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _icmp_text(layer: ICMP | ICMPv6) -> str:
    if isinstance(layer, ICMP):
        kind = "ICMP"
        name = _ICMP_NAMES.get(layer.type, f"type {layer.type}")
        code = _UNREACH.get(layer.code) if layer.type == 3 else None
    else:
        kind = "ICMPv6"
        name = _ICMPV6_NAMES.get(layer.type, f"type {layer.type}")
        code = _UNREACH6.get(layer.code) if layer.type == 1 else None
    text = f"{kind} {name}"
    if code:
        text += f" ({code})"
    elif layer.code and layer.type not in (0, 8, 128, 129):
        text += f" code {layer.code}"
    if layer.ident is not None:
        text += f" id=0x{layer.ident:04x} seq={layer.seq}"
    if layer.mtu is not None:
        text += f" mtu={layer.mtu}"
    if isinstance(layer, ICMP) and layer.gateway:
        text += f" gateway={layer.gateway}"
    if isinstance(layer, ICMPv6) and layer.target:
        text += f" target={layer.target}"
    return text


def _l4_text(ip: IPv4 | IPv6 | None, l4: Layer) -> str:
    if isinstance(l4, ICMP | ICMPv6):
        head = f"{ip.src} -> {ip.dst} " if ip else ""
        return head + _icmp_text(l4)
    sport, dport = l4.sport, l4.dport  # type: ignore[attr-defined]
    head = f"{_endpoint(ip.src, sport)} -> {_endpoint(ip.dst, dport)}" if ip else f"{sport} -> {dport}"
    if isinstance(l4, TCP):
        text = f"{head} TCP"
        if l4.flags is not None:
            text += " " + tcp_flag_text(l4.flags)
        if l4.seq is not None:
            text += f" seq={l4.seq}"
        if l4.flags is not None and l4.flags & 0x10:
            text += f" ack={l4.ack}"
        if l4.window is not None:
            text += f" win={l4.window}"
        if l4.mss is not None:
            text += f" mss={l4.mss}"
        if l4.wscale is not None:
            text += f" ws={l4.wscale}"
        if l4.payload_len is not None:
            text += f" len={l4.payload_len}"
        return text
    if isinstance(l4, UDP):
        text = f"{head} UDP len={l4.payload_len if l4.payload_len is not None else '?'}"
        return f"{text} {l4.app}" if l4.app else text
    return f"{head} SCTP"


def _ip_text(ip: IPv4 | IPv6) -> str:
    text = f"{ip.src} -> {ip.dst} "
    text += f"IPv4 proto {ip.proto}" if isinstance(ip, IPv4) else f"IPv6 next header {ip.proto}"
    return text


def _frag_text(ip: IPv4 | IPv6) -> str:
    ident = ip.ident if isinstance(ip, IPv4) else ip.frag_id
    if ident is None or (not ip.frag_offset and not ip.mf):
        return ""
    return f" fragment id=0x{ident:x} off={ip.frag_offset}" + (" MF" if ip.mf else "")


def _tunnel_text(ip: IPv4 | IPv6 | None, udp: UDP | None, tunnel: Layer) -> str:
    parts = []
    if ip is not None:
        parts.append(f"{ip.src} -> {ip.dst}")
    if udp is not None:
        parts.append(f"UDP {udp.dport}")
    if isinstance(tunnel, VXLAN):
        parts.append(f"VXLAN vni={tunnel.vni}")
    elif isinstance(tunnel, GENEVE):
        parts.append(f"GENEVE vni={tunnel.vni}")
    elif isinstance(tunnel, GRE):
        text = "GRE" if tunnel.version == 0 else f"GREv{tunnel.version}"
        if tunnel.key is not None:
            text += f" key=0x{tunnel.key:x}" if tunnel.version == 0 else f" call={tunnel.key}"
        parts.append(text)
    elif isinstance(tunnel, IP6in4):
        parts.append("6in4")
    elif isinstance(tunnel, IPIP):
        parts.append("IPIP")
    else:
        parts.append(tunnel.name.upper())
    return " ".join(parts)


def _tag_prefix(tags: list[str]) -> str:
    """``vlan 10,20 `` / ``mpls 16 `` in front of a segment's text (VLAN ids are bare numbers)."""
    if not tags:
        return ""
    return ("vlan " if tags[0][0].isdigit() else "") + ",".join(tags) + " "


def _segments(layers: tuple[Layer, ...] | list[Layer]) -> list[str]:
    """One text per encapsulation level (split at each tunnel layer)."""
    out: list[str] = []
    ip: IPv4 | IPv6 | None = None
    eth: Ethernet | None = None
    udp: UDP | None = None
    l4: Layer | None = None
    arp: ARP | None = None
    raw: Raw | None = None
    tags: list[str] = []
    for layer in layers:
        if layer.name in TUNNEL_NAMES:
            out.append(_tag_prefix(tags) + _tunnel_text(ip, udp, layer))
            ip = eth = udp = l4 = arp = raw = None
            tags = []
        elif isinstance(layer, Ethernet):
            eth = layer
        elif isinstance(layer, VLAN):
            tags.append(str(layer.vid))
        elif isinstance(layer, MPLS):
            tags.append("mpls " + "/".join(str(x) for x in layer.labels))
        elif isinstance(layer, IPv4 | IPv6):
            ip, udp, l4 = layer, None, None
        elif isinstance(layer, UDP):
            udp = layer
            l4 = layer
        elif isinstance(layer, TCP | SCTP | ICMP | ICMPv6):
            l4 = layer
        elif isinstance(layer, ARP):
            arp = layer
        elif isinstance(layer, Raw):
            raw = layer
    prefix = _tag_prefix(tags)
    if arp is not None:
        if arp.op == 1:
            text = f"ARP who-has {arp.target_ip} tell {arp.sender_ip}"
        elif arp.op == 2:
            text = f"ARP {arp.sender_ip} is-at {arp.sender_mac}"
        else:
            text = f"ARP op {arp.op}"
    elif l4 is not None:
        text = _l4_text(ip, l4)
        if ip is not None:
            text += _frag_text(ip)
    elif ip is not None:
        text = _ip_text(ip) + _frag_text(ip)
        if raw is not None and not ip.frag_offset:
            text += f" ({raw.what})"
    elif eth is not None:
        text = f"{eth.src} -> {eth.dst} " + (raw.what if raw is not None else f"ethertype 0x{eth.ethertype:04x}")
    elif raw is not None:
        text = raw.what
    else:
        text = "(nothing decoded)" if not out else "(empty payload)"
    out.append(prefix + text)
    return out


def summarize(pkt: DecodedPacket) -> str:
    """``outer | inner`` one-line text of a decoded frame, e.g.
    ``192.168.0.11 -> 192.168.0.12 UDP 8472 VXLAN vni=1 | 10.244.1.5:40000 -> 10.244.2.7:80 TCP [SYN] seq=0 ...``.
    An ICMP error ends with ``quoting [...]``, the quoted packet in the same form."""
    qs = pkt.quote_start
    main = pkt.layers if qs is None else pkt.layers[:qs]
    text = " | ".join(_segments(main))
    if qs is not None:
        text += " quoting [" + " | ".join(_segments(pkt.layers[qs:])) + "]"
    return text
