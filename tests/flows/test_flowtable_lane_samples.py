"""The plain lane's access to FlowTable's kept samples: ``slot_stats``, ``sample_frames`` and
``row_blocks(only=...)``, checked against a reference sampler written here from the decoded
records (first K, last K, SYN/FIN/RST and retransmissions up to 8K per flow, direction and file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzer.inputs.capture import read_capture
from analyzer.inputs.decode import decode_frame, to_record
from analyzer.pipeline.flows import scan_table

ROOT = Path(__file__).resolve().parents[2]
K = 2


def _mix(path: Path, n: int, seed: int) -> Path:
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), str(n), str(path), "--seed", str(seed)],
                   check=True, capture_output=True)
    return path


def reference_slots(paths: list[Path], k: int) -> dict[tuple, set[int]]:
    """(proto, lo endpoint, hi endpoint, direction, file index) -> the frame numbers to keep.

    For captures without ICMP errors and without copies of one packet (gen_mix's)."""
    rows: dict[tuple, list] = {}
    for f, path in enumerate(paths):
        for raw in read_capture(path):
            r = to_record(raw, decode_frame(raw.data, raw.linktype))
            if r.src is None or r.proto is None:
                continue
            assert r.quoted is None
            a, b = (r.src, r.sport or 0), (r.dst, r.dport or 0)
            d = int(_num(a) > _num(b))
            lo, hi = (b, a) if d else (a, b)
            rows.setdefault((r.proto, lo, hi, d, f), []).append(r)
    out = {}
    for key, recs in rows.items():
        keep = {r.frame for r in recs[:k]} | {r.frame for r in recs[-k:]}
        specials = 0
        base = max_end = None
        for r in recs:
            special = r.proto == 6 and bool((r.tcp_flags or 0) & 0x07)
            if r.proto == 6 and (r.payload_len or 0) > 0:
                if base is None:
                    base = r.seq
                rel = (r.seq - base) & 0xFFFFFFFF
                rel = rel - (1 << 32) if rel >= 1 << 31 else rel
                end = rel + r.payload_len
                if max_end is not None and end <= max_end:
                    special = True
                max_end = end if max_end is None else max(max_end, end)
            if special and specials < 8 * k:
                specials += 1
                keep.add(r.frame)
        out[key] = keep
    return out


def _num(endpoint: tuple[str, int]) -> tuple[int, int]:
    import ipaddress

    return int(ipaddress.ip_address(endpoint[0])), endpoint[1]


def _table_slots(scan) -> dict[tuple, set[int]]:  # noqa: ANN001 - TableScan
    t, name = scan.table, scan.addrs.name
    proto, lo, hi, k3 = t.column("proto"), t.column("lo"), t.column("hi"), t.column("k3")
    out = {}
    for g, d, f, n, first in zip(*(c.tolist() for c in t.slot_stats()), strict=True):
        frames = t.sample_frames(g, d, f)
        assert len(frames) == n and frames[0].frame == first
        assert [s.frame for s in frames] == sorted({s.frame for s in frames})
        assert all(s.file == t.files[f] for s in frames)
        plo, phi = int((k3[g] >> 20) & 0xFFFFF) - 1, int(k3[g] & 0xFFFFF) - 1
        key = (int(proto[g]), (name(int(lo[g])), max(plo, 0)), (name(int(hi[g])), max(phi, 0)), d, f)
        out[key] = {s.frame for s in frames}
    return out


@pytest.mark.parametrize("seed", [4, 9])
def test_slots_are_the_reference_samplers(tmp_path: Path, seed: int) -> None:
    paths = [_mix(tmp_path / "a.pcap", 4000, seed), _mix(tmp_path / "b.pcap", 2500, seed + 100)]
    scan = scan_table(paths, sample=K)
    got = _table_slots(scan)
    want = reference_slots(paths, K)
    assert got == want
    g, d, f, n, first = scan.table.slot_stats()
    keys = np.stack([g, d, f], axis=1)
    assert (np.diff(g) >= 0).all() and len(np.unique(keys, axis=0)) == len(g)  # sorted, one row per slot
    assert int(n.sum()) < scan.total_frames  # really a sample
    assert set(f.tolist()) == {0, 1}


def test_row_blocks_only_leaves_flows_out(tmp_path: Path) -> None:
    path = _mix(tmp_path / "m.pcap", 3000, 7)
    full = scan_table([path], sample=K)
    all_rows = [r for rows in full.row_blocks() for r in rows.summaries()]
    scan = scan_table([path], sample=K)
    t = scan.table
    only = np.zeros(t.count, dtype=bool)
    only[::3] = True  # every third flow id
    g0, d0, f0, n0, _ = t.slot_stats()
    got = [r for rows in scan.table.row_blocks(addr_name=scan.addrs.name, tunnel_name=scan._tunnel_name,
                                               materialise=_materialise(scan), only=only)
           for r in rows.summaries()]
    first_ts = t.column("first_ts")
    want_keys = [r.key for r in all_rows]
    assert len(got) == int(only.sum())
    # the same flows, in the same order, with the same samples as in the whole table
    by_key = {r.key: r for r in all_rows}
    assert [r.key for r in got] == [k for k in want_keys if k in {x.key for x in got}]
    assert all(r == by_key[r.key] for r in got)
    assert sorted(r.first_ts for r in got) == sorted(first_ts[only].tolist())
    # the flows left out keep their frames; those handed over have none left
    g1, d1, f1, n1, _ = t.slot_stats()
    left = ~only[g0]
    assert g1.tolist() == g0[left].tolist() and n1.tolist() == n0[left].tolist()
    assert t.sample_frames(int(g0[~left][0]), int(d0[~left][0]), int(f0[~left][0])) == []
    with pytest.raises(ValueError):
        next(iter(t.row_blocks(addr_name=scan.addrs.name, tunnel_name=scan._tunnel_name, only=only[:-1])))
    cells = [c for block in t.cell_blocks(addr_name=scan.addrs.name, tunnel_name=scan._tunnel_name, only=only)
             for c in block.client]
    assert cells == [r.client for r in got]


def _materialise(scan):  # noqa: ANN001, ANN202 - TableScan, the materialise callback
    general = scan.general

    def m(s):  # noqa: ANN001, ANN202
        return general.record(s.file, s.frame, s.ts, s.linktype, s.data, s.wire_len, s.interface)

    return m
