"""The HTML report in headless Chromium: loads offline and clean, draws, filters, keeps data as text."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cdp
import pytest
import report_examples as ex

from analyzer.report.html import render_html


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with cdp.Browser(chromium, profile, width=1400, height=1000) as b:
        yield b


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(ex.all_examples()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def page(browser: cdp.Browser, report_file: Path) -> cdp.Page:
    return browser.open(report_file.as_uri())


def _assert_clean(page: cdp.Page, url: str) -> None:
    assert page.exceptions() == []
    assert page.console_errors() == []
    assert page.requests() == [url]  # the file itself, nothing else
    assert page.dialogs() == []


def test_loads_offline_without_errors_or_requests(page: cdp.Page, report_file: Path) -> None:
    _assert_clean(page, report_file.as_uri())
    assert page.evaluate("document.title").startswith("k8s-trace report")
    assert page.evaluate("document.querySelectorAll('tr.flow-row').length") == 7
    # CSS applied (inline stylesheet allowed by the CSP): the badge of a delivered flow is green
    colour = page.evaluate("getComputedStyle(document.querySelector('.badge.b-ok')).color")
    assert colour == "rgb(26, 127, 55)"


def test_path_svg_is_visible(page: cdp.Page, out_dir: Path) -> None:
    rect = page.rect("#flow-4 svg.path")
    assert rect["width"] > 600 and rect["height"] > 200
    png = page.screenshot(clip=rect)
    (out_dir / "report-dropped-path.png").write_bytes(png)
    img = cdp.decode_png(png)
    assert (img.width, img.height) == (round(rect["width"]), round(rect["height"]))
    non_white = img.count(lambda px: min(px[:3]) < 235)
    assert non_white > 0.05 * img.width * img.height
    # the failing hop (n2's INPUT chain) is highlighted in red where the browser put it
    box = page.evaluate(
        "(() => { const r = document.querySelector('#flow-4 svg.path g.box.failed rect').getBoundingClientRect();"
        " const s = document.querySelector('#flow-4 svg.path').getBoundingClientRect();"
        " return {x: r.left - s.left, y: r.top - s.top, w: r.width, h: r.height}; })()"
    )
    assert box["w"] > 50 and box["h"] > 20
    red = 0
    for y in range(int(box["y"]), int(box["y"] + box["h"])):
        for x in range(int(box["x"]), int(box["x"] + box["w"])):
            r, g, b = img.pixel(x, y)[:3]
            red += r > 150 and g < 90 and b < 90
    assert red > 50, "the failed hop's red outline is not in the screenshot"


def test_path_box_links_to_its_hop_row(page: cdp.Page) -> None:
    page.evaluate("document.querySelector('#flow-4 svg.path g.box.failed').dispatchEvent("
                  "new MouseEvent('click', {bubbles: true}))")
    assert page.evaluate("location.hash") == "#f4-hop-10"
    assert page.evaluate("document.querySelector(':target').id") == "f4-hop-10"
    assert page.evaluate("getComputedStyle(document.querySelector(':target td')).backgroundColor") == "rgb(255, 216, 210)"


def test_ladder_svg_is_visible(page: cdp.Page) -> None:
    rect = page.rect("#flow-1 svg.ladder")
    assert rect["width"] > 400 and rect["height"] > 300
    img = cdp.decode_png(page.screenshot(clip=rect))
    assert img.count(lambda px: min(px[:3]) < 200) > 1000
    assert page.evaluate("document.querySelectorAll('#flow-1 svg.ladder g.ev').length") == 32


def test_full_page_screenshot_for_review(page: cdp.Page, out_dir: Path) -> None:
    png = page.screenshot(clip={"x": 0, "y": 0, "width": 1400, "height": 1000})
    (out_dir / "report-top.png").write_bytes(png)
    img = cdp.decode_png(png)
    assert img.count(lambda px: min(px[:3]) < 128) > 10000  # text and drawings, not a blank page


def _visible_rows(page: cdp.Page) -> list[str]:
    return page.evaluate(
        "[...document.querySelectorAll('tr.flow-row')].filter(r => !r.hidden && r.offsetParent !== null)"
        ".map(r => r.cells[1].textContent)"
    )


def _type(page: cdp.Page, text: str) -> None:
    script = (
        "(() => { const b = document.getElementById('filter-text'); b.value = TEXT;"
        " b.dispatchEvent(new Event('input', {bubbles: true})); })()"
    )
    page.evaluate(script.replace("TEXT", json.dumps(text)))


def test_filter_text_and_status(page: cdp.Page) -> None:
    assert page.evaluate("document.getElementById('filter').hidden") is False
    assert _visible_rows(page) == [f"f{i}" for i in range(1, 8)]
    _type(page, "overlay_port")
    assert _visible_rows(page) == ["f4", "f7"]
    assert page.evaluate("document.getElementById('filter-count').textContent") == "2 / 7"
    assert page.evaluate("document.getElementById('flow-1').hidden") is True
    assert page.evaluate("document.getElementById('flow-4').hidden") is False
    _type(page, "10.96. DEFAULT/")  # every word must match, case-insensitively
    assert _visible_rows(page) == ["f2", "f5", "f6"]
    _type(page, "")
    page.evaluate(
        "(() => { const c = document.querySelector('input[data-status=delivered]'); c.checked = false;"
        " c.dispatchEvent(new Event('change', {bubbles: true})); })()"
    )
    assert _visible_rows(page) == ["f4", "f5", "f7"]
    page.evaluate("document.querySelector('input[data-status=delivered]').click()")
    assert _visible_rows(page) == [f"f{i}" for i in range(1, 8)]
    # "/" focuses the filter from anywhere, Escape clears it
    page.evaluate("document.body.dispatchEvent(new KeyboardEvent('keydown', {key: '/', bubbles: true}))")
    assert page.evaluate("document.activeElement.id") == "filter-text"
    _type(page, "refused-nothing-matches")
    assert _visible_rows(page) == []
    page.evaluate("document.getElementById('filter-text').dispatchEvent("
                  "new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}))")
    assert len(_visible_rows(page)) == 7


def test_copy_button_copies_or_selects_the_fix(page: cdp.Page) -> None:
    _type(page, "")  # whatever an earlier test left in the filter
    fix = page.evaluate("document.querySelector('#flow-4 .fix pre code').textContent")
    assert fix.startswith("# on n2: allow flannel VXLAN")
    page.evaluate("document.querySelector('#flow-4 .fix button.copy').click()")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = page.evaluate(
            "[document.querySelector('#flow-4 .fix button.copy').textContent, window.getSelection().toString()]"
        )
        if state[0] == "copied" or state[1] == fix:
            break
        time.sleep(0.05)
    assert state[0] == "copied" or state[1] == fix, state


def test_without_javascript_all_rows_show(browser: cdp.Browser, report_file: Path) -> None:
    page = browser.open(report_file.as_uri(), javascript=False)
    _assert_clean(page, report_file.as_uri())
    assert page.evaluate("document.querySelector('form#filter').offsetParent") is None  # hidden
    assert len(_visible_rows(page)) == 7


def test_hostile_strings_stay_text(browser: cdp.Browser, tmp_path: Path) -> None:
    path = tmp_path / "hostile.html"
    path.write_text(render_html(ex.hostile()), encoding="utf-8")
    page = browser.open(path.as_uri())
    _assert_clean(page, path.as_uri())  # no alert dialog, no request for "x" (the <img src=x>)
    body = page.evaluate("document.body.innerText")
    assert '--comment "<script>alert(1)</script>"' in body  # rule comment
    assert "HTTP GET /<script>alert(1)</script>" in body  # HTTP payload summary
    assert "default/<script>alert(1)</script>" in body  # pod name
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("document.images.length") == 0
    titles = page.evaluate("[...document.querySelectorAll('svg title')].map(t => t.textContent).join('\\n')")
    assert "DNAT <script>alert(1)</script>" in titles  # SVG text stays text too


def test_chinese_report_loads(browser: cdp.Browser, tmp_path: Path) -> None:
    path = tmp_path / "zh.html"
    path.write_text(render_html(ex.all_examples(), lang="zh"), encoding="utf-8")
    page = browser.open(path.as_uri())
    _assert_clean(page, path.as_uri())
    body = page.evaluate("document.body.innerText")
    assert "逐跳详情" in body and "术语表" in body and "在 n2 上被丢弃" in body
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
