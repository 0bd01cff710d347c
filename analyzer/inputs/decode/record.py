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

from analyzer.model.packet import (
    ARP,
    GENEVE,
    ICMP,
    SCTP,
    SLL,
    SLL2,
    TCP,
    TUNNEL_NAMES,
    UDP,
    VLAN,
    VXLAN,
    DecodedPacket,
    Ethernet,
    ICMPv6,
    IPv4,
    IPv6,
    Layer,
    RawFrame,
)
from analyzer.model.record import PacketRecord, QuotedPacket

HASH_BYTES = 64
_TRANSPORTS = (TCP, UDP, SCTP, ICMP, ICMPv6)


def _ip_total(ip: IPv4 | IPv6) -> int:
    return ip.total_len if isinstance(ip, IPv4) else ip.payload_len + 40


def _ip_end(ip: IPv4 | IPv6, cap: int) -> int:
    """Where the IP packet ends by its own length (TSO length 0: the captured bytes)."""
    total = _ip_total(ip)
    if isinstance(ip, IPv4) and total == 0 or isinstance(ip, IPv6) and ip.payload_len == 0:
        return cap
    return ip.offset + total


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


def to_record(frame: RawFrame, pkt: DecodedPacket) -> PacketRecord:
    """Flatten ``pkt`` (decoded from ``frame.data``) into a ``PacketRecord`` (see module doc)."""
    layers = pkt.layers
    qs = pkt.quote_start
    main = layers if qs is None else layers[:qs]
    data = frame.data
    cap = len(data)

    ip_idx = -1
    last_tunnel = -1
    first_tunnel = -1
    depth = 0
    for i, layer in enumerate(main):
        if isinstance(layer, IPv4 | IPv6):
            ip_idx = i
        elif layer.name in TUNNEL_NAMES:
            depth += 1
            last_tunnel = i
            if first_tunnel < 0:
                first_tunnel = i
    if ip_idx < last_tunnel:  # the innermost tunnel carries no IP header
        ip_idx = -1

    fields: dict[str, object] = {}
    # link layer
    eth_idx = -1
    for i, layer in enumerate(main):
        if isinstance(layer, Ethernet):
            eth_idx = i
        elif isinstance(layer, SLL | SLL2) and "sll_pkttype" not in fields:
            fields["sll_pkttype"] = layer.pkttype
    if eth_idx >= 0:
        eth = main[eth_idx]
        assert isinstance(eth, Ethernet)
        fields["src_mac"], fields["dst_mac"] = eth.src, eth.dst
        nxt = main[eth_idx + 1] if eth_idx + 1 < len(main) else None
        if isinstance(nxt, VLAN):
            fields["vlan"] = nxt.vid
    elif main and isinstance(main[0], SLL | SLL2) and main[0].arphrd == 1 and len(main[0].addr) == 17:
        fields["src_mac"] = main[0].addr

    # inner IP and transport
    if ip_idx >= 0:
        ip = main[ip_idx]
        assert isinstance(ip, IPv4 | IPv6)
        fields["src"], fields["dst"], fields["proto"] = ip.src, ip.dst, ip.proto
        fields["ip_total_len"] = _ip_total(ip)
        fields["frag_offset"] = ip.frag_offset
        fields["more_fragments"] = ip.mf
        if isinstance(ip, IPv4):
            fields["ip_version"] = 4
            fields["ip_id"] = ip.ident
            fields["df"] = ip.df
            fields["ttl"] = ip.ttl
        else:
            fields["ip_version"] = 6
            fields["ip_id"] = ip.frag_id
            fields["ttl"] = ip.hop_limit
        l4 = layers[ip_idx + 1] if ip_idx + 1 < len(layers) else None
        if isinstance(l4, _TRANSPORTS):
            ip_end = _ip_end(ip, cap)
            pay_start: int | None = None
            pay_len: int | None = None
            if isinstance(l4, TCP):
                fields["sport"], fields["dport"] = l4.sport, l4.dport
                fields["tcp_flags"], fields["seq"], fields["ack"] = l4.flags, l4.seq, l4.ack
                fields["tcp_mss"] = l4.mss
                pay_len = l4.payload_len
                pay_start = l4.offset + l4.length
            elif isinstance(l4, UDP):
                fields["sport"], fields["dport"] = l4.sport, l4.dport
                pay_len = l4.payload_len
                pay_start = l4.offset + 8
            elif isinstance(l4, SCTP):
                fields["sport"], fields["dport"] = l4.sport, l4.dport
                pay_start = l4.offset + 12
                pay_len = max(0, ip_end - pay_start)
            else:  # ICMP / ICMPv6
                fields["icmp_type"], fields["icmp_code"], fields["icmp_mtu"] = l4.type, l4.code, l4.mtu
                pay_start = l4.offset + 8
                pay_len = max(0, ip_end - pay_start)
                if qs is not None:
                    fields["quoted"] = _quoted(layers[qs:])
            fields["payload_len"] = pay_len
            if pay_len and pay_start is not None and pay_start < cap:
                chunk = data[pay_start : min(cap, pay_start + pay_len, pay_start + HASH_BYTES)]
                if chunk:
                    fields["payload_hash"] = zlib.crc32(chunk)
    else:
        for layer in main:
            if isinstance(layer, ARP):
                fields["arp_op"] = layer.op
                fields["arp_sender_ip"] = layer.sender_ip
                fields["arp_target_ip"] = layer.target_ip
                fields["arp_sender_mac"] = layer.sender_mac
                break

    # outermost tunnel
    if first_tunnel >= 0:
        t = main[first_tunnel]
        fields["tunnel"] = t.name
        fields["tunnel_depth"] = depth
        if isinstance(t, VXLAN | GENEVE):
            fields["vni"] = t.vni
        for j in range(first_tunnel - 1, -1, -1):
            layer = main[j]
            if isinstance(layer, UDP) and j == first_tunnel - 1:
                fields["outer_sport"], fields["outer_dport"] = layer.sport, layer.dport
                fields["outer_udp_csum_ok"] = layer.checksum_ok
            elif isinstance(layer, IPv4 | IPv6):
                fields["outer_src"], fields["outer_dst"] = layer.src, layer.dst
                fields["outer_ip_total_len"] = _ip_total(layer)
                fields["outer_df"] = isinstance(layer, IPv4) and layer.df
                break

    return PacketRecord(
        file=frame.file,
        frame=frame.number,
        ts=frame.ts,
        interface=frame.interface,
        wire_len=frame.wire_len,
        cap_len=cap,
        linktype=frame.linktype,
        notes=pkt.notes,
        **fields,  # type: ignore[arg-type]
    )
