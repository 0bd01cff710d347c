"""``k8s-trace flows CAPTURE...``: the conversation table of inner flows, through tunnels.

Like ``tshark -q -z conv,tcp -z conv,udp``, but one row per *inner* conversation (the pod-to-pod
header inside VXLAN/IPIP/GENEVE..., not the node-to-node outer header), with the tunnels that
carried it, both directions, and a TCP summary. Every file given is scanned; a packet captured
in two files counts in both (``per_file`` says where).

JSON (``--format json``), schema ``k8s-trace.flows/1``; keys keep their names and meanings,
new keys may be added (same rules as ``../shared/contract/README.md``)::

    { "schema": "k8s-trace.flows/1",
      "inputs":   [ {"path", "frames", "bytes", "linktype", "fast_frames", "fallback_frames"} ],
      "totals":   {"frames", "flows", "undecodable_frames", "non_ip_frames"},
      "flows":    [ Flow ],            # ordered by first_seen
      "warnings": [ "..." ] }          # input problems, one line each (file and packet/byte)

Flow: ``id`` (1-based, in this document), ``key`` (``"tcp 10.244.1.5:40000 > 10.244.2.7:80"``,
client first), ``proto`` (``tcp``/``udp``/``icmp``/...), ``client`` and ``server``
(``{"ip", "port"}``, port null for portless protocols; the client is the sender of the first SYN,
else of the first packet seen), ``packets``/``bytes`` and per direction ``packets_c2s``,
``packets_s2c``, ``bytes_c2s``, ``bytes_s2c`` (bytes are frame lengths on the wire, outer headers
included, as tshark counts them), ``first_seen``, ``last_seen``, ``duration`` (Unix seconds),
``encapsulation`` (list of ``{"type", "vni", "port", "outer_src", "outer_dst"}``, one per distinct
tunnel and outer address pair, empty when seen only unencapsulated), ``tcp`` (null unless TCP:
``{"syn", "syn_ack", "handshake", "fin", "rst", "fin_from", "rst_from", "retransmissions"}``, the
``*_from`` lists holding ``"client"``/``"server"``), ``icmp_errors`` (ICMP errors quoting a packet
of this flow; they are not counted in its packets), ``per_file`` (``[{"file", "packets"}]``).

Exit status 0 when the table was produced (even with warnings), 3 when a file cannot be read at
all (the message names the file), 2 for usage errors.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from analyzer.model.flow import Encap, FlowSummary, TCPSummary

if TYPE_CHECKING:  # the pipeline (and numpy) is imported when the command runs
    from analyzer.pipeline.flows import TableScan

SCHEMA = "k8s-trace.flows/1"
DEFAULT_VXLAN_PORTS = (4789, 8472)


@click.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
@click.option("--vxlan-port", "vxlan_ports", type=click.IntRange(1, 65535), multiple=True,
              help="Extra UDP port carrying VXLAN (4789 and 8472 always are). Repeatable.")
def command(captures: tuple[Path, ...], fmt: str, vxlan_ports: tuple[int, ...]) -> None:
    """Conversation table of the inner flows in CAPTURE... (pcap, pcapng, .gz)."""
    # flows uses no BLAS: without this, numpy's import starts an OpenBLAS thread per CPU (about
    # 0.1 s of wall time on the 2-vCPU development VM). Only effective before numpy is imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from analyzer.pipeline.flows import scan_table

    err = sys.stderr
    progress = _Progress(err) if err.isatty() else None

    def warn(line: str) -> None:
        if progress is not None:
            progress.clear()
        click.echo(f"k8s-trace: warning: {line}", err=True)

    try:
        scan = scan_table(
            list(captures),
            vxlan_ports=frozenset(DEFAULT_VXLAN_PORTS) | frozenset(vxlan_ports),
            progress=progress,
            warn=warn,
        )
    finally:
        if progress is not None:
            progress.clear()
    if fmt == "json":
        write_json(scan, sys.stdout)
    else:
        write_text(scan, sys.stdout)


class _Progress:
    """``\\r``-rewritten percentage on a terminal's stderr, at most once per percent."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = -1
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        if pct != self.last:
            self.last = pct
            self.shown = True
            self.stream.write(f"\rk8s-trace flows: {pct:3d}% of {total / 1e6:.1f} MB")
            self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False
            self.last = -1


def write_json(scan: TableScan, out: TextIO) -> None:
    """The JSON document, written a block of flows at a time (never all flows as dicts)."""
    head = scan_header(scan)
    out.write("{\n")
    for key, value in head.items():
        out.write(f" {json.dumps(key)}: {json.dumps(value)},\n")
    out.write(' "flows": [')
    sep = "\n  "
    n = 0
    for rows in scan.row_blocks():
        for flow in rows.summaries():
            n += 1
            out.write(sep)
            out.write(json.dumps(_flow_json(n, flow)))
            sep = ",\n  "
    out.write("\n ]\n}\n")


def _flow_json(n: int, flow: FlowSummary) -> dict:
    doc: dict = {"id": n}
    doc.update(flow.to_json())
    return doc


def scan_header(scan: TableScan) -> dict:
    """Everything of the JSON document but the flows."""
    return {
        "schema": SCHEMA,
        "inputs": [
            {
                "path": f.path,
                "frames": f.frames,
                "bytes": f.bytes,
                "linktype": f.linktype,
                "fast_frames": f.fast_frames,
                "fallback_frames": f.fallback_frames,
            }
            for f in scan.files
        ],
        "totals": {
            "frames": scan.total_frames,
            "flows": scan.flow_count,
            "undecodable_frames": scan.undecodable_frames,
            "non_ip_frames": scan.non_ip_frames,
        },
        "warnings": list(scan.warnings),
    }


# ------------------------------------------------------------------------------------------ text

_HEADERS = ("#", "proto", "client", "server", "pkts>", "bytes>", "pkts<", "bytes<", "start", "dur",
            "tcp", "encapsulation")
_RIGHT = {0, 4, 5, 6, 7, 8, 9}


def write_text(scan: TableScan, out: TextIO) -> None:
    """The table, then a legend and one totals line. Times are relative to the first packet.

    Rendered block by block from the flow table's printed columns (``FlowCells``: no per-flow
    object, never all rows at once, each distinct TCP summary and encapsulation list formatted
    once); the column widths come from the table's largest values beforehand.
    """
    lines: list[str] = []
    if scan.flow_count:
        x = scan.extents()
        t0 = x["first_ts"]
        tcp_max = len("S SA H Fcs Rcs")
        tcp_max += len(f" re={x['retransmissions']}") if x["retransmissions"] else 0
        tcp_max += len(f" icmp-err={x['icmp_errors']}") if x["icmp_errors"] else 0
        widths = [
            len(str(scan.flow_count)),
            x["proto"],
            x["endpoint"],
            x["endpoint"],
            len(str(x["packets"])),
            len(str(x["bytes"])),
            len(str(x["packets"])),
            len(str(x["bytes"])),
            len(f"{x['last_first_ts'] - t0:.3f}"),
            len(f"{x['duration']:.3f}"),
            tcp_max,
            0,
        ]
        widths = [max(w, len(h)) for w, h in zip(widths, _HEADERS)]
        out.write(_fmt(_HEADERS, widths) + "\n")
        w = widths
        template = (f"%{w[0]}d  %-{w[1]}s  %-{w[2]}s  %-{w[3]}s  %{w[4]}d  %{w[5]}d  %{w[6]}d  %{w[7]}d  "
                    f"%{w[8]}.3f  %{w[9]}.3f  %s")
        tcp_cells: list[str] = []  # by code (see FlowCells): each distinct value is formatted once
        encap_cells: list[str] = []
        tails: dict[tuple[int, int], str] = {}  # the last two columns, by (tcp code, encapsulation code)
        n = 0
        for b in scan.cell_blocks():
            tcp_cells.extend(_tcp_cell(tcp, errors) for tcp, errors in b.tcp_values[len(tcp_cells):])
            encap_cells.extend(_encap_cell(encaps) for encaps in b.encap_values[len(encap_cells):])
            pairs = list(zip(b.tcp, b.encap))
            for t, e in set(pairs) - tails.keys():
                tails[(t, e)] = f"{tcp_cells[t]:<{w[10]}}  {encap_cells[e]}"
            starts = [t - t0 for t in b.first_ts]
            durs = list(map(float.__sub__, b.last_ts, b.first_ts))
            ids = range(n + 1, n + len(b) + 1)
            n += len(b)
            out.write("\n".join(map(template.__mod__, zip(ids, b.proto, b.client, b.server, b.packets_c2s,
                                                           b.bytes_c2s, b.packets_s2c, b.bytes_s2c, starts, durs,
                                                           map(tails.__getitem__, pairs)))))
            out.write("\n")
        lines.append("")
        lines.append("> client to server, < server to client; bytes are frame lengths on the wire; start and dur "
                     "in seconds from the first packet.")
        lines.append("tcp: S SYN, SA SYN+ACK, H handshake done, F FIN, R RST (c client, s server), "
                     "re=N retransmitted segments.")
    else:
        lines.append("no IP flows found")
    files = ", ".join(f"{f.path} ({f.frames})" for f in scan.files) if len(scan.files) > 1 else scan.files[0].path
    extra = []
    if scan.non_ip_frames:
        extra.append(f"{scan.non_ip_frames} non-IP")
    if scan.undecodable_frames:
        extra.append(f"{scan.undecodable_frames} undecodable")
    if scan.warnings:
        extra.append(f"{len(scan.warnings)} warnings on stderr")
    tail = f" ({', '.join(extra)})" if extra else ""
    lines.append(f"{scan.flow_count} flows in {scan.total_frames} frames of {files}{tail}")
    out.write("\n".join(lines) + "\n")


def _fmt(cells: Sequence[str], widths: Sequence[int]) -> str:
    parts = [c.rjust(w) if i in _RIGHT else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
    return "  ".join(parts).rstrip()


def _tcp_cell(t: TCPSummary | None, icmp_errors: int) -> str:
    if t is None:
        return "-" if not icmp_errors else f"icmp-err={icmp_errors}"
    parts = []
    if t.syn:
        parts.append("S")
    if t.syn_ack:
        parts.append("SA")
    if t.handshake:
        parts.append("H")
    for letter, c, s in (("F", t.fin_from_client, t.fin_from_server), ("R", t.rst_from_client, t.rst_from_server)):
        if c or s:
            parts.append(letter + ("c" if c else "") + ("s" if s else ""))
    if t.retransmissions:
        parts.append(f"re={t.retransmissions}")
    if icmp_errors:
        parts.append(f"icmp-err={icmp_errors}")
    return " ".join(parts) or "-"


def _encap_cell(encaps: tuple[Encap, ...]) -> str:
    """One entry per tunnel and node pair (both directions of a pair are merged: ``a<>b``)."""
    if not encaps:
        return "-"
    seen: dict[tuple, str] = {}
    for e in encaps:
        pair = tuple(sorted((e.outer_src or "?", e.outer_dst or "?")))
        key = (e.type, e.vni, e.port, pair)
        if key in seen:
            seen[key] = seen[key].replace(">", "<>", 1) if "<>" not in seen[key] else seen[key]
            continue
        vni = f":{e.vni}" if e.vni is not None else ""
        port = f"/{e.port}" if e.port is not None else ""
        seen[key] = f"{e.type}{vni}{port} {e.outer_src}>{e.outer_dst}"
    return ", ".join(seen.values())
