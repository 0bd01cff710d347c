"""--format json: the explain document as the contract's JSON, stable, UTF-8, always valid."""

from __future__ import annotations

import json
import math

import pytest
import report_examples as ex

from analyzer.report.json_report import FLOW_ORDER, TOP_ORDER, render_json


@pytest.mark.parametrize("name", sorted(ex.EXAMPLES))
def test_round_trips_to_the_same_document(name: str) -> None:
    doc = ex.EXAMPLES[name]()
    text = render_json(doc)
    assert text.endswith("}\n")
    assert json.loads(text) == doc


def test_contract_keys_first_in_a_fixed_order() -> None:
    doc = ex.overlay_blocked()
    shuffled = dict(reversed(list(doc.items())))
    shuffled["flows"] = [dict(reversed(list(f.items()))) for f in doc["flows"]]
    shuffled["zz_extra"] = 1
    shuffled["aa_extra"] = 2
    out = json.loads(render_json(shuffled))
    keys = list(out)
    assert keys[0] == "schema"
    assert keys == [k for k in TOP_ORDER if k in doc] + ["aa_extra", "zz_extra"]
    flow_keys = list(out["flows"][0])
    assert flow_keys == [k for k in FLOW_ORDER if k in doc["flows"][0]]
    assert render_json(shuffled) == render_json(json.loads(render_json(shuffled)))


def test_indent_two_and_utf8_kept() -> None:
    text = render_json(ex.overlay_blocked())
    assert '\n  "schema": "k8s-trace.explain/1",\n' in text
    assert "在 n2 上被丢弃" in text and "\\u" not in text


def test_non_finite_numbers_become_null() -> None:
    doc = ex.delivered_vxlan()
    doc["clock_offsets"][1]["offset"] = math.nan
    doc["flows"][0]["last_seen"] = math.inf
    out = json.loads(render_json(doc))
    assert out["clock_offsets"][1]["offset"] is None
    assert out["flows"][0]["last_seen"] is None


def test_hostile_strings_survive_verbatim() -> None:
    doc = ex.hostile()
    out = json.loads(render_json(doc))
    assert out["flows"][0]["client"]["name"] == "default/<script>alert(1)</script>"
    assert out["flows"][0]["verdict"]["en"] == doc["flows"][0]["verdict"]["en"]  # ESC kept, JSON-escaped
    assert "\x1b" not in render_json(doc)


def test_small_scalar_objects_stay_on_one_line() -> None:
    text = render_json(ex.delivered_vxlan())
    assert ('\n          {"lane": "n1/veth3a1f9c2e", "ts": 1763755200.0, "rel": 0.0, '
            '"file": "n1/veth3a1f9c2e.pcap", "packet": 1, "dir": "fwd", "label": "SYN", "outer": null}') in text
    assert '"addresses": ["192.168.56.11"],' in text
    assert '"translations": [],' in text
    long_verdict = '      "verdict": {\n        "en": "Delivered: 10.244.1.5 on n1'
    assert long_verdict in text  # over the width: indented as usual
