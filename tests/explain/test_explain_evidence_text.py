"""The one-line packet text used as evidence in hops and findings."""

from __future__ import annotations

from analyzer.engines.paths import sighting_text
from analyzer.model.explain import Sighting
from analyzer.model.record import PacketRecord


def _sighting(**kw: object) -> Sighting:
    rec = PacketRecord(file="c.pcap", frame=7, ts=1.0, interface=None, wire_len=100, cap_len=100, linktype=1,
                       ip_version=4, **kw)  # type: ignore[arg-type]
    return Sighting(record=rec, node=None, interface=None, direction="fwd", ts=1.0, key=())


def test_ipip_has_no_outer_port() -> None:
    s = _sighting(src="10.244.1.5", dst="10.244.2.7", proto=6, sport=40000, dport=80, tcp_flags=0x18,
                  payload_len=10, tunnel="ipip", outer_src="192.168.0.13", outer_dst="192.168.0.11")
    assert sighting_text(s) == "10.244.1.5:40000 > 10.244.2.7:80 PSH/ACK len=10 in IPIP 192.168.0.13 > 192.168.0.11"


def test_vxlan_keeps_its_port_and_ipv6_is_bracketed() -> None:
    s = _sighting(src="10.244.1.5", dst="10.244.2.7", proto=17, sport=5353, dport=53, payload_len=30,
                  tunnel="vxlan", outer_src="192.168.0.13", outer_dst="192.168.0.11", outer_dport=8472)
    assert sighting_text(s).endswith("UDP len=30 in VXLAN 192.168.0.13 > 192.168.0.11:8472")
    v6 = _sighting(src="fd00::1", dst="fd00::2", proto=6, sport=1, dport=443, tcp_flags=0x02)
    assert sighting_text(v6) == "[fd00::1]:1 > [fd00::2]:443 SYN"
