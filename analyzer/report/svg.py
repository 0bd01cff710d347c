"""Inline SVG drawings for the HTML report: the hop path of a flow and its ladder diagram.

Both are built from plain explain-document dicts (``flow["graph"]``, ``flow["ladder"]``) and return
SVG markup as ``markupsafe.Markup``. Every string that came from a capture or a dump is escaped
(``_e``) before it goes into an element or an attribute, so markup in a pod name stays text.
Element ids are prefixed with a caller-given ``uid`` (a flow index), never with document data.
Output is deterministic: same document, same bytes.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from analyzer.report import fmt, i18n
from analyzer.report.fmt import dct, lst

# path layout (px)
BOX_W = 126
BOX_H = 46
GAP = 44
ROW_LABEL_W = 112
PAD = 10
MAX_PER_ROW = 7
CHAR_W = 6.7  # 11px monospace advance
SUB_CHAR_W = 5.75  # 9.5px monospace advance (the box's second line)
LABEL_LINE = 15
CHANNEL = 30

# ladder layout (px)
LADDER_GUTTER = 92
LADDER_TOP = 46
LADDER_ROW = 22
LADDER_MAX_EVENTS = 80
LADDER_WIDTH = 1000
LADDER_RIGHT = 300  # room right of the last lane for its labels

_EDGE_CLASS = {"plain": "e-plain", "nat": "e-nat", "encap": "e-encap", "decap": "e-encap", "drop": "e-drop"}


def _e(value: Any) -> str:
    return html.escape(fmt.clean(value), quote=True)


def _width(s: str, char_w: float = CHAR_W) -> float:
    """Approximate advance of ``s`` in a monospace font (CJK characters are two cells wide)."""
    return sum(char_w * (2 if ord(ch) > 0x2E80 else 1) for ch in s)


def _fit(s: str, px: float, char_w: float = CHAR_W) -> str:
    """``s`` shortened with an ellipsis to about ``px`` pixels (11px monospace by default)."""
    if _width(s, char_w) <= px:
        return s
    out = ""
    for ch in s:
        if _width(out + ch + "…", char_w) > px:
            break
        out += ch
    return out + "…"


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if not float(x).is_integer() else str(int(x))


@dataclass(frozen=True, slots=True)
class _Box:
    index: int  # position in graph["nodes"]
    row: int
    col: int
    x: float
    y: float
    data: dict[str, Any]


def _short_tag(label: str, kind: str) -> str:
    """The few letters drawn on an edge: DNAT, MASQ, VXLAN, DECAP, DROP..."""
    if kind == "drop":
        return "DROP"
    if kind == "decap":
        return "DECAP"
    words = label.split()
    head = (words[0] if words else kind).upper()
    if head.startswith("MASQ"):
        head = "MASQ"
    return head[:5]


_OUTSIDE = ("underlay", "service", "external")


def _band_name(lang: str, kind: str) -> str:
    """Row label of graph nodes that belong to no k8s node, from their kind."""
    if kind in _OUTSIDE:
        return i18n.text(lang, f"band_{kind}")
    return i18n.text(lang, "band_unknown")


def _group_rows(nodes: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """Consecutive graph nodes of the same k8s node form a row (split after MAX_PER_ROW).

    Graph nodes with no k8s node get a key starting with NUL (which no cleaned name contains):
    the underlay, a service and the outside world each form their own rows, and the other
    node-less ones (a capture without dumps: the node is unknown) share one."""
    rows: list[tuple[str, list[int]]] = []
    for i, n in enumerate(nodes):
        kind = fmt.clean(n.get("kind") or "")
        key = fmt.clean(n.get("node") or "") or "\0" + (kind if kind in _OUTSIDE else "")
        if rows and rows[-1][0] == key and len(rows[-1][1]) < MAX_PER_ROW:
            rows[-1][1].append(i)
        else:
            rows.append((key, [i]))
    return rows


def _box_classes(n: dict[str, Any]) -> str:
    cls = ["box"]
    obs = n.get("observed")
    cls.append("obs" if obs is True else "abs" if obs is False else "inf")
    if n.get("failed"):
        cls.append("failed")
    kind = fmt.clean(n.get("kind") or "")
    if kind.isidentifier():
        cls.append(f"k-{kind}")
    return " ".join(cls)


def render_path(flow: dict[str, Any], *, uid: str, lang: str = "en") -> Markup:
    """The flow's path graph laid out left to right, one row (or more) per node."""
    graph = dct(flow.get("graph"))
    nodes = [dct(n) for n in lst(graph.get("nodes"))]
    if not nodes:
        return Markup("")
    edges = [dct(e) for e in lst(graph.get("edges"))]
    by_id: dict[str, int] = {}
    for i, n in enumerate(nodes):
        by_id.setdefault(fmt.clean(n.get("id")), i)
    # edges in path order; an edge between consecutive boxes is drawn between them
    edge_at: dict[tuple[int, int], dict[str, Any]] = {}
    for e in edges:
        a, b = by_id.get(fmt.clean(e.get("src"))), by_id.get(fmt.clean(e.get("dst")))
        if a is not None and b is not None:
            edge_at.setdefault((a, b), e)
    rows = _group_rows(nodes)

    # vertical layout: each row needs room for its edge callouts below the boxes
    boxes: dict[int, _Box] = {}
    callouts: list[list[tuple[int, int]]] = []
    y = PAD + 16.0
    row_y: list[float] = []
    for r, (_, members) in enumerate(rows):
        row_y.append(y)
        labelled = [
            (members[c], members[c + 1])
            for c in range(len(members) - 1)
            if fmt.clean(edge_at.get((members[c], members[c + 1]), {}).get("label"))
        ]
        callouts.append(labelled)
        for c, i in enumerate(members):
            boxes[i] = _Box(i, r, c, ROW_LABEL_W + PAD + c * (BOX_W + GAP), y, nodes[i])
        y += BOX_H + 10 + len(labelled) * LABEL_LINE + CHANNEL
    height = y - CHANNEL + PAD + 6
    width = ROW_LABEL_W + 2 * PAD + MAX_PER_ROW * BOX_W + (MAX_PER_ROW - 1) * GAP + 24
    used_cols = max(len(m) for _, m in rows)
    width = min(width, ROW_LABEL_W + 2 * PAD + used_cols * BOX_W + max(0, used_cols - 1) * GAP + 24)

    out: list[str] = []
    out.append(
        f'<svg class="path" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'width="{_num(width)}" height="{_num(height)}" role="img" aria-labelledby="{uid}-t">'
    )
    out.append(f'<title id="{uid}-t">{_e(i18n.text(lang, "path_title"))}</title>')
    out.append(
        "<defs>"
        f'<marker id="{uid}-a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" class="arrowhead"/></marker>'
        f'<marker id="{uid}-an" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" class="arrowhead nat"/></marker>'
        f'<marker id="{uid}-ae" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" class="arrowhead encap"/></marker>'
        f'<marker id="{uid}-ad" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" class="arrowhead drop"/></marker>'
        f'<pattern id="{uid}-h" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"/>'
        '<line x1="0" y1="0" x2="0" y2="6" class="hatch"/></pattern>'
        "</defs>"
    )
    # node bands
    r = 0
    while r < len(rows):
        key = rows[r][0]
        r2 = r
        while r2 + 1 < len(rows) and rows[r2 + 1][0] == key:
            r2 += 1
        top = row_y[r] - 14
        bottom = row_y[r2] + BOX_H + 8 + len(callouts[r2]) * LABEL_LINE
        outside = key.startswith("\0")
        band_cls = "band underlay" if key == "\0underlay" else "band outside" if outside else "band"
        out.append(
            f'<rect class="{band_cls}" x="2" y="{_num(top)}" width="{_num(width - 4)}" '
            f'height="{_num(bottom - top)}" rx="6"/>'
        )
        name = _band_name(lang, key[1:]) if outside else key
        out.append(
            f'<text class="band-label" x="{PAD}" y="{_num(row_y[r] + BOX_H / 2 + 4)}">'
            f"<title>{_e(name)}</title>{_e(_fit(name, ROW_LABEL_W - 6))}</text>"
        )
        r = r2 + 1

    def marker_for(kind: str) -> str:
        return {"nat": "an", "encap": "ae", "decap": "ae", "drop": "ad"}.get(kind, "a")

    # edges that skip ahead or go back (branches, a REJECT answering the client): an arc above
    for (ia, ib), edge in sorted(edge_at.items()):
        if ib == ia + 1:
            continue
        a, b = boxes[ia], boxes[ib]
        kind = fmt.clean(edge.get("kind") or "plain")
        label = fmt.clean(edge.get("label"))
        title = f"<title>{_e(label)}</title>" if label else ""
        sx, ex = a.x + BOX_W / 2 + 8, b.x + BOX_W / 2 - 8
        if a.row == b.row:
            top = a.y - 9
            d = f"M{_num(sx)},{_num(a.y)} V{_num(top)} H{_num(ex)} V{_num(b.y - 1)}"
        else:
            mid = (a.y + BOX_H + b.y) / 2 if b.y > a.y else a.y - 9
            d = f"M{_num(sx)},{_num(a.y + BOX_H)} V{_num(mid)} H{_num(ex)} V{_num(b.y - 1 if b.y > a.y else b.y + BOX_H + 1)}"
        out.append(
            f'<g class="edge skip {_EDGE_CLASS.get(kind, "e-plain")}">{title}<path d="{d}" fill="none" '
            f'marker-end="url(#{uid}-{marker_for(kind)})"/></g>'
        )

    # edges between consecutive boxes of one row, and connectors between rows; without any edge
    # in the document the node order is the path, so consecutive boxes are joined
    for i in range(len(nodes) - 1):
        a, b = boxes[i], boxes[i + 1]
        if edges and (i, i + 1) not in edge_at:
            continue
        edge = edge_at.get((i, i + 1), {})
        kind = fmt.clean(edge.get("kind") or "plain")
        cls = _EDGE_CLASS.get(kind, "e-plain")
        label = fmt.clean(edge.get("label"))
        title = f"<title>{_e(label)}</title>" if label else ""
        if a.row == b.row:
            x1, x2, yy = a.x + BOX_W, b.x - 1, a.y + BOX_H / 2
            out.append(
                f'<g class="edge {cls}">{title}<line x1="{_num(x1)}" y1="{_num(yy)}" x2="{_num(x2)}" '
                f'y2="{_num(yy)}" marker-end="url(#{uid}-{marker_for(kind)})"/></g>'
            )
            if label:
                k = callouts[a.row].index((i, i + 1))
                mid = (x1 + x2) / 2
                ty = a.y + BOX_H + 10 + k * LABEL_LINE + 10
                text = _fit(label, width - ROW_LABEL_W - 2 * PAD)
                tw = _width(text)
                tx = min(mid - 6, width - PAD - tw)
                tx = max(tx, ROW_LABEL_W)
                tag = _short_tag(label, kind)
                tagw = _width(tag) * 0.9 + 8
                out.append(
                    f'<g class="callout {cls}">{title}'
                    f'<line class="leader" x1="{_num(mid)}" y1="{_num(yy + 8)}" x2="{_num(mid)}" y2="{_num(ty - 9)}"/>'
                    f'<rect class="tag" x="{_num(mid - tagw / 2)}" y="{_num(yy - 19)}" width="{_num(tagw)}" '
                    f'height="13" rx="3"/><text class="tag-text" x="{_num(mid)}" y="{_num(yy - 9)}" '
                    f'text-anchor="middle">{_e(tag)}</text>'
                    f'<text class="callout-text" x="{_num(tx)}" y="{_num(ty)}">{_e(text)}</text></g>'
                )
        else:
            # out of the right side of a, down into the channel, left, down into b's top
            sx, sy = a.x + BOX_W, a.y + BOX_H / 2
            ex, ey = b.x + BOX_W / 2, b.y - 1
            cy = b.y - 16
            rx = sx + min(GAP / 2, 14)
            d = f"M{_num(sx)},{_num(sy)} H{_num(rx)} V{_num(cy)} H{_num(ex)} V{_num(ey)}"
            out.append(
                f'<g class="edge {cls}">{title}<path d="{d}" fill="none" '
                f'marker-end="url(#{uid}-{marker_for(kind)})"/></g>'
            )
            if label:
                text = _fit(label, max(60.0, rx - ex - 24) if rx - ex > 200 else width - ex - PAD - 10)
                tw = _width(text)
                tx = ex + 10
                out.append(
                    f'<g class="callout {cls}">{title}<rect class="chan-bg" x="{_num(tx - 3)}" y="{_num(cy - 11)}" '
                    f'width="{_num(tw + 6)}" height="14" rx="3"/>'
                    f'<text class="callout-text" x="{_num(tx)}" y="{_num(cy)}">{_e(text)}</text></g>'
                )

    # boxes
    for i, n in enumerate(nodes):
        b = boxes[i]
        label = fmt.clean(n.get("label") or n.get("interface") or n.get("kind") or "?")
        kind = fmt.clean(n.get("kind") or "")
        obs = n.get("observed")
        state = i18n.text(lang, "obs_short" if obs is True else "abs_short" if obs is False else "inf_short")
        if n.get("failed"):
            state = i18n.text(lang, "failed_short")
        hop = n.get("hop")
        hop_txt = f"{i18n.text(lang, 'hop')} {hop + 1}" if isinstance(hop, int) and not isinstance(hop, bool) else ""
        tip = " · ".join(x for x in (label, kind, fmt.clean(n.get("node")), fmt.clean(n.get("interface")), state, hop_txt) if x)
        attrs = f'class="{_box_classes(n)}" data-hop="{_e(hop if hop_txt else "")}"'
        link = f'<a href="#{uid}-hop-{hop + 1}">' if hop_txt else ""
        out.append(f"{link}<g {attrs}><title>{_e(tip)}</title>")
        fill = f' style="fill:url(#{uid}-h)"' if obs is False else ""  # beats the stylesheet's fill
        out.append(
            f'<rect x="{_num(b.x)}" y="{_num(b.y)}" width="{BOX_W}" height="{BOX_H}" rx="5"{fill}/>'
        )
        if obs is False:
            out.append(
                f'<path class="cross" d="M{_num(b.x + 4)},{_num(b.y + 4)} L{_num(b.x + BOX_W - 4)},{_num(b.y + BOX_H - 4)} '
                f'M{_num(b.x + BOX_W - 4)},{_num(b.y + 4)} L{_num(b.x + 4)},{_num(b.y + BOX_H - 4)}"/>'
            )
        out.append(
            f'<text class="box-label" x="{_num(b.x + 8)}" y="{_num(b.y + 19)}">'
            f"{_e(_fit(label, BOX_W - (34 if n.get('failed') else 16)))}</text>"
        )
        sub = kind + (f" · {state}" if state else "")
        out.append(
            f'<text class="box-sub" x="{_num(b.x + 8)}" y="{_num(b.y + 36)}">{_e(_fit(sub, BOX_W - 10, SUB_CHAR_W))}</text>'
        )
        if n.get("failed"):
            cx, cy = b.x + BOX_W - 12, b.y + 12
            out.append(
                f'<circle class="fail-dot" cx="{_num(cx)}" cy="{_num(cy)}" r="8"/>'
                f'<text class="fail-x" x="{_num(cx)}" y="{_num(cy + 4)}" text-anchor="middle">✕</text>'
            )
        out.append("</g></a>" if link else "</g>")
    out.append("</svg>")
    return Markup("".join(out))


def _ladder_chains(events: list[dict[str, Any]], lane_index: dict[str, int]) -> list[int | None]:
    """For each event, the index of the earlier event it continues (same packet, previous point)."""
    prev: list[int | None] = []
    for i, ev in enumerate(events):
        lane = lane_index.get(fmt.clean(ev.get("lane")))
        found = None
        if lane is not None:
            step = -1 if ev.get("dir") == "rev" else 1
            for j in range(i - 1, max(-1, i - 12), -1):
                p = events[j]
                pl = lane_index.get(fmt.clean(p.get("lane")))
                if pl is None or p.get("dir") != ev.get("dir") or fmt.clean(p.get("label")) != fmt.clean(ev.get("label")):
                    continue
                if pl == lane:
                    break  # a repeat at the same point starts a new chain
                if (lane - pl) * step > 0 and abs(lane - pl) <= 2:
                    found = j
                    break
        prev.append(found)
    return prev


def _event_time(ev: dict[str, Any]) -> float:
    """Sort key of a ladder event: corrected timestamp, else relative time, else last (stable)."""
    for key in ("ts", "rel"):
        v = ev.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return math.inf


def render_ladder(flow: dict[str, Any], *, uid: str, lang: str = "en") -> Markup:
    """Capture points as vertical lanes, packets as arrows across them, time down the left."""
    ladder = dct(flow.get("ladder"))
    lanes = [dct(x) for x in lst(ladder.get("lanes"))]
    events_all = sorted((dct(x) for x in lst(ladder.get("events"))), key=_event_time)
    if not lanes or not events_all:
        return Markup("")
    events = events_all[:LADDER_MAX_EVENTS]
    lane_index = {fmt.clean(ln.get("id")): i for i, ln in enumerate(lanes)}
    n = len(lanes)
    span = LADDER_WIDTH - LADDER_GUTTER - 40
    step = min(210.0, span / max(1, n - 1)) if n > 1 else 0.0
    width = LADDER_GUTTER + 40 + step * (n - 1) + LADDER_RIGHT
    lane_x = [LADDER_GUTTER + 30 + step * i for i in range(n)]
    height = LADDER_TOP + LADDER_ROW * (len(events) + 1) + (18 if len(events_all) > len(events) else 0)
    out = [
        f'<svg class="ladder" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'width="{_num(width)}" height="{_num(height)}" role="img" aria-labelledby="{uid}-lt">',
        f'<title id="{uid}-lt">{_e(i18n.text(lang, "ladder_title"))}</title>',
        "<defs>"
        f'<marker id="{uid}-lf" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0L10,5L0,10z" class="lhead fwd"/></marker>'
        f'<marker id="{uid}-lr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0L10,5L0,10z" class="lhead rev"/></marker>'
        "</defs>",
        f'<text class="gutter-head" x="6" y="{LADDER_TOP - 8}">'
        f"<title>{_e(i18n.text(lang, 'rel_time'))}</title>{_e(i18n.text(lang, 'time'))}</text>",
    ]
    used = {lane_index.get(fmt.clean(ev.get("lane"))) for ev in events_all}
    for i, ln in enumerate(lanes):
        x = lane_x[i]
        top_label = fmt.clean(ln.get("node") or "")
        label = fmt.clean(ln.get("label") or ln.get("interface") or ln.get("id"))
        empty = i not in used
        room = step - 8 if n > 1 else 200
        out.append(
            f'<g class="lane{" empty" if empty else ""}"><title>{_e(label)}{(" @" + _e(top_label)) if top_label else ""}'
            f'{(" · " + _e(i18n.text(lang, "lane_empty"))) if empty else ""}</title>'
            f'<text class="lane-node" x="{_num(x)}" y="14" text-anchor="middle">{_e(_fit(top_label, room))}</text>'
            f'<text class="lane-label" x="{_num(x)}" y="29" text-anchor="middle">{_e(_fit(label, room))}</text>'
            f'<line x1="{_num(x)}" y1="{LADDER_TOP - 10}" x2="{_num(x)}" y2="{_num(height - 6)}"/>'
        )
        if empty:
            out.append(
                f'<text class="lane-empty" x="{_num(x)}" y="{LADDER_TOP + 4}" text-anchor="middle">'
                f"{_e(_fit(i18n.text(lang, 'lane_empty'), room))}</text>"
            )
        out.append("</g>")
    prev = _ladder_chains(events, lane_index)
    ys = [LADDER_TOP + LADDER_ROW * (k + 0.5) for k in range(len(events))]
    last_rel: Any = None
    for k, ev in enumerate(events):
        li = lane_index.get(fmt.clean(ev.get("lane")))
        y = ys[k]
        rel = ev.get("rel")
        rel_txt = fmt.seconds(rel, signed=True) if isinstance(rel, int | float) else ""
        if rel_txt and rel != last_rel:
            out.append(f'<text class="gutter" x="6" y="{_num(y + 4)}">{_e(rel_txt)}</text>')
        last_rel = rel
        if li is None:
            continue
        x = lane_x[li]
        direction = "rev" if ev.get("dir") == "rev" else "fwd"
        label = fmt.clean(ev.get("label"))
        outer = fmt.clean(ev.get("outer"))
        pkt = f"{fmt.clean(ev.get('file'))} #{fmt.clean(ev.get('packet'))}" if ev.get("packet") is not None else fmt.clean(ev.get("file"))
        tip = " · ".join(x for x in (label, outer, pkt, fmt.timestamp(ev.get("ts")), rel_txt) if x)
        alarm = any(w in label.upper() for w in ("RST", "ICMP", "REJECT", "UNREACH"))
        cls = f"ev {direction}" + (" alarm" if alarm else "") + (" outer" if outer else "")
        out.append(f'<g class="{_e(cls)}"><title>{_e(tip)}</title>')
        p = prev[k]
        if p is not None:
            pl = lane_index[fmt.clean(events[p].get("lane"))]
            px, py = lane_x[pl], ys[p]
            sgn = 1 if x > px else -1
            out.append(
                f'<line class="hop" x1="{_num(px)}" y1="{_num(py)}" x2="{_num(x - sgn * 4)}" y2="{_num(y)}" '
                f'marker-end="url(#{uid}-{"lr" if direction == "rev" else "lf"})"/>'
            )
        else:
            sgn = -1 if direction == "rev" else 1
            out.append(
                f'<line class="stub" x1="{_num(x - sgn * 16)}" y1="{_num(y)}" x2="{_num(x - sgn * 3)}" y2="{_num(y)}" '
                f'marker-end="url(#{uid}-{"lr" if direction == "rev" else "lf"})"/>'
            )
        out.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3.2"/>')
        num = f"#{fmt.clean(ev.get('packet'))}" if ev.get("packet") is not None else ""
        if num:
            out.append(f'<text class="pktno" x="{_num(x - 6)}" y="{_num(y - 5)}" text-anchor="end">{_e(num)}</text>')
        if p is None or outer != fmt.clean(events[p].get("outer")):
            words = label + (f" [{outer}]" if outer else "")
            last = li == n - 1
            room = (LADDER_RIGHT - 30 if last else step - 14) if n > 1 else LADDER_RIGHT + 150
            # a reply that starts here has its stub on the right: put the label past it
            lx = x + (22 if p is None and direction == "rev" else 7)
            out.append(f'<text class="ev-label" x="{_num(lx)}" y="{_num(y + 4)}">{_e(_fit(words, room))}</text>')
        out.append("</g>")
    if len(events_all) > len(events):
        more = len(events_all) - len(events)
        out.append(
            f'<text class="gutter" x="6" y="{_num(height - 8)}">… +{more} {_e(i18n.text(lang, "text_more_packets"))}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))
