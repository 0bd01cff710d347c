"""The plain lane (``pipeline.plain``): the same text report, from the flow table's columns.

The report is rendered with the lane and without it (``K8S_TRACE_EXPLAIN_PLAIN=0``), en and zh,
and compared byte for byte on generated flannel mixes, every lab sample and corpus captures
(``test_explain_fastlane`` also compares it with the general path, lane off). Besides: the lane
takes most flows of a mix (else it would prove nothing), its stand-ins carry exactly what the
records they stand for carry, and the topology counted with weighted stand-ins is the one counted
with every sampled record.
"""

from __future__ import annotations

import subprocess
import sys
from operator import attrgetter
from pathlib import Path

import pytest

from analyzer.commands.explain import _stream_text
from analyzer.engines import classify
from analyzer.model.explain import CapturePoint
from analyzer.pipeline import plain
from analyzer.pipeline.explain import read_packets

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
PORTS = frozenset({4789, 8472})
#: the fields the global steps read of a record (what a stand-in must carry)
FIELDS = ("file", "frame", "interface", "ip_version", "src", "dst", "proto", "tunnel", "vni", "outer_src", "outer_dst",
          "outer_dport", "quoted", "sll_pkttype")


@pytest.fixture(scope="module")
def mixes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("plainmix")
    paths = []
    for seed, n in ((3, 8000), (7, 30000)):
        p = out / f"mix-{seed}.pcap"
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), str(n), str(p), "--seed", str(seed)],
                       check=True, capture_output=True)
        paths.append(p)
    return paths


def _report(inputs: list[str], out: Path, lang: str, monkeypatch: pytest.MonkeyPatch, *, lane: bool) -> str:
    monkeypatch.setenv(plain.PLAIN_ENV, "1" if lane else "0")
    assert plain.plain_lane_on() is lane
    warnings: list[str] = []
    _stream_text(inputs, out, lang=lang, vxlan_ports=(), warn=warnings.append, progress=None, annotate_dir=None)
    return out.read_text(encoding="utf-8") + "\n".join(warnings)


def _same(inputs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for lang in ("en", "zh"):
        want = _report(inputs, tmp_path / f"off-{lang}.txt", lang, monkeypatch, lane=False)
        got = _report(inputs, tmp_path / f"on-{lang}.txt", lang, monkeypatch, lane=True)
        assert got == want, f"{inputs} ({lang}): the plain lane's report differs from the general path's"


def _split(cap: Path) -> tuple[plain.Split, list]:
    src = read_packets([str(cap)], vxlan_ports=PORTS, warn=lambda _line: None, lane=True)
    assert src.split is not None and src.more is not None
    return src.split, src.records


def test_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(plain.PLAIN_ENV, raising=False)
    assert plain.plain_lane_on()
    monkeypatch.setenv(plain.PLAIN_ENV, "0")
    assert not plain.plain_lane_on()


def test_mix_reports_identical(mixes: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for cap in mixes:
        _same([str(cap)], tmp_path, monkeypatch)


def test_lab_samples_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a capture alone is a captures-only run (given the node directories, their dumps come along
    # and the lane stays off): each sample's NICs and node1's bridge; and node1's captures together
    runs = [[str(c)] for c in sorted(SAMPLES.glob("*/node[12]/eth0.pcap")) + sorted(SAMPLES.glob("*/node1/cni0.pcap"))]
    runs += [sorted(str(c) for c in d.glob("*.pcap") if c.name != "any.pcap") for d in sorted(SAMPLES.glob("*/node1"))]
    assert len(runs) > 50, "the lab samples are missing"
    for inputs in runs:
        _same(inputs, tmp_path, monkeypatch)


def test_corpus_identical(corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("tcpdump/vxlan.pcap", "tcpdump/vxlan_port_8472.pcap", "tcpdump/tcp-handshake-nano.pcap",
                 "PcapPlusPlus/Vxlan2.pcap", "PcapPlusPlus/IcmpPackets.pcap", "PcapPlusPlus/sll.pcap"):
        cap = corpus_dir / name
        if cap.exists():
            _same([str(cap)], tmp_path, monkeypatch)


def test_lane_takes_most_flows_of_a_mix(mixes: list[Path]) -> None:
    split, records = _split(mixes[1])
    n = len(split.general)
    assert len(split.plain) >= 0.6 * n, f"the lane took {len(split.plain)} of {n} flows"
    assert int(split.general.sum()) == n - len(split.plain)
    # the general path got the others' sampled frames only
    taken = {pf.g for pf in split.plain}
    assert len(taken) == len(split.plain)
    assert records and len(split.standins)


def test_standins_carry_what_their_records_carry(mixes: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cap = mixes[0]
    split, _ = _split(cap)
    standins, weights = split.standins.rows()
    monkeypatch.setenv(plain.PLAIN_ENV, "0")
    every = read_packets([str(cap)], vxlan_ports=PORTS, warn=lambda _line: None).records
    by_frame = {(r.file, r.frame): r for r in every}
    assert standins
    for st in standins:
        rec = by_frame[(st.file, st.frame)]
        for name in FIELDS:
            assert getattr(st, name) == getattr(rec, name), (st.frame, name)
    # the weights add up to the lane's sampled frames
    lane_frames = sum(weights.values())
    plain_ends = {(pf.client, pf.server) for pf in split.plain} | {(pf.server, pf.client) for pf in split.plain}
    theirs = [r for r in every if ((r.src, r.sport), (r.dst, r.dport)) in plain_ends]
    assert lane_frames == len(theirs)
    # each stand-in weighs the sampled records of its group (file, addresses, protocol, tunnel) and
    # sits at the group's first one
    def key(r) -> tuple:  # noqa: ANN001 - a record or a stand-in
        return (r.file, r.src, r.dst, r.proto, r.tunnel, r.vni, r.outer_src, r.outer_dst, r.outer_dport)

    groups: dict[tuple, list[int]] = {}
    for r in theirs:
        groups.setdefault(key(r), []).append(r.frame)
    assert len(groups) == len(standins)
    for st in standins:
        frames = groups[key(st)]
        assert (weights[id(st)], st.frame) == (len(frames), min(frames)), key(st)


def test_topology_with_standins_is_the_topology_of_every_record(mixes: list[Path], monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    for cap in mixes:
        split, records = _split(cap)
        monkeypatch.setenv(plain.PLAIN_ENV, "0")
        every = read_packets([str(cap)], vxlan_ports=PORTS, warn=lambda _line: None).records
        monkeypatch.setenv(plain.PLAIN_ENV, "1")
        points = {str(cap): CapturePoint(file=str(cap), node=None, interface=None, frames=0)}
        standins, weights = split.standins.rows()
        seen = sorted([*records, *standins], key=attrgetter("file", "frame"))
        a = classify.infer_topology((), points, vxlan_ports=PORTS, counts=classify.topology_counts(seen, PORTS, weights))
        b = classify.infer_topology(every, points, vxlan_ports=PORTS)
        assert a == b
        counts = split.standins.counts(records, PORTS)
        assert classify.infer_topology((), points, vxlan_ports=PORTS, counts=counts.topology) == b


def _ordered(x: object) -> object:
    """A count as a comparable value that keeps each dict's key order."""
    if isinstance(x, dict):
        return [(k, _ordered(v)) for k, v in x.items()]
    if isinstance(x, tuple | list):
        return [_ordered(v) for v in x]
    return x


def test_lane_counts_are_the_counts_of_every_record(mixes: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """What the global steps count (topology, capture placement, addresses first seen, backend):
    from the stand-in columns and the general path's records, the same counts in the same key
    orders as from every sampled record."""
    from analyzer.pipeline.explain import placement_counts, seen_addresses

    for cap in mixes:
        split, records = _split(cap)
        got = split.standins.counts(records, PORTS)
        monkeypatch.setenv(plain.PLAIN_ENV, "0")
        every = read_packets([str(cap)], vxlan_ports=PORTS, warn=lambda _line: None).records
        monkeypatch.setenv(plain.PLAIN_ENV, "1")
        want = classify.topology_counts(every, PORTS)
        for name in ("ports", "vnis", "tunnel_of", "pod_of_underlay", "file_outer", "file_count"):
            assert _ordered(getattr(got.topology, name)) == _ordered(getattr(want, name)), name
        assert (got.topology.srcs, got.topology.dsts, got.topology.pod_side) == (want.srcs, want.dsts, want.pod_side)
        assert _ordered(got.placement) == _ordered(placement_counts(every))
        assert got.addresses == seen_addresses(every)
        assert got.tunnelled == any(r.tunnel for r in every)
        assert set(got.pairs) == {(r.src, r.dst) for r in every if r.quoted is None}


def test_kept_twins_cover_every_shared_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every packet identity the sampled records of two conversations or more share is seen by
    ``FlowTable.kept_twins``: its flows are firm, in a group to check, or the identity is crowded.
    150,000 packets: the mix's IPv4 ID counter wraps, so DNS flows share identities."""
    from collections import defaultdict

    import numpy as np

    from analyzer.engines.stitch import conv_key_of, packet_identity
    from analyzer.pipeline.flows import scan_table

    cap = tmp_path / "mix.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), "150000", str(cap), "--seed", "4"],
                   check=True, capture_output=True)
    scan = scan_table([cap], sample=4, heads=True)
    table = scan.table
    firm, groups, crowded = table.kept_twins()
    col, name = table.column, scan.addrs.name
    lo, hi, k3, proto = col("lo"), col("hi"), col("k3"), col("proto")
    conv_g = {}
    for g in range(table.count):
        lp, hp = int(k3[g] >> 20 & 0xFFFFF) - 1, int(k3[g] & 0xFFFFF) - 1
        conv_g[conv_key_of(int(proto[g]), (name(int(lo[g])), lp if lp >= 0 else None),
                           (name(int(hi[g])), hp if hp >= 0 else None))] = g
    monkeypatch.setenv(plain.PLAIN_ENV, "0")
    records = read_packets([str(cap)], vxlan_ports=PORTS, warn=lambda _line: None).records
    by_ident: dict[tuple, set[int]] = defaultdict(set)
    for r in records:
        ident = packet_identity(r) if r.quoted is None else None
        if ident is not None:
            by_ident[ident].add(conv_g[conv_key_of(r.proto, (r.src, r.sport), (r.dst, r.dport))])
    in_groups = {g for gs, _t, _s, _d in groups for g in gs}
    shared = [(ident, gs) for ident, gs in by_ident.items() if len(gs) > 1]
    assert len(shared) > 20, "the mix shares too few identities to test anything"
    for ident, gs in shared:
        assert ident in crowded or all(firm[g] or g in in_groups for g in gs), (ident, sorted(gs))
    assert np.count_nonzero(firm) < 0.05 * table.count
