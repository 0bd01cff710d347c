"""Capture files -> conversation table of inner flows (``k8s-trace flows``, and ``explain``'s base).

``scan_flows`` streams every file through the fast path (``analyzer.inputs.fastpath``), feeds
each column batch to one ``FlowTable`` (``analyzer.engines.flowtable``), and returns a
``FlowScan``. Memory is bounded by the number of flows (plus one chunk), never by the file size.
With ``sample=K`` each flow also carries a few real packets (see ``FlowTable``), decoded in full
by the general decoder, so ``explain`` sees exactly what ``decode`` would show for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analyzer.engines.flowtable import FlowCells, FlowRows, FlowTable, SampleFrame
from analyzer.inputs.fastpath import (
    KIND_BAD,
    KIND_NONIP,
    VXLAN_UDP_PORTS,
    AddressTable,
    GeneralDecoder,
    iter_batches,
)
from analyzer.model.flow import FileStats, FlowScan
from analyzer.model.record import PacketRecord

#: per file, at most this many undecodable packets are reported one by one
MAX_PACKET_WARNINGS = 20

__all__ = ["MAX_PACKET_WARNINGS", "TableScan", "scan_flows", "scan_table"]


@dataclass(frozen=True, slots=True)
class TableScan:
    """A finished scan before its flows become objects: renderers of big tables read the rows."""

    table: FlowTable
    addrs: AddressTable
    general: GeneralDecoder
    files: tuple[FileStats, ...]
    warnings: tuple[str, ...]
    total_frames: int
    undecodable_frames: int
    non_ip_frames: int
    sample: int

    @property
    def flow_count(self) -> int:
        return self.table.count

    def row_blocks(self) -> Iterator[FlowRows]:
        """The flows, in ``FlowScan.flows`` order, as blocks of column lists."""
        general = self.general

        def materialise(s: SampleFrame) -> PacketRecord:
            return general.record(s.file, s.frame, s.ts, s.linktype, s.data, s.wire_len, s.interface)

        return self.table.row_blocks(
            addr_name=self.addrs.name,
            tunnel_name=self._tunnel_name,
            materialise=materialise if self.sample else None,
        )

    def cell_blocks(self) -> Iterator[FlowCells]:
        """The flows, in ``FlowScan.flows`` order, as a table prints them (see ``FlowTable.cell_blocks``)."""
        return self.table.cell_blocks(addr_name=self.addrs.name, tunnel_name=self._tunnel_name)

    def _tunnel_name(self, code: int) -> str:
        return self.addrs.tunnels.name(code) or "unknown"

    def extents(self) -> dict:
        """Largest values over all flows (see ``FlowTable.extents``)."""
        return self.table.extents(self.addrs.name)

    def flow_scan(self) -> FlowScan:
        flows = [f for rows in self.row_blocks() for f in rows.summaries()]
        return FlowScan(
            flows=tuple(flows),
            files=self.files,
            warnings=self.warnings,
            total_frames=self.total_frames,
            undecodable_frames=self.undecodable_frames,
            non_ip_frames=self.non_ip_frames,
        )


def scan_flows(
    paths: Sequence[Path],
    *,
    vxlan_ports: frozenset[int] = VXLAN_UDP_PORTS,
    sample: int = 0,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> FlowScan:
    """Aggregate the inner flows of every capture in ``paths`` (in the order given).

    ``progress(bytes_done, bytes_total)`` is called as the files are read; ``warn(line)`` gets
    each input problem as one line naming the file and packet number or byte offset (the same
    lines end up in ``FlowScan.warnings``). Raises ``InputError`` for a file that cannot be used
    at all (missing, unreadable, not a capture).
    """
    return scan_table(paths, vxlan_ports=vxlan_ports, sample=sample, progress=progress, warn=warn).flow_scan()


def scan_table(
    paths: Sequence[Path],
    *,
    vxlan_ports: frozenset[int] = VXLAN_UDP_PORTS,
    sample: int = 0,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    heads: bool = False,
) -> TableScan:
    """``scan_flows`` without building the ``FlowSummary`` objects (same arguments).

    ``heads=True`` reads the first payload bytes of every packet too (``Batch.head``), so that
    ``table.kept_twins()`` can tell which sampled packets may be copies of others (``explain``);
    without it every key is unknown.
    """
    vxlan_ports = frozenset(vxlan_ports)
    warnings: list[str] = []

    def _warn(line: str) -> None:
        warnings.append(line)
        if warn is not None:
            warn(line)

    addrs = AddressTable()
    general = GeneralDecoder(vxlan_ports)
    table = FlowTable(intern=addrs.intern, sample=sample)
    sizes = [_size(p) for p in paths]
    total = sum(sizes)
    done_before = 0
    files: list[FileStats] = []
    total_frames = bad_frames = nonip_frames = 0
    for path, size in zip(paths, sizes):
        name = str(path)
        table.begin_file(name)
        frames = fallback = bad = 0
        linktypes: set[int] = set()
        base = done_before

        def _progress(done: int, base: int = base) -> None:
            if progress is not None:
                progress(base + done, total)

        for batch in iter_batches(Path(path), vxlan_ports=vxlan_ports, addrs=addrs, warn=_warn,
                                  progress=_progress, heads=heads):
            if batch.n == 0:
                continue
            table.add(batch)
            frames += batch.n
            fallback += int(np.count_nonzero(batch.fallback))
            nonip_frames += int(np.count_nonzero(batch.kind == KIND_NONIP))
            lt = batch.linktype
            linktypes.update([int(lt[0])] if (lt == lt[0]).all() else np.unique(lt).tolist())  # no sort when one
            for i in np.flatnonzero(batch.kind == KIND_BAD).tolist():
                bad += 1
                if bad <= MAX_PACKET_WARNINGS:
                    _warn(_bad_packet_line(name, int(batch.frame[i]), batch.records.get(i)))
        if bad > MAX_PACKET_WARNINGS:
            _warn(f"{name}: {bad - MAX_PACKET_WARNINGS} more packets without a usable IP header (not listed)")
        done_before += size
        if progress is not None:
            progress(done_before, total)
        total_frames += frames
        bad_frames += bad
        files.append(
            FileStats(
                path=name,
                frames=frames,
                bytes=size,
                linktype=next(iter(linktypes)) if len(linktypes) == 1 else None,
                fast_frames=frames - fallback,
                fallback_frames=fallback,
            )
        )

    return TableScan(
        table=table,
        addrs=addrs,
        general=general,
        files=tuple(files),
        warnings=tuple(warnings),
        total_frames=total_frames,
        undecodable_frames=bad_frames,
        non_ip_frames=nonip_frames,
        sample=sample,
    )


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # iter_batches raises the InputError with the reason


def _bad_packet_line(name: str, frame: int, rec: PacketRecord | None) -> str:
    why = "; ".join(rec.notes) if rec is not None and rec.notes else "no usable IP header"
    return f"{name}: packet #{frame}: {why}"
