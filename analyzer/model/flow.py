"""Conversations of inner flows, as ``k8s-trace flows`` reports them and ``explain`` consumes them.

A flow is one inner (innermost, non-quoted) conversation: the same protocol and the same pair of
``ip:port`` endpoints, whichever tunnel carried it. The *client* is the initiator: the sender of the
first pure TCP SYN when one was captured, else the source of the first packet seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyzer.model.protocols import PROTO_NAMES as PROTO_NAMES  # re-exported: the table is in protocols.py
from analyzer.model.protocols import proto_name as proto_name
from analyzer.model.record import PacketRecord


@dataclass(frozen=True, slots=True)
class Encap:
    """One tunnel a flow was seen in; ``outer_src`` -> ``outer_dst`` as on the wire."""

    type: str  # vxlan, geneve, ipip, ip6in4, gre, flannel-udp
    vni: int | None
    outer_src: str | None
    outer_dst: str | None
    port: int | None  # outer UDP destination port (None for IP-protocol tunnels)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "vni": self.vni,
            "port": self.port,
            "outer_src": self.outer_src,
            "outer_dst": self.outer_dst,
        }


@dataclass(frozen=True, slots=True)
class TCPSummary:
    syn: bool  # a SYN without ACK was seen
    syn_ack: bool  # a SYN+ACK was seen
    handshake: bool  # SYN, SYN+ACK, then the client's ACK acknowledging the server's ISN
    fin: bool
    rst: bool
    fin_from_client: bool = False
    fin_from_server: bool = False
    rst_from_client: bool = False
    rst_from_server: bool = False
    retransmissions: int = 0  # data segments whose sequence range was already seen (per file)

    def to_json(self) -> dict[str, Any]:
        return {
            "syn": self.syn,
            "syn_ack": self.syn_ack,
            "handshake": self.handshake,
            "fin": self.fin,
            "rst": self.rst,
            "fin_from": _side(self.fin_from_client, self.fin_from_server),
            "rst_from": _side(self.rst_from_client, self.rst_from_server),
            "retransmissions": self.retransmissions,
        }


def _side(client: bool, server: bool) -> list[str]:
    return [name for name, seen in (("client", client), ("server", server)) if seen]


@dataclass(frozen=True, slots=True)
class FlowSummary:
    key: str  # stable text key: "tcp 10.244.1.5:40000 > 10.244.2.7:80" (client first)
    proto: str  # tcp, udp, icmp, ...
    proto_num: int
    client_ip: str
    client_port: int | None
    server_ip: str
    server_port: int | None
    packets_c2s: int
    packets_s2c: int
    bytes_c2s: int  # wire lengths (outer frame, as captured on the wire)
    bytes_s2c: int
    first_ts: float
    last_ts: float
    encapsulations: tuple[Encap, ...] = ()
    tcp: TCPSummary | None = None
    icmp_errors: int = 0  # ICMP/ICMPv6 errors quoting a packet of this flow
    per_file: tuple[tuple[str, int], ...] = ()  # (capture file, packets of this flow in it)
    samples: tuple[PacketRecord, ...] = ()  # only with sample=K; file order, then frame order

    @property
    def packets(self) -> int:
        return self.packets_c2s + self.packets_s2c

    @property
    def bytes(self) -> int:
        return self.bytes_c2s + self.bytes_s2c

    @property
    def client(self) -> str:
        return endpoint_text(self.client_ip, self.client_port)

    @property
    def server(self) -> str:
        return endpoint_text(self.server_ip, self.server_port)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "proto": self.proto,
            "client": {"ip": self.client_ip, "port": self.client_port},
            "server": {"ip": self.server_ip, "port": self.server_port},
            "packets": self.packets,
            "bytes": self.bytes,
            "packets_c2s": self.packets_c2s,
            "packets_s2c": self.packets_s2c,
            "bytes_c2s": self.bytes_c2s,
            "bytes_s2c": self.bytes_s2c,
            "first_seen": self.first_ts,
            "last_seen": self.last_ts,
            "duration": round(self.last_ts - self.first_ts, 9),
            "encapsulation": [e.to_json() for e in self.encapsulations],
            "tcp": self.tcp.to_json() if self.tcp else None,
            "icmp_errors": self.icmp_errors,
            "per_file": [{"file": f, "packets": n} for f, n in self.per_file],
        }


def endpoint_text(ip: str, port: int | None) -> str:
    """``ip:port`` (``[v6]:port``), or the bare address for portless protocols."""
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True, slots=True)
class FileStats:
    path: str
    frames: int
    bytes: int  # file size
    linktype: int | None
    fast_frames: int  # frames decoded by the fixed-offset fast path
    fallback_frames: int  # frames handed to the general decoder


@dataclass(frozen=True, slots=True)
class FlowScan:
    flows: tuple[FlowSummary, ...]
    files: tuple[FileStats, ...]
    warnings: tuple[str, ...]
    total_frames: int
    undecodable_frames: int  # frames with no IP header we could use (bad or truncated)
    non_ip_frames: int = 0  # ARP, LLDP...: decodable but not part of any IP flow
    extra: dict[str, Any] = field(default_factory=dict)
