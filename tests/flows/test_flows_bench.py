"""The bench scripts on a tiny mix: the generator, the dpkt baseline and run_bench all work, and
``k8s-trace flows`` counts the same IP packets as an independent decoder (dpkt)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def test_gen_mix_dpkt_loop_and_flows_agree(tmp_path: Path) -> None:
    path = tmp_path / "mix.pcap"
    r = subprocess.run([sys.executable, str(BENCH / "gen_mix.py"), "2000", str(path), "--seed", "3"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert path.stat().st_size > 2000 * 200
    dpkt = subprocess.run([sys.executable, str(BENCH / "dpkt_loop.py"), str(path)], capture_output=True,
                          text=True, timeout=60)
    m = re.match(r"(\d+) inner 5-tuples, (\d+) IP packets", dpkt.stdout)
    assert m, dpkt.stdout + dpkt.stderr
    flows = subprocess.run([sys.executable, "-m", "analyzer", "flows", "--format", "json", str(path)],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    doc = json.loads(flows.stdout)
    t = doc["totals"]
    assert t["frames"] == 2000 and t["undecodable_frames"] == 0
    assert int(m.group(2)) == t["frames"] - t["non_ip_frames"] == sum(f["packets"] for f in doc["flows"])
    # dpkt counts each direction as its own 5-tuple; a flow is both directions
    directions = sum((f["packets_c2s"] > 0) + (f["packets_s2c"] > 0) for f in doc["flows"])
    assert int(m.group(1)) == directions


def test_run_bench_smoke(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(BENCH / "run_bench.py"), "--packets", "3000", "--small", "1000",
                        "--repeat", "1", "--only-flows", "--markdown", "--data", str(tmp_path),
                        "--extra", "echo=echo {file}"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| `")]
    names = [row.split("`")[1] for row in rows]
    assert names == ["k8s-trace flows", "k8s-trace flows", "k8s-trace flows --format json",
                     "k8s-trace flows --format json", "echo", "echo"]
    assert (tmp_path / "mix-3000.pcap").exists()
