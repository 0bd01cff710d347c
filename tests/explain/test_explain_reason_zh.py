"""Status reasons in the Chinese verdicts: the fixed phrases are translated, ICMP codes named."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.engines.explain import ICMP_MEANING, reason_zh

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("en", "zh"), [
    ("the server answered", "服务端有应答"),
    ("nothing came back", "没有任何回包"),
    ("ICMP fragmentation needed (MTU 1450) from 10.244.1.1", "来自 10.244.1.1 的 ICMP 需要分片（MTU 1450）"),
    ("ICMP 3/10 from 192.168.56.12 (" + ICMP_MEANING[(3, 10)][0] + ")",
     "来自 192.168.56.12 的 ICMP 3/10（" + ICMP_MEANING[(3, 10)][1] + "）"),
    ("ICMP 3/7 from 10.0.0.1", "来自 10.0.0.1 的 ICMP 3/7"),
    ("no packet from the client was captured; only the ICMP error was captured, not the flow's own packets",
     "没有抓到客户端发出的包；只抓到了 ICMP 错误报文，没有抓到该流自身的包"),
])
def test_reason_phrases(en: str, zh: str) -> None:
    assert reason_zh(en) == zh


@pytest.mark.parametrize(("en", "zh"), [
    ("the reverse-path filter (rp_filter=1, strict) on eth1 drops it: the route back to source 172.16.0.5 leaves "
     "via eth0, not eth1 where the packet came in",
     "eth1 上的严格反向路径过滤（rp_filter=1）丢弃了它：回到源地址 172.16.0.5 的路由经 eth0 离开，而不是数据包进入的 eth1"),
    ("The reverse-path filter (rp_filter=2, loose) on eth1 drops it: there is no usable route back to source "
     "172.16.0.5 (unreachable).",
     "eth1 上的宽松反向路径过滤（rp_filter=2）丢弃了它：没有回到源地址 172.16.0.5 的可用路由（unreachable）"),
    ("The reverse-path filter (rp_filter=1, strict) on eth0 drops it: source 192.168.56.12 is one of the node's own "
     "addresses (a martian source).",
     "eth0 上的严格反向路径过滤（rp_filter=1）丢弃了它：源地址 192.168.56.12 是节点自身的地址（martian 源地址）"),
])
def test_every_rp_filter_drop_reason(en: str, zh: str) -> None:
    """Each reason routing gives for a reverse-path drop, strict or loose (only strict mode's
    'leaves via another interface' was translated)."""
    assert reason_zh(en) == zh


def test_unknown_reason_is_left_as_it_is() -> None:
    assert reason_zh("rule KUBE-SVC-X line 7 drops it") == "rule KUBE-SVC-X line 7 drops it"


@pytest.mark.parametrize("sample", ["vxlan-blocked", "no-endpoints", "mtu"])
def test_sample_verdicts_have_no_english_reason(sample: str) -> None:
    out = subprocess.run([sys.executable, "-m", "analyzer", "explain", str(ROOT / "samples" / sample),
                          "--format", "json"], capture_output=True, text=True, check=True, cwd=ROOT)
    for flow in json.loads(out.stdout)["flows"]:
        zh = flow["verdict"]["zh"]
        assert not re.search(r"\b(from|answered|captured|nothing)\b", zh), zh
        if flow["status"] == "rejected":
            assert "来自" in zh
