"""``k8s-trace explain INPUTS...``: each flow's path hop by hop, its status, and findings.

INPUTS are any mix of capture files, node bundle directories (or a directory of them, as
``lab run`` writes), ``collect`` tarballs and a kubectl JSON file. The format is text on a
terminal, HTML for ``-o NAME.html``, JSON for ``-o NAME.json``, or ``--format``. Input problems
are warnings on stderr (one line each). Exit status 0 whatever the verdict; with
``--fail-on-drop``: 4 when a flow was dropped or rejected on the way, else 5 when one could not be
decided (no-reply, incomplete). A refused connection (the server itself answered with a reset)
reached its destination and counts as neither.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from analyzer.commands.options import udp_ports
from analyzer.errors import ExitStatus, InputError

DROPPED = {"dropped", "rejected"}
INCONCLUSIVE = {"no-reply", "incomplete"}


def pick_format(fmt: str | None, output: Path | None) -> str:
    """--format, else what -o's suffix says (.html/.htm, .json), else text."""
    if fmt:
        return fmt
    suffix = output.suffix.lower() if output is not None else ""
    return "html" if suffix in (".html", ".htm") else "json" if suffix == ".json" else "text"


def exit_status(doc: dict, fail_on_drop: bool) -> int:
    if not fail_on_drop:
        return ExitStatus.OK
    statuses = {f.get("status") for f in doc.get("flows", [])}
    statuses |= {k for k, n in doc.get("summary", {}).get("by_status", {}).items() if n}  # streamed: no flows kept
    if statuses & DROPPED:
        return ExitStatus.DROPPED
    if statuses & INCONCLUSIVE:
        return ExitStatus.INCONCLUSIVE
    return ExitStatus.OK


class _Progress:
    """One rewritten line on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        pct = min(100, int(done * 100 / total))
        sys.stderr.write(f"\rk8s-trace: {what} {pct:3d}%")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


@click.command(name="explain")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default=None,
              help="Output format (default: text; html for -o NAME.html, json for -o NAME.json).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to this file instead of stdout.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
              help="Language of the text and HTML reports.")
@click.option("--vxlan-port", "vxlan_ports", type=int, multiple=True, callback=udp_ports, metavar="N",
              help="Also decode UDP port N as VXLAN (4789 and 8472 always are). Repeatable.")
@click.option("--fail-on-drop", is_flag=True,
              help="Exit 4 if a flow was dropped/rejected, else 5 if one was inconclusive (for CI).")
@click.option("--no-progress", is_flag=True, help="Never show progress on stderr.")
@click.option("--annotate", "annotate_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Also write each input capture to DIR as pcapng, every packet of an explained "
                                  "flow commented with its verdict (Wireshark shows the comments).")
def command(inputs: tuple[Path, ...], fmt: str | None, output: Path | None, lang: str,
            vxlan_ports: tuple[int, ...], fail_on_drop: bool, no_progress: bool, annotate_dir: Path | None) -> int:
    """Explain each flow in captures and node bundles: path, status, findings.

    \b
    Examples:
      k8s-trace explain any.pcap
      k8s-trace explain node1/ node2/ -o report.html
      k8s-trace explain lab-out/ --format json --fail-on-drop
      k8s-trace explain node1/ node2/ --annotate annotated/   # then: wireshark annotated/*.pcapng
    """
    # no BLAS here either: numpy's import would start an OpenBLAS thread per CPU (see flows)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from analyzer.pipeline.explain import explain_inputs

    fmt = pick_format(fmt, output)
    progress = _Progress(enabled=not no_progress and sys.stderr.isatty())

    def warn(line: str) -> None:
        progress.close()
        click.echo(f"k8s-trace: warning: {line}", err=True)

    given = [str(p) for p in inputs]
    try:
        kw = {"vxlan_ports": vxlan_ports, "warn": warn, "progress": progress, "annotate_dir": annotate_dir}
        if fmt == "json":
            doc = _stream_json(given, output, **kw)
        elif fmt == "text":
            doc = _stream_text(given, output, lang=lang, **kw)
        else:
            doc = explain_inputs(given, **kw)
    finally:
        progress.close()
    for a in doc.get("annotated") or ():
        click.echo(f"k8s-trace: wrote {a['path']} ({a['commented']} of {a['frames']} packets commented)", err=True)
    if fmt != "html":
        return exit_status(doc, fail_on_drop)
    from analyzer.report.html import render_html

    text = render_html(doc, lang=lang)
    if output is not None:
        try:
            output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(str(output), f"cannot write the report: {exc.strerror or exc}") from exc
        click.echo(f"k8s-trace: wrote {output}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))
    return exit_status(doc, fail_on_drop)


def _stream_json(inputs: list[str], output: Path | None, **kw) -> dict:  # noqa: ANN003 - explain_stream's
    """Explain and write the JSON document a flow at a time: each flow's text goes to a spool file
    as soon as it is explained (the summary, which comes first, is known only at the end), so
    neither the flows' documents nor the text are ever whole in memory. Returns the document
    without its flows (the summary says their statuses)."""
    import tempfile

    from analyzer.pipeline.explain import _no_cyclic_gc, explain_stream
    from analyzer.report.json_report import flow_pieces, write_json

    with _no_cyclic_gc(), tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        flows, finish = explain_stream(inputs, **kw)
        for piece in flow_pieces(flows):
            spool.write(piece)
        doc = finish()
        if output is None:
            write_json(doc, sys.stdout, flows_text=spool)
            sys.stdout.flush()
            return doc
        try:
            with open(output, "w", encoding="utf-8") as fh:
                write_json(doc, fh, flows_text=spool)
        except OSError as exc:
            raise InputError(str(output), f"cannot write the report: {exc.strerror or exc}") from exc
    click.echo(f"k8s-trace: wrote {output}", err=True)
    return doc


def _stream_text(inputs: list[str], output: Path | None, *, lang: str, **kw) -> dict:  # noqa: ANN003
    """The text report a flow at a time, from the brief documents (``explain_stream(brief=True)``:
    hop detail only for the flows the report details). Returns the document without its flows."""
    from analyzer.pipeline.explain import _no_cyclic_gc, explain_stream
    from analyzer.report.text import write_text

    done: list[dict] = []

    def finish_and_keep(finish) -> dict:  # noqa: ANN001 - explain_stream's finish
        done.append(finish())
        return done[0]

    with _no_cyclic_gc():
        flows, finish = explain_stream(inputs, brief=True, rows=True, **kw)  # input errors surface here, before -o is opened
        if output is None:
            write_text(flows, lambda: finish_and_keep(finish), sys.stdout, lang=lang, color=sys.stdout.isatty())
            sys.stdout.flush()
            return done[0]
        try:
            with open(output, "w", encoding="utf-8") as fh:
                write_text(flows, lambda: finish_and_keep(finish), fh, lang=lang, color=False)
        except OSError as exc:
            raise InputError(str(output), f"cannot write the report: {exc.strerror or exc}") from exc
    click.echo(f"k8s-trace: wrote {output}", err=True)
    return done[0]
