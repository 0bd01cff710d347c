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

import io
import json
import sys
from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path
from typing import TextIO

import click

from analyzer.model.flow import FlowScan, FlowSummary

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
    from analyzer.pipeline.flows import scan_flows

    err = sys.stderr
    progress = _Progress(err) if err.isatty() else None

    def warn(line: str) -> None:
        if progress is not None:
            progress.clear()
        click.echo(f"k8s-trace: warning: {line}", err=True)

    try:
        scan = scan_flows(
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


def write_json(scan: FlowScan, out: TextIO) -> None:
    """The JSON document, written flow by flow (a million flows never sit in memory as dicts)."""
    head = scan_to_json(scan, flows=False)
    out.write("{\n")
    for key, value in head.items():
        out.write(f" {json.dumps(key)}: {json.dumps(value)},\n")
    out.write(' "flows": [')
    sep = "\n  "
    for n, flow in enumerate(scan.flows, 1):
        out.write(sep)
        out.write(json.dumps(_flow_json(n, flow)))
        sep = ",\n  "
    out.write("\n ]\n}\n")


def _flow_json(n: int, flow: FlowSummary) -> dict:
    doc: dict = {"id": n}
    doc.update(flow.to_json())
    return doc


def scan_to_json(scan: FlowScan, *, flows: bool = True) -> dict:
    """The whole document as one dict (``flows=False``: everything but the flows)."""
    doc = {
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
            "flows": len(scan.flows),
            "undecodable_frames": scan.undecodable_frames,
            "non_ip_frames": scan.non_ip_frames,
        },
        "warnings": list(scan.warnings),
    }
    if flows:
        doc["flows"] = [_flow_json(n, f) for n, f in enumerate(scan.flows, 1)]
    return doc


# ------------------------------------------------------------------------------------------ text

_HEADERS = ("#", "proto", "client", "server", "pkts>", "bytes>", "pkts<", "bytes<", "start", "dur",
            "tcp", "encapsulation")
_RIGHT = {0, 4, 5, 6, 7, 8, 9}


def render_text(scan: FlowScan) -> str:
    buf = io.StringIO()
    write_text(scan, buf)
    return buf.getvalue()


def write_text(scan: FlowScan, out: TextIO) -> None:
    """The table, then a legend and one totals line. Times are relative to the first packet.

    Column widths come from a cheap first pass; each line is then formatted once and written
    (a million-flow table is never held in memory as rows of cells).
    """
    lines: list[str] = []
    flows = scan.flows
    if flows:
        t0 = min(map(attrgetter("first_ts"), flows))
        clients = [f.client for f in flows]
        servers = [f.server for f in flows]
        tcp_cells: dict[tuple[int, int], str] = {}
        encap_cells: dict[int, str] = {}
        for f in flows:
            key = (id(f.tcp), f.icmp_errors)
            if key not in tcp_cells:
                tcp_cells[key] = _tcp_cell(f)
            if id(f.encapsulations) not in encap_cells:
                encap_cells[id(f.encapsulations)] = _encap_cell(f)
        def most(name: str) -> int:
            return max(map(attrgetter(name), flows))

        widths = [
            len(str(len(flows))),
            max(len(p) for p in {f.proto for f in flows}),
            max(map(len, clients)),
            max(map(len, servers)),
            len(str(most("packets_c2s"))),
            len(str(most("bytes_c2s"))),
            len(str(most("packets_s2c"))),
            len(str(most("bytes_s2c"))),
            len(f"{most('first_ts') - t0:.3f}"),
            len(f"{max(f.last_ts - f.first_ts for f in flows):.3f}"),
            max(map(len, tcp_cells.values())),
            0,
        ]
        widths = [max(w, len(h)) for w, h in zip(widths, _HEADERS)]
        out.write(_fmt(_HEADERS, widths) + "\n")
        w = widths
        template = (f"{{:>{w[0]}}}  {{:<{w[1]}}}  {{:<{w[2]}}}  {{:<{w[3]}}}  {{:>{w[4]}}}  {{:>{w[5]}}}  "
                    f"{{:>{w[6]}}}  {{:>{w[7]}}}  {{:>{w[8]}.3f}}  {{:>{w[9]}.3f}}  {{:<{w[10]}}}  {{}}\n")
        write = out.write
        for n, f in enumerate(flows, 1):
            write(template.format(n, f.proto, clients[n - 1], servers[n - 1], f.packets_c2s, f.bytes_c2s,
                                  f.packets_s2c, f.bytes_s2c, f.first_ts - t0, f.last_ts - f.first_ts,
                                  tcp_cells[(id(f.tcp), f.icmp_errors)], encap_cells[id(f.encapsulations)]))
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
    lines.append(f"{len(scan.flows)} flows in {scan.total_frames} frames of {files}{tail}")
    out.write("\n".join(lines) + "\n")


def _fmt(cells: Sequence[str], widths: Sequence[int]) -> str:
    parts = [c.rjust(w) if i in _RIGHT else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
    return "  ".join(parts).rstrip()


def _tcp_cell(f: FlowSummary) -> str:
    t = f.tcp
    if t is None:
        return "-" if not f.icmp_errors else f"icmp-err={f.icmp_errors}"
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
    if f.icmp_errors:
        parts.append(f"icmp-err={f.icmp_errors}")
    return " ".join(parts) or "-"


def _encap_cell(f: FlowSummary) -> str:
    """One entry per tunnel and node pair (both directions of a pair are merged: ``a<>b``)."""
    if not f.encapsulations:
        return "-"
    seen: dict[tuple, str] = {}
    for e in f.encapsulations:
        pair = tuple(sorted((e.outer_src or "?", e.outer_dst or "?")))
        key = (e.type, e.vni, e.port, pair)
        if key in seen:
            seen[key] = seen[key].replace(">", "<>", 1) if "<>" not in seen[key] else seen[key]
            continue
        vni = f":{e.vni}" if e.vni is not None else ""
        port = f"/{e.port}" if e.port is not None else ""
        seen[key] = f"{e.type}{vni}{port} {e.outer_src}>{e.outer_dst}"
    return ", ".join(seen.values())
