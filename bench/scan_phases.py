"""Time the phases of explain's sampled scan and the flow table's lane accessors, in process.

    PYTHONPATH=. python bench/scan_phases.py bench/data/mix-1000000.pcap --repeat 5

Each repeat runs, interleaved: the plain scan (``scan_table(sample=0)``, what ``flows`` does),
the sampled scan (``sample=4, heads=True``, what ``explain`` does), then on the sampled table
``kept_twins(interest=...)`` (the plain lane's flows of interest: every flow here), ``slot_stats``
and ``kept_columns`` (flows with a retransmission). The garbage collector is off while timing.
Prints the median and best of each phase (seconds, wall and this process's CPU), and ``extra`` =
sampled - plain scan.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path

import numpy as np

from analyzer.pipeline.flows import scan_table


def _timed(fn):  # type: ignore[no-untyped-def]
    """(wall seconds, this process's CPU seconds, fn's result); the CPU time leaves out the helper
    process that walks the file, and most of the noise of a shared machine."""
    gc.collect()
    gc.disable()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        return (time.perf_counter() - t0, time.process_time() - c0), out
    finally:
        gc.enable()


def _one_round(pcap: Path, *, plain: bool) -> list[tuple[str, tuple[float, float]]]:
    out = []
    if plain:
        out.append(("scan sample=0", _timed(lambda: scan_table([pcap], sample=0))[0]))
    t, scan = _timed(lambda: scan_table([pcap], sample=4, heads=True))
    out.append(("scan sample=4 heads", t))
    table = scan.table
    interest = np.ones(table.count, dtype=bool)
    out.append(("kept_twins(interest)", _timed(lambda: table.kept_twins(interest=interest))[0]))
    out.append(("slot_stats", _timed(table.slot_stats)[0]))
    check = table.column("retrans") > 0
    out.append(("kept_columns", _timed(lambda: table.kept_columns(check))[0]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcap", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-plain", action="store_true", help="do not time the sample=0 scan")
    args = ap.parse_args()
    times: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        for name, t in _one_round(args.pcap, plain=not args.skip_plain):
            times.setdefault(name, []).append(t)
    if "scan sample=0" in times:
        times["extra (sampled - plain)"] = [(a[0] - b[0], a[1] - b[1]) for a, b in
                                            zip(times["scan sample=4 heads"], times["scan sample=0"], strict=True)]
    for name, ts in times.items():
        wall, cpu = [t[0] for t in ts], [t[1] for t in ts]
        print(f"{name:26s} median {statistics.median(wall):.3f}  best {min(wall):.3f}  "
              f"cpu median {statistics.median(cpu):.3f}  best {min(cpu):.3f}  ({len(ts)} runs)")

if __name__ == "__main__":
    main()
