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


def iptables_restore_test(path: Path) -> float | None:
    """Seconds for ``iptables-restore --test`` of ``path`` in a fresh namespace (None: not possible)."""
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None or shutil.which("ip") is None:
        return None
    ns = f"k8sD-bench-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=10)
        with path.open() as fh:
            t0 = time.perf_counter()
            r = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore", "--test"], stdin=fh,
                               capture_output=True, text=True, timeout=600)
            elapsed = time.perf_counter() - t0
        if r.returncode != 0:
            print(f"iptables-restore --test failed: {r.stderr.strip()[:300]}", file=sys.stderr)
            return None
        return elapsed
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

    t0 = time.perf_counter()
    rs = parse_iptables_save(text, "bench.save")
    parse_s = time.perf_counter() - t0
    rules = rs.rule_count()
    assert not rs.warnings, rs.warnings[:3]

    addrs = NodeAddresses.from_ips([NODE_IP])
    t0 = time.perf_counter()
    NetfilterEngine(rs, addrs)
    build_s = time.perf_counter() - t0

    node = NodeSnapshot(name="bench", ruleset=rs)
    simulate_packet([node], "10.244.0.9", service_ip(1), "tcp", 40000, 80, local_ips=[NODE_IP])  # warm the cache
    walks: dict[str, float] = {}
    for label, idx in (("first", 1), ("middle", args.services // 2), ("last", args.services)):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            r = simulate_packet([node], "10.244.0.9", service_ip(idx), "tcp", 40000, 80, local_ips=[NODE_IP])
            times.append(time.perf_counter() - t0)
        assert len(r.outcomes) == args.endpoints and abs(sum(o.probability for o in r.outcomes) - 1) < 1e-6
        walks[label] = statistics.median(times) * 1000
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        r = simulate_packet([node], "203.0.113.9", NODE_IP, "tcp", 40000, 30000 + 1999, local_ips=[NODE_IP])
        times.append(time.perf_counter() - t0)
    walks["nodeport"] = statistics.median(times) * 1000

    restore_s = None
    if not args.no_restore:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rules.save"
            path.write_text(text)
            restore_s = iptables_restore_test(path)

    result = {
        "services": args.services, "endpoints": args.endpoints, "rules": rules, "bytes": len(text),
        "generate_s": round(gen_s, 3), "parse_s": round(parse_s, 3), "engine_build_s": round(build_s, 3),
        "walk_ms_median": {k: round(v, 3) for k, v in walks.items()},
        "iptables_restore_test_s": None if restore_s is None else round(restore_s, 3),
        "parse_vs_restore": None if not restore_s else round(parse_s / restore_s, 2),
        "python": sys.version.split()[0], "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{rules} rules ({args.services} services x {args.endpoints} endpoints, {len(text) / 1e6:.1f} MB)")
        print(f"  generate          {gen_s:8.3f} s")
        print(f"  parse             {parse_s:8.3f} s   (budget {PARSE_BUDGET_S} s)")
        print(f"  engine build      {build_s:8.3f} s   (compile + index, once)")
        for k, v in walks.items():
            print(f"  walk {k:<12} {v:8.3f} ms  (median of {args.repeat}, budget {WALK_BUDGET_MS} ms)")
        if restore_s is not None:
            print(f"  iptables-restore --test {restore_s:8.3f} s   parse/restore = {parse_s / restore_s:.2f}")
        else:
            print("  iptables-restore --test: not measured (needs root and iptables)")
    ok = parse_s <= PARSE_BUDGET_S and max(walks.values()) <= WALK_BUDGET_MS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
