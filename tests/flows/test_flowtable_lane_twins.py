"""The twin prefilter: ``Batch.head`` (the first payload bytes, only when asked for) and
``FlowTable.twin_candidates``, a superset of the conversations ``stitch_flows`` links through
``packet_identity``; on a flannel mix most flows are not candidates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from builders import ether, icmp, ipv4, ipv6, sll2, tcp, udp, vxlan, write_pcap, write_pcapng

from analyzer.engines import stitch
from analyzer.inputs.capture import read_capture
from analyzer.inputs.decode import decode_frame, to_record
from analyzer.inputs.fastpath import AddressTable, iter_batches
from analyzer.model.explain import Topology
from analyzer.pipeline.flows import scan_table

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def _mix(path: Path, n: int, seed: int) -> Path:
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), str(n), str(path), "--seed", str(seed)],
                   check=True, capture_output=True)
    return path


def _heads(path: Path) -> dict[int, int]:
    out = {}
    for b in iter_batches(path, addrs=AddressTable(), heads=True):
        assert b.head is not None and b.head.dtype == np.int64 and len(b.head) == b.n
        out.update(zip(b.frame.tolist(), b.head.tolist(), strict=True))
    return out


def _value(payload: bytes, n: int) -> int:
    return int.from_bytes(payload[:n], "big") if n else 0


def test_head_of_each_fast_shape(tmp_path: Path) -> None:
    c, s = "10.244.1.5", "10.244.2.7"
    long, short = b"GET / HTTP/1.1\r\n", b"hey"
    frames = [
        ether(ipv4(tcp(long, flags="PA", seq=1, ack=1), src=c, dst=s)),  # 1: 8 of 16 bytes
        ether(ipv4(tcp(short, flags="PA", seq=1, ack=1), src=c, dst=s)),  # 2: 3 bytes (+ Ethernet padding)
        ether(ipv4(tcp(flags="A", seq=1, ack=1), src=c, dst=s)),  # 3: no payload: 0
        ether(ipv4(udp(vxlan(ether(ipv4(udp(long, sport=5000, dport=53), src=c, dst=s)), vni=1), sport=1,
                       dport=8472, checksum=0), src="192.168.0.11", dst="192.168.0.12")),  # 4: inside VXLAN
        ether(ipv4(ipv4(tcp(long, flags="PA"), src=c, dst=s), src="192.168.0.11", dst="192.168.0.12")),  # 5: IPIP
        ether(ipv6(tcp(long, flags="PA", seq=9), src="fd00::1", dst="fd00::2")),  # 6: IPv6
        ether(ipv4(icmp(b"\xff" * 56, type=8), src=c, dst=s)),  # 7: 8 bytes 0xff: int64 -1
        ether(ipv4(icmp(b"\x00\x01" * 28, type=8), src=c, dst=s)),  # 8: echo payload after the 8-byte header
        ether(ipv4(udp(long, dport=53), src=c, dst=s, options=b"\x01" * 4)),  # 9: IP options: general decoder
    ]
    path = write_pcap(tmp_path / "h.pcap", frames)
    got = _heads(path)
    assert got == {1: _value(long, 8), 2: _value(short, 3), 3: 0, 4: _value(long, 8), 5: _value(long, 8),
                   6: _value(long, 8), 7: -1, 8: _value(b"\x00\x01" * 4, 8), 9: -1}
    # SLL2 (tcpdump -i any), and the general reader's batches (pcapng) take the same fast shapes
    cooked = write_pcap(tmp_path / "sll2.pcap", [sll2(ipv4(tcp(long, flags="PA"), src=c, dst=s))], linktype=276)
    assert _heads(cooked) == {1: _value(long, 8)}
    ng = write_pcapng(tmp_path / "h.pcapng", frames)
    assert _heads(ng) == got
    # not asked for: no column
    assert all(b.head is None for b in iter_batches(path, addrs=AddressTable()))


@pytest.mark.parametrize("seed", [2, 6])
def test_head_matches_the_frame_bytes_on_a_mix(tmp_path: Path, seed: int) -> None:
    path = _mix(tmp_path / "m.pcap", 5000, seed)
    heads = _heads(path)
    checked = 0
    for raw in read_capture(path):
        r = to_record(raw, decode_frame(raw.data, raw.linktype))
        h = heads[raw.number]
        if h == -1 and r.proto not in (6, 17, 1):
            continue  # ARP
        pl = r.payload_len or 0
        data = bytes(raw.data)
        if len(data) > 60:  # no Ethernet padding: the innermost payload ends the frame
            n = min(8, pl)
            want = int.from_bytes(data[len(data) - pl : len(data) - pl + n], "big") if n else 0
            want = want - (1 << 64) if want >= 1 << 63 else want
            assert h == want, raw.number
            checked += 1
        if 0 < pl <= 8:  # the whole payload: its CRC-32 is the general decoder's payload_hash
            import zlib

            assert zlib.crc32((h % (1 << 64)).to_bytes(8, "big")[8 - pl :]) == r.payload_hash
    assert checked > 4000


def test_heads_do_not_change_the_table(tmp_path: Path) -> None:
    path = _mix(tmp_path / "m.pcap", 4000, 3)
    a, b = scan_table([path], sample=2), scan_table([path], sample=2, heads=True)
    for name in a.table.COLUMNS:
        assert np.array_equal(a.table.column(name), b.table.column(name)), name
    assert a.table.twin_candidates().all()  # no heads: every flow may have a twin
    assert a.table._heads_missing and not b.table._heads_missing  # flows (no heads=) reads no payload bytes
    assert not b.table.twin_candidates().all()


def _linked(records: list, *, stitched: bool) -> set[tuple]:
    """Conversations that share a flow with another one: by ``stitch_flows``, or (a superset) any
    two conversations with one ``packet_identity``."""
    if stitched:
        flows = stitch.stitch_flows(records, {}, Topology(nodes=()))
        out = set()
        for f in flows:
            convs = {stitch.conv_key(s.record) for s in f.sightings}
            if len(convs) > 1:
                out |= convs
        return out
    by_ident: dict[tuple, set] = {}
    for r in records:
        ident, ck = stitch.packet_identity(r), stitch.conv_key(r)
        if ident is not None and ck is not None and r.quoted is None:
            by_ident.setdefault(ident, set()).add(ck)
    return {ck for cks in by_ident.values() if len(cks) > 1 for ck in cks}


def _near_linked(records: list, window: float) -> set[tuple]:
    """Conversations with a record whose ``packet_identity`` another conversation's record has at
    most ``window`` seconds away (what stitch's ``near`` allows on one clock), by brute force."""
    by_ident: dict[tuple, list] = {}
    for r in records:
        ident, ck = stitch.packet_identity(r), stitch.conv_key(r)
        if ident is not None and ck is not None and r.quoted is None:
            by_ident.setdefault(ident, []).append((r.ts, ck))
    out = set()
    for hits in by_ident.values():
        for ta, a in hits:
            for tb, b in hits:
                if a != b and abs(ta - tb) <= window:
                    out |= {a, b}
    return out


def _candidates(paths: list[Path], window: float | None = None) -> tuple[set[tuple], int, list]:
    """The candidates' conversation keys, the number of flows, every decoded record."""
    scan = scan_table(paths, heads=True)
    t = scan.table
    cand = t.twin_candidates() if window is None else t.twin_candidates(window=window)
    assert cand.shape == (t.count,) and cand.dtype == bool
    name = scan.addrs.name
    picked = set()
    for g in np.flatnonzero(cand).tolist():
        k3 = int(t.column("k3")[g])
        plo, phi = ((k3 >> 20) & 0xFFFFF) - 1, (k3 & 0xFFFFF) - 1
        picked.add(stitch.conv_key_of(int(t.column("proto")[g]), (name(int(t.column("lo")[g])), plo if plo >= 0 else None),
                                      (name(int(t.column("hi")[g])), phi if phi >= 0 else None)))
    records = [to_record(raw, decode_frame(raw.data, raw.linktype)) for p in paths for raw in read_capture(p)]
    return picked, t.count, records


def test_a_nat_twin_is_a_candidate_and_the_rest_are_not(tmp_path: Path) -> None:
    c, svc, pod = "10.244.1.5", "10.96.0.20", "10.244.2.7"
    before = [ether(ipv4(tcp(b"GET /x HTTP/1.1", flags="PA", sport=40000, dport=80, seq=7 + i, ack=1),
                         src=c, dst=svc, ident=100 + i)) for i in range(3)]
    after = [ether(ipv4(tcp(b"GET /x HTTP/1.1", flags="PA", sport=40000, dport=8080, seq=7 + i, ack=1),
                        src=c, dst=pod, ident=100 + i)) for i in range(3)]  # DNAT: same packets
    other = [ether(ipv4(tcp(b"GET /y HTTP/1.1", flags="PA", sport=40001, dport=80, seq=7 + i, ack=1),
                        src=c, dst=svc, ident=100 + i)) for i in range(3)]  # same IDs, other bytes
    paths = [write_pcap(tmp_path / "a.pcap", before + other), write_pcap(tmp_path / "b.pcap", after)]
    picked, count, records = _candidates(paths)
    assert count == 3
    linked = _linked(records, stitched=True)
    assert len(linked) == 2 and linked == picked


@pytest.mark.parametrize("seed", [1, 5])
def test_mix_twins_are_a_superset_and_few(tmp_path: Path, seed: int) -> None:
    path = _mix(tmp_path / "m.pcap", 12000, seed)
    picked, count, records = _candidates([path])
    assert _linked(records, stitched=False) <= picked
    assert _linked(records, stitched=True) <= picked
    assert len(picked) < 0.2 * count, f"{len(picked)} of {count} flows are twin candidates"


@pytest.mark.parametrize("name", sorted(p.parent.name for p in SAMPLES.glob("*/scenario.json")))
def test_lab_sample_twins_are_a_superset(name: str) -> None:
    caps = sorted((SAMPLES / name).glob("node*/*.pcap"))
    picked, count, records = _candidates(caps)
    assert _linked(records, stitched=False) <= picked
    assert _linked(records, stitched=True) <= picked


@pytest.mark.parametrize(("seed", "n"), [(1, 12000), (5, 30000)])
def test_window_narrows_and_stays_a_superset(tmp_path: Path, seed: int, n: int) -> None:
    """gen_mix's IP IDs wrap every 65,536 packets and its DNS questions repeat: without the time
    window those look like twins; within stitch's window (one clock) nearly none are."""
    path = _mix(tmp_path / "m.pcap", n, seed)
    anytime, count, records = _candidates([path])
    near, _count, _records = _candidates([path], window=stitch.NAT_TWIN_WINDOW)
    assert near <= anytime
    assert _near_linked(records, stitch.NAT_TWIN_WINDOW) <= near
    assert _linked(records, stitched=True) <= near
    # (what remains: gen_mix's IPv6 flows, whose identical segments really share identities)
    assert len(near) < 0.05 * count, f"{len(near)} of {count} flows are twin candidates within the window"


@pytest.mark.parametrize("name", ["two-endpoints", "three-node", "hairpin", "nodeport"])
def test_window_on_lab_samples(name: str) -> None:
    caps = sorted((SAMPLES / name).glob("node*/*.pcap"))
    near, _count, records = _candidates(caps, window=stitch.NAT_TWIN_WINDOW)
    want = _linked(records, stitched=True)
    assert want and want <= near
    assert _near_linked(records, stitch.NAT_TWIN_WINDOW) <= near


def test_repeated_key_within_a_batch_marks_every_flow_holding_it(tmp_path: Path) -> None:
    """A key one flow repeats in a batch is kept as an interval: the other flow with it 5 s later is
    a candidate even though the first copies are farther apart than the window (a superset)."""
    c, s = "10.244.1.5", "10.244.2.7"
    pkt = tcp(b"same bytes", flags="PA", sport=40000, dport=80, seq=5, ack=9)
    t0 = 1_700_000_000.0
    a = ether(ipv4(pkt, src=c, dst=s, ident=77))
    b = ether(ipv4(tcp(b"same bytes", flags="PA", sport=40000, dport=8080, seq=5, ack=9), src=c, dst=s, ident=77))
    lone = ether(ipv4(tcp(b"other", flags="PA", sport=40001, dport=80, seq=5, ack=9), src=c, dst=s, ident=78))
    frames = [(t0, a), (t0 + 9.5, a), (t0 + 5.0, b), (t0 + 20.0, lone)]
    scan = scan_table([write_pcap(tmp_path / "r.pcap", frames)], heads=True)
    t = scan.table
    assert t.count == 3
    near = t.twin_candidates(window=1.0)
    assert sorted(near.tolist()) == [False, True, True]
    # points only (one copy per flow and batch): 5 s apart is not near
    scan2 = scan_table([write_pcap(tmp_path / "p.pcap", [(t0, a), (t0 + 5.0, b)])], heads=True)
    assert not scan2.table.twin_candidates(window=1.0).any()
    assert scan2.table.twin_candidates().all()
