"""FlowTable's per-flow columns for the plain lane (``column``, ``file_packets``, ``monotonic``):
checked against the general decoder's records frame by frame and against crafted conversations."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from builders import ether, icmp, icmp_frag_needed, ipv4, tcp, udp, vxlan, write_pcap

from analyzer.engines.flowtable import FlowTable
from analyzer.inputs.capture import read_capture
from analyzer.inputs.decode import decode_frame, to_record
from analyzer.inputs.fastpath import AddressTable, iter_batches
from analyzer.pipeline.flows import scan_table

ROOT = Path(__file__).resolve().parents[2]
C, S = "10.244.1.5", "10.244.2.7"
NODE1, NODE2 = "192.168.0.11", "192.168.0.12"


def _seg(flags: str, seq: int, ack: int, data: bytes = b"", *, back: bool = False, ident: int) -> bytes:
    src, dst = (S, C) if back else (C, S)
    sp, dp = (80, 40000) if back else (40000, 80)
    return ether(ipv4(tcp(data, sport=sp, dport=dp, flags=flags, seq=seq, ack=ack), src=src, dst=dst, ident=ident))


def _wrap(inner: bytes, *, back: bool = False) -> bytes:
    osrc, odst = (NODE2, NODE1) if back else (NODE1, NODE2)
    return ether(ipv4(udp(vxlan(inner, vni=1), sport=50000, dport=8472, checksum=0), src=osrc, dst=odst))


def _conversation() -> list[tuple[bytes, bool]]:
    """(frame, sent by the server) of a TCP conversation with one retransmitted response."""
    return [
        (_seg("S", 100, 0, ident=1), False),
        (_seg("SA", 500, 101, back=True, ident=2), True),
        (_seg("A", 101, 501, ident=3), False),
        (_seg("PA", 101, 501, b"GET / HTTP/1.1\r\n\r\n", ident=4), False),
        (_seg("PA", 501, 119, b"x" * 300, back=True, ident=5), True),
        (_seg("PA", 501, 119, b"x" * 300, back=True, ident=6), True),  # retransmission: a new IP ID
        (_seg("FA", 119, 801, ident=7), False),
        (_seg("FA", 801, 120, back=True, ident=8), True),
        (_seg("A", 120, 802, ident=9), False),
    ]


def _flow(table, x: str, y: str, addrs) -> int:  # noqa: ANN001 - FlowTable, AddressTable
    """The one flow between addresses ``x`` and ``y``."""
    lo, hi = sorted((addrs.intern(x), addrs.intern(y)))
    hit = np.flatnonzero((table.column("lo") == lo) & (table.column("hi") == hi))
    assert len(hit) == 1, hit
    return int(hit[0])


def test_copies_syns_tunnels_and_retransmissions_per_direction(tmp_path: Path) -> None:
    """``tcpdump -i any`` on a node: every packet inside and outside VXLAN (the same IPv4 ID)."""
    frames = [x for f, back in _conversation() for x in (f, _wrap(f, back=back))]
    scan = scan_table([write_pcap(tmp_path / "c.pcap", frames)], sample=4)  # (the lane's columns need samples)
    t = scan.table
    assert t.count == 1
    g = _flow(t, C, S, scan.addrs)  # C < S numerically: direction 0 is client -> server
    assert t.column("pk")[g].tolist() == [10, 8]
    assert t.column("syn_n")[g].tolist() == [2, 2]  # SYN and its copy; SYN+ACK and its copy
    assert t.column("tun_pk")[g].tolist() == [5, 4]
    # data segments: request, response, retransmitted response; each has one copy
    assert int(t.column("dups")[g]) == 3
    assert int(t.column("retrans")[g]) == 1
    assert int(t.column("slow")[g]) == 0
    assert t.column("flags_or")[g].tolist() == [0x03, 0x03]  # SYN|FIN each way
    assert t.column("pk").shape == (1, 2) and t.column("retrans").shape == (1,)
    with pytest.raises(ValueError):
        t.column("pk")[0, 0] = 7  # a read-only view
    with pytest.raises(KeyError):
        t.column("seen")  # sampler state is no per-flow column


def test_slow_counts_general_decoder_rows_and_icmp_errors(tmp_path: Path) -> None:
    q = ether(ipv4(udp(b"q" * 30, sport=33333, dport=53), src=C, dst="10.96.0.10"))
    q_opt = ether(ipv4(udp(b"q" * 30, sport=33333, dport=53), src=C, dst="10.96.0.10", options=b"\x01" * 4))
    unreach = ether(ipv4(icmp(bytes(q[14:14 + 28]), type=3, code=3), src="10.96.0.10", dst=C))
    big = _seg("PA", 1, 1, b"z" * 1400, ident=50)
    frag = ether(ipv4(icmp_frag_needed(bytes(big[14:14 + 100]), mtu=1450), src=NODE2, dst=NODE1))
    scan = scan_table([write_pcap(tmp_path / "e.pcap", [q, q_opt, unreach, big, frag])])
    t = scan.table
    dns = _flow(t, C, "10.96.0.10", scan.addrs)
    web = _flow(t, C, S, scan.addrs)
    # the DNS flow: one fast row, one with IP options (general decoder), one ICMP error quoting it;
    # 10.96.0.10 is the lower address: the client's direction is 1
    assert t.column("pk")[dns].tolist() == [0, 2]
    assert int(t.column("slow")[dns]) == 2
    assert int(t.column("icmp_errors")[dns]) == 1
    assert int(t.column("slow")[web]) == 1  # the fragmentation-needed error
    assert t.column("tun_pk")[web].tolist() == [0, 0]
    assert int(t.column("slow").sum()) == scan.files[0].fallback_frames


def test_file_packets_and_monotonic(tmp_path: Path) -> None:
    conv = [f for f, _back in _conversation()]
    t0 = 1_700_000_000.0
    ordered = [(t0 + i, f) for i, f in enumerate(conv)]
    swapped = list(ordered)
    swapped[3], swapped[4] = swapped[4], swapped[3]  # the capture's clock went back once
    equal = [(t0, f) for f in conv[:3]]  # equal timestamps are not a decrease
    paths = [write_pcap(tmp_path / "a.pcap", ordered), write_pcap(tmp_path / "b.pcap", swapped),
             write_pcap(tmp_path / "c.pcap", equal)]
    t = scan_table(paths).table
    assert t.file_packets().tolist() == [[9], [9], [3]]
    assert [t.monotonic(i) for i in range(3)] == [True, False, True]
    # the clock going back between two batches of one file counts too
    path = write_pcap(tmp_path / "d.pcap", [(t0 + i, f) for i, f in enumerate(conv * 1000)])  # > one 512 KiB chunk
    addrs = AddressTable()
    b1, b2 = list(iter_batches(path, addrs=addrs, chunk_bytes=4096))[:2]
    assert b2.ts[0] > b1.ts[-1]
    for shift, want in ((0.0, True), (b2.ts[0] - b1.ts[-1] + 0.5, False)):
        table = FlowTable(intern=addrs.intern)
        table.begin_file(str(path))
        table.add(b1)
        table.add(replace(b2, ts=b2.ts - shift))
        assert table.monotonic(0) is want


@pytest.mark.parametrize("seed", [3, 11])
def test_columns_match_the_general_decoder_on_a_mix(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "mix.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), "3000", str(path), "--seed", str(seed)],
                   check=True, capture_output=True)
    scan = scan_table([path], sample=4)  # (the lane's columns need samples)
    t = scan.table
    want: dict[tuple, Counter] = {}
    last: dict[tuple, float] = {}
    for raw in read_capture(path):
        r = to_record(raw, decode_frame(raw.data, raw.linktype))
        if r.src is None or r.proto is None or r.quoted is not None:
            continue
        a, b = (scan.addrs.intern(r.src), r.sport if r.sport is not None else -1), \
            (scan.addrs.intern(r.dst), r.dport if r.dport is not None else -1)
        key = (r.proto, *min(a, b), *max(a, b))
        d = int(a > b)
        c = want.setdefault(key, Counter())
        c[("pk", d)] += 1
        c[("syn_n", d)] += int(r.proto == 6 and bool((r.tcp_flags or 0) & 0x02))
        c[("tun_pk", d)] += int(bool(r.tunnel))
        last[key] = r.ts
    k3 = t.column("k3")
    got = {}
    for g in range(t.count):
        key = (int(t.column("proto")[g]), int(t.column("lo")[g]), int((k3[g] >> 20) & 0xFFFFF) - 1,
               int(t.column("hi")[g]), int(k3[g] & 0xFFFFF) - 1)
        got[key] = Counter({(name, d): int(t.column(name)[g, d]) for name in ("pk", "syn_n", "tun_pk")
                            for d in (0, 1)})
    assert set(got) == set(want)
    for key, c in want.items():
        assert +got[key] == +c, key
    assert sum(c[("tun_pk", 0)] + c[("tun_pk", 1)] for c in want.values()) > 1000  # really a VXLAN mix
    assert int(t.column("syn_n").sum()) > 100
    assert t.file_packets().shape == (1, t.count)
    assert int(t.file_packets().sum()) == int(t.column("pk").sum())
    assert t.monotonic(0)
