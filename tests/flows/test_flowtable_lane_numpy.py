"""FlowTable's column sampler (kept rows as numpy columns, bytes read back from the file when a flow
is materialised) keeps exactly the frames the SampleFrame sampler keeps: on generated mixes, every
lab sample, corpus captures, compressed files and pcapng beside plain pcap in one scan, and a file
the general reader takes over halfway."""

from __future__ import annotations

import functools
import gzip
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from builders import write_pcapng

import analyzer.pipeline.flows as flows_mod
from analyzer.engines.flowtable import FlowTable
from analyzer.inputs.capture import read_capture
from analyzer.inputs.fastpath import AddressTable, iter_batches

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
CORPUS = ("tcpdump/vxlan.pcap", "tcpdump/vxlan_port_8472.pcap", "tcpdump/gso-ipv6-vxlan-ipv4.pcap",
          "tcpdump/ipv4_invalid_hdr_length.pcap", "tcpdump/various_gre.pcap", "tcpdump/geneve.pcap",
          "tcpdump/tcp-handshake-nano.pcap", "PcapPlusPlus/Vxlan2.pcap", "PcapPlusPlus/frag_with_padding.pcap",
          "PcapPlusPlus/sll.pcap", "PcapPlusPlus/ArpRequestWithVlan.pcap", "PcapPlusPlus/IcmpPackets.pcap")


def _mix(path: Path, n: int, seed: int) -> Path:
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), str(n), str(path), "--seed", str(seed)],
                   check=True, capture_output=True)
    return path


def _frame(s) -> tuple:  # noqa: ANN001 - SampleFrame
    return (s.file, s.frame, s.data, s.ts, s.linktype, s.wire_len, s.interface)


def _kept(paths: list[Path], monkeypatch: pytest.MonkeyPatch, *, objects: bool, sample: int = 4
          ) -> tuple[list, list, list]:
    """(slot stats, every slot's frames, every flow's materialised frames) of one scan."""
    with monkeypatch.context() as m:
        m.setattr(flows_mod, "FlowTable", functools.partial(FlowTable, frame_objects=objects))
        scan = flows_mod.scan_table(paths, sample=sample)
    t = scan.table
    assert t._frame_objects is objects
    stats = [c.tolist() for c in t.slot_stats()]
    slots = [[_frame(s) for s in t.sample_frames(g, d, f)] for g, d, f in zip(*stats[:3], strict=True)]
    per_flow = [(key, [_frame(s) for s in samples])
                for rows in t.row_blocks(addr_name=scan.addrs.name, tunnel_name=scan._tunnel_name,
                                         materialise=lambda s: s)
                for key, samples in zip((r.key for r in rows.summaries()), rows.samples, strict=True)]
    assert t.slot_stats()[0].size == 0  # all handed over
    return stats, slots, per_flow


def _same(paths: list[Path], monkeypatch: pytest.MonkeyPatch, **kw) -> tuple[list, list, list]:
    old = _kept(paths, monkeypatch, objects=True, **kw)
    new = _kept(paths, monkeypatch, objects=False, **kw)
    assert new[0] == old[0], "slot_stats differ"
    assert new[1] == old[1], "sample_frames differ"
    assert new[2] == old[2], "materialised samples differ"
    return new


@pytest.mark.parametrize(("n", "seed", "sample"), [(6000, 1, 4), (20000, 2, 4), (9000, 5, 1), (4000, 8, 3)])
def test_mixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, seed: int, sample: int) -> None:
    stats, _slots, per_flow = _same([_mix(tmp_path / "m.pcap", n, seed)], monkeypatch, sample=sample)
    kept = sum(stats[3])
    assert 0 < kept < n and len(per_flow) > 100
    # the frames really carry the file's bytes
    raw = {fr.number: bytes(fr.data) for fr in read_capture(tmp_path / "m.pcap")}
    assert all(raw[f[1]] == f[2] for _key, frames in per_flow for f in frames)


def test_compactions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many prunings of the last-K candidates during the scan (every 500 rows instead of 2**18),
    over many batches, then the final sorted compaction."""
    path = _mix(tmp_path / "c.pcap", 30000, 3)
    calls = []
    real = FlowTable._np_prune

    def counting(self):  # noqa: ANN001, ANN202
        calls.append(self._np_pending)
        return real(self)

    monkeypatch.setattr(FlowTable, "_NP_COMPACT_ROWS", 500)
    monkeypatch.setattr(flows_mod, "iter_batches", functools.partial(iter_batches, chunk_bytes=4096))  # 512 KiB
    monkeypatch.setattr(FlowTable, "_np_prune", counting)
    _same([path], monkeypatch, sample=2)
    assert sum(c >= 500 for c in calls) >= 2  # (fewer while pruning drops little: _np_factor)


def _long_flows(path: Path, flows: int, packets: int) -> Path:
    """``flows`` TCP conversations of ``packets`` data segments each way, interleaved."""
    from builders import ether, ipv4, tcp, write_pcap

    frames = []
    seq = [[1000 * (f + 1), 5000 * (f + 1)] for f in range(flows)]
    for i in range(packets):
        for f in range(flows):
            for d in (0, 1):
                a, b = (f"10.244.1.{f + 2}", 40000 + f), (f"10.244.2.{f + 2}", 8080)
                (src, sport), (dst, dport) = (a, b) if d == 0 else (b, a)
                body = bytes([i % 251, f, d]) * 300
                seg = tcp(body, sport=sport, dport=dport, flags="PA", seq=seq[f][d], ack=seq[f][1 - d])
                seq[f][d] += len(body)
                frames.append((1.0 + 0.001 * len(frames), bytes(ether(ipv4(seg, src=src, dst=dst,
                                                                             ident=(i * 7 + d) & 0xFFFF)))))
    return write_pcap(path, frames)


def test_pruning_long_flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Few long conversations: each batch's last K of every slot are candidates, and all but the
    last K of each slot die. The pruning drops them during the scan (the rows held stay bounded
    by the slots, not the packets), with the same kept frames as the SampleFrame sampler."""
    path = _long_flows(tmp_path / "long.pcap", 6, 500)  # 6,000 packets of ~950 bytes, 12 slots
    held = []
    real = FlowTable._np_prune

    def counting(self):  # noqa: ANN001, ANN202
        before = self._np_len
        real(self)
        held.append((before, self._np_len, len(self._np_chunks)))

    monkeypatch.setattr(FlowTable, "_NP_COMPACT_ROWS", 60)
    monkeypatch.setattr(flows_mod, "iter_batches", functools.partial(iter_batches, chunk_bytes=4096))
    monkeypatch.setattr(FlowTable, "_np_prune", counting)
    stats, _slots, per_flow = _same([path], monkeypatch, sample=2)
    assert len(per_flow) == 6 and sum(stats[3]) == 6 * 2 * 4  # first 2 and last 2 of each direction
    dropped = [(b, a) for b, a, chunks in held if a < b]
    assert len(dropped) >= 3 and all(chunks == 1 for b, a, chunks in held if a < b)
    assert max(a for _b, a in dropped) == 12 * 4  # what stays: 12 slots' first 2 and last 2 so far


@pytest.mark.parametrize("name", sorted(p.parent.name for p in SAMPLES.glob("*/scenario.json")))
def test_lab_samples(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    caps = sorted((SAMPLES / name).glob("node*/*.pcap"))
    assert caps
    _same(caps, monkeypatch)


def test_corpus(corpus_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    caps = [corpus_dir / rel for rel in CORPUS if (corpus_dir / rel).exists()]
    if not caps:
        pytest.skip("none of the corpus captures is here")
    for cap in caps:
        _same([cap], monkeypatch, sample=2)
    _same(caps, monkeypatch)  # all at once


def test_compressed_and_pcapng_beside_plain_pcap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _mix(tmp_path / "a.pcap", 5000, 21)
    gz = tmp_path / "b.pcap.gz"
    with open(_mix(tmp_path / "b.pcap", 5000, 22), "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    ng = write_pcapng(tmp_path / "c.pcapng", [(fr.ts, bytes(fr.data)) for fr in read_capture(a)][:3000])
    for name in ("a.pcap", "b.pcap.gz", "c.pcapng"):  # which batches have a file offset
        offsets = {b.file_offset >= 0 for b in iter_batches(tmp_path / name)}
        assert offsets == {name == "a.pcap"}
    _same([a, gz, ng, a], monkeypatch)  # the same file twice too


def test_general_reader_takes_over_halfway(tmp_path: Path) -> None:
    """Batches without a file offset after batches with one, in one file: the slot's last K come
    from both samplers."""
    path = _mix(tmp_path / "h.pcap", 30000, 13)
    addrs = AddressTable()
    tables = [FlowTable(intern=addrs.intern, sample=3, frame_objects=obj) for obj in (True, False)]
    for t in tables:
        t.begin_file(str(path))
    batches = 0
    for b in iter_batches(path, addrs=addrs, chunk_bytes=4096):
        batches += 1
        if batches > 3:  # from the 4th chunk on, as if the general reader had taken over
            b = replace(b, file_offset=-1)
        for t in tables:
            t.add(b)
    assert batches >= 6
    old, new = tables
    assert new._mixed == {0} and not old._mixed
    assert [c.tolist() for c in new.slot_stats()] == [c.tolist() for c in old.slot_stats()]
    g, d, f, _n, _first = new.slot_stats()
    for gg, dd, ff in zip(g.tolist(), d.tolist(), f.tolist(), strict=True):
        assert [_frame(s) for s in new.sample_frames(gg, dd, ff)] == [_frame(s) for s in old.sample_frames(gg, dd, ff)]


def test_only_materialises_the_flows_asked_for(tmp_path: Path) -> None:
    path = _mix(tmp_path / "o.pcap", 8000, 17)
    scan = flows_mod.scan_table([path], sample=4)
    t = scan.table
    only = np.zeros(t.count, dtype=bool)
    only[1::2] = True
    made = []
    rows = list(t.row_blocks(addr_name=scan.addrs.name, tunnel_name=scan._tunnel_name,
                             materialise=lambda s: made.append(s.frame) or s, only=only))
    g, _d, _f, n, _first = t.slot_stats()
    assert set(g.tolist()) and not only[g].any()  # the others' rows stay in the table
    assert len(made) == sum(len(s) for r in rows for s in r.samples) > 0


def test_a_file_that_vanished_is_an_input_error(tmp_path: Path) -> None:
    from analyzer.errors import InputError

    path = _mix(tmp_path / "v.pcap", 2000, 19)
    scan = flows_mod.scan_table([path], sample=2)
    path.unlink()
    g, d, f, _n, _first = scan.table.slot_stats()
    with pytest.raises(InputError, match="cannot open it again"):
        scan.table.sample_frames(int(g[0]), int(d[0]), int(f[0]))


def test_sample_frames_keeps_its_files_open_until_the_table_goes(tmp_path: Path) -> None:
    import gc
    import os

    paths = [_mix(tmp_path / "a.pcap", 3000, 23), _mix(tmp_path / "b.pcap", 3000, 24)]
    before = len(os.listdir("/proc/self/fd"))
    scan = flows_mod.scan_table(paths, sample=2)
    t = scan.table
    g, d, f, n, _first = t.slot_stats()
    got = [t.sample_frames(*slot) for slot in zip(g.tolist(), d.tolist(), f.tolist(), strict=True)]
    assert [len(x) for x in got] == n.tolist()
    assert len(os.listdir("/proc/self/fd")) == before + 2  # one descriptor per file, reused by every call
    t.close()
    assert len(os.listdir("/proc/self/fd")) == before
    assert t.sample_frames(int(g[-1]), int(d[-1]), int(f[-1])) == got[-1]  # opened again
    del scan, t
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


def test_big_endian_and_nanosecond_pcaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from builders import write_pcap

    frames = [(fr.ts, bytes(fr.data)) for fr in read_capture(_mix(tmp_path / "m.pcap", 4000, 29))]
    paths = [write_pcap(tmp_path / "be.pcap", frames, big_endian=True),
             write_pcap(tmp_path / "ns.pcap", frames, nanos=True, big_endian=True),
             write_pcap(tmp_path / "le-ns.pcap", frames, nanos=True)]
    _stats, _slots, per_flow = _same(paths, monkeypatch)
    assert sum(len(x) for _key, x in per_flow) > 1000


@pytest.mark.parametrize("how", ["replaced", "truncated"])
def test_a_capture_changed_after_the_scan_is_an_input_error(tmp_path: Path, how: str) -> None:
    from analyzer.errors import InputError

    path = _mix(tmp_path / "c.pcap", 3000, 31)
    scan = flows_mod.scan_table([path], sample=2)
    if how == "replaced":  # another capture under the same name (a rotated tcpdump -W file)
        _mix(tmp_path / "other.pcap", 3000, 32).replace(path)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    t = scan.table
    g, d, f, _n, _first = t.slot_stats()
    last = int(np.argmax(_first))  # a slot late in the file (past the cut)
    with pytest.raises(InputError, match="changed since it was read") as err:
        t.sample_frames(int(g[last]), int(d[last]), int(f[last]))
    assert err.value.packet is not None and str(path) in str(err.value)
    with pytest.raises(InputError, match="changed since it was read"):  # the whole materialising pass too
        list(t.row_blocks(addr_name=scan.addrs.name, tunnel_name=scan._tunnel_name, materialise=lambda s: s))


def test_accessors_between_batches_change_nothing(tmp_path: Path) -> None:
    """An accessor asked while the scan goes on (the store sorted, its columns gathered lazily,
    then more rows and another file appended) leaves the same kept frames, twins and slots as a
    table asked only at the end."""
    paths = [_mix(tmp_path / "a.pcap", 12000, 41), _mix(tmp_path / "b.pcap", 6000, 42)]
    addrs = AddressTable()
    tables = [FlowTable(intern=addrs.intern, sample=2) for _ in range(2)]
    asked = 0
    for path in paths:
        for t in tables:
            t.begin_file(str(path))
        for i, b in enumerate(iter_batches(path, addrs=addrs, chunk_bytes=4096, heads=True)):
            for t in tables:
                t.add(b)
            if i % 2 == 1:  # the first table is asked after every other batch
                t = tables[0]
                g, d, f, _n, _first = t.slot_stats()
                t.sample_frames(int(g[-1]), int(d[-1]), int(f[-1]))
                t.kept_twins()
                asked += 1
    assert asked >= 4
    mid, end = tables
    assert [c.tolist() for c in mid.slot_stats()] == [c.tolist() for c in end.slot_stats()]
    twins = [mid.kept_twins(), end.kept_twins()]
    assert twins[0][0].tolist() == twins[1][0].tolist() and twins[0][1] == twins[1][1] and twins[0][2] == twins[1][2]
    only = np.ones(end.count, dtype=bool)
    kc = [t.kept_columns(only) for t in tables]
    assert {k: v.tolist() for k, v in kc[0].items()} == {k: v.tolist() for k, v in kc[1].items()}
    g, d, f, _n, _first = end.slot_stats()
    for slot in list(zip(g.tolist(), d.tolist(), f.tolist(), strict=True))[::7]:
        assert [_frame(s) for s in mid.sample_frames(*slot)] == [_frame(s) for s in end.sample_frames(*slot)]
