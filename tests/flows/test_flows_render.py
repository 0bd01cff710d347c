"""The text table (rendered from ``FlowTable.cell_blocks``: codes, shared cells, block-wise) equals
a plain rendering of the ``FlowSummary`` objects that JSON and ``explain`` get, row for row, on
the generated mix (several blocks), on several files at once and on every capture of the corpus."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from analyzer.commands.flows import _encap_cell, _tcp_cell, write_text
from analyzer.errors import InputError
from analyzer.model.flow import FlowSummary
from analyzer.pipeline.flows import TableScan, scan_table

ROOT = Path(__file__).resolve().parents[2]


def _reference_rows(flows: tuple[FlowSummary, ...]) -> list[str]:
    """Header and rows, column widths by the rules the table documents, from the objects alone."""
    t0 = min(f.first_ts for f in flows)
    re_max = max((f.tcp.retransmissions if f.tcp else 0) for f in flows)
    err_max = max(f.icmp_errors for f in flows)
    tcp_w = len("S SA H Fcs Rcs") + (len(f" re={re_max}") if re_max else 0) + (
        len(f" icmp-err={err_max}") if err_max else 0)
    ips = {ip for f in flows for ip in (f.client_ip, f.server_ip)}
    v6 = [ip for ip in ips if ":" in ip]
    ep_w = max([len(ip) + 2 for ip in v6] + [15 if len(v6) < len(ips) else 0]) + 6
    pk_w = len(str(max(max(f.packets_c2s, f.packets_s2c) for f in flows)))
    by_w = len(str(max(max(f.bytes_c2s, f.bytes_s2c) for f in flows)))
    heads = ["#", "proto", "client", "server", "pkts>", "bytes>", "pkts<", "bytes<", "start", "dur", "tcp",
             "encapsulation"]
    widths = [len(str(len(flows))), max(len(f.proto) for f in flows), ep_w, ep_w, pk_w, by_w, pk_w, by_w,
              len(f"{max(f.first_ts for f in flows) - t0:.3f}"), len(f"{max(f.last_ts - f.first_ts for f in flows):.3f}"),
              tcp_w, 0]
    widths = [max(w, len(h)) for w, h in zip(widths, heads)]
    right = {0, 4, 5, 6, 7, 8, 9}

    def line(cells: list[str]) -> str:  # the last column is not padded
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) if i < 11 else c
                         for i, (c, w) in enumerate(zip(cells, widths)))

    rows = [line(heads).rstrip()]
    for i, f in enumerate(flows, 1):
        rows.append(line([str(i), f.proto, f.client, f.server, str(f.packets_c2s), str(f.bytes_c2s),
                          str(f.packets_s2c), str(f.bytes_s2c), f"{f.first_ts - t0:.3f}",
                          f"{f.last_ts - f.first_ts:.3f}", _tcp_cell(f.tcp, f.icmp_errors),
                          _encap_cell(f.encapsulations)]))
    return rows


def _assert_same(scan: TableScan) -> None:
    out = io.StringIO()
    write_text(scan, out)
    lines = out.getvalue().splitlines()
    flows = scan.flow_scan().flows
    if not flows:
        assert lines[0] == "no IP flows found"
        return
    assert lines[: len(flows) + 1] == _reference_rows(flows)
    assert lines[len(flows) + 1] == ""
    assert lines[-1].startswith(f"{len(flows)} flows in {scan.total_frames} frames of ")


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from gen_mix import generate
    finally:
        sys.path.pop(0)
    path = tmp_path_factory.mktemp("mix") / "mix.pcap"
    generate(30000, path, seed=11)
    return path


def test_the_mix_in_several_blocks(mix: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.engines.flowtable import FlowTable

    scan = scan_table([mix])
    assert scan.flow_count > 1000
    real = FlowTable.cell_blocks

    def small_blocks(self: FlowTable, **kw: object) -> object:
        return real(self, **{**kw, "block": 333})  # codes must stay valid across blocks

    monkeypatch.setattr(FlowTable, "cell_blocks", small_blocks)
    _assert_same(scan)
    encaps = {f.encapsulations for f in scan.flow_scan().flows}
    assert any(len(e) >= 2 for e in encaps) and () in encaps  # VXLAN both ways, IPIP, bridge traffic


def test_several_files(mix: Path, corpus_dir: Path) -> None:
    _assert_same(scan_table([mix, corpus_dir / "PcapPlusPlus" / "GrePackets.pcap", mix]))


def test_every_corpus_capture(corpus_dir: Path) -> None:
    files = sorted(p for p in corpus_dir.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng", ".gz"))
    assert len(files) > 20
    checked = 0
    for path in files:
        try:
            scan = scan_table([path])
        except InputError:
            continue
        _assert_same(scan)
        checked += 1
    assert checked > 20
