"""tcpdump on every interface of every node, started before the traffic and flushed after it."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from analyzer.inputs.ip_addr import parse_ip_addr
from analyzer.lab.netns import Proc, Sandbox, wait_for_text


@dataclass(frozen=True, slots=True)
class CaptureResult:
    node: str
    interface: str
    path: Path
    packets: int | None  # as tcpdump reported on exit ("N packets captured"), None if unknown
    dropped: int | None  # "N packets dropped by kernel"


#: Not --immediate-mode: that switches libpcap to TPACKET_V2, whose ring slots are snaplen-sized
#: (8 of them with -s 0 and the default 2 MiB), and `-i any` dropped packets in every burst. With
#: TPACKET_V3 a 32 MiB ring holds 32 MiB of packets, whatever their count, but the kernel hands
#: packets over a block at a time: a block is released when full or after tcpdump's 1 s buffer
#: timeout, so captures must run FLUSH_WAIT past the last packet before SIGINT, or the last
#: block is lost ("12 packets received by filter, 0 packets captured").
TCPDUMP_OPTIONS = ("-U", "-n", "-s", "0", "-B", "32768", "-Z", "root")
FLUSH_WAIT = 1.25


def node_interfaces(sb: Sandbox, ns: str) -> list[str]:
    """Every interface of a node namespace except lo, in ifindex order."""
    interfaces, _warnings = parse_ip_addr(sb.ns_run(ns, ["ip", "-d", "link", "show"]).stdout, ns)
    return [i.name for i in interfaces if i.name != "lo"]


def start_captures(sb: Sandbox, ns: str, node: str, out_dir: Path,
                   interfaces: list[str]) -> list[tuple[str, Path, Proc]]:
    """One `tcpdump -U -s 0 -w` per interface plus one `-i any`; returns once all are listening."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for iface in [*interfaces, "any"]:
        path = out_dir / f"{iface}.pcap"
        proc = sb.start(ns, ["tcpdump", *TCPDUMP_OPTIONS, "-i", iface, "-w", str(path)],
                        label=f"tcpdump {node}/{iface}")
        started.append((iface, path, proc))
    # tcpdump says "listening on IFACE" on stderr once its socket is bound
    deadline = time.monotonic() + 5
    for iface, _path, proc in started:
        _wait_for(proc, "listening on", deadline, f"tcpdump on {node}/{iface}")
    return started


def _wait_for(proc: Proc, text: str, deadline: float, label: str) -> None:
    proc.said = wait_for_text(proc.popen, proc.popen.stderr, text, deadline, label)


def stop_captures(sb: Sandbox, node: str, started: list[tuple[str, Path, Proc]]) -> list[CaptureResult]:
    """SIGINT every tcpdump (it flushes and prints its counters), wait, read the counters."""
    for _iface, _path, proc in started:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGINT)
    results = []
    for iface, path, proc in started:
        try:
            _out, err = proc.popen.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            sb.stop(proc, signal.SIGKILL)
            err = b""
        text = proc.said + (err or b"").decode(errors="replace")
        results.append(CaptureResult(node, iface, path, _counter(text, "captured"), _counter(text, "dropped by kernel")))
        if proc in sb.procs:
            sb.procs.remove(proc)
    return results


def _counter(text: str, what: str) -> int | None:
    for line in text.splitlines():
        if line.strip().endswith(f"packets {what}") or line.strip().endswith(f"packet {what}"):
            try:
                return int(line.split()[0])
            except ValueError:
                return None
    return None
