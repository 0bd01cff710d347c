"""The text report's brief documents (``explain_stream(brief=True)``: hop detail only for the
flows the report details) answer exactly as the full documents do, and the streamed text report
is byte for byte the report rendered from the full document."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.pipeline.explain import explain_stream
from analyzer.report import fmt
from analyzer.report.text import render_text, write_text

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
FIXED = "2026-11-21T00:00:00Z"
DETAIL_ONLY = {"hops", "graph", "reply", "ladder"}


def _docs(inputs: list[str], *, brief: bool) -> tuple[list[dict], dict]:
    flows, finish = explain_stream(inputs, generated_at=FIXED, brief=brief)
    got = list(flows)
    return got, finish()


def _check(inputs: list[str]) -> int:
    full_flows, full_rest = _docs(inputs, brief=False)
    brief_flows, brief_rest = _docs(inputs, brief=True)
    assert brief_rest == full_rest
    assert [f["id"] for f in brief_flows] == [f["id"] for f in full_flows]
    detailed = 0
    for full, brief in zip(full_flows, brief_flows, strict=True):
        assert brief.pop("brief") is True and "brief" not in full
        # every summary field (kind, status, endpoints, translations, encapsulation, findings,
        # counts, verdict) is the full document's
        assert {k: v for k, v in full.items() if k not in DETAIL_ONLY} == \
               {k: v for k, v in brief.items() if k not in DETAIL_ONLY}
        assert not {"graph", "reply", "ladder"} & brief.keys()
        if fmt.is_failing(full):
            detailed += 1
            assert brief["hops"] == full["hops"]
        else:
            assert "hops" not in brief
        assert list(brief) == [k for k in full if k in brief]  # same key order (the JSON layout)
    full_doc = {**full_rest, "flows": full_flows}
    for lang in ("en", "zh"):
        want = render_text(full_doc, lang=lang)
        flows, finish = explain_stream(inputs, generated_at=FIXED, brief=True)
        buf = io.StringIO()
        write_text(flows, finish, buf, lang=lang)
        assert buf.getvalue() == want
    return detailed


@pytest.mark.parametrize("name", sorted(p.parent.name for p in SAMPLES.glob("*/scenario.json")))
def test_brief_equals_full_on_lab_sample(name: str) -> None:
    _check(_nodes(name))


def _nodes(name: str) -> list[str]:
    doc = json.loads((SAMPLES / name / "scenario.json").read_text())
    return [str(SAMPLES / name / n["name"]) for n in doc["nodes"]]


def test_brief_equals_full_on_generated_mix(tmp_path: Path) -> None:
    cap = tmp_path / "mix.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), "6000", str(cap), "--seed", "3"],
                   check=True, capture_output=True)
    detailed = _check([str(cap)])
    assert detailed > 0  # the mix has failing flows: the detailed branch was compared too


def test_cli_text_report_is_the_full_documents_report(tmp_path: Path) -> None:
    from analyzer.pipeline.explain import explain_inputs

    node_dirs = _nodes("vxlan-blocked")
    out = tmp_path / "r.txt"
    subprocess.run([sys.executable, "-m", "analyzer", "explain", *node_dirs, "--format", "text", "-o", str(out)],
                   check=True, capture_output=True, cwd=ROOT)
    doc = explain_inputs(node_dirs)
    text = out.read_text(encoding="utf-8")
    want = render_text(doc)
    # generated_at is not in the text report, so the two runs must agree byte for byte
    assert text == want
    assert "DROPPED" in text or "REJECTED" in text


@pytest.mark.parametrize(("name", "status"), [("cross-node", 0), ("vxlan-blocked", 4), ("external-no-masq", 5)])
def test_cli_text_on_stdout_and_fail_on_drop(name: str, status: int) -> None:
    from analyzer.pipeline.explain import explain_inputs

    nodes = _nodes(name)
    proc = subprocess.run([sys.executable, "-m", "analyzer", "explain", *nodes, "--fail-on-drop"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == render_text(explain_inputs(nodes))  # not a terminal: no colour
