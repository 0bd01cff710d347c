"""The terminal report: one summary line per flow, then the failing flows in detail.

Renders only from the explain document (docs/explain-document.md). Untrusted strings are passed
through ``fmt.clean`` so a pod name or payload summary cannot inject terminal escapes; ANSI colour
is added only with ``color=True``.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterable
from typing import IO, Any

from analyzer.model.explain import RowBlock, SummaryRow
from analyzer.report import fmt, i18n
from analyzer.report.fmt import clean, dct, lst

_RESET = "\x1b[0m"
_COLOURS = {
    "delivered": "\x1b[32m",  # green
    "refused": "\x1b[33m",  # yellow/orange
    "rejected": "\x1b[31m",  # red
    "dropped": "\x1b[1;31m",  # bold red
    "no-reply": "\x1b[90m",  # grey
    "incomplete": "\x1b[90m",
    "error": "\x1b[31m",
    "warning": "\x1b[33m",
    "info": "\x1b[36m",
    "bold": "\x1b[1m",
    "dim": "\x1b[2m",
    "failed": "\x1b[1;31m",
}


class _Out:
    """Lines out as they come: each stripped of trailing blanks; blank lines held back until a
    non-blank line follows (so the report never ends with blank lines)."""

    def __init__(self, color: bool, write: Callable[[str], Any]) -> None:
        self.color = color
        self.write = write
        self.pending = 0

    def paint(self, text: str, style: str | None) -> str:
        if not self.color or not style or style not in _COLOURS:
            return text
        return f"{_COLOURS[style]}{text}{_RESET}"

    def add(self, line: str = "") -> None:
        line = line.rstrip()
        if not line:
            self.pending += 1
            return
        self.write("\n" * self.pending + line + "\n")
        self.pending = 0

    def add_run(self, prefix: str, lines: list[str]) -> None:
        """``add(prefix + line)`` for each of ``lines``, which are neither empty nor end in a
        blank (a ``RowBlock``'s summary lines), written in chunks."""
        glue = "\n" + prefix
        for at in range(0, len(lines), 4096):
            self.write("\n" * self.pending + prefix + glue.join(lines[at:at + 4096]) + "\n")
            self.pending = 0


def _status_cell(out: _Out, lang: str, status: str | None, width: int) -> str:
    word = i18n.status_word(lang, status).upper()
    pad = max(0, width - _display_width(word))
    return out.paint(word, status) + " " * pad


def _display_width(s: str) -> int:
    # East Asian wide characters take two terminal columns
    return sum(2 if "\u1100" <= ch <= "\uffdc" and not ("\u2000" <= ch <= "\u27ff") else 1 for ch in s)


def _typed_key(d: Any) -> tuple | None:
    """A cache key for a small dict of scalars (types included: 1, 1.0 and True print apart),
    None when it is not one."""
    if type(d) is not dict:
        return None
    key = tuple((k, type(v), v) for k, v in d.items())
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _cached(cache: dict | None, tag: str, value: Any, make: Callable[[Any], str]) -> str:
    """``make(value)``, remembered in ``cache`` for equal scalar dicts (thousands of flows share
    their endpoints and tunnels). A dict object seen before is found by identity first (the
    entry keeps the object, so its id cannot be taken by another): documents that share one dict
    per endpoint cost one lookup each."""
    if cache is None:
        return make(value)
    seen = cache.get((tag, id(value)))
    if seen is not None and seen[0] is value:
        return seen[1]
    key = _typed_key(value)
    if key is None:
        return make(value)
    got = cache.get((tag, key))
    if got is None:
        got = cache[(tag, key)] = make(value)
    cache[(tag, id(value))] = (value, got)
    return got


def _side(ep: Any) -> str:
    name = fmt.endpoint_name(ep)
    return fmt.endpoint(ep) + (f" ({name})" if name else "")


def _side_cached(cache: dict | None, ep: Any) -> str:
    """``_side(ep)`` from cached parts: an endpoint's address text and its naming part repeat over
    thousands of flows while its port rarely does."""
    if cache is None or type(ep) is not dict:
        return _side(ep)
    ip, port = ep.get("ip"), ep.get("port")
    if type(ip) is not str or not (port is None or type(port) is int):
        return _cached(cache, "ep", ep, _side)
    parts = _side_parts(cache, ep, ip, port is None)
    return parts[0] + (str(port) if port is not None else "") + parts[1]


def _side_parts(cache: dict, ep: dict, ip: str, no_port: bool) -> tuple[str, str]:
    """``_side`` of endpoint ``ep`` (address ``ip``) as the text before its port and after it
    (``no_port``: its port is None, and the text is all in the first part)."""
    key = ("side", ip, no_port, ep.get("role"), ep.get("name"), ep.get("node"))
    parts = cache.get(key)
    if parts is None:
        bare = {"ip": ip, "port": None if no_port else 0, "role": ep.get("role"), "name": ep.get("name"),
                "node": ep.get("node")}
        text = _side(bare)
        if no_port:
            parts = cache[key] = (text, "")
        else:  # "<host>:0 (<name>)" split around the port
            head = fmt.endpoint(bare)
            parts = cache[key] = (head[:-1], text[len(head):])
    return parts


def _summary_rest(lang: str, flow: dict[str, Any], cache: dict | None = None) -> str:
    """The summary line after its status cell (``cache``: texts of endpoints and tunnels, kept by
    the caller across flows)."""
    return _head(flow.get("id"), flow.get("proto"), flow.get("client"), flow.get("server"), cache) + _bracket(
        lang, flow.get("kind"), lst(flow.get("translations")), lst(flow.get("encapsulation")), _codes(flow.get("findings")),
        cache)


def _row_rest(lang: str, row: SummaryRow, cache: dict) -> str:
    """``_summary_rest`` of a ``SummaryRow`` (the same text): its bracket is made once per kind,
    tunnel list and finding codes (the row's tunnel list is shared by every flow in that tunnel,
    and the entry keeps it, so its id stays its own)."""
    enc = row.encapsulation
    codes = _codes(row.findings) if row.findings else ()
    key = ("row", lang, row.kind, id(enc) if enc else None, codes)
    got = cache.get(key)
    if got is None or (enc and got[0] is not enc):
        got = cache[key] = (enc, _bracket(lang, row.kind, [], lst(enc), codes, cache))
    return _head(row.id, row.proto, row.client, row.server, cache) + got[1]


def _block_lines(lang: str, block: RowBlock, cache: dict) -> list[str]:
    """The summary lines (after their status cells) of a ``RowBlock``'s flows: ``_row_rest``'s
    text, each line made of the parts its flow shares with others (the protocol cell, the
    client's text around its port, the server's, the bracket) and its number and port."""
    # the parts of the block's shared lists, kept for the next blocks (each entry keeps its list)
    got = cache.get(("block", lang, id(block.server_eps)))
    if got is None or got[0] is not block.server_eps:
        got = cache[("block", lang, id(block.server_eps))] = (block.server_eps, {}, {}, {}, {}, set())
    _eps, pre, post, s_text, t_text, whole = got  # whole: clients named with their port (by_port)
    for c in set(block.clients).difference(pre):
        ep = block.client_eps[c]
        ip = ep.get("ip")
        if block.client_by_port[c] or type(ip) is not str:
            pre[c] = post[c] = ""
            whole.add(c)
        else:
            pre[c], post[c] = _side_parts(cache, ep, ip, False)
    for i in set(block.servers).difference(s_text):
        s_text[i] = f" {fmt.ARROW} {_side_cached(cache, block.server_eps[i])}"
    for t in set(block.tails).difference(t_text):
        kind, enc = block.tail_defs[t]
        t_text[t] = _bracket(lang, kind, [], lst(enc), (), cache)
    cells = {p: f"{clean(p or '?'):<4}" for p in set(block.protos)}
    clients, ports = block.clients, block.ports
    # "f{n:<3}" is "f{n}" padded to four, as _head pads the flow id
    out = [f"f{n:<3} {pc} {a}{p}{b}{st}{tt}" for n, pc, a, p, b, st, tt in zip(
        range(block.first, block.first + len(clients)), map(cells.__getitem__, block.protos),
        map(pre.__getitem__, clients), ports, map(post.__getitem__, clients), map(s_text.__getitem__, block.servers),
        map(t_text.__getitem__, block.tails), strict=True)]
    odd = [i for i, p in enumerate(ports) if p is None]
    if whole:
        odd += [i for i, c in enumerate(clients) if c in whole]
    for i in odd:  # no port (its text is the endpoint's alone), or a naming that depends on it
        c = clients[i]
        if c in whole:
            side = _side_cached(cache, block.client(i))
        else:
            ep = block.client_eps[c]
            side = _side_parts(cache, ep, ep["ip"], True)[0]
        out[i] = (f"f{block.first + i:<3} {cells[block.protos[i]]} {side}{s_text[block.servers[i]]}"
                  f"{t_text[block.tails[i]]}")
    return out


def _head(flow_id: Any, proto: Any, client: Any, server: Any, cache: dict | None) -> str:
    return (f"{clean(flow_id):<4} {clean(proto or '?'):<4} {_side_cached(cache, client)} {fmt.ARROW} "
            f"{_side_cached(cache, server)}")


def _codes(findings: Any) -> tuple[str, ...]:
    return tuple(sorted({clean(dct(f).get("code")) for f in lst(findings) if dct(f).get("code")}))


def _bracket(lang: str, kind: Any, translations: list, encapsulation: list, codes: tuple[str, ...],
             cache: dict | None) -> str:
    """``  [kind; NATs; tunnels; finding codes]`` after the endpoints."""
    extras = [i18n.kind_word(lang, kind)]
    extras += [_cached(cache, "nat", t, fmt.translation) for t in translations]
    extras += [_cached(cache, "enc", e, fmt.encapsulation) for e in encapsulation]
    extras += codes
    return "  [" + "; ".join(x for x in extras if x) + "]"


def _pad(s: str, width: int) -> str:
    return s + " " * max(0, width - _display_width(s))


def _hop_cells(lang: str, hop: dict[str, Any]) -> tuple[str, str, str]:
    where = clean(hop.get("node")) or fmt.place(lang, hop)
    return where, clean(hop.get("interface") or ""), clean(hop.get("kind") or "")


def _hop_line(out: _Out, lang: str, index: int, hop: dict[str, Any], widths: tuple[int, int, int]) -> list[str]:
    failed = bool(hop.get("failed"))
    m = fmt.mark(hop.get("observed"), failed)
    cells = _hop_cells(lang, hop)
    mark_style = {"+": "delivered", "x": "refused", "?": "dim"}.get(m) if not failed else None
    head = f"  {out.paint(m, mark_style)} {index:>2}. " + " ".join(_pad(c, w) for c, w in zip(cells, widths, strict=True))
    head += f" {clean(hop.get('action') or '')}"
    if failed:
        head = out.paint(head + "   <== " + i18n.text(lang, "failed_here"), "failed")
    lines = [head]
    explanation = clean(i18n.pick(lang, hop.get("explanation"))) if failed else ""
    if explanation:  # what this step does, so the reader knows why it matters here
        lines.append(out.paint(f"        {explanation}", "dim"))
    for file, nums in fmt.packets_by_file(hop):
        lines.append(f"        {i18n.text(lang, 'packets')}: {file} {fmt.number_list(nums)}")
    for ev in fmt.line_evidence(hop.get("evidence")):
        lines.append(f"        {ev['where']}: {ev['text']}")
    return lines


def _finding_lines(out: _Out, lang: str, finding: dict[str, Any], indent: str = "  ") -> list[str]:
    sev = finding.get("severity") or "info"
    code = clean(finding.get("code") or "?")
    node = f" @{clean(finding['node'])}" if finding.get("node") else ""
    head = f"{indent}{out.paint(i18n.severity_word(lang, sev).upper(), sev)} {out.paint(code, 'bold')}{node}: "
    head += clean(i18n.finding_text(lang, finding, "message"))
    if finding.get("checkable") is False:
        head += f" ({i18n.text(lang, 'checkable_no')})"
    lines = [head]
    for ev in fmt.evidence(finding.get("evidence")):
        lines.append(f"{indent}    {i18n.text(lang, 'evidence')}: {ev['where']}" + (f": {ev['text']}" if ev["text"] else ""))
    fix = i18n.finding_text(lang, finding, "fix")
    if fix:
        fix_lines = [clean(x) for x in str(fix).splitlines() if x.strip()]
        lines.append(f"{indent}    {i18n.text(lang, 'fix')}: {fix_lines[0] if fix_lines else ''}")
        lines += [f"{indent}         {x}" for x in fix_lines[1:]]
    return lines


def _flow_detail(out: _Out, lang: str, flow: dict[str, Any]) -> None:
    status = flow.get("status")
    title = f"== {clean(flow.get('id'))} {i18n.status_word(lang, status).upper()} {clean(flow.get('proto') or '?')} "
    title += f"{fmt.endpoint(flow.get('client'))} {fmt.ARROW} {fmt.endpoint(flow.get('server'))}"
    out.add(out.paint(title, status))
    verdict = i18n.pick(lang, flow.get("verdict"))
    if verdict:
        out.add(f"  {i18n.text(lang, 'verdict')}: {clean(verdict)}")
    for t in lst(flow.get("translations")):
        r = fmt.rule(dct(t).get("rule"))
        obs = "" if dct(t).get("observed") is not False else f" ({i18n.text(lang, 'nat_not_seen')})"
        out.add(f"  {i18n.text(lang, 'nat')}: {fmt.translation(t)}{obs}" + (f"  [{r}]" if r else ""))
    for e in lst(flow.get("encapsulation")):
        out.add(f"  {i18n.text(lang, 'encap')}: {fmt.encapsulation(e)}")
    hops = [dct(h) for h in lst(flow.get("hops"))]
    if hops:
        out.add(f"  {i18n.text(lang, 'hops_title')} ({i18n.text(lang, 'text_hop_legend')}):")
        cells = [_hop_cells(lang, h) for h in hops]
        widths = (
            min(24, max(_display_width(c[0]) for c in cells)),
            min(20, max(_display_width(c[1]) for c in cells)),
            min(12, max(_display_width(c[2]) for c in cells)),
        )
        for i, hop in enumerate(hops, 1):
            for line in _hop_line(out, lang, i, hop, widths):
                out.add(line)
    findings = [dct(f) for f in lst(flow.get("findings"))]
    if findings:
        out.add(f"  {i18n.text(lang, 'findings')}:")
        for f in findings:
            for line in _finding_lines(out, lang, f, indent="    "):
                out.add(line)
    out.add()


def render_text(doc: dict, *, lang: str = "en", color: bool = False) -> str:
    """The explain document as a terminal report (``lang`` "en" or "zh")."""
    buf = io.StringIO()
    write_text((dct(f) for f in lst(doc.get("flows"))), lambda: doc, buf, lang=lang, color=color)
    text = buf.getvalue()
    return text if text else "\n"


def _node_brief(n: dict, lang: str) -> str:
    """``name addresses pods CIDR backend``; the addresses left out when they are only the name
    (a node inferred from the packets is called by its address)."""
    addrs = [clean(a) for a in lst(n.get("addresses"))]
    name = clean(n.get("name"))
    where = "" if addrs == [name] else f" {','.join(addrs)}"
    return (f"{name}{where} {i18n.text(lang, 'pods_word')} {clean(n.get('pod_cidr') or '?')}"
            f" {clean(n.get('backend') or '')}").rstrip()


def write_text(flows: Iterable[dict], finish: Callable[[], dict], fh: IO[str], *, lang: str = "en",
               color: bool = False) -> None:
    """The report of a document given a flow at a time (``pipeline.explain.explain_stream``):
    each flow is rendered as it comes and let go. What is kept until the end (the header, which
    needs the summary, comes first) is one short summary line per flow; the failing flows' detail
    and the other flows' findings wait in temporary files. ``finish()`` gives the rest of the
    document once ``flows`` is exhausted."""
    lang = i18n.check_lang(lang)
    out = _Out(color, fh.write)
    # status, the summary line after its status cell (or a run of a RowBlock's lines, all delivered)
    summaries: list[tuple[str | None, str | list[str]]] = []
    by_status_seen: dict[str, int] = {}
    texts: dict = {}  # _summary_rest's cache
    with tempfile.TemporaryFile("w+", encoding="utf-8") as details, \
            tempfile.TemporaryFile("w+", encoding="utf-8") as others:
        n_failing = n_others = 0

        def row(f: SummaryRow) -> dict | None:
            """A delivered flow of one line (the plain lane's), unless a finding is an error: then its
            document, taken like the others'."""
            nonlocal n_others
            if any(dct(x).get("severity") == "error" for x in f.findings):
                return f.doc()
            by_status_seen["delivered"] = by_status_seen.get("delivered", 0) + 1
            summaries.append(("delivered", _row_rest(lang, f, texts)))
            if f.findings:
                n_others += 1
                _others(_Spool(color, others), lang, f.id, f.findings)
            return None

        def take(f: dict) -> None:
            nonlocal n_failing, n_others
            status = f.get("status")
            by_status_seen[status or "incomplete"] = by_status_seen.get(status or "incomplete", 0) + 1
            summaries.append((status, _summary_rest(lang, f, texts)))
            if fmt.is_failing(f):
                n_failing += 1
                _flow_detail(_Spool(color, details), lang, f)
            elif lst(f.get("findings")):
                n_others += 1
                _others(_Spool(color, others), lang, f.get("id"), lst(f.get("findings")))

        for f in flows:
            if type(f) is RowBlock:  # delivered flows of one line each (the plain lane's)
                lines = _block_lines(lang, f, texts)
                at = 0
                for i in sorted(f.special):  # those with findings, each as a SummaryRow
                    if i > at:
                        summaries.append(("delivered", lines[at:i]))
                    by_status_seen["delivered"] = by_status_seen.get("delivered", 0) + i - at
                    d = row(f.special[i])
                    if d is not None:
                        take(dct(d))
                    at = i + 1
                if len(lines) > at:
                    summaries.append(("delivered", lines[at:] if at else lines))
                by_status_seen["delivered"] = by_status_seen.get("delivered", 0) + len(lines) - at
                continue
            if type(f) is SummaryRow:
                d = row(f)
                if d is not None:
                    take(dct(d))
                continue
            take(dct(f))
        doc = finish()
        _header(out, lang, doc, by_status_seen, sum(by_status_seen.values()))
        if not summaries:
            out.add(i18n.text(lang, "no_flows"))
        words = {st: _display_width(i18n.status_word(lang, st)) for st in {st for st, _ in summaries}}
        width = max(words.values(), default=0)
        cells = {st: _status_cell(out, lang, st, width) + " " for st in words}
        for status, rest in summaries:
            if type(rest) is list:
                out.add_run(cells[status], rest)
            else:
                out.add(cells[status] + rest)
        summaries.clear()
        if n_failing:
            out.add()
            _replay(details, out)
        if n_others:
            if not n_failing:
                out.add()
            out.add(f"{i18n.text(lang, 'other_findings')}:")
            _replay(others, out)
            out.add()
    _footer(out, lang, doc)


def _others(spool: _Out, lang: str, flow_id: Any, findings: list) -> None:
    """The findings of a flow that was delivered, each line of the first under the flow's id."""
    for finding in findings:
        lines = _finding_lines(spool, lang, dct(finding), indent="  ")
        lines[0] = f"  {clean(flow_id)}:" + lines[0][1:]
        for line in lines:
            spool.add(line)


class _Spool(_Out):
    """An ``_Out`` into a temporary file, one line per line, blank lines kept as they are."""

    def __init__(self, color: bool, fh: IO[str]) -> None:
        super().__init__(color, fh.write)

    def add(self, line: str = "") -> None:
        self.write(line.rstrip() + "\n")


def _replay(spool: IO[str], out: _Out) -> None:
    spool.seek(0)
    for line in spool:
        out.add(line.rstrip("\n"))


def _header(out: _Out, lang: str, doc: dict, by_status_seen: dict[str, int], n_flows: int) -> None:
    summary = dct(doc.get("summary"))
    by_status = dct(summary.get("by_status"))
    if not by_status:
        by_status = by_status_seen
    counts = ", ".join(
        f"{out.paint(str(by_status[s]) + ' ' + i18n.status_word(lang, s), s)}"
        for s in i18n.STATUSES
        if by_status.get(s)
    )
    header = f"k8s-trace: {i18n.text(lang, 'summary_line', flows=summary.get('flows', n_flows))}"
    if counts:
        header += f" ({counts})"
    fsum = dct(summary.get("findings"))
    fcounts = ", ".join(
        i18n.severity_count(lang, s, fsum[s])
        for s in ("error", "warning", "info")
        if isinstance(fsum.get(s), int) and not isinstance(fsum[s], bool) and fsum[s]
    )
    if fcounts:
        header += f"; {i18n.text(lang, 'findings').lower() if lang == 'en' else i18n.text(lang, 'findings')}: {fcounts}"
    out.add(header)
    nodes = [dct(n) for n in lst(doc.get("nodes"))]
    if nodes:
        out.add(
            f"{i18n.text(lang, 'nodes')}: "
            + "; ".join(_node_brief(n, lang) for n in nodes)
        )
    for off in lst(doc.get("clock_offsets")):
        off = dct(off)
        out.add(
            f"{i18n.text(lang, 'clock_offsets')}: {clean(off.get('node'))} "
            f"{fmt.seconds(off.get('offset'), signed=True)} ({clean(off.get('basis'))})"
        )
    out.add()


def _footer(out: _Out, lang: str, doc: dict) -> None:
    global_findings = [dct(f) for f in lst(doc.get("findings"))]
    if global_findings:
        out.add(f"{i18n.text(lang, 'global_findings')}:")
        for f in global_findings:
            for line in _finding_lines(out, lang, f):
                out.add(line)
        out.add()
    not_checkable = [dct(n) for n in lst(doc.get("not_checkable"))]
    if not_checkable:
        out.add(f"{i18n.text(lang, 'not_checkable')}:")
        for n in not_checkable:
            out.add(f"  - {clean(n.get('code'))}: {clean(n.get('reason'))}")
        out.add()
    warnings = lst(doc.get("warnings"))
    if warnings:
        out.add(f"{i18n.text(lang, 'warnings')}:")
        for w in warnings:
            out.add(f"  - {clean(w)}")
        out.add()
