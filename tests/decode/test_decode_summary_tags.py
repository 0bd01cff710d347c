"""The one-line summary names the tags in front of a tunnel segment for what they are."""

from __future__ import annotations

from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.vxlan import VXLAN

from analyzer.inputs.decode import decode_frame
from analyzer.model.packet import summarize

_INNER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.244.1.2", dst="10.244.2.3") / TCP()
_OUTER = IP(src="192.168.0.1", dst="192.168.0.2") / UDP(sport=40000, dport=8472) / VXLAN(vni=1)


def test_vlan_tag_before_a_tunnel() -> None:
    frame = Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04") / Dot1Q(vlan=10) / _OUTER / _INNER
    assert summarize(decode_frame(bytes(frame), 1)).startswith("vlan 10 192.168.0.1 -> 192.168.0.2 UDP 8472 VXLAN")


def test_mpls_label_before_a_tunnel_is_not_called_vlan() -> None:
    frame = Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04", type=0x8847) / MPLS(label=16) / _OUTER / _INNER
    assert summarize(decode_frame(bytes(frame), 1)).startswith("mpls 16 192.168.0.1 -> 192.168.0.2 UDP 8472 VXLAN")
