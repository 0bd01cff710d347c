"""``k8s-trace flows`` on real kernel captures, checked against tshark's conversation tables.

Two namespaces joined by a flannel-like VXLAN link (tests/realcap.py) carry a TCP connection,
UDP echoes, pings and a UDP datagram to a closed port. Each capture (the underlay NIC with VXLAN
frames, flannel.1 with plain frames, ``-i any`` with both, and dumpcap's two-interface pcapng) is
read by ``k8s-trace flows --format json`` and by
``tshark -q -z conv,tcp -z conv,udp -z conv,ip -d udp.port==8472,vxlan``.

Expected differences, asserted as such:
* tshark's ``conv,udp`` lists a conversation for every UDP header, so the outer VXLAN datagrams
  (node:port <-> node:8472) appear beside the inner ones; flows reports them as the
  ``encapsulation`` of the inner flows instead.
* tshark has no ICMP conversation table; its ``conv,ip`` row for the pod pair counts every inner
  IP packet, which equals the packets of our flows between the pods plus the ICMP errors we
  attach to the flow they quote.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_ROW = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+(\d+ \S+)\s+(\d+)\s+(\d+ \S+)\s+(\d+)\s+(\d+ \S+)")


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory, netns: None) -> dict[str, Path]:
    from realcap import record_vxlan_pair

    return record_vxlan_pair(tmp_path_factory.mktemp("realcap"), prefix="k8sB-")


def tshark_conv(tshark: str, path: Path) -> dict[str, dict[tuple[str, str], tuple[int, int, int | None, int | None]]]:
    """{"tcp"|"udp"|"ip": {(a, b): (frames b->a, frames a->b, bytes b->a, bytes a->b)}} (bytes None if rounded)."""
    out = subprocess.run([tshark, "-n", "-q", "-r", str(path), "-d", "udp.port==8472,vxlan", "-z", "conv,tcp",
                          "-z", "conv,udp", "-z", "conv,ip"], capture_output=True, text=True, timeout=120, check=True)
    tables: dict[str, dict] = {}
    current = None
    for line in out.stdout.splitlines():
        if line.endswith("Conversations"):
            current = {"TCP": "tcp", "UDP": "udp", "IPv4": "ip"}[line.split()[0]]
            tables[current] = {}
            continue
        m = _ROW.match(line)
        if m and current:
            a, b, f1, b1, f2, b2 = m.group(1, 2, 3, 4, 5, 6)

            def exact(text: str) -> int | None:
                n, unit = text.split()
                return int(n) if unit == "bytes" else None

            tables[current][(a, b)] = (int(f1), int(f2), exact(b1), exact(b2))
    return tables


def flows_json(path: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "analyzer", "flows", "--format", "json", str(path)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)


def _ep(e: dict) -> str:
    return e["ip"] if e["port"] is None else f"{e['ip']}:{e['port']}"


@pytest.mark.netns
@pytest.mark.parametrize("which", ["underlay", "vxlan", "any", "pcapng"])
def test_flows_agree_with_tshark_conversations(captures: dict[str, Path], tshark: str, which: str) -> None:
    if which not in captures:
        pytest.skip("dumpcap is not installed: no pcapng capture")
    from realcap import OVERLAY, TCP_PORT, UDP_CLOSED_PORT, UDP_ECHO_PORT, UNDERLAY, VXLAN_PORT

    path = captures[which]
    doc = flows_json(path)
    conv = tshark_conv(tshark, path)
    ours = {(f["proto"], frozenset((_ep(f["client"]), _ep(f["server"])))): f for f in doc["flows"]}

    inner: dict[tuple[str, frozenset[str]], tuple] = {}
    outer_frames = 0
    for proto in ("tcp", "udp"):
        for (a, b), counts in conv.get(proto, {}).items():
            hosts = {a.rsplit(":", 1)[0], b.rsplit(":", 1)[0]}
            if proto == "udp" and hosts == set(UNDERLAY) and f":{VXLAN_PORT}" in (a[-5:], b[-5:]):
                outer_frames += counts[0] + counts[1]  # the VXLAN datagrams themselves: expected extra rows
                continue
            inner[(proto, frozenset((a, b)))] = ((a, b), counts)

    # the same TCP and UDP conversations, no more, no fewer
    assert set(inner) == {k for k in ours if k[0] in ("tcp", "udp")}
    for key, ((a, _b), (b_to_a, a_to_b, bytes_b_to_a, bytes_a_to_b)) in inner.items():
        f = ours[key]
        c = _ep(f["client"])
        ours_a_to_b = f["packets_c2s"] if c == a else f["packets_s2c"]
        ours_b_to_a = f["packets_s2c"] if c == a else f["packets_c2s"]
        assert (ours_a_to_b, ours_b_to_a) == (a_to_b, b_to_a), f"{which}: {key}"
        if bytes_a_to_b is not None:
            assert (f["bytes_c2s"] if c == a else f["bytes_s2c"]) == bytes_a_to_b, f"{which}: {key}"
        if bytes_b_to_a is not None:
            assert (f["bytes_s2c"] if c == a else f["bytes_c2s"]) == bytes_b_to_a, f"{which}: {key}"

    pods = frozenset(OVERLAY)
    between = [f for f in doc["flows"] if frozenset((f["client"]["ip"], f["server"]["ip"])) == pods]
    ip_row = next(v for (a, b), v in conv["ip"].items() if frozenset((a, b)) == pods)
    assert sum(f["packets"] + f["icmp_errors"] for f in between) == ip_row[0] + ip_row[1]

    # what the traffic was, independently of tshark
    tcp = ours[("tcp", next(k[1] for k in ours if k[0] == "tcp"))]
    assert tcp["client"]["ip"] == OVERLAY[0] and tcp["server"] == {"ip": OVERLAY[1], "port": TCP_PORT}
    copies = 2 if which in ("any", "pcapng") else 1  # both interfaces: every inner packet twice
    assert tcp["tcp"]["handshake"] and tcp["tcp"]["fin_from"] == ["client", "server"]
    assert tcp["tcp"]["retransmissions"] == 0  # the copies are not retransmissions
    echo = next(f for f in doc["flows"] if f["proto"] == "udp" and f["server"]["port"] == UDP_ECHO_PORT)
    assert (echo["packets_c2s"], echo["packets_s2c"]) == (3 * copies, 3 * copies)
    closed = next(f for f in doc["flows"] if f["proto"] == "udp" and f["server"]["port"] == UDP_CLOSED_PORT)
    assert closed["icmp_errors"] == copies and closed["packets_s2c"] == 0
    ping = next(f for f in doc["flows"] if f["proto"] == "icmp")
    assert (ping["client"]["ip"], ping["packets_c2s"], ping["packets_s2c"]) == (OVERLAY[0], 3 * copies, 3 * copies)

    if which == "vxlan":  # flannel.1 sees the inner frames only
        assert outer_frames == 0 and tcp["encapsulation"] == []
    else:
        assert outer_frames > 0
        assert {(e["type"], e["vni"], e["port"], e["outer_src"], e["outer_dst"]) for e in tcp["encapsulation"]} == {
            ("vxlan", 1, VXLAN_PORT, UNDERLAY[0], UNDERLAY[1]), ("vxlan", 1, VXLAN_PORT, UNDERLAY[1], UNDERLAY[0])}
