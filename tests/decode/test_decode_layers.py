"""The decoder on crafted frames: every protocol, tunnel and malformation, with exact expectations."""

from __future__ import annotations

import struct
import zlib

from builders import (
    arp,
    ether,
    geneve,
    geneve_option,
    gre,
    icmp,
    icmp_frag_needed,
    icmpv6,
    ipv4,
    ipv6,
    ipv6_ext,
    ipv6_frag,
    sctp,
    sll,
    sll2,
    tcp,
    udp,
    vlan,
    vxlan,
    vxlan_tcp_frame,
)

from analyzer.inputs.decode import decode_frame, to_record
from analyzer.model.packet import GENEVE, GRE, IPv4, IPv6, RawFrame, summarize
from analyzer.model.record import QuotedPacket


def names(data: bytes, linktype: int = 1, **kw) -> list[str]:
    return [layer.name for layer in decode_frame(data, linktype, **kw).layers]


def record(data: bytes, linktype: int = 1, **kw):
    frame = RawFrame("t.pcap", 7, 1.5, linktype, bytes(data), len(data), "eth0")
    return to_record(frame, decode_frame(bytes(data), linktype, **kw))


def test_flannel_vxlan_frame_layers_contract_and_summary() -> None:
    frame = vxlan_tcp_frame(vni=1, payload=b"")
    pkt = decode_frame(frame, 1)
    assert [layer.name for layer in pkt.layers] == ["eth", "ipv4", "udp", "vxlan", "eth", "ipv4", "tcp"]
    assert pkt.notes == ()
    assert pkt.to_contract(12, 0.5, "eth0") == {
        "frame": 12,
        "ts": 0.5,
        "interface": "eth0",
        "layers": ["eth", "ipv4", "udp", "vxlan", "eth", "ipv4", "tcp"],
        "ip": [{"src": "192.168.0.11", "dst": "192.168.0.12", "proto": 17},
               {"src": "10.244.1.5", "dst": "10.244.2.7", "proto": 6}],
        "l4": {"proto": "tcp", "sport": 40000, "dport": 80},
        "tunnels": [{"type": "vxlan", "vni": 1}],
        "notes": [],
        "quoted_from": None,
    }
    assert summarize(pkt) == (
        "192.168.0.11 -> 192.168.0.12 UDP 8472 VXLAN vni=1 | "
        "10.244.1.5:40000 -> 10.244.2.7:80 TCP [SYN] seq=0 win=64240 mss=1410 len=0"
    )


def test_vxlan_record_fills_every_field() -> None:
    payload = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n" * 3
    frame = vxlan_tcp_frame(vni=42, flags="PA", payload=payload)
    r = record(frame)
    assert (r.file, r.frame, r.ts, r.interface, r.wire_len, r.cap_len, r.linktype) == (
        "t.pcap", 7, 1.5, "eth0", len(frame), len(frame), 1)
    assert (r.ip_version, r.src, r.dst, r.proto, r.ttl, r.df, r.ip_id) == (4, "10.244.1.5", "10.244.2.7", 6, 64, True, 1)
    assert r.ip_total_len == 20 + 20 + len(payload)
    assert (r.sport, r.dport, r.tcp_flags, r.seq, r.ack, r.tcp_mss) == (40000, 80, 0x18, 0, 0, None)
    assert r.payload_len == len(payload)
    assert r.payload_hash == zlib.crc32(payload[:64])
    assert (r.tunnel, r.vni, r.tunnel_depth) == ("vxlan", 42, 1)
    assert (r.outer_src, r.outer_dst, r.outer_sport, r.outer_dport) == ("192.168.0.11", "192.168.0.12", 51000, 8472)
    assert r.outer_ip_total_len == len(frame) - 14 and r.outer_df is False
    assert r.outer_udp_csum_ok is None  # checksum 0: not used
    assert (r.src_mac, r.dst_mac, r.vlan) == ("0a:58:0a:f4:01:05", "0a:58:0a:f4:02:07", None)
    assert r.quoted is None and r.notes == ()
    assert r.five_tuple == ("10.244.1.5", "10.244.2.7", 6, 40000, 80)


def test_outer_udp_checksum_verified() -> None:
    good = vxlan_tcp_frame(udp_checksum=None)  # builders compute a correct checksum
    r = record(good)
    assert r.outer_udp_csum_ok is True and r.notes == ()
    bad = bytearray(good)
    bad[40:42] = struct.pack("!H", (struct.unpack_from("!H", good, 40)[0] + 1) & 0xFFFF or 1)
    r = record(bytes(bad))
    assert r.outer_udp_csum_ok is False
    assert len(r.notes) == 1 and r.notes[0].startswith("byte 34: outer UDP checksum 0x")
    # over IPv6 too (4789)
    inner = ether(ipv4(tcp(flags="S"), src="10.0.0.1", dst="10.0.0.2"))
    v6 = ether(ipv6(udp(vxlan(inner, vni=5001), dport=4789), src="fd00::1", dst="fd00::2"))
    r = record(v6)
    assert (r.tunnel, r.vni, r.outer_udp_csum_ok, r.outer_src) == ("vxlan", 5001, True, "fd00::1")


def test_extra_vxlan_port_and_port_not_bound_by_default() -> None:
    frame = vxlan_tcp_frame(port=4790)
    assert names(frame) == ["eth", "ipv4", "udp"]
    assert names(frame, vxlan_ports=frozenset({4789, 8472, 4790}))[-4:] == ["vxlan", "eth", "ipv4", "tcp"]


def test_geneve_with_options_and_ip_payload() -> None:
    inner = ether(ipv4(icmp(), src="10.0.0.1", dst="10.0.0.2"))
    opts = geneve_option(cls=0x0102, type=0x80, data=b"\x01\x02\x03\x04") + geneve_option(data=b"")
    pkt = decode_frame(ether(ipv4(udp(geneve(inner, vni=0xA, options=opts, critical=True), dport=6081))), 1)
    g = next(layer for layer in pkt.layers if isinstance(layer, GENEVE))
    assert (g.vni, g.protocol, g.critical, g.options, g.length) == (0xA, 0x6558, True,
                                                                    ((0x0102, 0x80, 4), (0x0102, 0x80, 0)), 8 + 12)
    assert [layer.name for layer in pkt.layers][-3:] == ["eth", "ipv4", "icmp"]
    gcp = ether(ipv4(udp(geneve(ipv4(tcp(sport=2905, dport=8080)), vni=0, protocol=0x0800), dport=6081)))
    assert names(gcp) == ["eth", "ipv4", "udp", "geneve", "ipv4", "tcp"]


def test_gre_variants() -> None:
    inner = ether(ipv4(tcp(sport=1232, dport=80), src="10.0.0.4", dst="10.0.0.5"))
    pkt = decode_frame(ether(ipv4(gre(inner, protocol=0x6558, key=0xFDE8, seq=3, checksum=True))), 1)
    g = next(layer for layer in pkt.layers if isinstance(layer, GRE))
    assert (g.key, g.seq, g.protocol, g.length) == (0xFDE8, 3, 0x6558, 16)
    assert g.checksum is not None
    assert [layer.name for layer in pkt.layers] == ["eth", "ipv4", "gre", "eth", "ipv4", "tcp"]
    assert record(ether(ipv4(gre(ipv4(udp(b"r" * 24, sport=520, dport=520)))))).tunnel == "gre"
    # GRE keepalive: ip/gre/ip/gre, nothing after
    keep = ether(ipv4(gre(ipv4(gre(b"", protocol=0)), protocol=0x0800)))
    assert names(keep) == ["eth", "ipv4", "gre", "ipv4", "gre"]


def test_ip_in_ip_family() -> None:
    assert names(ether(ipv4(ipv4(udp()), src="1.2.3.4", dst="5.6.7.8"))) == ["eth", "ipv4", "ipip", "ipv4", "udp"]
    assert names(ether(ipv4(ipv6(icmpv6())))) == ["eth", "ipv4", "ip6in4", "ipv6", "icmpv6"]
    assert names(ether(ipv6(ipv4(tcp())))) == ["eth", "ipv6", "ipip", "ipv4", "tcp"]
    r = record(ether(ipv4(ipv4(udp(sport=30000, dport=13000), src="10.0.0.1", dst="10.0.0.2"),
                          src="1.2.3.4", dst="5.6.7.8")))
    assert (r.tunnel, r.vni, r.outer_src, r.src, r.sport, r.outer_sport) == (
        "ipip", None, "1.2.3.4", "10.0.0.1", 30000, None)


def test_flannel_udp_backend() -> None:
    inner = ipv4(tcp(sport=5000, dport=80), src="10.244.1.2", dst="10.244.2.3")
    frame = ether(ipv4(udp(inner, sport=8285, dport=8285, checksum=0), src="192.168.0.11", dst="192.168.0.12"))
    assert names(frame) == ["eth", "ipv4", "udp", "flannel-udp", "ipv4", "tcp"]
    r = record(frame)
    assert (r.tunnel, r.src, r.dst, r.outer_dport) == ("flannel-udp", "10.244.1.2", "10.244.2.3", 8285)


def test_icmp_frag_needed_quoting_a_vxlan_packet() -> None:
    big = vxlan_tcp_frame(payload=b"x" * 1400)
    quoted = bytes(big)[14:14 + 20 + 8 + 8 + 14 + 20 + 20]  # up to the inner TCP header
    frame = ether(ipv4(icmp_frag_needed(quoted, mtu=1450), src="192.168.0.1", dst="192.168.0.11"))
    pkt = decode_frame(frame, 1)
    assert [layer.name for layer in pkt.layers] == ["eth", "ipv4", "icmp", "ipv4", "udp", "vxlan", "eth", "ipv4", "tcp"]
    assert pkt.notes == ()  # a quote is cut by design: no truncation notes
    obj = pkt.to_contract(1, 0.0, None)
    assert [ip["src"] for ip in obj["ip"]] == ["192.168.0.1", "192.168.0.11", "10.244.1.5"]
    assert obj["l4"] == {"proto": "icmp", "sport": None, "dport": None, "type": 3, "code": 4}
    assert obj["quoted_from"] == 1
    assert obj["tunnels"] == [{"type": "vxlan", "vni": 1, "quoted": True}]
    r = record(frame)
    assert (r.src, r.proto, r.icmp_type, r.icmp_code, r.icmp_mtu, r.tunnel) == ("192.168.0.1", 1, 3, 4, 1450, None)
    assert r.quoted == QuotedPacket(src="192.168.0.11", dst="192.168.0.12", proto=17, sport=51000, dport=8472,
                                    ip_id=1, tunnel="vxlan", inner_src="10.244.1.5", inner_dst="10.244.2.7")
    assert summarize(pkt).startswith("192.168.0.1 -> 192.168.0.11 ICMP destination unreachable "
                                     "(fragmentation needed) mtu=1450 quoting [192.168.0.11 -> 192.168.0.12 UDP 8472")


def test_icmpv6_packet_too_big() -> None:
    quoted = bytes(ipv6(udp(b"abcd" * 100, sport=30000, dport=13000), src="fe80::beef", dst="fe80::dead"))[:48]
    frame = ether(ipv6(icmpv6(quoted, type=2, rest=struct.pack("!I", 1280)), src="fe80::dead", dst="fe80::beef"))
    r = record(frame)
    assert (r.ip_version, r.icmp_type, r.icmp_mtu) == (6, 2, 1280)
    assert r.quoted is not None and (r.quoted.src, r.quoted.sport, r.quoted.dport) == ("fe80::beef", 30000, 13000)


def test_vlan_stacks_and_record_vlan() -> None:
    frame = ether(vlan(vlan(ipv4(udp()), vid=100, pcp=3), vid=30, tpid=0x88A8))
    pkt = decode_frame(frame, 1)
    tags = [(t.tpid, t.vid) for t in pkt.layers if t.name == "vlan"]
    assert tags == [(0x88A8, 30), (0x8100, 100)]
    assert record(frame).vlan == 30
    assert summarize(pkt).startswith("vlan 30,100 10.0.0.1:40000 -> 10.0.0.2:53 UDP")


def test_cooked_captures() -> None:
    frame = sll(ipv4(tcp(flags="SA", mss=1400, wscale=7)), pkttype=4, addr="aa:bb:cc:dd:ee:ff")
    r = record(frame, 113)
    assert (r.sll_pkttype, r.src_mac, r.tcp_flags, r.tcp_mss) == (4, "aa:bb:cc:dd:ee:ff", 0x12, 1400)
    pkt = decode_frame(sll2(vxlan_tcp_frame()[14:], ifindex=9, pkttype=0), 276)
    assert pkt.layers[0].name == "sll2" and pkt.layers[0].ifindex == 9
    assert [layer.name for layer in pkt.layers][1:4] == ["ipv4", "udp", "vxlan"]
    assert names(sll(b"\x42\x42\x03" + b"\x00" * 30, protocol=0x0004), 113) == ["sll", "raw"]


def test_raw_ip_and_loopback_link_types() -> None:
    assert names(ipv4(udp()), 101) == ["ipv4", "udp"]
    assert names(ipv6(udp()), 228) == ["ipv6", "udp"]  # LINKTYPE_IPV4 holding IPv6: the version decides
    assert names(ipv6(tcp()), 229) == ["ipv6", "tcp"]
    assert names(ipv4(tcp()), 12) == ["ipv4", "tcp"]
    assert names(struct.pack("<I", 2) + ipv4(tcp()), 0) == ["ipv4", "tcp"]
    assert names(struct.pack(">I", 30) + ipv6(tcp()), 0) == ["ipv6", "tcp"]
    assert names(struct.pack(">I", 2) + ipv4(tcp()), 108) == ["ipv4", "tcp"]


def test_ipv4_options_and_fragments() -> None:
    rr = b"\x07\x0b\x04" + bytes([1, 2, 3, 4, 10, 0, 0, 138]) + b"\x00"  # record route + EOL
    pkt = decode_frame(ether(ipv4(udp(), options=rr)), 1)
    ip = pkt.layers[1]
    assert isinstance(ip, IPv4) and ip.length == 32 and ip.options == (7, 0)
    assert pkt.layers[2].name == "udp" and pkt.layers[2].offset == 14 + 32
    first = record(ether(ipv4(udp(b"a" * 100), mf=True, ident=0x9C89)))
    assert (first.sport, first.more_fragments, first.frag_offset, first.ip_id) == (40000, True, 0, 0x9C89)
    assert first.notes == ()
    later = decode_frame(ether(ipv4(b"b" * 64, proto=17, frag_offset=1480)), 1)
    assert [layer.name for layer in later.layers] == ["eth", "ipv4", "raw"]
    r = record(ether(ipv4(b"b" * 64, proto=17, frag_offset=1480)))
    assert (r.proto, r.sport, r.frag_offset, r.payload_len) == (17, None, 1480, None)


def test_ipv6_extension_headers_and_fragments() -> None:
    ext = ipv6_ext(60, body=b"\x00" * 6) + ipv6_ext(43, body=b"\x00" * 14) + ipv6_ext(17, body=b"\x00" * 6)
    pkt = decode_frame(ether(ipv6(udp(dport=6363), ext=ext, ext_nh=0)), 1)
    ip = pkt.layers[1]
    assert isinstance(ip, IPv6)
    assert (ip.ext_headers, ip.proto, ip.length) == ((0, 60, 43), 17, 40 + 8 + 16 + 8)
    assert pkt.layers[2].name == "udp"
    frag0 = record(ether(ipv6(udp(b"z" * 40, dport=6363), ext=ipv6_frag(17, mf=True, ident=0xF88EB466), ext_nh=44)))
    assert (frag0.ip_id, frag0.more_fragments, frag0.dport) == (0xF88EB466, True, 6363)
    fragn = decode_frame(ether(ipv6(b"y" * 40, ext=ipv6_frag(17, offset=1448, ident=1), ext_nh=44, nh=17)), 1)
    assert [layer.name for layer in fragn.layers] == ["eth", "ipv6", "raw"]


def test_tcp_udp_sctp_arp() -> None:
    r = record(ether(ipv4(tcp(b"hello", flags="S", seq=1000, mss=1460, wscale=7, window=29200))))
    assert (r.tcp_flags, r.seq, r.tcp_mss, r.payload_len, r.payload_hash) == (2, 1000, 1460, 5, zlib.crc32(b"hello"))
    pkt = decode_frame(ether(ipv4(tcp(flags="S", mss=1460, wscale=7))), 1)
    assert (pkt.layers[-1].mss, pkt.layers[-1].wscale) == (1460, 7)
    r = record(ether(ipv4(sctp(sport=5000, dport=5001))))
    assert (r.proto, r.sport, r.dport) == (132, 5000, 5001)
    r = record(ether(arp(op=2, sender_ip="10.244.0.1", sender_mac="0a:58:0a:f4:00:01", target_ip="10.244.0.5")))
    assert (r.ip_version, r.arp_op, r.arp_sender_ip, r.arp_target_ip, r.arp_sender_mac) == (
        0, 2, "10.244.0.1", "10.244.0.5", "0a:58:0a:f4:00:01")
    # ARP inside VXLAN: the frame is ARP (inner fields empty), the outer fields still say where
    inner = ether(arp(sender_ip="10.244.1.0", target_ip="10.244.2.0"))
    r = record(ether(ipv4(udp(vxlan(inner, vni=1), dport=8472), src="192.168.0.11", dst="192.168.0.12")))
    assert (r.ip_version, r.src, r.sport, r.arp_op, r.tunnel, r.outer_dst) == (
        0, None, None, 1, "vxlan", "192.168.0.12")


def test_truncations_and_malformed_headers_become_notes() -> None:
    frame = bytes(vxlan_tcp_frame())
    pkt = decode_frame(frame[:47], 1, wire_len=len(frame))  # cut by a snaplen of 47
    assert [layer.name for layer in pkt.layers] == ["eth", "ipv4", "udp", "raw"]
    assert pkt.notes == (f"byte 14: IPv4 total length {len(frame) - 14}, only 33 bytes captured",)
    lying = decode_frame(frame[:47], 1)  # the same bytes as a whole frame: the IP header lies
    assert lying.notes == (f"byte 14: IPv4 total length {len(frame) - 14} exceeds the 33 bytes of its carrier",)
    assert "byte 42: VXLAN header needs 8 bytes, 5 left" not in pkt.notes  # one truncation note per frame
    # a header that lies about its size while the frame is complete
    lie = bytearray(frame)
    struct.pack_into("!H", lie, 38, 2)  # UDP length 2
    pkt = decode_frame(bytes(lie), 1)
    assert "byte 34: bogus UDP length 2 (less than 8)" in pkt.notes
    short_vx = bytes(ether(ipv4(udp(b"\x08\x00\x00\x00\x00", dport=8472, checksum=0))))
    pkt = decode_frame(short_vx, 1)
    assert pkt.notes == ("byte 42: VXLAN header needs 8 bytes, 5 left",)
    bad_ihl = bytes(ether(ipv4(udp(), ihl=4)))
    assert decode_frame(bad_ihl, 1).notes == ("byte 14: bogus IPv4 header length 16 (less than 20)",)
    v5 = bytes(ether(ipv4(udp(), version=5)))
    assert decode_frame(v5, 1).notes == ("byte 14: IPv4 header with version 5",)
    assert decode_frame(b"", 1).notes == ("byte 0: Ethernet header needs 14 bytes, 0 left",)
    assert decode_frame(b"\x00" * 10, 999).notes == ("link type 999 is not supported; frame left undecoded",)
    noflag = ether(ipv4(udp(vxlan(ether(ipv4(tcp())), vni=3, flags=0), dport=8472, checksum=0)))
    assert "byte 42: VXLAN I flag clear, the VNI may be invalid" in decode_frame(noflag, 1).notes
    tso = bytes(ether(ipv4(icmp(b"p" * 30), total_len=0)))
    pkt = decode_frame(tso, 1)
    assert [layer.name for layer in pkt.layers] == ["eth", "ipv4", "icmp"]
    assert pkt.notes == ("byte 14: IPv4 total length 0 (segmentation offload), using the captured length",)


def test_vxlan_nesting_triple() -> None:
    innermost = ether(ipv4(udp(b"dns-query", sport=53, dport=53), src="4.4.4.4", dst="4.4.4.9"))
    l3 = ether(ipv4(udp(vxlan(innermost, vni=3), dport=4789, checksum=0), src="3.3.3.3", dst="3.3.3.9"))
    l2 = ether(ipv4(udp(vxlan(l3, vni=2), dport=4789, checksum=0), src="2.2.2.2", dst="2.2.2.9"))
    l1 = ether(ipv4(udp(vxlan(l2, vni=1), dport=4789, checksum=0), src="1.1.1.1", dst="1.1.1.9"))
    r = record(l1)
    assert (r.tunnel, r.vni, r.tunnel_depth, r.outer_src, r.src) == ("vxlan", 1, 3, "1.1.1.1", "4.4.4.4")
    obj = decode_frame(l1, 1).to_contract(1, 0.0, None)
    assert obj["tunnels"] == [{"type": "vxlan", "vni": v} for v in (1, 2, 3)]


def _with_inner_tcp_csum(frame: bytes, value: int) -> bytes:
    """``frame`` (a VXLAN TCP frame) with its inner TCP checksum field set to ``value``."""
    buf = bytearray(frame)
    inner_tcp = 14 + 20 + 8 + 8 + 14 + 20
    struct.pack_into("!H", buf, inner_tcp + 16, value)
    return bytes(buf)


def test_checksum_offload_is_not_an_error() -> None:
    """Captured on the sending node: the NIC has not filled in the checksums yet."""
    good = bytes(vxlan_tcp_frame(udp_checksum=None, payload=b"data" * 10))
    inner_tcp = 14 + 20 + 8 + 8 + 14 + 20
    real_inner = struct.unpack_from("!H", good, inner_tcp + 16)[0]
    # local checksum offload: the outer checksum is right for the packet once the inner one is
    # filled in; the inner field still holds its pseudo-header partial sum
    src, dst = bytes([10, 244, 1, 5]), bytes([10, 244, 2, 7])
    seg_len = len(good) - inner_tcp
    partial = (int.from_bytes(src + dst + bytes([0, 6]) + seg_len.to_bytes(2, "big"), "big") % 0xFFFF) or 0xFFFF
    assert partial != real_inner
    lco = _with_inner_tcp_csum(good, partial)
    r = record(lco)
    assert (r.outer_udp_csum_ok, r.notes) == (None, ())
    # the outer field itself holds only the outer pseudo-header sum (CHECKSUM_PARTIAL)
    buf = bytearray(good)
    ulen = len(good) - 34
    outer_partial = (int.from_bytes(bytes([192, 168, 0, 11, 192, 168, 0, 12, 0, 17]) + ulen.to_bytes(2, "big"),
                                    "big") % 0xFFFF) or 0xFFFF
    struct.pack_into("!H", buf, 40, outer_partial)
    r = record(bytes(buf))
    assert (r.outer_udp_csum_ok, r.notes) == (None, ())
    # a really damaged payload: neither explanation fits
    broken = bytearray(good)  # complete checksums, as the receiving node sees them
    broken[-1] ^= 0xFF
    r = record(bytes(broken))
    assert r.outer_udp_csum_ok is False
    assert len(r.notes) == 1 and "outer UDP checksum" in r.notes[0]


def test_sll2_interface_index_resolved_by_the_caller() -> None:
    frame = RawFrame("any.pcap", 1, 0.0, 276, bytes(sll2(ipv4(udp()), ifindex=7)), 50, None)
    pkt = decode_frame(frame.data, 276)
    assert to_record(frame, pkt).interface is None
    assert to_record(frame, pkt, ifnames={7: "flannel.1", 2: "eth0"}).interface == "flannel.1"
    assert to_record(frame, pkt, ifnames={2: "eth0"}).interface is None
    named = RawFrame("c.pcapng", 1, 0.0, 276, frame.data, 50, "cni0")  # the file's own name wins
    assert to_record(named, pkt, ifnames={7: "flannel.1"}).interface == "cni0"


def test_fast_constructors_build_the_same_frozen_objects() -> None:
    import dataclasses

    import pytest

    from analyzer.model.packet import IPv4 as IPv4Layer
    from analyzer.model.packet import frozen_builder
    from analyzer.model.record import PacketRecord

    a = IPv4Layer(14, 20, "10.0.0.1", "10.0.0.2", 6, 64, 0, 40, 1, True, False, 0, 0, ())
    b = IPv4Layer(offset=14, length=20, src="10.0.0.1", dst="10.0.0.2", proto=6, ttl=64, tos=0, total_len=40,
                  ident=1, df=True, mf=False, frag_offset=0, checksum=0, options=())
    assert a == b and hash(a) == hash(b) and a.src == "10.0.0.1" and a.name == "ipv4"
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.src = "x"  # type: ignore[misc]
    build = frozen_builder(PacketRecord)
    fast = build("f.pcap", 3, 1.0, "eth0", 60, 60, 1, src="10.0.0.1", sport=5, notes=("n",))
    slow = PacketRecord("f.pcap", 3, 1.0, "eth0", 60, 60, 1, src="10.0.0.1", sport=5, notes=("n",))
    assert fast == slow and fast.quoted is None and fast.tunnel_depth == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.src = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        build("f.pcap")  # missing required fields, as with the real constructor


def test_vlan_tag_in_cooked_captures_keeps_its_tpid() -> None:
    pkt = decode_frame(sll2(vlan(ipv4(udp()), vid=42, tpid=0x88A8), protocol=0x88A8), 276)
    tag = pkt.layers[1]
    assert (tag.name, tag.tpid, tag.vid) == ("vlan", 0x88A8, 42)
    pkt = decode_frame(sll(vlan(ipv4(udp()), vid=7)), 113)
    assert (pkt.layers[1].tpid, pkt.layers[1].vid, pkt.layers[2].name) == (0x8100, 7, "ipv4")


def test_erspan_mirrored_frames_decode_inside_gre() -> None:
    mirrored = bytes(vxlan_tcp_frame(vni=9))
    erspan2 = struct.pack("!HHI", 0x1000 | 100, 0x0001, 0)  # version 1, VLAN 100, session 1
    frame = ether(ipv4(gre(erspan2 + mirrored, protocol=0x88BE, seq=5), src="172.16.0.1", dst="172.16.0.2"))
    pkt = decode_frame(frame, 1)
    assert [layer.name for layer in pkt.layers] == ["eth", "ipv4", "gre", "eth", "ipv4", "udp", "vxlan", "eth",
                                                    "ipv4", "tcp"]
    assert pkt.layers[2].length == 8 + 8 and pkt.notes == ()
    erspan3 = bytes(12)
    r = record(ether(ipv4(gre(erspan3 + mirrored, protocol=0x22EB, seq=6))))
    assert (r.tunnel, r.tunnel_depth, r.vni, r.src) == ("gre", 2, None, "10.244.1.5")


def _dns(ident: int, flags: int, name: str, qtype: int, answers: int = 0) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", ident, flags, 1, answers, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def test_dns_to_a_cluster_ip_is_summarised() -> None:
    query = ether(ipv4(udp(_dns(0x1A2B, 0x0100, "web.default.svc.cluster.local", 28), sport=41000, dport=53),
                       src="10.244.1.5", dst="10.96.0.10"))
    assert summarize(decode_frame(query, 1)) == (
        "10.244.1.5:41000 -> 10.96.0.10:53 UDP len=47 DNS query AAAA web.default.svc.cluster.local id=0x1a2b")
    reply = ether(ipv4(udp(_dns(0x1A2B, 0x8183, "nope.default.svc.cluster.local", 1), sport=53, dport=41000)))
    assert summarize(decode_frame(reply, 1)).endswith(
        "DNS response A nope.default.svc.cluster.local id=0x1a2b NXDOMAIN answers=0")
    # malformed: no summary, no exception, no note (DNS is not ours to judge)
    for junk in (b"\x00" * 5, _dns(1, 0, "a.b", 1)[:-3], struct.pack("!6H", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c"):
        pkt = decode_frame(ether(ipv4(udp(junk, dport=53))), 1)
        assert pkt.layers[-1].app is None and pkt.notes == ()
