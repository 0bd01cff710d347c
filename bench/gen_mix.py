#!/usr/bin/env python3
"""Write an N-packet flannel-style capture mix, fast (struct-built headers, no scapy).

    python bench/gen_mix.py 1000000 bench/data/mix-1m.pcap [--seed 1] [--truth]

The mix, by packet share (approximately): 70% VXLAN/8472 pod-to-pod TCP across 4 nodes (real
conversations: handshake, data both ways, FIN both ways, ~1% retransmitted data segments), 15%
plain bridge pod-to-pod TCP on one node, 8% DNS (UDP) from pods to the ClusterIP 10.96.0.10:53,
4% IPIP pod TCP, 3% of ARP, ICMP echo and IPv6 TCP. About 420 bytes per record on average.

With ``--truth`` a sidecar ``OUT.truth.json`` lists each conversation's ground truth (protocol,
client, server, packets and bytes each way, retransmissions, tunnel) so tests can check
``k8s-trace flows`` against what was written rather than against another decoder.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
_REC = struct.Struct("<IIII")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
ETH_IP = b"\x08\x00"
VNI = 1
NODES = [f"192.168.0.{11 + i}" for i in range(4)]
PODNETS = [f"10.244.{i}." for i in range(4)]
CLUSTER_DNS = "10.96.0.10"
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_FILL = bytes(random.Random(7).getrandbits(8) for _ in range(4096))


def _csum(hdr: bytes) -> int:
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: bytes, dst: bytes, proto: int, payload_len: int, ident: int) -> bytes:
    total = 20 + payload_len
    hdr = _IP.pack(0x45, 0, total, ident & 0xFFFF, 0x4000, 64, proto, 0, src, dst)
    return hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]


def _v6(text: str) -> str:
    """The canonical (RFC 5952) text of an IPv6 address, as decoders print it."""
    return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))


def mac(n: int) -> bytes:
    return bytes([0x02, 0x42, 0, 0, (n >> 8) & 0xFF, n & 0xFF])


class Conv:
    """One conversation's ground truth while its frames are produced."""

    __slots__ = ("proto", "client", "server", "cport", "sport", "pk", "by", "retrans", "tunnel", "outer")

    def __init__(self, proto: str, client: str, server: str, cport: int | None, sport: int | None,
                 tunnel: str | None = None, outer: tuple[str, str] | None = None) -> None:
        self.proto, self.client, self.server, self.cport, self.sport = proto, client, server, cport, sport
        self.pk = [0, 0]
        self.by = [0, 0]
        self.retrans = 0
        self.tunnel = tunnel
        self.outer = outer

    def truth(self) -> dict:
        return {
            "proto": self.proto,
            "client": {"ip": self.client, "port": self.cport},
            "server": {"ip": self.server, "port": self.sport},
            "packets_c2s": self.pk[0],
            "packets_s2c": self.pk[1],
            "bytes_c2s": self.by[0],
            "bytes_s2c": self.by[1],
            "retransmissions": self.retrans,
            "tunnel": self.tunnel,
            "outer": list(self.outer) if self.outer else None,
        }


class Mix:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ident = 0
        self.ports: dict[str, int] = {}
        self.convs: list[Conv] = []

    def eport(self, ip: str) -> int:
        port = self.ports.get(ip, 32768) + 1
        if port > 60999:
            port = 32769
        self.ports[ip] = port
        return port

    def pod(self, node: int) -> str:
        return PODNETS[node] + str(self.rng.randint(2, 60))

    # ---- framing: each returns a function payload-frame -> full frame

    def plain(self, smac: bytes, dmac: bytes):
        def wrap(ip_packet: bytes, back: bool) -> bytes:
            return (smac + dmac if back else dmac + smac) + ETH_IP + ip_packet
        return wrap

    def vxlan(self, a: int, b: int):
        oa, ob = socket.inet_aton(NODES[a]), socket.inet_aton(NODES[b])
        ports = (self.rng.randint(32768, 60999), self.rng.randint(32768, 60999))
        ea, eb = mac(a + 1), mac(b + 1)
        fa, fb = mac(0x100 + a), mac(0x100 + b)
        vx = struct.pack("!BxxxI", 0x08, VNI << 8)

        def wrap(ip_packet: bytes, back: bool) -> bytes:
            inner = (fa + fb if back else fb + fa) + ETH_IP + ip_packet
            udp_len = 8 + 8 + len(inner)
            self.ident += 1
            src, dst = (ob, oa) if back else (oa, ob)
            udp = _UDP.pack(ports[back], 8472, udp_len, 0)
            return (ea + eb if back else eb + ea) + ETH_IP + ipv4(src, dst, 17, udp_len, self.ident) + udp + vx + inner
        return wrap

    def ipip(self, a: int, b: int):
        oa, ob = socket.inet_aton(NODES[a]), socket.inet_aton(NODES[b])
        ea, eb = mac(a + 1), mac(b + 1)

        def wrap(ip_packet: bytes, back: bool) -> bytes:
            self.ident += 1
            src, dst = (ob, oa) if back else (oa, ob)
            return (ea + eb if back else eb + ea) + ETH_IP + ipv4(src, dst, 4, len(ip_packet), self.ident) + ip_packet
        return wrap

    # ---- conversations: generators of frames (bytes), recording their truth

    def tcp(self, conv: Conv, wrap, segments: int) -> Iterator[bytes]:
        rng = self.rng
        c, s = socket.inet_aton(conv.client), socket.inet_aton(conv.server)
        cp, sp = conv.cport, conv.sport
        seq = [rng.getrandbits(32), rng.getrandbits(32)]

        def seg(back: bool, flags: int, plen: int, seq_no: int | None = None) -> bytes:
            d = int(back)
            if seq_no is not None:
                conv.retrans += 1
            sq = seq[d] if seq_no is None else seq_no
            hdr = _TCP.pack(sp if back else cp, cp if back else sp, sq, seq[1 - d] if flags & ACK else 0,
                            0x50, flags, 64240, 0, 0)
            self.ident += 1
            off = rng.randrange(0, 2048)
            body = hdr + _FILL[off : off + plen]
            pkt = ipv4(s if back else c, c if back else s, 6, len(body), self.ident) + body
            frame = wrap(pkt, back)
            conv.pk[d] += 1
            conv.by[d] += len(frame)
            return frame

        yield seg(False, SYN, 0)
        seq[0] = (seq[0] + 1) & 0xFFFFFFFF
        yield seg(True, SYN | ACK, 0)
        seq[1] = (seq[1] + 1) & 0xFFFFFFFF
        yield seg(False, ACK, 0)
        for _ in range(segments):
            back = rng.random() < 0.55
            d = int(back)
            plen = rng.choice((rng.randint(100, 500), 1448)) if back else rng.randint(60, 400)
            start = seq[d]
            yield seg(back, PSH | ACK, plen)
            seq[d] = (seq[d] + plen) & 0xFFFFFFFF
            if rng.random() < 0.01:  # retransmit the same segment (same sequence range)
                yield seg(back, PSH | ACK, plen, start)
            if rng.random() < 0.3:
                yield seg(not back, ACK, 0)
        yield seg(False, FIN | ACK, 0)
        seq[0] = (seq[0] + 1) & 0xFFFFFFFF
        yield seg(True, FIN | ACK, 0)
        seq[1] = (seq[1] + 1) & 0xFFFFFFFF
        yield seg(False, ACK, 0)

    def dns(self, conv: Conv, wrap) -> Iterator[bytes]:
        c, s = socket.inet_aton(conv.client), socket.inet_aton(conv.server)
        for back, plen in ((False, 40), (True, 120)):
            d = int(back)
            body = _UDP.pack(conv.sport if back else conv.cport, conv.cport if back else conv.sport, 8 + plen, 0)
            body += _FILL[:plen]
            self.ident += 1
            frame = wrap(ipv4(s if back else c, c if back else s, 17, len(body), self.ident) + body, back)
            conv.pk[d] += 1
            conv.by[d] += len(frame)
            yield frame

    def icmp_echo(self, conv: Conv, wrap) -> Iterator[bytes]:
        c, s = socket.inet_aton(conv.client), socket.inet_aton(conv.server)
        ident = self.rng.getrandbits(16)
        for n in range(2):
            for back in (False, True):
                d = int(back)
                body = struct.pack("!BBHHH", 0 if back else 8, 0, 0, ident, n) + _FILL[:56]
                self.ident += 1
                frame = wrap(ipv4(s if back else c, c if back else s, 1, len(body), self.ident) + body, back)
                conv.pk[d] += 1
                conv.by[d] += len(frame)
                yield frame

    def tcp6(self, conv: Conv, smac: bytes, dmac: bytes) -> Iterator[bytes]:
        c = socket.inet_pton(socket.AF_INET6, conv.client)
        s = socket.inet_pton(socket.AF_INET6, conv.server)
        # (direction, flags, seq, ack): handshake, then FIN both ways (client ISN 1000, server 5000)
        for back, flags, sq, ak in ((False, SYN, 1000, 0), (True, SYN | ACK, 5000, 1001), (False, ACK, 1001, 5001),
                                    (False, FIN | ACK, 1001, 5001), (True, FIN | ACK, 5001, 1002),
                                    (False, ACK, 1002, 5002)):
            d = int(back)
            hdr = _TCP.pack(conv.sport if back else conv.cport, conv.cport if back else conv.sport,
                            sq, ak, 0x50, flags, 64240, 0, 0)
            ip6 = struct.pack("!IHBB", 0x60000000, len(hdr), 6, 64) + (s + c if back else c + s)
            frame = (smac + dmac if back else dmac + smac) + b"\x86\xdd" + ip6 + hdr
            conv.pk[d] += 1
            conv.by[d] += len(frame)
            yield frame

    def arp(self) -> bytes:
        node = self.rng.randrange(4)
        body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac(node + 1), socket.inet_aton(NODES[node]),
                           bytes(6), socket.inet_aton(NODES[(node + 1) % 4]))
        return b"\xff" * 6 + mac(node + 1) + b"\x08\x06" + body + bytes(18)

    def new_conv(self) -> Iterator[bytes]:
        rng = self.rng
        r = rng.random()
        a = rng.randrange(4)
        if r < 0.237:  # VXLAN pod-to-pod across nodes (long conversations: ~70% of packets)
            b = (a + rng.randrange(1, 4)) % 4
            client, server = self.pod(a), self.pod(b)
            conv = Conv("tcp", client, server, self.eport(client), rng.choice((80, 443, 8080, 5432)),
                        "vxlan", (NODES[a], NODES[b]))
            self.convs.append(conv)
            return self.tcp(conv, self.vxlan(a, b), rng.randint(8, 40))
        if r < 0.301:  # bridge: pod to pod on one node
            client, server = self.pod(a), self.pod(a)
            while server == client:
                server = self.pod(a)
            conv = Conv("tcp", client, server, self.eport(client), rng.choice((80, 6379)))
            self.convs.append(conv)
            return self.tcp(conv, self.plain(mac(0x200 + a), mac(0x300 + a)), rng.randint(6, 30))
        if r < 0.803:  # DNS query and answer to the cluster DNS service
            client = self.pod(a)
            conv = Conv("udp", client, CLUSTER_DNS, self.eport(client), 53)
            self.convs.append(conv)
            return self.dns(conv, self.plain(mac(0x200 + a), mac(0x300 + a)))
        if r < 0.822:  # IPIP pod-to-pod across nodes
            b = (a + rng.randrange(1, 4)) % 4
            client, server = self.pod(a), self.pod(b)
            conv = Conv("tcp", client, server, self.eport(client), 8080, "ipip", (NODES[a], NODES[b]))
            self.convs.append(conv)
            return self.tcp(conv, self.ipip(a, b), rng.randint(6, 24))
        if r < 0.947:
            return iter([self.arp()])
        if r < 0.979:
            conv = Conv("icmp", self.pod(a), self.pod((a + 1) % 4), None, None)
            self.convs.append(conv)
            return self.icmp_echo(conv, self.plain(mac(0x200 + a), mac(0x300 + a)))
        client = _v6(f"fd00:10:244:{a}::{rng.randint(2, 200):x}")
        conv = Conv("tcp", client, _v6(f"fd00:10:244:{a}::1"), self.eport(client), 443)
        self.convs.append(conv)
        return self.tcp6(conv, mac(0x200 + a), mac(0x300 + a))


def generate(n: int, out: Path, *, seed: int = 1, truth: bool = False, active: int = 64) -> int:
    """Write ``n`` frames to ``out``; returns the file size."""
    mix = Mix(seed)
    pool = [mix.new_conv() for _ in range(active)]
    rng = mix.rng
    t_us = 1_700_000_000 * 1_000_000
    parts: list[bytes] = [PCAP_HEADER]
    size = 0
    pack = _REC.pack
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        written = 0
        while written < n:
            j = rng.randrange(active)
            frame = next(pool[j], None)
            if frame is None:
                pool[j] = mix.new_conv()
                continue
            t_us += rng.randint(1, 40)
            parts.append(pack(t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
            parts.append(frame)
            written += 1
            if len(parts) >= 8192:
                data = b"".join(parts)
                size += len(data)
                fh.write(data)
                parts = []
        data = b"".join(parts)
        size += len(data)
        fh.write(data)
    if truth:
        # conversations cut off by the end of the file still count what was written
        convs = [c.truth() for c in mix.convs if c.pk[0] + c.pk[1]]
        Path(str(out) + ".truth.json").write_text(json.dumps({"frames": n, "conversations": convs}))
    return size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packets", type=int)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--truth", action="store_true", help="also write OUT.truth.json (ground truth per flow)")
    args = ap.parse_args(argv)
    size = generate(args.packets, args.out, seed=args.seed, truth=args.truth)
    print(f"{args.out}: {args.packets} packets, {size / 1e6:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
