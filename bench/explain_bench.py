#!/usr/bin/env python3
"""Time ``k8s-trace explain`` (text and JSON) against ``k8s-trace flows`` on the same capture.

    python bench/explain_bench.py                          # bench/data/mix-100000.pcap
    python bench/explain_bench.py --packets 1000000        # the issue's benchmark file
    python bench/explain_bench.py --markdown               # rows for bench/README_explain.md

Each command runs as its own process (interpreter start-up and imports count), output to a file
in a temporary directory. Wall time is measured around the process; CPU time (user + system) and
peak RSS come from ``os.wait4`` (that child's rusage). The capture is generated once by
``gen_mix.py`` into ``bench/data/`` (gitignored). ``--repeat N`` keeps each command's fastest run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def _k8s_trace() -> list[str]:
    exe = Path(sys.executable).parent / "k8s-trace"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "analyzer"]


def run_once(argv: list[str]) -> tuple[float, float, float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    cap = DATA / f"mix-{args.packets}.pcap"
    if not cap.exists():
        DATA.mkdir(exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "gen_mix.py"), str(args.packets), str(cap)], check=True)
    k = _k8s_trace()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = [
            ("flows", [*k, "flows", str(cap)]),
            ("explain --format text", [*k, "explain", str(cap), "--format", "text", "-o", f"{tmp}/e.txt"]),
            ("explain --format json", [*k, "explain", str(cap), "--format", "json", "-o", f"{tmp}/e.json"]),
        ]
        rows = []
        for name, argv in cmds:
            best = min((run_once(argv) for _ in range(max(1, args.repeat))), key=lambda r: r[0])
            rows.append((name, *best))
            print(f"{name:24s} wall {best[0]:7.2f} s  cpu {best[1]:7.2f} s  peak {best[2]:7.0f} MB  exit {best[3]}",
                  file=sys.stderr)
    base_wall, base_cpu = rows[0][1], rows[0][2]
    if args.markdown:
        print(f"| command ({args.packets:,} packets) | wall s | CPU s | peak RSS MB | wall / flows | CPU / flows |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, wall, cpu, rss, _st in rows:
            print(f"| `k8s-trace {name}` | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {wall / base_wall:.1f}x | "
                  f"{cpu / base_cpu:.1f}x |")
    return 0 if all(r[4] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
