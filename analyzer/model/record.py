"""``PacketRecord``: one captured frame flattened to what path analysis needs.

This is the hand-over between the capture side (the general decoder and the ``flows`` fast path
both produce it) and the ``explain`` engine (which consumes it). Field meanings are fixed here;
add fields only at the end, with a default.

"Inner" means the innermost IP header that is not quoted inside an ICMP error: for a flannel
VXLAN frame it is the pod-to-pod header, for a plain frame it is the only IP header. The
"outer" fields describe the outermost tunnel (if any). ICMP errors keep their own header in the
inner fields and the header they quote in ``quoted``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuotedPacket:
    """The IP header (and first L4 bytes) quoted by an ICMP/ICMPv6 error."""

    src: str
    dst: str
    proto: int
    sport: int | None = None
    dport: int | None = None
    ip_id: int | None = None
    tunnel: str | None = None  # set when the quoted packet is itself a tunnel packet (e.g. VXLAN)
    inner_src: str | None = None  # innermost addresses when the quoted packet is a tunnel packet
    inner_dst: str | None = None


@dataclass(frozen=True, slots=True)
class PacketRecord:
    # where
    file: str  # capture path as given by the user
    frame: int  # 1-based frame number in that file
    ts: float  # Unix seconds
    interface: str | None  # pcapng IDB name, SLL2 ifindex resolved, or file name `<iface>.pcap`
    wire_len: int  # original length on the wire
    cap_len: int  # bytes captured
    linktype: int  # DLT/LINKTYPE of the frame
    sll_pkttype: int | None = None  # cooked captures: 0 to us, 1 broadcast, 2 multicast, 3 other host, 4 outgoing
    # innermost (non-quoted) IP header
    ip_version: int = 0  # 4, 6, or 0 when the frame has no IP (ARP, LLDP...)
    src: str | None = None
    dst: str | None = None
    proto: int | None = None  # IANA protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, 132 sctp)
    ip_id: int | None = None  # IPv4 identification (IPv6: fragment id if any)
    ip_total_len: int | None = None  # IPv4 total length / IPv6 payload length + 40
    df: bool = False  # IPv4 Don't Fragment
    ttl: int | None = None  # TTL / hop limit
    frag_offset: int = 0  # in bytes
    more_fragments: bool = False
    # innermost transport
    sport: int | None = None
    dport: int | None = None
    tcp_flags: int | None = None  # raw flag byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16)
    seq: int | None = None
    ack: int | None = None
    payload_len: int | None = None  # L4 payload bytes (from IP lengths, not cap_len)
    payload_hash: int | None = None  # zlib.crc32 of the first 64 captured L4 payload bytes, None if empty
    tcp_mss: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_mtu: int | None = None  # next-hop MTU of ICMP frag-needed / ICMPv6 packet-too-big
    quoted: QuotedPacket | None = None
    # outermost tunnel
    tunnel: str | None = None  # contract names: vxlan, geneve, ipip, ip6in4, gre, flannel-udp
    vni: int | None = None
    outer_src: str | None = None
    outer_dst: str | None = None
    outer_sport: int | None = None
    outer_dport: int | None = None
    outer_ip_total_len: int | None = None
    outer_df: bool = False
    outer_udp_csum_ok: bool | None = None  # None: checksum 0 (not used) or not verifiable (truncated)
    tunnel_depth: int = 0  # number of tunnel headers (nested tunnels > 1)
    # link layer of the innermost frame
    src_mac: str | None = None
    dst_mac: str | None = None
    vlan: int | None = None
    # ARP (ip_version == 0)
    arp_op: int | None = None  # 1 request, 2 reply
    arp_sender_ip: str | None = None
    arp_target_ip: str | None = None
    arp_sender_mac: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def five_tuple(self) -> tuple[str | None, str | None, int | None, int | None, int | None]:
        return (self.src, self.dst, self.proto, self.sport, self.dport)
