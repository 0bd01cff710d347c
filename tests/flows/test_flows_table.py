"""Flow table semantics on crafted conversations: endpoints, directions, TCP summary, ICMP
errors, tunnels, several files, sampling, and the bench generator's ground truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from builders import ether, icmp, icmp_frag_needed, ipv4, tcp, udp, vxlan, write_pcap

from analyzer.inputs.capture import read_capture
from analyzer.inputs.decode import decode_frame, to_record
from analyzer.model.flow import FlowSummary
from analyzer.pipeline.flows import scan_flows

ROOT = Path(__file__).resolve().parents[2]
C, S = "10.244.1.5", "10.244.2.7"
NODE1, NODE2 = "192.168.0.11", "192.168.0.12"
_IDENT = [0]


def seg(flags: str, seq: int = 0, ack: int = 0, data: bytes = b"", *, back: bool = False, cport: int = 40000,
        sport: int = 80, tunnel: bool = False) -> bytes:
    src, dst = (S, C) if back else (C, S)
    sp, dp = (sport, cport) if back else (cport, sport)
    _IDENT[0] += 1  # every packet its own IPv4 ID, as Linux sends them (copies share one)
    inner = ether(ipv4(tcp(data, sport=sp, dport=dp, flags=flags, seq=seq, ack=ack), src=src, dst=dst,
                       ident=_IDENT[0]))
    if not tunnel:
        return inner
    osrc, odst = (NODE2, NODE1) if back else (NODE1, NODE2)
    return ether(ipv4(udp(vxlan(inner, vni=1), sport=50000, dport=8472, checksum=0), src=osrc, dst=odst))


def conversation(*, tunnel: bool = False, retransmit: bool = False, close: str = "fin") -> list[bytes]:
    out = [
        seg("S", 100, tunnel=tunnel),
        seg("SA", 500, 101, back=True, tunnel=tunnel),
        seg("A", 101, 501, tunnel=tunnel),
        seg("PA", 101, 501, b"GET / HTTP/1.1\r\n\r\n", tunnel=tunnel),  # 18 bytes
        seg("PA", 501, 119, b"x" * 300, back=True, tunnel=tunnel),
    ]
    if retransmit:
        out.append(seg("PA", 501, 119, b"x" * 300, back=True, tunnel=tunnel))
    out.append(seg("A", 119, 801, tunnel=tunnel))
    if close == "fin":
        out += [seg("FA", 119, 801, tunnel=tunnel), seg("FA", 801, 120, back=True, tunnel=tunnel),
                seg("A", 120, 802, tunnel=tunnel)]
    else:
        out.append(seg("RA", 801, 119, back=True, tunnel=tunnel))
    return out


def scan(tmp_path: Path, *files: list[bytes], **kw) -> list[FlowSummary]:
    paths = [write_pcap(tmp_path / f"c{i}.pcap", frames) for i, frames in enumerate(files)]
    return list(scan_flows(paths, **kw).flows)


def only(flows: list[FlowSummary]) -> FlowSummary:
    assert len(flows) == 1, [f.key for f in flows]
    return flows[0]


def test_full_tcp_conversation(tmp_path: Path) -> None:
    frames = conversation()
    f = only(scan(tmp_path, frames))
    assert f.key == "tcp 10.244.1.5:40000 > 10.244.2.7:80"
    assert (f.client, f.server, f.proto) == ("10.244.1.5:40000", "10.244.2.7:80", "tcp")
    assert (f.packets_c2s, f.packets_s2c) == (6, 3)
    assert f.bytes_c2s == sum(len(x) for i, x in enumerate(frames) if i not in (1, 4, 7))
    assert f.bytes_s2c == len(frames[1]) + len(frames[4]) + len(frames[7])
    t = f.tcp
    assert t is not None
    assert (t.syn, t.syn_ack, t.handshake, t.fin, t.rst, t.retransmissions) == (True, True, True, True, False, 0)
    assert (t.fin_from_client, t.fin_from_server) == (True, True)
    assert f.encapsulations == ()
    assert f.per_file == ((str(tmp_path / "c0.pcap"), 9),)
    assert f.last_ts > f.first_ts


def test_server_reset_and_no_handshake(tmp_path: Path) -> None:
    frames = [seg("S", 100), seg("RA", 0, 101, back=True)]
    t = only(scan(tmp_path, frames)).tcp
    assert t is not None
    assert (t.syn, t.syn_ack, t.handshake, t.rst, t.rst_from_server, t.rst_from_client) == (
        True, False, False, True, True, False)


def test_client_is_the_syn_sender_even_when_the_answer_comes_first(tmp_path: Path) -> None:
    # the capture starts with the server's SYN+ACK (e.g. two interfaces merged out of order)
    frames = [seg("SA", 500, 101, back=True), seg("S", 100), seg("A", 101, 501)]
    f = only(scan(tmp_path, frames))
    assert (f.client, f.server) == ("10.244.1.5:40000", "10.244.2.7:80")
    assert f.tcp is not None and f.tcp.handshake


def test_without_syn_the_first_sender_is_the_client(tmp_path: Path) -> None:
    frames = [seg("PA", 501, 119, b"x" * 10, back=True), seg("A", 119, 511)]
    f = only(scan(tmp_path, frames))
    assert (f.client, f.server) == ("10.244.2.7:80", "10.244.1.5:40000")
    assert f.tcp is not None and not f.tcp.syn and not f.tcp.handshake


def test_handshake_needs_the_right_ack(tmp_path: Path) -> None:
    frames = [seg("S", 100), seg("SA", 500, 101, back=True), seg("A", 101, 999)]
    t = only(scan(tmp_path, frames)).tcp
    assert t is not None and t.syn_ack and not t.handshake


def test_retransmissions(tmp_path: Path) -> None:
    frames = conversation(retransmit=True)
    frames.insert(4, seg("PA", 101, 501, b"GET / HTTP/1.1\r\n\r\n"))  # client data sent twice too
    frames.append(seg("PA", 110, 802, b"y" * 20))  # overlaps old data but extends past it: not a retransmission
    frames.append(seg("A", 120, 802))  # pure ACKs are never retransmissions
    frames.append(seg("A", 120, 802))
    t = only(scan(tmp_path, frames)).tcp
    assert t is not None and t.retransmissions == 2


def test_retransmission_across_sequence_wrap(tmp_path: Path) -> None:
    top = 0xFFFFFFFF - 9
    frames = [seg("PA", top, 1, b"a" * 10), seg("PA", 0, 1, b"b" * 10), seg("PA", 10, 1, b"c" * 10),
              seg("PA", 0, 1, b"b" * 10)]
    t = only(scan(tmp_path, frames)).tcp
    assert t is not None and t.retransmissions == 1


def test_the_same_packets_in_two_files_are_not_retransmissions(tmp_path: Path) -> None:
    # the pod's veth (plain) and the node's NIC (VXLAN): one conversation seen twice
    plain = conversation()
    wrapped = conversation(tunnel=True)
    f = only(scan(tmp_path, plain, wrapped))
    assert f.tcp is not None and f.tcp.retransmissions == 0
    assert f.packets == 18
    assert [n for _, n in f.per_file] == [9, 9]
    assert [(e.type, e.vni, e.outer_src, e.outer_dst, e.port) for e in f.encapsulations] == [
        ("vxlan", 1, NODE1, NODE2, 8472), ("vxlan", 1, NODE2, NODE1, 8472)]


def test_copies_in_one_file_are_not_retransmissions(tmp_path: Path) -> None:
    """``tcpdump -i any``: every packet twice (inside and outside VXLAN, same IPv4 ID), interleaved."""
    frames = []
    for plain in conversation(retransmit=True):
        wrapped = ether(ipv4(udp(vxlan(plain, vni=1), sport=50000, dport=8472, checksum=0), src=NODE1, dst=NODE2))
        frames.append((plain, wrapped))
    flat = [x for pair in frames[:4] for x in pair]
    flat += [frames[4][0], frames[5][0], frames[4][1], frames[5][1]]  # a burst: copies interleaved
    flat += [x for pair in frames[6:] for x in pair]
    f = only(scan(tmp_path, flat))
    assert f.packets == 20
    assert f.tcp is not None and f.tcp.retransmissions == 1  # the real one (a new IPv4 ID), not the copies


def test_udp_and_icmp_flows(tmp_path: Path) -> None:
    q = ether(ipv4(udp(b"q" * 30, sport=33333, dport=53), src=C, dst="10.96.0.10"))
    a = ether(ipv4(udp(b"a" * 90, sport=53, dport=33333), src="10.96.0.10", dst=C))
    ping = ether(ipv4(icmp(b"p" * 56, type=8), src=C, dst=S))
    pong = ether(ipv4(icmp(b"p" * 56, type=0), src=S, dst=C))
    flows = {f.proto: f for f in scan(tmp_path, [q, a, ping, pong])}
    dns, ic = flows["udp"], flows["icmp"]
    assert (dns.client, dns.server, dns.packets_c2s, dns.packets_s2c) == ("10.244.1.5:33333", "10.96.0.10:53", 1, 1)
    assert dns.tcp is None
    assert (ic.client, ic.server, ic.client_port, ic.packets) == ("10.244.1.5", "10.244.2.7", None, 2)


def test_icmp_errors_are_attached_to_the_flow_they_quote(tmp_path: Path) -> None:
    q = ether(ipv4(udp(b"q" * 30, sport=33333, dport=53), src=C, dst="10.96.0.10"))
    unreach = ether(ipv4(icmp(bytes(q[14:14 + 28]), type=3, code=3), src="10.96.0.10", dst=C))
    big = seg("PA", 1, 1, b"z" * 1400, tunnel=True)
    frag = ether(ipv4(icmp_frag_needed(bytes(big[14:14 + 100]), mtu=1450), src=NODE2, dst=NODE1))
    flows = scan(tmp_path, [q, unreach, big, frag])
    assert sorted((f.proto, f.packets, f.icmp_errors) for f in flows) == [("tcp", 1, 1), ("udp", 1, 1)]


def test_an_icmp_error_quoting_an_unknown_flow_is_its_own_flow(tmp_path: Path) -> None:
    q = ether(ipv4(udp(b"q" * 30, sport=33333, dport=53), src=C, dst="10.96.0.10"))
    unreach = ether(ipv4(icmp(bytes(q[14:14 + 28]), type=3, code=3), src="10.96.0.10", dst=C))
    f = only(scan(tmp_path, [unreach]))
    assert (f.proto, f.client, f.icmp_errors) == ("icmp", "10.96.0.10", 0)


def test_sampling_keeps_first_last_and_special_packets_as_records(tmp_path: Path) -> None:
    frames = conversation(retransmit=True)
    for i in range(20):  # a long middle, client to server
        frames.insert(5, seg("A", 119, 801 + i))
    path = write_pcap(tmp_path / "s.pcap", frames)
    f = only(list(scan_flows([path], sample=1).flows))
    got = [r.frame for r in f.samples]
    n = len(frames)
    # first and last per direction (SYN, SYN+ACK, the server's FIN, the last ACK), the client's FIN,
    # and the retransmitted response (frame 26, after the 20 ACKs inserted at frame 6)
    must = {1, 2, 26, n - 2, n - 1, n}
    assert must <= set(got)
    assert got == sorted(got)
    assert len(got) < n // 2  # really a sample
    records = {r.number: r for r in read_capture(path)}
    for rec in f.samples:
        raw = records[rec.frame]
        assert rec == to_record(raw, decode_frame(raw.data, raw.linktype))
    # without sampling, no records are kept
    assert only(list(scan_flows([path]).flows)).samples == ()


def test_retransmitted_segment_is_sampled(tmp_path: Path) -> None:
    frames = conversation(retransmit=True)
    for i in range(10):
        frames.insert(3, seg("A", 101, 501 + i))
    path = write_pcap(tmp_path / "r.pcap", frames)
    f = only(list(scan_flows([path], sample=1).flows))
    retrans_frame = 3 + 10 + 3  # after the 10 inserted ACKs: request, response, its copy
    assert retrans_frame in {r.frame for r in f.samples}


def test_warnings_and_counts(tmp_path: Path) -> None:
    frames = conversation() + [ether(b"\x45" + b"\x00" * 10), ether(bytes(30), ethertype=0x88CC)]
    seen: list[str] = []
    path = write_pcap(tmp_path / "w.pcap", frames)
    result = scan_flows([path], warn=seen.append)
    assert result.total_frames == 11
    assert result.undecodable_frames == 1 and result.non_ip_frames == 1
    assert seen == list(result.warnings)
    assert len(seen) == 1 and f"{path}: packet #10:" in seen[0]


def test_progress_reports_bytes(tmp_path: Path) -> None:
    paths = [write_pcap(tmp_path / f"p{i}.pcap", conversation()) for i in range(2)]
    calls: list[tuple[int, int]] = []
    scan_flows(paths, progress=lambda done, total: calls.append((done, total)))
    total = sum(p.stat().st_size for p in paths)
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def _gen(tmp_path: Path, n: int, seed: int) -> tuple[Path, dict]:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from gen_mix import generate
    finally:
        sys.path.pop(0)
    path = tmp_path / "mix.pcap"
    generate(n, path, seed=seed, truth=True)
    return path, json.loads(Path(str(path) + ".truth.json").read_text())


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_mix_matches_its_ground_truth(tmp_path: Path, seed: int) -> None:
    path, truth = _gen(tmp_path, 2000, seed)
    flows = {(f.proto, f.client, f.server): f for f in scan_flows([path]).flows}
    assert len(flows) == len(truth["conversations"])
    for conv in truth["conversations"]:
        c, s = conv["client"], conv["server"]
        ep = [(f"[{e['ip']}]" if ":" in e["ip"] else e["ip"]) + ("" if e["port"] is None else f":{e['port']}")
              for e in (c, s)]
        f = flows[(conv["proto"], ep[0], ep[1])]
        assert (f.packets_c2s, f.packets_s2c, f.bytes_c2s, f.bytes_s2c) == (
            conv["packets_c2s"], conv["packets_s2c"], conv["bytes_c2s"], conv["bytes_s2c"]), f.key
        if f.tcp is not None:
            assert f.tcp.retransmissions == conv["retransmissions"], f.key
            assert f.tcp.syn and f.tcp.handshake == (conv["packets_c2s"] >= 2 and conv["packets_s2c"] >= 1)
        tunnels = {(e.type, e.outer_src, e.outer_dst) for e in f.encapsulations}
        if conv["tunnel"]:
            a, b = conv["outer"]
            assert (conv["tunnel"], a, b) in tunnels, f.key
        else:
            assert not tunnels, f.key
