#!/usr/bin/env python3
"""Time ``k8s-trace flows`` against tshark and a plain dpkt loop on the same generated capture.

    python bench/run_bench.py                       # 1,000,000 and 100,000 packets, as in README.md
    python bench/run_bench.py --packets 200000      # quicker
    python bench/run_bench.py --extra 'explain=k8s-trace explain {file} --format json'

Every command runs as its own process (startup and imports count). Wall time is measured around
the process; CPU time (user + system) and peak RSS come from ``os.wait4`` (that child's rusage,
helpers included). CPU time is the fairer figure when other work shares the machine. Each command runs
``--repeat`` times (tshark and dpkt ``--baseline-repeat`` times) and the fastest run is reported
(the machine may be busy); the 1-minute load average is printed from before and after. Captures are
generated once into ``bench/data/`` (gitignored) by ``gen_mix.py``. Output goes to /dev/null.
``--markdown`` prints the table as Markdown, for ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


@dataclass
class Result:
    name: str
    packets: int
    wall: float
    cpu: float  # user + system seconds of the process (and its helpers)
    rss_mb: float
    status: int


def _k8s_trace() -> list[str]:
    exe = Path(sys.executable).parent / "k8s-trace"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "analyzer"]


TSHARK = "tshark -q -z conv,ip -d udp.port==8472,vxlan"
DPKT = "dpkt loop (bench/dpkt_loop.py)"
BASELINES = (TSHARK, DPKT)


def commands(extra: list[str]) -> list[tuple[str, list[str]]]:
    cmds = [
        ("k8s-trace flows", [*_k8s_trace(), "flows", "{file}"]),
        ("k8s-trace flows --format json", [*_k8s_trace(), "flows", "--format", "json", "{file}"]),
        (TSHARK, ["tshark", "-q", "-z", "conv,ip", "-d", "udp.port==8472,vxlan", "-r", "{file}"]),
        (DPKT, [sys.executable, str(HERE / "dpkt_loop.py"), "{file}"]),
    ]
    for item in extra:
        name, _, cmd = item.partition("=")
        if not cmd:
            raise SystemExit(f"--extra wants NAME=COMMAND, got {item!r}")
        cmds.append((name, shlex.split(cmd)))
    return cmds


def byte_compile() -> None:
    """Byte-compile the package first, as ``pip install`` does: where PYTHONDONTWRITEBYTECODE is
    set (this VM sets it) no run would write its ``.pyc`` files, and each would compile every module
    it imports from source again (0.2-0.3 s for ``explain``), which no installed copy does."""
    import compileall

    import analyzer

    compileall.compile_dir(str(Path(analyzer.__file__).resolve().parent), quiet=1)


def run_once(argv: list[str]) -> tuple[float, float, float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def measure(name: str, argv: list[str], path: Path, packets: int, repeat: int) -> Result:
    argv = [a.replace("{file}", str(path)) for a in argv]
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        return Result(name, packets, float("nan"), float("nan"), float("nan"), -1)
    runs = [run_once(argv) for _ in range(repeat)]
    wall, cpu, _rss, status = min(runs)
    return Result(name, packets, wall, cpu, max(r[2] for r in runs), max(r[3] for r in runs))


def ensure(packets: int, data: Path = DATA) -> Path:
    path = data / f"mix-{packets}.pcap"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from gen_mix import generate

        t = time.perf_counter()
        generate(packets, path)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="the big capture (default 1,000,000)")
    ap.add_argument("--small", type=int, default=100_000, help="the small capture for the memory check")
    ap.add_argument("--repeat", type=int, default=3, help="runs per command; the fastest counts")
    ap.add_argument("--baseline-repeat", type=int, default=1, help="runs of tshark and dpkt; the fastest counts")
    ap.add_argument("--only-flows", action="store_true", help="skip tshark and dpkt (quick check)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=COMMAND",
                    help="another command to time; {file} is replaced by the capture path")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--data", type=Path, default=DATA, help="where the generated captures go (default bench/data)")
    args = ap.parse_args(argv)

    big, small = ensure(args.packets, args.data), ensure(args.small, args.data)
    byte_compile()
    load_before = os.getloadavg()[0]
    results: list[Result] = []
    for name, cmd in commands(args.extra):
        baseline = name in BASELINES
        if args.only_flows and baseline:
            continue
        for path, packets in ((big, args.packets), (small, args.small)):
            if packets == args.small and baseline:
                continue  # the small file only shows that our memory is flat
            r = measure(name, cmd, path, packets, args.baseline_repeat if baseline else args.repeat)
            results.append(r)
            print(f"{r.name:48s} {r.packets:>9d} pkts  {r.wall:7.2f} s  {r.cpu:7.2f} cpu-s  {r.rss_mb:7.1f} MB"
                  f"  exit {r.status}", file=sys.stderr)

    flows = next(r for r in results if r.name == "k8s-trace flows" and r.packets == args.packets)
    size = big.stat().st_size / 1e6
    load = os.getloadavg()[0]
    lines = [
        f"capture: {big.name}, {args.packets:,} packets, {size:.0f} MB; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load_before:.1f} before, {load:.1f} at the end",
        "",
        "| command | packets | wall time (s) | CPU time (s) | peak RSS (MB) | flows faster by (wall) | (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        wall_x = f"{r.wall / flows.wall:.1f}x" if r.name in BASELINES else ""
        cpu_x = f"{r.cpu / flows.cpu:.1f}x" if r.name in BASELINES else ""
        lines.append(f"| `{r.name}` | {r.packets:,} | {r.wall:.2f} | {r.cpu:.2f} | {r.rss_mb:.0f} | {wall_x} | {cpu_x} |")
    text = "\n".join(lines)
    print(text if args.markdown else text.replace("|", " ").replace("---:", "").replace("---", ""))
    return 0 if all(r.status == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
