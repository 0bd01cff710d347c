"""The HTML report fits a 1300 px wide window: no horizontal scrolling of the page, of a drawing
or of a table (long capture paths wrap, the path and ladder SVGs scale down by their viewBox)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cdp
import pytest
import report_examples as ex

from analyzer.pipeline.explain import explain_inputs
from analyzer.report.html import path_breaks, render_html

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
WIDTH = 1300

MEASURE = """(() => {
  const px = x => Math.round(x * 10) / 10;
  return {
    inner: window.innerWidth,
    page: document.documentElement.scrollWidth,
    wraps: [...document.querySelectorAll('.svgwrap')].map(w => {
      const svg = w.querySelector('svg'), r = svg.getBoundingClientRect(), vb = svg.viewBox.baseVal;
      return {cls: svg.getAttribute('class'), scroll: w.scrollWidth, client: w.clientWidth, w: px(r.width),
              h: px(r.height), vbw: vb.width, vbh: vb.height};
    }),
    tables: [...document.querySelectorAll('table')].map(t => ({
      cls: t.className, w: px(t.getBoundingClientRect().width), room: t.parentElement.clientWidth})),
    pres: [...document.querySelectorAll('pre')].map(p => [p.scrollWidth, p.clientWidth]),
  };
})()"""

LONG = "/home/oncall/support-cases/2026-11-21-INC-48213-payments-timeouts/collected-from-eu-west-1-production"


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory):
    with cdp.Browser(chromium, tmp_path_factory.mktemp("chromium-1300"), width=WIDTH, height=900) as b:
        yield b


def _replace(obj: Any, old: str, new: str) -> Any:
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, list):
        return [_replace(x, old, new) for x in obj]
    if isinstance(obj, dict):
        return {k: _replace(v, old, new) for k, v in obj.items()}
    return obj


def _doc(name: str) -> tuple[dict, str]:
    if name == "examples":
        return ex.all_examples(), "en"
    if name == "examples-zh":
        return ex.all_examples(), "zh"
    sample, _, variant = name.partition("+")
    doc = explain_inputs([SAMPLES / sample], generated_at="2026-11-21T23:00:00Z")
    doc = json.loads(json.dumps(doc))
    if variant == "long-paths":  # where a support engineer unpacks the bundles
        doc = _replace(doc, str(SAMPLES), LONG + "/samples")
    return doc, "en"


@pytest.mark.parametrize("name", ["cross-node", "service-remote", "mtu", "vxlan-blocked+long-paths", "examples",
                                  "examples-zh"])
def test_report_fits_1300px(browser: cdp.Browser, tmp_path: Path, out_dir: Path, name: str) -> None:
    _check_fits(browser, tmp_path, out_dir, name, WIDTH)


def test_report_fits_1024px(chromium: str, tmp_path: Path, out_dir: Path) -> None:
    """Below 1120 px the nodes and inputs tables stack instead of squeezing side by side."""
    with cdp.Browser(chromium, tmp_path / "profile", width=1024, height=800) as narrow:
        _check_fits(narrow, tmp_path, out_dir, "mtu", 1024)


def _check_fits(browser: cdp.Browser, tmp_path: Path, out_dir: Path, name: str, width: int) -> None:
    doc, lang = _doc(name)
    path = tmp_path / f"{name}.html"
    path.write_text(render_html(doc, lang=lang), encoding="utf-8")
    page = browser.open(path.as_uri())
    got = page.evaluate(MEASURE)
    (out_dir / f"b2-{name}-{width}.png").write_bytes(page.screenshot(clip={"x": 0, "y": 0, "width": width,
                                                                          "height": 800}))
    assert got["inner"] == width
    assert got["page"] <= got["inner"], f"the page scrolls sideways: {got['page']} px in a {width} px window"
    assert got["wraps"], "no drawing in the report"
    for wrap in got["wraps"]:
        assert wrap["scroll"] <= wrap["client"], f"the {wrap['cls']} SVG scrolls inside its box: {wrap}"
        assert wrap["w"] <= wrap["client"]
        assert wrap["h"] / wrap["w"] == pytest.approx(wrap["vbh"] / wrap["vbw"], rel=0.01)  # scaled, not squashed
        assert wrap["w"] >= min(wrap["vbw"], wrap["client"] - 10) - 1  # as wide as it may be: no needless shrink
    for table in got["tables"]:
        assert table["w"] <= table["room"] + 0.5, f"a table is wider than its column: {table}"
    for scroll, client in got["pres"]:
        assert scroll <= client, "a fix block scrolls sideways"
    if name.endswith("long-paths"):
        cells = page.evaluate("[...document.querySelectorAll('td.path')].map(td => td.textContent)")
        assert cells and all(c.startswith(LONG) for c in cells)  # wrapped on screen, whole as text


def test_path_breaks_escapes_and_marks_each_slash() -> None:
    assert str(path_breaks("a/b<c>/d.pcap")) == "a/<wbr>b&lt;c&gt;/<wbr>d.pcap"
    assert str(path_breaks("eth0.pcap")) == "eth0.pcap"
