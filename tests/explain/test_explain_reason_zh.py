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
