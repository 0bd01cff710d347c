"""``to_record``: one decoded frame flattened into the shared ``PacketRecord``.

Conventions (the ``flows`` fast path is tested for equality against this function):

* Only layers outside an ICMP quote count for the main fields; the quote fills ``quoted``.
* **Inner** = the last (innermost) IP header outside the quote. When the frame has a tunnel
  whose payload holds no IP header at all (ARP over VXLAN, a payload cut by the snaplen, LLC),
  the inner fields stay empty (``ip_version`` 0): the frame is what its innermost payload is.
* **Transport** = the transport layer that directly follows the inner IP header (tcp, udp,
  sctp, icmp, icmpv6); none for fragments at a non-zero offset or unknown protocols.
* ``payload_len`` comes from the IP/UDP lengths: TCP ``IP payload - data offset``, UDP
  ``UDP length - 8`` (the IP length when the UDP length is unusable), ICMP ``IP payload - 8``,
  SCTP ``IP payload - 12``. ``payload_hash`` is ``zlib.crc32`` of the first 64 *captured* payload
  bytes, None when none were captured.
* **Outer** = the outermost tunnel layer: ``outer_src/dst`` and ``outer_ip_total_len``/``outer_df``
  from the IP header right before it, ``outer_sport/dport`` and ``outer_udp_csum_ok`` from the
  UDP header right before it (VXLAN, GENEVE, flannel-udp). ``vni`` is the VXLAN/GENEVE VNI of
  the outermost tunnel (None for IPIP, GRE...). ``tunnel_depth`` counts tunnel layers.
* Link layer: ``src_mac``/``dst_mac`` of the innermost Ethernet header (for cooked captures
  without one, the SLL/SLL2 source address when it is a 6-byte MAC); ``vlan`` is the VID of the
  first 802.1Q/802.1ad tag after that Ethernet header; ``sll_pkttype`` from the SLL/SLL2 header.
* ARP fields come from an ARP layer outside the quote (only when the inner IP fields are empty).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import MISSING
from dataclasses import fields as dataclass_fields

from analyzer.model.packet import (
    ARP,
    GENEVE,
    ICMP,
    SCTP,
    TCP,
    TUNNEL_NAMES,
    UDP,
    VXLAN,
    DecodedPacket,
    ICMPv6,
    IPv4,
    IPv6,
    Layer,
    RawFrame,
    frozen_builder,
)
from analyzer.model.record import PacketRecord, QuotedPacket

HASH_BYTES = 64
_TRANSPORTS = (TCP, UDP, SCTP, ICMP, ICMPv6)


def _ip_total(ip: IPv4 | IPv6) -> int:
    return ip.total_len if isinstance(ip, IPv4) else ip.payload_len + 40


def _quoted(layers: tuple[Layer, ...]) -> QuotedPacket | None:
    first: IPv4 | IPv6 | None = None
    last: IPv4 | IPv6 | None = None
    sport = dport = None
    tunnel = None
    for i, layer in enumerate(layers):
        if isinstance(layer, IPv4 | IPv6):
            if first is None:
                first = layer
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(nxt, TCP | UDP | SCTP):
                    sport, dport = nxt.sport, nxt.dport
            last = layer
        elif layer.name in TUNNEL_NAMES and tunnel is None and first is not None:
            tunnel = layer.name
    if first is None:
        return None
    ip_id = first.ident if isinstance(first, IPv4) else first.frag_id
    inner = last if tunnel is not None and last is not first else None
    return QuotedPacket(
        src=first.src,
        dst=first.dst,
        proto=first.proto,
        sport=sport,
        dport=dport,
        ip_id=ip_id,
        tunnel=tunnel,
        inner_src=inner.src if inner else None,
        inner_dst=inner.dst if inner else None,
    )


_build = frozen_builder(PacketRecord)
_FIELD_NAMES = tuple(f.name for f in dataclass_fields(PacketRecord))
_IX = {name: i for i, name in enumerate(_FIELD_NAMES)}
assert _FIELD_NAMES[:7] == ("file", "frame", "ts", "interface", "wire_len", "cap_len", "linktype")
#: every field's default, in order (positional construction is much cheaper than 20 keywords)
_DEFAULTS = tuple(
    f.default if f.default is not MISSING else None for f in dataclass_fields(PacketRecord)
)
_IP_NAMES = frozenset({"ipv4", "ipv6"})
_L4_NAMES = frozenset({"tcp", "udp", "sctp", "icmp", "icmpv6"})


def to_record(frame: RawFrame, pkt: DecodedPacket, *, ifnames: Mapping[int, str] | None = None) -> PacketRecord:
    """Flatten ``pkt`` (decoded from ``frame.data``) into a ``PacketRecord`` (see module doc).

    ``ifnames`` (interface index -> name, from the node's ``ip link`` dump) resolves the interface
    index an SLL2 (``tcpdump -i any``) frame carries, when the file itself names no interface.
    """
    layers = pkt.layers
    qs = pkt.quote_start
    n_main = len(layers) if qs is None else qs
    data = frame.data
    cap = len(data)

    ip_idx = last_tunnel = first_tunnel = eth_idx = arp_idx = -1
    depth = 0
    link = None
    for i in range(n_main):
        name = layers[i].name
        if name in _IP_NAMES:
            ip_idx = i
        elif name in TUNNEL_NAMES:
            depth += 1
            last_tunnel = i
            if first_tunnel < 0:
                first_tunnel = i
        elif name == "eth":
            eth_idx = i
        elif name == "arp":
            if arp_idx < 0:
                arp_idx = i
        elif (name == "sll" or name == "sll2") and link is None:
            link = layers[i]
    if ip_idx < last_tunnel:  # the innermost tunnel carries no IP header
        ip_idx = -1

    fields: list[object] = list(_DEFAULTS)
    ix = _IX
    # link layer
    if link is not None:
        fields[ix["sll_pkttype"]] = link.pkttype  # type: ignore[attr-defined]
    if eth_idx >= 0:
        eth = layers[eth_idx]
        fields[ix["src_mac"]] = eth.src  # type: ignore[attr-defined]
        fields[ix["dst_mac"]] = eth.dst  # type: ignore[attr-defined]
        if eth_idx + 1 < n_main and layers[eth_idx + 1].name == "vlan":
            fields[ix["vlan"]] = layers[eth_idx + 1].vid  # type: ignore[attr-defined]
    elif link is not None and link.arphrd == 1 and len(link.addr) == 17:  # type: ignore[attr-defined]
        fields[ix["src_mac"]] = link.addr  # type: ignore[attr-defined]

    # inner IP and transport
    if ip_idx >= 0:
        ip = layers[ip_idx]
        v4 = ip.name == "ipv4"
        fields[ix["src"]] = ip.src  # type: ignore[attr-defined]
        fields[ix["dst"]] = ip.dst  # type: ignore[attr-defined]
        fields[ix["proto"]] = ip.proto  # type: ignore[attr-defined]
        fields[ix["frag_offset"]] = ip.frag_offset  # type: ignore[attr-defined]
        fields[ix["more_fragments"]] = ip.mf  # type: ignore[attr-defined]
        if v4:
            assert isinstance(ip, IPv4)
            total = ip.total_len
            fields[ix["ip_version"]] = 4
            fields[ix["ip_id"]] = ip.ident
            fields[ix["df"]] = ip.df
            fields[ix["ttl"]] = ip.ttl
            ip_end = cap if total == 0 else ip.offset + total
        else:
            assert isinstance(ip, IPv6)
            total = ip.payload_len + 40
            fields[ix["ip_version"]] = 6
            fields[ix["ip_id"]] = ip.frag_id
            fields[ix["ttl"]] = ip.hop_limit
            ip_end = cap if ip.payload_len == 0 else ip.offset + total
        fields[ix["ip_total_len"]] = total
        l4 = layers[ip_idx + 1] if ip_idx + 1 < len(layers) else None
        if l4 is not None and l4.name in _L4_NAMES:
            name = l4.name
            if name == "tcp":
                assert isinstance(l4, TCP)
                fields[ix["sport"]] = l4.sport
                fields[ix["dport"]] = l4.dport
                fields[ix["tcp_flags"]] = l4.flags
                fields[ix["seq"]] = l4.seq
                fields[ix["ack"]] = l4.ack
                fields[ix["tcp_mss"]] = l4.mss
                pay_len = l4.payload_len
                pay_start = l4.offset + l4.length
            elif name == "udp":
                assert isinstance(l4, UDP)
                fields[ix["sport"]] = l4.sport
                fields[ix["dport"]] = l4.dport
                pay_len = l4.payload_len
                pay_start = l4.offset + 8
            elif name == "sctp":
                assert isinstance(l4, SCTP)
                fields[ix["sport"]] = l4.sport
                fields[ix["dport"]] = l4.dport
                pay_start = l4.offset + 12
                pay_len = max(0, ip_end - pay_start)
            else:  # ICMP / ICMPv6
                assert isinstance(l4, ICMP | ICMPv6)
                fields[ix["icmp_type"]] = l4.type
                fields[ix["icmp_code"]] = l4.code
                fields[ix["icmp_mtu"]] = l4.mtu
                pay_start = l4.offset + 8
                pay_len = max(0, ip_end - pay_start)
                if qs is not None:
                    fields[ix["quoted"]] = _quoted(layers[qs:])
            fields[ix["payload_len"]] = pay_len
            if pay_len and pay_start < cap:
                stop = pay_start + (pay_len if pay_len < HASH_BYTES else HASH_BYTES)
                fields[ix["payload_hash"]] = zlib.crc32(data[pay_start : stop if stop < cap else cap])
    elif arp_idx >= 0:
        arp = layers[arp_idx]
        assert isinstance(arp, ARP)
        fields[ix["arp_op"]] = arp.op
        fields[ix["arp_sender_ip"]] = arp.sender_ip
        fields[ix["arp_target_ip"]] = arp.target_ip
        fields[ix["arp_sender_mac"]] = arp.sender_mac

    # outermost tunnel
    if first_tunnel >= 0:
        t = layers[first_tunnel]
        fields[ix["tunnel"]] = t.name
        fields[ix["tunnel_depth"]] = depth
        if isinstance(t, VXLAN | GENEVE):
            fields[ix["vni"]] = t.vni
        below = layers[first_tunnel - 1] if first_tunnel else None
        if below is not None and below.name == "udp":
            assert isinstance(below, UDP)
            fields[ix["outer_sport"]] = below.sport
            fields[ix["outer_dport"]] = below.dport
            fields[ix["outer_udp_csum_ok"]] = below.checksum_ok
        for j in range(first_tunnel - 1, -1, -1):
            outer = layers[j]
            if outer.name in _IP_NAMES:
                assert isinstance(outer, IPv4 | IPv6)
                fields[ix["outer_src"]] = outer.src
                fields[ix["outer_dst"]] = outer.dst
                if isinstance(outer, IPv4):
                    fields[ix["outer_ip_total_len"]] = outer.total_len
                    fields[ix["outer_df"]] = outer.df
                else:
                    fields[ix["outer_ip_total_len"]] = outer.payload_len + 40
                break

    interface = frame.interface
    if interface is None and ifnames and link is not None and link.name == "sll2":
        interface = ifnames.get(link.ifindex)  # type: ignore[attr-defined]
    fields[0:7] = (frame.file, frame.number, frame.ts, interface, frame.wire_len, cap, frame.linktype)
    fields[ix["notes"]] = pkt.notes
    return _build(*fields)
