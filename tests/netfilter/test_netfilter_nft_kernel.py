"""The kube-proxy nftables fixtures are real: a kernel loads each variant (``nft -f`` in a network
namespace of this test) and ``nft list ruleset`` prints it back; the parser reads the kernel's
listing into the same chains, rules, sets and elements as the fixture text, and the simulator gives
the same translations for both."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.engines.netfilter import NetfilterEngine, NodeAddresses, PacketState
from analyzer.engines.nft_lower import engine_tables
from analyzer.inputs.nft_ruleset import parse_nft_ruleset
from analyzer.model.netfilter import RuleSet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nft_kp import Svc, kube_proxy_table  # noqa: E402  (helper next to this file)

V4 = kube_proxy_table([
    Svc("default", "web", "10.96.0.100", 80, tuple((f"10.244.{i % 2 + 1}.{i + 2}", 8080) for i in range(5)),
        nodeport=30080),
    Svc("default", "none", "10.96.0.200", 80, (), nodeport=30090),
    Svc("kube-system", "dns", "10.96.0.10", 53, (("10.244.1.9", 53),), proto="udp", port_name="dns"),
] + [Svc("ns", f"s{i}", f"10.96.1.{i}", 443, (("10.244.2.2", 8443),)) for i in range(1, 12)],
    nodeport_ips=["192.168.56.11", "10.244.1.0"])
V6 = kube_proxy_table([Svc("default", "web", "fd00:96::100", 80, (("fd00:244:2::2", 8080), ("fd00:244:1::3", 8080)))],
                      nodeport_ips=["fd00:56::11"], cluster_cidr="fd00:244::/48", service_cidr="fd00:96::/112",
                      family=6)


def _shape(text: str) -> tuple:
    nft = parse_nft_ruleset(text, "f")
    assert nft.warnings == ()
    return tuple((t.family, t.name, tuple((c.name, c.hook, c.priority, tuple(r.source.text for r in c.rules))
                                          for c in t.chains),
                  # the kernel lists elements in its own order
                  tuple((s.name, s.key_type, tuple(sorted((e.key, e.value or "", e.comment or "") for e in s.elements)))
                        for s in t.sets))
                 for t in nft.tables)


def _dnats(text: str, family: int, src: str, dst: str, dport: int, proto: int = 6) -> list[tuple[str, float]]:
    eng = NetfilterEngine(RuleSet("x", family="ipv4" if family == 4 else "ipv6"), NodeAddresses(),
                          engine_tables(parse_nft_ruleset(text, "f"), family))
    p = PacketState(ipaddress.ip_address(src), ipaddress.ip_address(dst), proto, 40000, dport, in_interface="cni0")
    return sorted((b.translations[0].after if b.translations else "", round(b.probability, 9))
                  for b in eng.walk_hook("PREROUTING", p))


@pytest.mark.parametrize(("text", "family"), [(V4, 4), (V6, 6)], ids=["ipv4", "ipv6"])
def test_kernel_listing_reads_like_the_fixture(netns: None, text: str, family: int, tmp_path: Path) -> None:
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed")
    name = f"ka-nftkp-{os.getpid()}-{family}"
    src = tmp_path / "kp.nft"
    src.write_text(text)
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    try:
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", str(src)], check=True, capture_output=True,
                       text=True, timeout=20)
        listed = subprocess.run(["ip", "netns", "exec", name, "nft", "list", "ruleset"], check=True,
                                capture_output=True, text=True, timeout=20).stdout
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    assert _shape(listed) == _shape(text)
    if family == 4:
        want = _dnats(text, 4, "10.244.1.2", "10.96.0.100", 80)
        assert len(want) == 5 and all(p == 0.2 for _, p in want)
        assert _dnats(listed, 4, "10.244.1.2", "10.96.0.100", 80) == want
        assert _dnats(listed, 4, "10.244.1.2", "10.96.0.10", 53, proto=17) == [("10.244.1.9:53", 1.0)]
        assert _dnats(listed, 4, "10.244.1.2", "10.96.1.7", 443) == [("10.244.2.2:8443", 1.0)]
    else:
        assert _dnats(listed, 6, "fd00:244:1::2", "fd00:96::100", 80) == [("[fd00:244:1::3]:8080", 0.5),
                                                                          ("[fd00:244:2::2]:8080", 0.5)]
