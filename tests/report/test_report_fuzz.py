"""Renderers are total: any JSON-shaped document, however partial or odd, renders without an
exception, and nothing from it becomes markup or a terminal escape."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.report.html import render_html
from analyzer.report.json_report import render_json
from analyzer.report.text import render_text

PIECES = [*"ab<>/&\"' \x1b\n:#", "<script>", "</svg>", "é", "中", "\u202e", "f1", "delivered"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
SCALAR = st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=True, allow_infinity=True) | TEXT
JSONISH = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                       max_leaves=12)

FLOW_KEYS = ["id", "proto", "client", "server", "kind", "status", "verdict", "translations", "encapsulation",
             "hops", "reply", "findings", "packets", "bytes", "first_seen", "last_seen", "graph", "ladder"]
STATUS = st.sampled_from(["delivered", "refused", "rejected", "dropped", "no-reply", "incomplete"]) | TEXT

HOP = st.fixed_dictionaries({}, optional={
    "node": TEXT | st.none(), "interface": TEXT | st.none(), "kind": TEXT, "action": TEXT,
    "observed": st.sampled_from([True, False, None]) | JSONISH, "failed": JSONISH,
    "evidence": st.lists(st.fixed_dictionaries({}, optional={"file": TEXT, "packet": JSONISH, "line": JSONISH,
                                                             "text": TEXT}), max_size=2) | JSONISH,
    "packets": JSONISH, "explanation": st.fixed_dictionaries({}, optional={"en": TEXT, "zh": TEXT}) | JSONISH,
})
GNODE = st.fixed_dictionaries({"id": TEXT}, optional={
    "label": TEXT, "kind": TEXT, "node": TEXT | st.none(), "observed": st.sampled_from([True, False, None]),
    "failed": st.booleans(), "hop": st.integers(-2, 5) | st.none() | JSONISH})
GEDGE = st.fixed_dictionaries({"src": TEXT, "dst": TEXT}, optional={
    "label": TEXT, "kind": st.sampled_from(["plain", "nat", "encap", "decap", "drop"]) | TEXT})
EVENT = st.fixed_dictionaries({"lane": TEXT}, optional={
    "ts": SCALAR, "rel": SCALAR, "file": TEXT, "packet": SCALAR, "dir": st.sampled_from(["fwd", "rev"]) | TEXT,
    "label": TEXT, "outer": TEXT | st.none()})
FLOW = st.fixed_dictionaries({}, optional={
    "id": TEXT | st.integers(), "status": STATUS, "client": JSONISH, "server": JSONISH, "kind": TEXT,
    "verdict": st.fixed_dictionaries({}, optional={"en": TEXT, "zh": TEXT}) | JSONISH,
    "hops": st.lists(HOP, max_size=4) | JSONISH, "findings": st.lists(JSONISH, max_size=2),
    "translations": st.lists(JSONISH, max_size=2), "encapsulation": st.lists(JSONISH, max_size=2),
    "graph": st.fixed_dictionaries({"nodes": st.lists(GNODE, max_size=5), "edges": st.lists(GEDGE, max_size=5)})
    | JSONISH,
    "ladder": st.fixed_dictionaries({"lanes": st.lists(st.fixed_dictionaries({"id": TEXT}, optional={
        "label": TEXT, "node": TEXT}), max_size=3), "events": st.lists(EVENT, max_size=5)}) | JSONISH,
    "packets": SCALAR, "bytes": SCALAR, "first_seen": SCALAR, "last_seen": SCALAR,
})
DOC = st.fixed_dictionaries({}, optional={
    "schema": TEXT, "generated_at": TEXT, "tool": JSONISH, "inputs": st.lists(JSONISH, max_size=2),
    "nodes": st.lists(JSONISH, max_size=2), "captures": st.lists(JSONISH, max_size=2),
    "clock_offsets": st.lists(JSONISH, max_size=2), "summary": JSONISH, "flows": st.lists(FLOW, max_size=3),
    "findings": st.lists(JSONISH, max_size=2), "not_checkable": st.lists(JSONISH, max_size=2),
    "warnings": st.lists(SCALAR, max_size=2),
})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOC, lang=st.sampled_from(["en", "zh"]))
def test_renderers_are_total_and_escape_everything(doc: dict, lang: str) -> None:
    html = render_html(doc, lang=lang)
    assert html.count("<script") == 1  # ours; every "<script>" from the document is escaped
    assert "</svg>" not in html.replace("</svg></div>", "")  # only our own SVGs end here
    assert "\x1b" not in html
    text = render_text(doc, lang=lang, color=False)
    assert "\x1b" not in text
    out = json.loads(render_json(doc))
    assert isinstance(out, dict)
