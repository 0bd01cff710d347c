"""The streaming JSON writer gives exactly ``render_json``'s text, whatever the strings hold."""

from __future__ import annotations

import io
import json
import math

from analyzer.engines import paths
from analyzer.model.explain import PathHop
from analyzer.report.json_report import render_json, write_json


def _doc() -> dict:
    tricky = 'a}, {"b": 1'  # the inline-list splitter must not be fooled by a string
    events = [{"lane": "L1", "label": tricky if i == 3 else f"len={i}", "packet": i + 1, "ts": 1.5 + i}
              for i in range(6)]
    events.append({"lane": "L2", "label": "x" * 200, "packet": 99, "ts": 2.0})  # over the width
    return {
        "schema": "k8s-trace.explain/1",
        "flows": [
            {"id": "f1", "ladder": {"lanes": [], "events": events}, "hops": [], "status": "delivered",
             "verdict": {"en": "é" * 100, "zh": "送达" * 40}, "last_seen": math.inf},
            {"id": "f2", "bytes": 1, "nested": [[1, 2], {"k": [None, True, 1.25]}], "zz": (1, "two")},
        ],
        "summary": {"flows": 2, "by_status": {"delivered": 1}},
        "warnings": ["w1", 'quote " and \\ backslash', "ctl \x1b"],
        "clock_offsets": [{"node": "n2", "offset": math.nan, "basis": "b"}],
    }


def test_stream_equals_render_and_parses() -> None:
    doc = _doc()
    text = render_json(doc)
    buf = io.StringIO()
    write_json(doc, buf)
    assert buf.getvalue() == text
    back = json.loads(text)
    assert back["flows"][0]["ladder"]["events"][3]["label"] == 'a}, {"b": 1'
    assert back["flows"][0]["last_seen"] is None and back["clock_offsets"][0]["offset"] is None
    assert back["flows"][1]["zz"] == [1, "two"]
    # scalar-only objects within the width stay on one line, the long one does not
    assert '\n          {"lane": "L1", "label": "len=0", "packet": 1, "ts": 1.5},' in text
    assert '"label": "' + "x" * 200 + '",\n' in text


def test_path_graph_json_is_the_networkx_graph() -> None:
    hops = [PathHop(id=f"f1.{i}", node="n1", interface=f"if{i}", kind=k, action="a", label=f"h{i}",
                    observed=o, failed=i == 2, edge_label="DNAT x -> y" if i == 1 else "",
                    edge_kind="nat" if i == 1 else ("drop" if i in (2, 3) else "plain"), capturable=k == "nic")
            for i, (k, o) in enumerate([("pod", True), ("nic", True), ("netfilter", None), ("nic", False)])]
    assert paths.path_graph_json(hops) == paths.graph_json(paths.path_graph(hops))
    assert paths.last_seen_on_path(hops) == paths.last_seen_on_graph(paths.path_graph(hops)) == "f1.1"
    moved = [PathHop(**{**{f: getattr(h, f) for f in h.__slots__}, "id": h.id.replace("f1", "f9")}) for h in hops]
    assert paths.last_seen_on_path(moved) == "f9.1"  # cached per shape, answered with this path's ids


def test_command_streams_the_same_text_as_render_json(tmp_path) -> None:  # noqa: ANN001
    import re
    import subprocess
    import sys

    from explaincheck import ROOT, explain, sample

    src = sample("three-node")
    expected = render_json(explain(src))
    out = tmp_path / "doc.json"
    proc = subprocess.run([sys.executable, "-m", "analyzer", "explain", str(src), "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    stdout = subprocess.run([sys.executable, "-m", "analyzer", "explain", str(src), "--format", "json"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120).stdout

    def fixed(text: str) -> str:
        return re.sub(r'"generated_at": "[^"]*"', '"generated_at": "T"', text)

    assert len(json.loads(expected)["flows"]) > 1
    assert fixed(out.read_text(encoding="utf-8")) == fixed(expected) == fixed(stdout)
