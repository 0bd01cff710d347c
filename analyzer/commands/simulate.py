"""``k8s-trace simulate NODE... --src IP[:PORT] --dst IP:PORT --proto P``: walk one packet offline.

A NODE is a bundle directory, a directory of bundles (one per node, as ``lab`` writes them), a
``collect`` tarball, or a bare ``iptables-save`` file (then
``--local-ip`` names the node's own addresses, for ``-m addrtype`` and to tell local delivery
from forwarding). The JSON output (``--format json``) is ``k8s-trace.simulate/1`` of
``../shared/contract/README.md``; the text output lists each outcome with its probability and
every step with the dump line behind it.

Exit status: 0 when the walk was done (whatever the verdict), 2 usage, 3 unusable input; with
``--fail-on-drop``: 4 when some outcome is dropped or rejected, 5 when some is undecided.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from analyzer.engines.simulate import SimOutcome, SimulationResult, simulate_packet
from analyzer.errors import ExitStatus, InputError
from analyzer.model.node import NodeSnapshot


def parse_endpoint(text: str, what: str, *, need_port: bool) -> tuple[str, int | None]:
    """``10.0.0.1``, ``10.0.0.1:80``, ``[fd00::1]:80``, ``fd00::1`` -> (ip, port)."""
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise click.BadParameter(f"{text!r} is not IP[:PORT]", param_hint=what)
            port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError as exc:
        raise click.BadParameter(f"{host!r} is not an IP address", param_hint=what) from exc
    number: int | None = None
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise click.BadParameter(f"port {port!r} is not 1-65535", param_hint=what)
        number = int(port)
    if need_port and number is None:
        raise click.BadParameter(f"{text!r} needs a port (IP:PORT)", param_hint=what)
    return ip, number


def _expand(path: Path) -> tuple[Path, ...]:
    """A directory of node bundles (lab output, several unpacked tarballs) stands for each of them."""
    if not path.is_dir():
        return (path,)
    from analyzer.inputs.bundle import find_bundles

    return find_bundles(path)


def load_node(path: Path) -> NodeSnapshot:
    """A bundle directory or tarball (``load_bundle``), or a bare iptables-save or ``nft list ruleset`` file."""
    from analyzer.inputs.bundle import is_tarball, load_bundle, sniff_kind
    from analyzer.inputs.iptables_save import read_iptables_save
    from analyzer.inputs.nft_ruleset import read_nft_ruleset

    if not path.exists():
        raise InputError(str(path), "no such file or directory")
    if path.is_dir() or is_tarball(path):
        node = load_bundle(path)
        if node.ruleset is None and node.nft is None:
            node_warn = (f"{path}: neither iptables-save nor nft-ruleset in this bundle: netfilter is not simulated "
                         f"on {node.name}")
            click.echo(f"k8s-trace: warning: {node_warn}", err=True)
        return node
    name = path.name
    for suffix in (".txt", ".save", ".rules", ".nft"):
        name = name.removesuffix(suffix)
    head = _head(path)
    if sniff_kind(head, path.name) == "nft-ruleset":  # `nft list ruleset` (kube-proxy's nftables mode)
        nft = read_nft_ruleset(path, str(path))
        return NodeSnapshot(name=name, files={"nft-ruleset": str(path)}, nft=nft, warnings=nft.warnings)
    ruleset = read_iptables_save(path, str(path))
    return NodeSnapshot(name=name, files={"iptables-save": str(path)}, ruleset=ruleset,
                        warnings=ruleset.warnings)


def _head(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            return fh.read(65536).decode("utf-8", errors="replace")
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from exc


@click.command()
@click.argument("nodes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--src", "src", required=True, metavar="IP[:PORT]", help="Source of the packet.")
@click.option("--dst", "dst", required=True, metavar="IP:PORT", help="Destination as the client addresses it.")
@click.option("--proto", "proto", default="tcp", show_default=True,
              type=click.Choice(["tcp", "udp", "sctp", "icmp", "icmpv6"], case_sensitive=False))
@click.option("--in-interface", "in_interface", metavar="IF",
              help="Interface the packet arrives on (default: the pod bridge for a local pod, else the device "
                   "of the route back to the source).")
@click.option("--out-interface", "out_interface", metavar="IF",
              help="Out interface to assume where a node has no routing dump.")
@click.option("--local-ip", "local_ips", multiple=True, metavar="IP",
              help="An address of the node (for a bare iptables-save file). Repeatable.")
@click.option("--from-node", "from_node", metavar="NAME", help="Start on this node (default: the node whose pod "
                                                                "CIDR or addresses hold --src, else the first).")
@click.option("--mark", "mark", default="0", metavar="N", help="Packet mark when it enters (e.g. 0x4000).")
@click.option("--length", "length", type=click.IntRange(20, 65535), metavar="BYTES",
              help="IP total length of the packet (for -m length and the MTU of each hop; DF is assumed).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--fail-on-drop", is_flag=True, help="Exit 4 if an outcome is dropped/rejected, 5 if undecided.")
def command(nodes: tuple[Path, ...], src: str, dst: str, proto: str, in_interface: str | None,
            out_interface: str | None, local_ips: tuple[str, ...], from_node: str | None, mark: str,
            length: int | None, fmt: str, fail_on_drop: bool) -> int:
    """Walk one packet through the netfilter rules and routes of NODE... (bundles or iptables-save files)."""
    proto = proto.lower()
    ported = proto in ("tcp", "udp", "sctp")
    sip, sport = parse_endpoint(src, "--src", need_port=False)
    dip, dport = parse_endpoint(dst, "--dst", need_port=ported)
    for ip in local_ips:
        parse_endpoint(ip, "--local-ip", need_port=False)
    try:
        mark_value = int(mark, 0)
    except ValueError as exc:
        raise click.BadParameter(f"{mark!r} is not a number", param_hint="--mark") from exc
    if ipaddress.ip_address(sip).version != ipaddress.ip_address(dip).version:
        raise click.BadParameter("--src and --dst are of different IP families", param_hint="--dst")
    loaded = [load_node(b) for p in nodes for b in _expand(p)]
    names = [n.name for n in loaded]
    if from_node is not None and from_node not in names:
        raise click.BadParameter(f"no node named {from_node!r} (nodes: {', '.join(names)})", param_hint="--from-node")
    for node in loaded:
        for w in node.warnings:
            click.echo(f"k8s-trace: warning: {w}", err=True)
    result = simulate_packet(loaded, sip, dip, proto, sport, dport, in_interface, local_ips=list(local_ips),
                             out_interface=out_interface, start_node=from_node, mark=mark_value, length=length)
    for w in result.warnings:
        click.echo(f"k8s-trace: warning: {w}", err=True)
    if fmt == "json":
        json.dump(result.to_contract(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result))
    if fail_on_drop:
        if any(o.status in ("dropped", "rejected") and o.probability > 0 for o in result.outcomes):
            return int(ExitStatus.DROPPED)
        if any(o.status == "unknown" and o.probability > 0 for o in result.outcomes):
            return int(ExitStatus.INCONCLUSIVE)
    return int(ExitStatus.OK)


def _pct(p: float) -> str:
    if p == 0:
        return "p=0 (conditional)"
    return f"p={p:.4f}".rstrip("0").rstrip(".") if p != 1 else "p=1"


def _outcome_head(i: int, o: SimOutcome) -> str:
    parts = [f"[{i}] {_pct(o.probability)}  {o.status.upper()}"]
    if o.dnat:
        parts.append(f"dnat -> {o.dnat}")
    if o.snat:
        parts.append(f"snat -> {o.snat}")
    if o.masqueraded:
        parts.append(f"masquerade -> {o.masquerade or 'the address of ' + (o.out_interface or 'the out interface')}"
                     + ("" if o.masquerade else " (not in the dumps)"))
    if o.reject_with:
        parts.append(f"({o.reject_with})")
    if o.out_interface:
        parts.append(f"out {o.out_interface}")
    if o.next_hop:
        parts.append(f"via {o.next_hop}")
    return "  ".join(parts)


def _refs(hop) -> str:
    refs = [str(e) for e in hop.evidence if str(e) not in hop.explanation]
    return f"  [{', '.join(refs)}]" if refs else ""


def _condensed(hops) -> list:  # noqa: ANN001 - Sequence[SimHop] -> list[SimHop | str]
    """Hops for reading: a jump into a chain that returns at once ("nothing there for this
    packet") becomes one line instead of two. JSON keeps every hop."""
    out: list = []
    i = 0
    while i < len(hops):
        h = hops[i]
        nxt = hops[i + 1] if i + 1 < len(hops) else None
        if (h.action == "JUMPED" and nxt is not None and nxt.action == "RETURNED" and nxt.rule is None
                and h.rule is not None and nxt.explanation.startswith(f"end of chain {h.rule.target}:")):
            out.append(replace(h, action="PASSED", explanation=f"{h.rule.target}: no rule there matches this "
                                                              f"packet ({h.rule.where()})", evidence=()))
            i += 2
            continue
        out.append(h)
        i += 1
    return out


def _hop_lines(hops) -> list[str]:  # noqa: ANN001
    lines = []
    for n, h in enumerate(_condensed(hops), 1):
        where = f"{h.node}" + (f" {h.hook}" if h.hook else "")
        lines.append(f"    {n:>3}. {where:<22} {h.action:<12} {h.explanation}{_refs(h)}")
    return lines


def _conntrack_lines(result: SimulationResult) -> list[str]:
    """The dumps' conntrack entries for this packet: one line for the connection itself (source port
    given), or, without a source port, one line per node and destination: how the node's existing
    connections from this client were spread (kube-proxy's random choice, as it really fell)."""
    p = result.packet
    own = [c for c in result.conntrack if c.sport is None or c.sport == p.sport]
    if len(own) == len(result.conntrack) and len(own) <= 1:
        return [f"conntrack on {c.node} already tracks this connection ({c.state or 'no state'}"
                f"{', unreplied' if c.unreplied else ''}): its packets go to {c.replies_from}"
                f"{' (STALE: the rules no longer choose it)' if c.stale else ''}  [{c.source}]" for c in own]
    lines = []
    groups: dict[tuple[str, str], list] = {}
    for c in result.conntrack:
        groups.setdefault((c.node, c.replies_from), []).append(c)
    total: dict[str, int] = {}
    for (node, _to), cs in groups.items():
        total[node] = total.get(node, 0) + len(cs)
    for (node, to), cs in groups.items():
        states = ", ".join(sorted({c.state or "no state" for c in cs}))
        where = ", ".join(f"{c.source.file}:{c.source.line}" for c in cs[:4]) + (" ..." if len(cs) > 4 else "")
        stale = " (STALE: the rules no longer choose it)" if any(c.stale for c in cs) else ""
        lines.append(f"conntrack on {node}: {len(cs)} of its {total[node]} connections from {p.src} to "
                     f"{p.endpoint('dst')} ({states}) go to {to}{stale}  [{where}]")
    return lines


def render_text(result: SimulationResult) -> str:
    p = result.packet
    lines = [f"{p.proto} {p.endpoint('src')} -> {p.endpoint('dst')} entering node {p.node}"
             + (f" on {p.in_interface}" if p.in_interface else "")
             + f": {len(result.outcomes)} outcome{'s' if len(result.outcomes) != 1 else ''}"]
    lines += _conntrack_lines(result)
    for i, o in enumerate(result.outcomes, 1):
        lines.append("")
        lines.append(_outcome_head(i, o))
        lines.append(f"    {o.explanation}")
        for label in o.labels:
            lines.append(f"    branch: {label}")
        for a in o.assumptions:
            lines.append(f"    assumed: {a}")
        lines.extend(_hop_lines(o.hops))
        if o.reply_status is not None:
            lines.append(f"    reply: {o.reply_status}")
            lines.extend(_hop_lines(o.reply))
    return "\n".join(lines) + "\n"
