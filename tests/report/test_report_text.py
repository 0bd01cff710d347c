"""The terminal report: goldens per example, what a failing flow shows, colour and escaping."""

from __future__ import annotations

import re

import pytest
import report_examples as ex

from analyzer.report.text import render_text

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("name", sorted(ex.EXAMPLES))
def test_text_matches_golden(golden, name: str) -> None:
    golden.check(f"{name}.txt", render_text(ex.EXAMPLES[name]()))


def test_text_zh_matches_golden(golden) -> None:
    golden.check("overlay_blocked.zh.txt", render_text(ex.overlay_blocked(), lang="zh"))


def test_summary_line_per_flow_and_details_only_for_failing() -> None:
    doc = ex.all_examples()
    text = render_text(doc)
    lines = text.splitlines()
    for flow in doc["flows"]:
        summary = [ln for ln in lines if re.match(rf"^\S.*\b{flow['id']}\s+tcp\s+", ln)]
        assert len(summary) == 1, (flow["id"], summary)
    details = [ln.split()[1] for ln in lines if ln.startswith("== ")]
    assert details == ["f4", "f5", "f7"]  # dropped, rejected, no-reply; delivered ones stay one line


def test_failing_flow_detail_names_failing_hop_evidence_and_fix() -> None:
    text = render_text(ex.overlay_blocked())
    failed = [ln for ln in text.splitlines() if "<== packet died here" in ln]
    assert len(failed) == 1 and "n2" in failed[0] and "DROPPED" in failed[0] and failed[0].lstrip().startswith("!")
    assert "n2/iptables-save:7: :INPUT DROP [1207:98811]" in text
    assert re.search(r"^  x 11\. n2 +flannel\.1 +vtep +NOT REACHED$", text, re.M)  # captured there, absent
    assert "ERROR OVERLAY_PORT_BLOCKED @n2" in text
    assert "iptables -I INPUT -p udp --dport 8472 -s 192.168.56.11 -d 192.168.56.12 -j ACCEPT" in text
    assert "n2/eth0.pcap #40, #41, #42, #43" in text


def test_capture_only_lists_not_checkable_and_warnings() -> None:
    text = render_text(ex.capture_only())
    assert "Not checkable without more input:" in text
    assert "  - MISSING_FDB: needs bridge-fdb of n1" in text
    assert "any.pcap: packet 26: truncated record" in text
    assert "(suspicion: needs dumps to confirm)" in text
    assert "INCOMPLETE f2" in text


def test_colour_only_when_asked() -> None:
    doc = ex.all_examples()
    plain = render_text(doc)
    assert "\x1b" not in plain
    coloured = render_text(doc, color=True)
    assert "\x1b[32mDELIVERED\x1b[0m" in coloured
    assert "\x1b[1;31mDROPPED\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == plain


def test_untrusted_control_characters_are_neutralised() -> None:
    doc = ex.hostile()
    doc["flows"][0]["status"] = "dropped"  # so the detail (with the verdict) is printed
    text = render_text(doc)
    assert "\x1b" not in text
    assert "\\x1b[31mterminal escape" in text


def test_zh_uses_chinese_ui_and_data() -> None:
    text = render_text(ex.overlay_blocked(), lang="zh")
    assert "被丢弃" in text and "结论" in text and "修复" in text
    assert "在 n2 上被丢弃" in text  # verdict["zh"]
    assert "n2 的 INPUT 链丢弃" in text  # message_zh
    assert "# 在 n2 上：放行" in text  # fix_zh


def test_zh_falls_back_to_english_per_item() -> None:
    doc = ex.overlay_blocked()
    del doc["flows"][0]["verdict"]["zh"]
    del doc["flows"][0]["findings"][1]["message_zh"]
    text = render_text(doc, lang="zh")
    assert "Dropped on n2: the VXLAN packets" in text
    assert "The SYN was sent 4 times" in text
    assert "n2 的 INPUT 链丢弃" in text


def test_partial_document_does_not_crash() -> None:
    assert "0 flows" in render_text({"schema": "k8s-trace.explain/1"})
    text = render_text({"flows": [{"id": "x", "status": "dropped", "hops": [{}], "findings": [{}]}]})
    assert "DROPPED" in text


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown report language"):
        render_text(ex.delivered_vxlan(), lang="fr")


def test_findings_on_delivered_flows_are_listed_after_the_failing_ones() -> None:
    text = render_text(ex.all_examples())
    section = text.split("Findings on flows that were delivered:\n", 1)[1]
    assert section.startswith("  f6: WARNING RETRANSMISSIONS @n1: Retransmitted payload <script>alert(1)</script>\n")
    assert text.index("== f7 ") < text.index("Findings on flows that were delivered:")
    assert "Findings on flows that were delivered" not in render_text(ex.overlay_blocked())
