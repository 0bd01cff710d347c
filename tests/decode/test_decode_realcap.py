"""Real captures from a real kernel VXLAN link (tests/realcap.py) decoded by us and by tshark.

``decode --format jsonl`` and the decoder's layers must agree with tshark
(``-d udp.port==8472,vxlan``) frame by frame on every file: tcpdump on the underlay veth, on
the flannel-like VXLAN device, with ``-i any``, and dumpcap's two-interface pcapng. The traffic
itself (ICMP echo, one TCP connection, UDP echo, an ICMP port unreachable, ARP inside VXLAN)
must be seen as sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import realcap

from analyzer.inputs.capture import capture_info, read_capture
from analyzer.inputs.decode import decode_frame, to_record
from analyzer.model.packet import GENEVE, TCP, UDP, VXLAN, IPv4, IPv6

pytestmark = pytest.mark.netns

FIELDS = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "tcp.srcport", "tcp.dstport",
          "udp.srcport", "udp.dstport", "vxlan.vni")


@pytest.fixture(scope="module")
def captures(netns: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return realcap.record_vxlan_pair(tmp_path_factory.mktemp("realcap"))


def _tshark(tshark: str, path: Path) -> list[dict[str, list[str]]]:
    args = [tshark, "-n", "-r", str(path), "-d", "udp.port==8472,vxlan", "-T", "fields", "-E", "separator=/t",
            "-E", "occurrence=a", "-E", "aggregator=,", "-e", "frame.number"]
    for f in FIELDS:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        rows.append({f: (cols[i + 1].split(",") if i + 1 < len(cols) and cols[i + 1] else [])
                     for i, f in enumerate(FIELDS)})
    return rows


def _ours(layers) -> dict[str, list[str]]:
    c: dict[str, list[str]] = {f: [] for f in FIELDS}
    for layer in layers:
        if isinstance(layer, IPv4):
            c["ip.src"].append(layer.src)
            c["ip.dst"].append(layer.dst)
            c["ip.proto"].append(str(layer.proto))
        elif isinstance(layer, IPv6):
            c["ipv6.src"].append(layer.src)
            c["ipv6.dst"].append(layer.dst)
        elif isinstance(layer, TCP):
            c["tcp.srcport"].append(str(layer.sport))
            c["tcp.dstport"].append(str(layer.dport))
        elif isinstance(layer, UDP):
            c["udp.srcport"].append(str(layer.sport))
            c["udp.dstport"].append(str(layer.dport))
        elif isinstance(layer, VXLAN):
            c["vxlan.vni"].append(str(layer.vni))
        elif isinstance(layer, GENEVE):
            raise AssertionError("no GENEVE on this link")
    return c


def _jsonl(path: Path) -> list[dict]:
    r = subprocess.run([sys.executable, "-m", "analyzer", "decode", str(path), "--format", "jsonl"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.mark.parametrize("which", ["underlay", "vxlan", "any", "pcapng"])
def test_decode_agrees_with_tshark(captures: dict[str, Path], tshark: str, which: str) -> None:
    if which not in captures:
        pytest.skip("dumpcap is not installed: no pcapng capture")
    path = captures[which]
    ref = _tshark(tshark, path)
    objs = _jsonl(path)
    frames = list(read_capture(path))
    assert len(ref) == len(objs) == len(frames) > 20
    problems = []
    for theirs, obj, frame in zip(ref, objs, frames):
        pkt = decode_frame(frame.data, frame.linktype, wire_len=frame.wire_len)
        ours = _ours(pkt.layers)
        if ours != theirs:
            problems.append(f"frame {frame.number}: tshark {theirs} ours {ours}")
        # the jsonl object says the same: every IP header, the tunnels, the innermost ports
        assert [ip["src"] for ip in obj["ip"] if ":" not in ip["src"]] == theirs["ip.src"]
        assert [ip["src"] for ip in obj["ip"] if ":" in ip["src"]] == theirs["ipv6.src"]
        assert [str(ip["proto"]) for ip in obj["ip"] if ":" not in ip["src"]] == theirs["ip.proto"]
        assert [str(t["vni"]) for t in obj["tunnels"]] == theirs["vxlan.vni"]
        if obj["l4"] and obj["l4"]["proto"] in ("tcp", "udp"):
            assert str(obj["l4"]["sport"]) == theirs[f"{obj['l4']['proto']}.srcport"][-1]
            assert str(obj["l4"]["dport"]) == theirs[f"{obj['l4']['proto']}.dstport"][-1]
        assert obj["notes"] == [], (frame.number, obj["notes"])  # offloaded checksums are not errors
    assert not problems, "\n".join(problems)


def test_the_traffic_is_seen_as_sent(captures: dict[str, Path]) -> None:
    a, b = realcap.OVERLAY
    recs = [to_record(f, decode_frame(f.data, f.linktype)) for f in read_capture(captures["underlay"])]
    tunnelled = [r for r in recs if r.tunnel == "vxlan"]
    assert {(r.outer_src, r.outer_dst) for r in tunnelled} == {realcap.UNDERLAY, realcap.UNDERLAY[::-1]}
    assert {r.vni for r in tunnelled} == {realcap.VNI} and {r.outer_dport for r in tunnelled} == {8472}
    assert all(r.outer_udp_csum_ok is not False for r in tunnelled)
    echo = [(r.src, r.icmp_type) for r in tunnelled if r.proto == 1 and r.icmp_type in (0, 8)]
    assert echo == [(a, 8), (b, 0)] * realcap.PINGS
    tcp = [r for r in tunnelled if r.proto == 6]
    flags = [(r.src, r.tcp_flags) for r in tcp]
    assert flags[:3] == [(a, 0x02), (b, 0x12), (a, 0x10)]
    assert sum(r.payload_len for r in tcp if r.src == a) == realcap.TCP_BYTES
    assert sum(r.payload_len for r in tcp if r.src == b) == realcap.TCP_BYTES
    assert {r.src for r in tcp if r.tcp_flags & 0x01} == {a, b}
    assert all(r.tcp_mss == 1410 for r in tcp if r.tcp_flags & 0x02)  # 1450 - 40
    udp = [(r.src, r.sport, r.dport, r.payload_len) for r in tunnelled if r.proto == 17]
    assert len([u for u in udp if u[2] == realcap.UDP_ECHO_PORT]) == realcap.UDP_DATAGRAMS
    assert len([u for u in udp if u[1] == realcap.UDP_ECHO_PORT]) == realcap.UDP_DATAGRAMS
    [unreach] = [r for r in tunnelled if r.icmp_type == 3]
    assert (unreach.src, unreach.dst, unreach.icmp_code) == (b, a, 3)
    assert unreach.quoted is not None
    assert (unreach.quoted.src, unreach.quoted.dst, unreach.quoted.dport) == (a, b, realcap.UDP_CLOSED_PORT)
    arps = [r for r in tunnelled if r.arp_op is not None]
    assert {(r.arp_op, r.arp_sender_ip) for r in arps} >= {(1, a), (2, b)}
    assert all(r.ip_version == 0 and r.src is None for r in arps)


def test_capture_metadata_of_real_files(captures: dict[str, Path]) -> None:
    any_info = capture_info(captures["any"])
    assert any_info.linktypes[0] in (113, 276) and any_info.format == "pcap"
    any_frames = list(read_capture(captures["any"]))
    assert {f.interface for f in any_frames} == {None}  # any.pcap names no interface
    pkts = [decode_frame(f.data, f.linktype) for f in any_frames]
    cooked = {pkt.layers[0].name for pkt in pkts}
    assert cooked == {"sll2" if any_info.linktypes[0] == 276 else "sll"}
    # each VXLAN packet leaves through flannel.1 (inner) and ul0 (outer): both in the any capture
    out = [to_record(f, p) for f, p in zip(any_frames, pkts)]
    syn_inner = [r for r in out if r.tcp_flags == 0x02 and r.tunnel is None]
    syn_outer = [r for r in out if r.tcp_flags == 0x02 and r.tunnel == "vxlan"]
    assert len(syn_inner) == len(syn_outer) == 1 and syn_inner[0].sll_pkttype == 4
    assert {f.interface for f in read_capture(captures["vxlan"])} == {"flannel.1"}  # from the file name
    if "pcapng" in captures:
        info = capture_info(captures["pcapng"])
        assert info.format == "pcapng" and info.interfaces == ("ul0", "flannel.1") and info.linktypes == (1, 1)
        by_if: dict[str | None, int] = {}
        for f in read_capture(captures["pcapng"]):
            by_if[f.interface] = by_if.get(f.interface, 0) + 1
        assert set(by_if) == {"ul0", "flannel.1"}
