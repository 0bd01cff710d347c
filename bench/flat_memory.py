#!/usr/bin/env python3
"""Does ``k8s-trace flows`` memory grow with the packets, or only with the conversations?

    python bench/flat_memory.py [--repeat 3] [--markdown]

Three captures, each through ``k8s-trace flows`` as its own process, peak RSS from ``os.wait4``:

* ``mix-100000.pcap``: 100,000 packets, ~7,000 flows (``gen_mix.py``, as in ``run_bench.py``);
* ``mix-100000x10.pcap``: the same 100,000 packets ten times over, each copy 60 s later:
  1,000,000 packets of the *same* ~7,000 conversations (built here, once);
* ``mix-1000000.pcap``: 1,000,000 packets of the generator, ~69,000 flows (most of them DNS
  queries, each from its own source port).

Flat in packets means the first two peak alike; the third adds the state of ~62,000 more flows.
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_bench import DATA, _k8s_trace, ensure, run_once  # noqa: E402


def repeated(src: Path, times: int, shift: int = 60) -> Path:
    """``src`` (a little-endian microsecond pcap) ``times`` over, each copy ``shift`` s after the
    previous one ends."""
    out = src.with_name(f"{src.stem}x{times}.pcap")
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    data = src.read_bytes()
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise SystemExit(f"{src}: expected a little-endian microsecond pcap")
    header, body = data[:24], memoryview(data)[24:]
    first = last = None
    off = 0
    while off + 16 <= len(body):
        sec, _usec, incl, _orig = struct.unpack_from("<IIII", body, off)
        first = sec if first is None else first
        last = sec
        off += 16 + incl
    shift += (last or 0) - (first or 0)  # each copy starts after the previous one ends
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(header)
        for k in range(times):
            off = 0
            while off + 16 <= len(body):
                sec, usec, incl, orig = struct.unpack_from("<IIII", body, off)
                fh.write(struct.pack("<IIII", sec + k * shift, usec, incl, orig))
                fh.write(body[off + 16 : off + 16 + incl])
                off += 16 + incl
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    small = ensure(100_000, DATA)
    if args.build:
        repeated(small, 10)
        return 0
    big = ensure(1_000_000, DATA)
    # built by a child process: a parent that held the capture's bytes would lend its size to the
    # peak RSS that wait4 reports for the children it forks
    subprocess.run([sys.executable, __file__, "--build"], check=True)
    same = small.with_name(f"{small.stem}x10.pcap")
    rows = []
    for label, path, packets in (("100,000 packets (mix)", small, 100_000),
                                 ("1,000,000 packets, the same flows (mix x10)", same, 1_000_000),
                                 ("1,000,000 packets (mix)", big, 1_000_000)):
        argv_ = [*_k8s_trace(), "flows", str(path)]
        runs = [run_once(argv_) for _ in range(args.repeat)]
        if any(r[3] != 0 for r in runs):
            raise SystemExit(f"k8s-trace flows failed on {path}")
        flows = _flow_count(path)
        rows.append((label, packets, flows, min(r[2] for r in runs), max(r[2] for r in runs),
                     min(r[0] for r in runs)))
    if args.markdown:
        print("| capture | packets | flows | peak RSS (MB), min-max of runs | wall (s), best |")
        print("|---|---:|---:|---:|---:|")
        for label, packets, flows, lo, hi, wall in rows:
            print(f"| {label} | {packets:,} | {flows:,} | {lo:.0f}-{hi:.0f} | {wall:.2f} |")
    else:
        for label, packets, flows, lo, hi, wall in rows:
            print(f"{label:<46} {packets:>9,} packets {flows:>7,} flows  peak {lo:.0f}-{hi:.0f} MB  {wall:.2f} s")
    return 0


def _flow_count(path: Path) -> int:
    out = subprocess.run([*_k8s_trace(), "flows", str(path)], capture_output=True, text=True, check=True).stdout
    last = [line for line in out.splitlines() if " flows in " in line]
    return int(last[-1].split()[0]) if last else -1


if __name__ == "__main__":
    sys.exit(main())
