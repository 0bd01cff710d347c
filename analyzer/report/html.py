"""The self-contained HTML report: one file, readable offline, in English or Chinese.

Inline CSS, inline SVG (``svg.py``) and a few lines of inline JS for the flow filter and the copy
buttons; a strict Content-Security-Policy forbids every fetch. The page is built by jinja2 with
autoescape and StrictUndefined from a view model prepared here, so the template never guesses at
missing document keys and every string from a capture or a dump is escaped. No data is embedded
in scripts: the filter reads ``data-*`` attributes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from analyzer.report import fmt, i18n, svg
from analyzer.report.fmt import clean, dct, lst

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

#: flows that get a full section (path, ladder, hops); the table lists every flow
DETAIL_LIMIT = 300
#: failing flows listed at the top of the page, each with its verdict
PROBLEMS_LIMIT = 25

_BADGE = {
    "delivered": "ok",
    "refused": "warn",
    "rejected": "bad",
    "dropped": "bad",
    "no-reply": "grey",
    "incomplete": "grey",
}


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("analyzer", "report/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["path_breaks"] = path_breaks
    return env


def path_breaks(path: Any) -> Markup:
    """A file path, escaped, with a line-break opportunity (``<wbr>``) after every ``/``: a narrow
    table column breaks it between directories rather than inside a name."""
    return Markup("/<wbr>").join(str(path).split("/"))


def _hop_view(lang: str, index: int, hop: dict[str, Any]) -> dict[str, Any]:
    obs = hop.get("observed")
    return {
        "n": index,
        "node": clean(hop.get("node")) or fmt.place(lang, hop),
        "interface": clean(hop.get("interface")),
        "kind": clean(hop.get("kind")),
        "action": clean(hop.get("action")),
        "state": "obs" if obs is True else "abs" if obs is False else "inf",
        "state_text": i18n.text(lang, "obs_short" if obs is True else "abs_short" if obs is False else "inf_short"),
        "failed": bool(hop.get("failed")),
        "packets": [{"file": f, "numbers": fmt.number_list(nums, 10)} for f, nums in fmt.packets_by_file(hop)],
        "lines": fmt.line_evidence(hop.get("evidence")),
        "notes": [e for e in fmt.packet_evidence(hop.get("evidence")) if e["text"]],
        "explanation": clean(i18n.pick(lang, hop.get("explanation"))),
    }


def _hop_views(lang: str, hops: Any) -> list[dict[str, Any]]:
    views = [_hop_view(lang, i, dct(h)) for i, h in enumerate(lst(hops), 1)]
    for prev, cur in zip([None, *views], views, strict=False):
        cur["new_node"] = prev is not None and prev["node"] != cur["node"]  # a rule above the row
    return views


def _finding_view(lang: str, f: dict[str, Any]) -> dict[str, Any]:
    sev = clean(f.get("severity") or "info")
    fix = i18n.finding_text(lang, f, "fix")
    return {
        "code": clean(f.get("code")),
        "severity": sev if sev in ("error", "warning", "info") else "info",
        "severity_text": i18n.severity_word(lang, sev),
        "node": clean(f.get("node")),
        "message": clean(i18n.finding_text(lang, f, "message")),
        "fix": "\n".join(clean(x).rstrip() for x in str(fix).replace("\r\n", "\n").split("\n")).strip("\n"),
        "evidence": fmt.evidence(f.get("evidence")),
        "suspicion": f.get("checkable") is False,
    }


def _detailed(flows: list[dict[str, Any]]) -> set[int]:
    """Indexes (1-based) of the flows that get a section: failing ones first, then delivered ones,
    at most DETAIL_LIMIT in all, so a capture with thousands of flows still gives a usable file."""
    order = sorted(range(1, len(flows) + 1), key=lambda i: not fmt.is_failing(flows[i - 1]))  # stable
    return set(order[:DETAIL_LIMIT])


def _flow_view(lang: str, index: int, flow: dict[str, Any], detailed: bool = True) -> dict[str, Any]:
    status = clean(flow.get("status") or "incomplete")
    client, server = dct(flow.get("client")), dct(flow.get("server"))
    findings = [_finding_view(lang, dct(f)) for f in lst(flow.get("findings"))]
    hops = _hop_views(lang, flow.get("hops")) if detailed else []
    reply = _hop_views(lang, flow.get("reply")) if detailed else []
    translations = [
        {"text": fmt.translation(t), "rule": fmt.rule(dct(t).get("rule")), "observed": dct(t).get("observed")}
        for t in lst(flow.get("translations"))
    ]
    encaps = [{"text": fmt.encapsulation(e), "observed": dct(e).get("observed")} for e in lst(flow.get("encapsulation"))]
    uid = f"f{index}"
    search = " ".join(
        x
        for x in (
            clean(flow.get("id")),
            fmt.endpoint(client),
            fmt.endpoint(server),
            clean(client.get("name")),
            clean(server.get("name")),
            clean(client.get("node")),
            clean(server.get("node")),
            clean(flow.get("kind")),
            i18n.kind_word(lang, flow.get("kind")),
            clean(flow.get("proto")),
            status,
            i18n.status_word(lang, status),
            " ".join(f["code"] for f in findings),
            " ".join(t["text"] for t in translations),
            " ".join(e["text"] for e in encaps),
        )
        if x
    ).lower()
    dur = fmt.duration(flow)
    return {
        "uid": uid,
        "anchor": f"flow-{index}",
        "id": clean(flow.get("id")),
        "proto": clean(flow.get("proto") or "?"),
        "kind": clean(flow.get("kind")),
        "kind_text": i18n.kind_word(lang, flow.get("kind")),
        "status": status,
        "status_text": i18n.status_word(lang, status),
        "badge": _BADGE.get(status, "grey"),
        "client": fmt.endpoint(client),
        "client_name": fmt.endpoint_name(client),
        "server": fmt.endpoint(server),
        "server_name": fmt.endpoint_name(server),
        "verdict": clean(i18n.pick(lang, flow.get("verdict"))),
        "translations": translations,
        "encapsulation": encaps,
        "codes": [{"code": f["code"], "severity": f["severity"]} for f in findings if f["code"]],
        "packets": flow.get("packets") if isinstance(flow.get("packets"), int) else "",
        "bytes": fmt.human_bytes(flow.get("bytes")),
        "first_seen": fmt.timestamp(flow.get("first_seen")),
        "duration": fmt.seconds(dur) if dur is not None else "",
        "detailed": detailed,
        "path_svg": svg.render_path(flow, uid=uid, lang=lang) if detailed else "",
        "ladder_svg": svg.render_ladder(flow, uid=uid, lang=lang) if detailed else "",
        "hops": hops,
        "reply": reply,
        "findings": findings,
        "search": search,
        "failing": fmt.is_failing(flow),
    }


def _header_view(lang: str, doc: dict[str, Any]) -> dict[str, Any]:
    summary = dct(doc.get("summary"))
    flows = [dct(f) for f in lst(doc.get("flows"))]
    by_status = dct(summary.get("by_status"))
    if not by_status:
        for f in flows:
            s = f.get("status") or "incomplete"
            by_status[s] = by_status.get(s, 0) + 1
    tool = dct(doc.get("tool"))
    fsum = dct(summary.get("findings"))
    return {
        "generated_at": clean(doc.get("generated_at")),
        "tool": " ".join(x for x in (clean(tool.get("name") or "k8s-trace"), clean(tool.get("version"))) if x),
        "schema": clean(doc.get("schema")),
        "flow_count": summary.get("flows", len(flows)),
        "by_status": [
            {"status": s, "text": i18n.status_word(lang, s), "count": by_status[s], "badge": _BADGE[s]}
            for s in i18n.STATUSES
            if by_status.get(s)
        ],
        "finding_counts": [
            {"severity": s, "text": i18n.severity_count(lang, s, fsum[s])}
            for s in ("error", "warning", "info")
            if isinstance(fsum.get(s), int) and fsum[s]
        ],
        "inputs": [
            {
                "path": clean(dct(x).get("path")),
                "type": clean(dct(x).get("type")),
                "node": clean(dct(x).get("node")),
                "interface": clean(dct(x).get("interface")),
            }
            for x in lst(doc.get("inputs"))
        ],
        "nodes": [
            {
                "name": clean(dct(n).get("name")),
                "addresses": ", ".join(clean(a) for a in lst(dct(n).get("addresses"))),
                "pod_cidr": clean(dct(n).get("pod_cidr")),
                "backend": clean(dct(n).get("backend")),
            }
            for n in lst(doc.get("nodes"))
        ],
        "captures": [
            {
                "path": clean(dct(c).get("path")),
                "node": clean(dct(c).get("node")),
                "interface": clean(dct(c).get("interface")),
                "frames": clean(dct(c).get("frames")),
                "first": fmt.timestamp(dct(c).get("first_ts")),
                "last": fmt.timestamp(dct(c).get("last_ts")),
                "span": fmt.time_span(dct(c).get("first_ts"), dct(c).get("last_ts")),
                "link": clean(dct(c).get("link")),
            }
            for c in lst(doc.get("captures"))
        ],
        "clock_offsets": [
            {
                "node": clean(dct(o).get("node")),
                "offset": fmt.seconds(dct(o).get("offset"), signed=True),
                "basis": clean(dct(o).get("basis")),
            }
            for o in lst(doc.get("clock_offsets"))
        ],
    }


def render_html(doc: dict, *, lang: str = "en") -> str:
    """The explain document as one self-contained HTML page (``lang`` "en" or "zh")."""
    lang = i18n.check_lang(lang)
    env = _environment()
    template = env.get_template("report.html")
    all_flows = [dct(f) for f in lst(doc.get("flows"))]
    chosen = _detailed(all_flows)
    flows = [_flow_view(lang, i, f, i in chosen) for i, f in enumerate(all_flows, 1)]
    statuses_present = sorted({f["status"] for f in flows}, key=lambda s: (
        i18n.STATUSES.index(s) if s in i18n.STATUSES else len(i18n.STATUSES), s))
    return template.render(
        omitted=len(flows) - len(chosen),
        limit=DETAIL_LIMIT,
        lang=lang,
        html_lang="zh-CN" if lang == "zh" else "en",
        t=lambda key, **kw: i18n.text(lang, key, **kw),
        csp=CSP,
        head=_header_view(lang, doc),
        flows=flows,
        problems=[f for f in flows if f["failing"]][:PROBLEMS_LIMIT],
        problems_more=max(0, sum(1 for f in flows if f["failing"]) - PROBLEMS_LIMIT),
        status_filters=[
            {"status": s, "text": i18n.status_word(lang, s), "badge": _BADGE.get(s, "grey")} for s in statuses_present
        ],
        findings=[_finding_view(lang, dct(f)) for f in lst(doc.get("findings"))],
        not_checkable=[
            {"code": clean(dct(n).get("code")), "reason": clean(dct(n).get("reason"))}
            for n in lst(doc.get("not_checkable"))
        ],
        warnings=[clean(w) for w in lst(doc.get("warnings"))],
        glossary=i18n.glossary(lang),
    )
