"""Scale benchmark for the iptables-save parser and the netfilter walk (results: bench/README_rules.md).

Generates kube-proxy's rules for N services x M endpoints (default 10,000 x 5, about 120k rules)
with ``analyzer.lab.kube_proxy``, then measures, in one run:

* ``parse_iptables_save`` of the whole text (budget: 3 s);
* building the indexed engine (compile + index, once per rule set);
* one ``simulate_packet`` walk (pod -> a ClusterIP, every statistic branch followed), the median
  of many (budget: 10 ms), for a service at the start, middle and end of KUBE-SERVICES;
* ``iptables-restore --test`` of the same file inside a throwaway network namespace (root only),
  and the ratio parse time / restore time.

Usage: ``python bench/rules_bench.py [--services N] [--endpoints M] [--repeat R] [--json]``.
Exit status 1 when a budget is exceeded (so CI can run it with small N as a smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analyzer.engines.netfilter import NetfilterEngine, NodeAddresses  # noqa: E402
from analyzer.engines.simulate import simulate_packet  # noqa: E402
from analyzer.inputs.iptables_save import parse_iptables_save  # noqa: E402
from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec, generate_rules  # noqa: E402
from analyzer.model.node import NodeSnapshot  # noqa: E402

PARSE_BUDGET_S = 3.0
WALK_BUDGET_MS = 10.0
NODE_IP = "192.168.0.10"


def service_ip(i: int) -> str:
    return f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}"


def make_services(n: int, m: int) -> list[ServicePortSpec]:
    out = []
    for i in range(n):
        eps = tuple(Endpoint(f"10.{244 + (i * m + j) // 65536}.{((i * m + j) // 256) % 256}.{(i * m + j) % 256}",
                             8080) for j in range(m))
        out.append(ServicePortSpec(f"ns{i % 50}", f"svc{i}", service_ip(i + 1), 80, eps, port_name="http",
                                   node_port=30000 + i if i < 2000 else None))
    return out


def iptables_restore_test(path: Path) -> tuple[float, float] | None:
    """(wall, CPU) seconds of ``iptables-restore --test`` of ``path`` in a fresh namespace, best of
    2 (None: not possible here)."""
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None or shutil.which("ip") is None:
        return None
    ns = f"k8sD-bench-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=10)
        best: tuple[float, float] | None = None
        for _ in range(2):
            with path.open() as fh:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                r = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore", "--test"], stdin=fh,
                                   capture_output=True, text=True, timeout=600)
                wall = time.perf_counter() - t0
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if r.returncode != 0:
                print(f"iptables-restore --test failed: {r.stderr.strip()[:300]}", file=sys.stderr)
                return None
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if best is None or wall < best[0]:
                best = (wall, cpu)
        return best
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=200, help="walks to time (the median is reported)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-restore", action="store_true", help="skip iptables-restore --test")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    specs = make_services(args.services, args.endpoints)
    text = generate_rules(specs, cluster_cidr="10.244.0.0/14", pod_cidr="10.244.0.0/24", node_ip=NODE_IP)
    gen_s = time.perf_counter() - t0

    parse_runs, parse_cpu_runs = [], []
    for _ in range(3):  # best of 3: the machine may be shared
        t0, c0 = time.perf_counter(), time.process_time()
        rs = parse_iptables_save(text, "bench.save")
        parse_runs.append(time.perf_counter() - t0)
        parse_cpu_runs.append(time.process_time() - c0)
    parse_s, parse_cpu = min(parse_runs), min(parse_cpu_runs)
    rules = rs.rule_count()
    assert not rs.warnings, rs.warnings[:3]

    addrs = NodeAddresses.from_ips([NODE_IP])
    t0 = time.perf_counter()
    NetfilterEngine(rs, addrs)
    build_s = time.perf_counter() - t0

    node = NodeSnapshot(name="bench", ruleset=rs)
    simulate_packet([node], "10.244.0.9", service_ip(1), "tcp", 40000, 80, local_ips=[NODE_IP])  # warm the cache
    walks: dict[str, float] = {}
    walks_cpu: dict[str, float] = {}
    cases = [(label, "10.244.0.9", service_ip(idx), 80) for label, idx in
             (("first", 1), ("middle", args.services // 2), ("last", args.services))]
    cases.append(("nodeport", "203.0.113.9", NODE_IP, 30000 + min(1999, args.services - 1)))
    for label, src, dst, port in cases:
        times, cpu = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            r = simulate_packet([node], src, dst, "tcp", 40000, port, local_ips=[NODE_IP])
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        assert len(r.outcomes) == args.endpoints and abs(sum(o.probability for o in r.outcomes) - 1) < 1e-6
        walks[label] = statistics.median(times) * 1000
        walks_cpu[label] = statistics.median(cpu) * 1000

    restore_s = None
    if not args.no_restore:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rules.save"
            path.write_text(text)
            restore_s = iptables_restore_test(path)

    restore_wall = restore_s[0] if restore_s else None
    restore_cpu = restore_s[1] if restore_s else None
    result = {
        "services": args.services, "endpoints": args.endpoints, "rules": rules, "bytes": len(text),
        "generate_s": round(gen_s, 3), "parse_s": round(parse_s, 3), "parse_cpu_s": round(parse_cpu, 3),
        "engine_build_s": round(build_s, 3),
        "walk_ms_median": {k: round(v, 3) for k, v in walks.items()},
        "walk_cpu_ms_median": {k: round(v, 3) for k, v in walks_cpu.items()},
        "iptables_restore_test_s": None if restore_wall is None else round(restore_wall, 3),
        "iptables_restore_test_cpu_s": None if restore_cpu is None else round(restore_cpu, 3),
        "parse_vs_restore": None if not restore_wall else round(parse_s / restore_wall, 2),
        "python": sys.version.split()[0], "cpus": os.cpu_count(), "load": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{rules} rules ({args.services} services x {args.endpoints} endpoints, {len(text) / 1e6:.1f} MB)")
        print(f"  generate          {gen_s:8.3f} s")
        print(f"  parse             {parse_s:8.3f} s   (budget {PARSE_BUDGET_S} s; CPU {parse_cpu:.3f} s, best of 3)")
        print(f"  engine build      {build_s:8.3f} s   (compile + index, once)")
        for k, v in walks.items():
            print(f"  walk {k:<12} {v:8.3f} ms  (CPU {walks_cpu[k]:.3f} ms; median of {args.repeat}, "
                  f"budget {WALK_BUDGET_MS} ms)")
        if restore_wall is not None:
            print(f"  iptables-restore --test {restore_wall:8.3f} s   (CPU {restore_cpu:.3f} s)   "
                  f"parse/restore = {parse_s / restore_wall:.2f}")
        else:
            print("  iptables-restore --test: not measured (needs root and iptables)")
        print(f"  load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    ok = parse_s <= PARSE_BUDGET_S and max(walks.values()) <= WALK_BUDGET_MS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
