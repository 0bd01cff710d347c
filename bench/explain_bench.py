#!/usr/bin/env python3
"""Time ``k8s-trace explain`` (text and JSON) against ``k8s-trace flows`` on the same capture.

    python bench/explain_bench.py                          # bench/data/mix-100000.pcap
    python bench/explain_bench.py --packets 1000000        # the issue's benchmark file
    python bench/explain_bench.py --markdown               # rows for bench/README_explain.md
    python bench/explain_bench.py --packets 1000000 --repeat 3 --formats text --markdown

Each command runs as its own process (interpreter start-up and imports count), output to a file
in a temporary directory. Wall time is measured around the process; CPU time (user + system) and
peak RSS come from ``os.wait4`` (that child's rusage). The capture is generated once by
``gen_mix.py`` into ``bench/data/`` (gitignored). ``--repeat N`` runs the commands N times,
interleaved, and keeps each one's fastest run; ``--formats text`` times only the text report;
``--file CAPTURE`` times another capture (e.g. ``bench/data/mix-100000x10.pcap``).
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
sys.path.insert(0, str(HERE))
from run_bench import byte_compile  # noqa: E402 - a sibling script's helper

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
    ap.add_argument("--file", type=Path, default=None, help="capture to time (default: bench/data/mix-PACKETS.pcap)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--formats", default="text,json", help="explain formats to time (default: text,json)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    cap = args.file or DATA / f"mix-{args.packets}.pcap"
    if not cap.exists():
        if args.file is not None:
            ap.error(f"{cap}: no such file")
        DATA.mkdir(exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "gen_mix.py"), str(args.packets), str(cap)], check=True)
    byte_compile()
    k = _k8s_trace()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = [("flows", [*k, "flows", str(cap)])]
        for fmt in (f.strip() for f in args.formats.split(",") if f.strip()):
            cmds.append((f"explain --format {fmt}",
                         [*k, "explain", str(cap), "--format", fmt, "-o", f"{tmp}/e.{fmt}"]))
        # the repeats interleaved (flows, text, json, flows, ...): a change in the machine's load
        # falls on every command alike; each command's fastest run is kept
        runs: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name, _ in cmds}
        for _ in range(max(1, args.repeat)):
            for name, argv in cmds:
                runs[name].append(run_once(argv))
        rows = []
        for name, _argv in cmds:
            best = min(runs[name], key=lambda r: r[0])
            rows.append((name, *best))
            print(f"{name:24s} wall {best[0]:7.2f} s  cpu {best[1]:7.2f} s  peak {best[2]:7.0f} MB  exit {best[3]}"
                  f"  (walls: {', '.join(f'{r[0]:.2f}' for r in runs[name])})", file=sys.stderr)
    load_after = os.getloadavg()
    base_wall, base_cpu = rows[0][1], rows[0][2]
    print(f"{cap.name}: load average {load[0]:.2f} before, {load_after[0]:.2f} after; "
          f"fastest of {max(1, args.repeat)} interleaved runs each", file=sys.stderr)
    if args.markdown:
        what = f"{args.packets:,} packets" if args.file is None else cap.name
        print(f"| command ({what}) | wall s | CPU s | peak RSS MB | wall / flows | CPU / flows |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, wall, cpu, rss, _st in rows:
            print(f"| `k8s-trace {name}` | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {wall / base_wall:.1f}x | "
                  f"{cpu / base_cpu:.1f}x |")
    return 0 if all(r[4] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
