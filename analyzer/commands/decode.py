"""``k8s-trace decode CAPTURE``: every frame, outer and inner layers on one line (or JSON lines).

Text columns: frame number (1-based), seconds since the first frame, interface (``-`` when the
file does not say; an SLL2 index is named from the node bundle's ``ip-link``/``ip-addr`` dump,
``--node`` or the capture's own directory, else shown as ``if20``; ``In``/``Out``... after it
for cooked captures), then one part per encapsulation level joined by `` | ``, e.g.::

    12 0.000123 eth0 192.168.0.11 -> 192.168.0.12 UDP 8472 VXLAN vni=1 | 10.244.1.5:40000 -> 10.244.2.7:80 TCP [SYN] seq=0 win=64240 len=0

Notes about a frame follow on the same line after ``!!``. ``--format jsonl`` writes the
objects of the JSON contract (``../shared/contract/README.md``), one per line.

Warnings about the file (cut-off record, damaged block) go to stderr, one line each. Exit
status: 0 when the file was read (even with per-frame notes or warnings), 3 when it could not be
read at all (not a capture, or damaged before its first frame: then the damage is the one
error line, ``k8s-trace: error: FILE: byte 17: ...``).
"""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from analyzer.commands.options import udp_ports
from analyzer.errors import InputError
from analyzer.inputs.capture import read_capture
from analyzer.inputs.decode import FLANNEL_UDP_PORTS, GENEVE_UDP_PORTS, VXLAN_UDP_PORTS, decode_frame
from analyzer.model.packet import (
    GENEVE,
    SCTP,
    SLL,
    SLL2,
    TCP,
    UDP,
    VXLAN,
    DecodedPacket,
    IPv4,
    IPv6,
    summarize,
)

_PKTTYPE = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}
_LINK_DUMPS = ("ip-link", "ip-addr")


def _address(text: str) -> str:
    """The canonical text of an address given on the command line (``fd00::0001`` -> ``fd00::1``)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an IP address", param_hint="--host") from None


def _matches(pkt: DecodedPacket, hosts: set[str], ports: frozenset[int], vnis: frozenset[int], notes: bool) -> bool:
    """Every given filter holds somewhere in the frame (any level, quoted packets included)."""
    if notes and not pkt.notes:
        return False
    want_host, want_port, want_vni = bool(hosts), bool(ports), bool(vnis)
    for layer in pkt.layers:
        if want_host and isinstance(layer, IPv4 | IPv6) and (layer.src in hosts or layer.dst in hosts):
            want_host = False
        elif want_port and isinstance(layer, TCP | UDP | SCTP) and (layer.sport in ports or layer.dport in ports):
            want_port = False
        elif want_vni and isinstance(layer, VXLAN | GENEVE) and layer.vni in vnis:
            want_vni = False
    return not (want_host or want_port or want_vni)


def _interface_names(node: Path | None, capture: Path, warn: Callable[[str], None]) -> dict[int, str]:
    """Interface index -> name from a node bundle (``--node``) or the capture's own directory."""
    if node is not None:
        from analyzer.inputs.bundle import load_bundle

        snapshot = load_bundle(node)
        for message in snapshot.warnings:
            warn(message)
        interfaces = snapshot.interfaces
    else:
        from analyzer.inputs.ip_addr import parse_ip_addr

        found = []
        for name in _LINK_DUMPS:
            dump = capture.parent / name
            if dump.is_file():
                try:
                    parsed, _problems = parse_ip_addr(dump.read_text(errors="replace"), str(dump))
                except (OSError, ValueError, InputError):
                    continue  # the names are a convenience: a bad dump leaves the indexes unresolved
                found.extend(parsed)
        interfaces = tuple(found)
    return {i.index: i.name for i in interfaces if i.index is not None}


@click.command(name="decode")
@click.argument("capture", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True,
    help="text: one summary line per frame; jsonl: the JSON contract, one object per frame.",
)
@click.option("--vxlan-port", "vxlan_ports", type=int, multiple=True, callback=udp_ports, metavar="N",
              help="Also decode UDP port N as VXLAN (4789 and 8472 always are). Repeatable.")
@click.option("--geneve-port", "geneve_ports", type=int, multiple=True, callback=udp_ports, metavar="N",
              help="Also decode UDP port N as GENEVE (6081 always is). Repeatable.")
@click.option("--flannel-udp-port", "flannel_ports", type=int, multiple=True, callback=udp_ports, metavar="N",
              help="Also decode UDP port N as flannel's UDP backend (8285 always is). Repeatable.")
@click.option("-c", "--count", type=click.IntRange(min=1), default=None, help="Stop after this many frames.")
@click.option("--host", "hosts", multiple=True, metavar="IP",
              help="Only frames with this address in any IP header, outer, inner or quoted. Repeatable.")
@click.option("--port", "ports", type=int, multiple=True, callback=udp_ports, metavar="N",
              help="Only frames with this TCP/UDP/SCTP port at any level. Repeatable.")
@click.option("--vni", "vnis", type=int, multiple=True, metavar="N",
              help="Only frames carried in a VXLAN/GENEVE tunnel with this VNI. Repeatable.")
@click.option("--with-notes", is_flag=True, help="Only frames with a note (truncated, malformed, bad checksum).")
@click.option("--node", "node", type=click.Path(exists=True, path_type=Path), default=None, metavar="BUNDLE",
              help="Node bundle whose ip-link/ip-addr dump names the interface indexes of SLL2 "
                   "(tcpdump -i any) frames. Default: the capture's own directory, if it is a bundle.")
def command(
    capture: Path,
    fmt: str,
    vxlan_ports: tuple[int, ...],
    geneve_ports: tuple[int, ...],
    flannel_ports: tuple[int, ...],
    count: int | None,
    hosts: tuple[str, ...],
    ports: tuple[int, ...],
    vnis: tuple[int, ...],
    with_notes: bool,
    node: Path | None,
) -> None:
    """Print every frame of CAPTURE with its outer and inner layers (pcap, pcapng, .gz).

    CAPTURE may be - (standard input):

    \b
      tcpdump -i eth0 -U -w - | k8s-trace decode -
      k8s-trace decode node1/any.pcap --host 10.244.1.5 --port 53

    The filters (--host, --port, --vni, --with-notes) look through every encapsulation level,
    which a capture filter cannot do; frame numbers stay those of the file.

    Exit status 0 when the file was read (per-frame notes and warnings about damage later in
    the file included), 3 when it could not be read at all.
    """
    vx = VXLAN_UDP_PORTS | frozenset(vxlan_ports)
    gn = GENEVE_UDP_PORTS | frozenset(geneve_ports)
    fl = FLANNEL_UDP_PORTS | frozenset(flannel_ports)
    # Warnings that come before the first frame wait: if no frame ever comes, the last of them
    # becomes the one error line (exit 3) instead of a warning plus a vaguer error.
    held: list[str] = []
    read = 0  # frames read from the file, filtered out or not

    def say(message: str) -> None:
        sys.stdout.flush()
        click.echo(f"k8s-trace: warning: {message}", err=True)

    def warn(message: str) -> None:
        if read:
            say(message)
        else:
            held.append(message)

    ifnames = _interface_names(node, capture, say)
    host_set = {_address(h) for h in hosts}
    port_set, vni_set = frozenset(ports), frozenset(vnis)
    filtering = bool(host_set or port_set or vni_set or with_notes)
    out = sys.stdout
    write = out.write
    frames = 0
    first_ts: float | None = None
    jsonl = fmt == "jsonl"
    for frame in read_capture(capture, warn=warn):
        read += 1
        if read == 1:
            for message in held:
                say(message)
            held.clear()
        if first_ts is None:
            first_ts = frame.ts  # times are relative to the file's first frame, filtered or not
        pkt = decode_frame(
            frame.data, frame.linktype, vxlan_ports=vx, geneve_ports=gn, flannel_udp_ports=fl, wire_len=frame.wire_len
        )
        if filtering and not _matches(pkt, host_set, port_set, vni_set, with_notes):
            continue
        frames += 1
        iface = frame.interface
        link = pkt.layers[0] if pkt.layers else None
        if iface is None and ifnames and isinstance(link, SLL2):
            iface = ifnames.get(link.ifindex)
        if jsonl:
            obj = pkt.to_contract(frame.number, frame.ts, iface)
            write(json.dumps(obj, separators=(",", ":")) + "\n")
        else:
            direction = ""
            if isinstance(link, SLL2) and iface is None:
                iface = f"if{link.ifindex}"
            if isinstance(link, SLL | SLL2):
                direction = " " + _PKTTYPE.get(link.pkttype, f"type{link.pkttype}")
            line = f"{frame.number} {frame.ts - (first_ts or 0.0):.6f} {iface or '-'}{direction} {summarize(pkt)}"
            if pkt.notes:
                line += " !! " + "; ".join(pkt.notes)
            write(line + "\n")
        if count is not None and frames >= count:
            break
    out.flush()
    if held:
        for message in held[:-1]:
            say(message)
        last = held[-1]
        prefix = f"{capture}: "
        raise InputError(str(capture), last[len(prefix):] if last.startswith(prefix) else last)
