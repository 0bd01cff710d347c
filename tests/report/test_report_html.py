"""The HTML report: goldens, self-containment, escaping of untrusted strings, Chinese, structure."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import report_examples as ex

from analyzer.report.html import CSP, render_html


@pytest.mark.parametrize("name", ["delivered_vxlan", "overlay_blocked", "capture_only", "service_dnat_masq"])
def test_html_matches_golden(golden, name: str) -> None:
    golden.check(f"{name}.html", render_html(ex.EXAMPLES[name]()))


def test_html_zh_matches_golden(golden) -> None:
    golden.check("overlay_blocked.zh.html", render_html(ex.overlay_blocked(), lang="zh"))


def test_html_is_deterministic() -> None:
    assert render_html(ex.all_examples()) == render_html(ex.all_examples())


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        (self.scripts if self._in_script else self.text).append(data)


def _scan(html: str) -> _Scan:
    s = _Scan()
    s.feed(html)
    s.close()
    return s


def test_self_contained_with_strict_csp() -> None:
    html = render_html(ex.all_examples())
    scan = _scan(html)
    metas = [a for t, a in scan.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert metas and metas[0]["content"] == CSP
    assert "default-src 'none'" in CSP and "img-src data:" in CSP
    for tag, attrs in scan.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
        if tag == "script":
            assert "src" not in attrs
        for key, value in attrs.items():
            if key in ("src", "href") and value:
                assert value.startswith("#"), (tag, key, value)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)
    assert "@import" not in html and "url(http" not in html
    assert len([t for t, _ in scan.tags if t == "script"]) == 1


def test_hostile_strings_are_escaped_everywhere() -> None:
    for lang in ("en", "zh"):
        html = render_html(ex.hostile(), lang=lang)
        assert "<script>alert" not in html
        assert "<img" not in html and "<b>markup" not in html
        assert "</pre><script>" not in html
        scan = _scan(html)
        [script] = scan.scripts
        assert "alert" not in script  # the only script is ours
        assert not any(t == "img" for t, _ in scan.tags)
        assert not any(k.startswith("on") for _, a in scan.tags for k in a)
        text = "".join(scan.text)
        assert "default/<script>alert(1)</script>" in text  # pod name, as text
        assert "--comment \"<script>alert(1)</script>\"" in text  # rule comment, as text
        assert "HTTP GET /<script>alert(1)</script>" in text  # payload summary (hop evidence)
        assert "echo '</pre><script>alert(3)</script>'" in text  # fix
        assert "\x1b" not in html


def test_hostile_strings_in_svg_are_text() -> None:
    html = render_html(ex.hostile())
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 2
    path, ladder = svgs
    assert "DNAT &lt;script&gt;alert(1)&lt;/script&gt;" in path  # edge label title
    assert "HTTP GET /&lt;script&gt;alert(1)&lt;/script&gt;" in ladder  # ladder event title
    assert "veth&#34;&gt;&lt;img" in path or "veth&quot;&gt;&lt;img" in path


def test_structure_of_a_dropped_flow() -> None:
    html = render_html(ex.overlay_blocked())
    scan = _scan(html)
    rows = [a for t, a in scan.tags if t == "tr" and "flow-row" in (a.get("class") or "")]
    assert [r["data-status"] for r in rows] == ["dropped"]
    failed = [a for t, a in scan.tags if t == "g" and "failed" in (a.get("class") or "").split()]
    assert len(failed) == 1 and failed[0]["data-hop"] == "9"  # hop 10, n2's INPUT chain
    assert 'class="hop-row s-inf failed"' in html
    absent = [a for t, a in scan.tags if t == "g" and "abs" in (a.get("class") or "").split()]
    assert len(absent) == 2  # n2 flannel.1 and the server veth: captured there, not seen
    assert html.count('class="cross"') == 2
    inferred = [a for t, a in scan.tags if t == "g" and "inf" in (a.get("class") or "").split()]
    assert len(inferred) == 10
    assert "firewall-cmd --permanent --add-port=8472/udp" in html
    assert 'class="edge e-encap"' in html and 'class="edge e-drop"' in html
    assert "n2/iptables-save:7" in html.replace("<wbr>", "")  # evidence paths may break after a /
    assert html.count('<g class="lane empty">') == 1  # the server's veth: captured, nothing of this flow
    assert html.count('<g class="lane">') == 3
    # each box links to its row in the hop table
    assert '<a href="#f1-hop-10"><g class="box inf failed k-netfilter" data-hop="9">' in html
    assert '<tr id="f1-hop-10" class="hop-row s-inf failed">' in html
    assert html.count(' new-node">') == 2  # n1 -> underlay -> n2
    assert "n2/eth0.pcap</span> #40, #41, #42, #43" in html.replace("<wbr>", "")


def test_nat_edges_and_translations_are_drawn() -> None:
    html = render_html(ex.service_dnat_masq())
    assert html.count('class="edge e-nat"') == 3  # DNAT + MASQUERADE on f2, MASQUERADE on f3
    assert "DNAT 10.96.0.10:80 -&gt; 10.244.2.7:80" in html
    assert "n1/iptables-save:95 nat/KUBE-SEP-3WUTGBSLBPYCPN6F" in html
    reply = html.split("<h3>Reply direction</h3>", 1)[1].split("</table>", 1)[0].replace("<wbr>", "")
    assert 'id="f1r-hop-3"' in reply and "UN-NAT" in reply and "n1/conntrack:3" in reply


def test_zh_report_has_chinese_ui_and_data() -> None:
    html = render_html(ex.overlay_blocked(), lang="zh")
    assert '<html lang="zh-CN">' in html
    for ui in ("k8s-trace 报告", "逐跳详情", "诊断结果", "术语表", "被丢弃", "筛选"):
        assert ui in html, ui
    assert "在 n2 上被丢弃" in html  # verdict
    assert "flannel.1 去掉外层报头" in html  # hop explanation
    assert "n2 的 INPUT 链丢弃" in html  # message_zh
    assert "# 在 n2 上：放行来自另一节点的 flannel VXLAN" in html  # fix_zh
    assert "Dropped on n2" not in html


def test_glossary_in_both_languages() -> None:
    for lang, probe in (("en", "VXLAN Tunnel End Point"), ("zh", "VXLAN 隧道端点")):
        html = render_html(ex.delivered_vxlan(), lang=lang)
        for term in ("veth", "cni0", "flannel.1", "VTEP", "VXLAN", "DNAT", "MASQUERADE", "conntrack", "KUBE-SVC / KUBE-SEP"):
            assert f'<dt class="mono">{term}</dt>' in html, term
        assert probe in html


def test_partial_documents_render() -> None:
    assert "No flows." in render_html({})
    html = render_html({"flows": [{"id": 3, "status": "weird", "graph": {"nodes": [{}], "edges": [{}]},
                                   "ladder": {"lanes": [{}], "events": [{}, {"lane": None}]},
                                   "hops": [{"observed": "x"}], "findings": [{"severity": "fatal"}]}]})
    assert "weird" in html


def test_large_documents_draw_sections_for_failing_flows_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import analyzer.report.html as html_mod

    monkeypatch.setattr(html_mod, "DETAIL_LIMIT", 4)
    doc = ex.all_examples()  # f4 dropped, f5 rejected, f7 no-reply; f1, f2, f3, f6 delivered
    html = render_html(doc)
    sections = re.findall(r'<section class="flow[^"]*" id="flow-(\d+)"', html)
    assert sections == ["1", "4", "5", "7"]  # the three failing ones, then the first delivered one
    assert html.count('class="flow-row"') == 7  # the table keeps every flow
    assert "3 more flows are listed in the table only" in html
    assert '<a href="#flow-2">' not in html and "<span>f2</span>" in html


def test_path_draws_only_the_edges_of_the_graph() -> None:
    from analyzer.report.svg import render_path

    def node(i: str, **kw) -> dict:
        return {"id": i, "label": i, "kind": "netfilter", "node": "n1", "interface": None, "observed": None,
                "failed": False, "hop": None, **kw}

    flow = {"graph": {"nodes": [node("a"), node("b"), node("c"), node("d")],
                      "edges": [{"src": "a", "dst": "b", "label": "", "kind": "plain"},
                                {"src": "b", "dst": "d", "label": "REJECT <x>", "kind": "drop"}]}}
    svg = str(render_path(flow, uid="t"))
    assert svg.count('<g class="edge e-plain">') == 1  # a -> b; no b -> c, no c -> d
    assert svg.count('<g class="edge skip e-drop"><title>REJECT &lt;x&gt;</title>') == 1
    flow["graph"]["edges"] = []  # no edges at all: the node order is the path
    assert str(render_path(flow, uid="t")).count('<g class="edge e-plain">') == 3


def test_zh_falls_back_to_english_per_item() -> None:
    doc = ex.overlay_blocked()
    flow = doc["flows"][0]
    del flow["verdict"]["zh"]
    del flow["hops"][9]["explanation"]["zh"]
    del flow["findings"][0]["fix_zh"]
    html = render_html(doc, lang="zh")
    assert "Dropped on n2: the VXLAN packets reached" in html  # verdict, English
    assert "UDP 8472 is addressed to the node itself" in html  # that hop's explanation, English
    assert "flannel.1 去掉外层报头" in html  # the other hops stay Chinese
    assert "# on n2: allow flannel VXLAN from the other node" in html  # fix, English
    assert "n2 的 INPUT 链丢弃" in html  # message_zh still used


def test_path_rows_group_node_less_hops() -> None:
    from analyzer.report.svg import render_path

    kinds = ["external", "nic", "netfilter", "route", "nic", "underlay", "service"]
    nodes = [{"id": str(i), "label": k, "kind": k, "node": None, "observed": None, "failed": False, "hop": i}
             for i, k in enumerate(kinds)]
    svg = str(render_path({"graph": {"nodes": nodes, "edges": []}}, uid="t"))
    labels = re.findall(r'<text class="band-label"[^>]*><title>([^<]*)</title>', svg)
    assert labels == ["external", "node ?", "underlay", "service"]


def test_problems_box_lists_failing_flows_with_their_verdicts() -> None:
    html = render_html(ex.all_examples())
    box = html.split('<section class="problems" id="problems">', 1)[1].split("</section>", 1)[0]
    assert re.findall(r'<a class="mono" href="#flow-(\d+)">', box) == ["4", "5", "7"]
    assert "Rejected on n1: service default/api:http has no ready endpoints" in box
    assert '<span class="code sev-warning">RETRANSMISSIONS</span>' in box  # each code in its own severity
    assert '<span class="code sev-error">OVERLAY_PORT_BLOCKED</span>' in box
    assert 'id="problems"' not in render_html(ex.delivered_vxlan())


def test_fix_and_huge_strings_are_cleaned() -> None:
    doc = ex.overlay_blocked()
    doc["flows"][0]["findings"][0]["fix"] = "iptables \x1b[2J -I INPUT\nsecond line"
    doc["flows"][0]["findings"][0]["message"] = "x" * 50_000
    html = render_html(doc)
    assert "\x1b" not in html and "iptables \\x1b[2J -I INPUT\nsecond line" in html
    assert "x" * 2000 + "… (+48000 characters)" in html and "x" * 2001 not in html
