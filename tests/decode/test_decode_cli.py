"""``k8s-trace decode``: output formats, exit statuses and one-line messages for bad input."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

from builders import (
    arp,
    ether,
    ipv4,
    pcap_bytes,
    pcapng_bytes,
    sll2,
    udp,
    vxlan_tcp_frame,
    write_pcap,
)

from analyzer.inputs.capture import read_capture
from analyzer.inputs.decode import decode_frame

T0 = 1_700_000_000.0
FRAMES = [
    (T0, vxlan_tcp_frame(vni=1)),
    (T0 + 0.000123, vxlan_tcp_frame(vni=1, src="10.244.2.7", dst="10.244.1.5", sport=80, dport=40000, flags="SA",
                                     outer_src="192.168.0.12", outer_dst="192.168.0.11")),
    (T0 + 0.5, ether(arp(sender_ip="192.168.0.11", target_ip="192.168.0.1"))),
]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_text_lines_show_both_levels(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "eth0.pcap", FRAMES)
    r = run("decode", path)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.splitlines() == [
        "1 0.000000 eth0 192.168.0.11 -> 192.168.0.12 UDP 8472 VXLAN vni=1 | "
        "10.244.1.5:40000 -> 10.244.2.7:80 TCP [SYN] seq=0 win=64240 mss=1410 len=0",
        "2 0.000123 eth0 192.168.0.12 -> 192.168.0.11 UDP 8472 VXLAN vni=1 | "
        "10.244.2.7:80 -> 10.244.1.5:40000 TCP [SYN, ACK] seq=0 ack=0 win=64240 mss=1410 len=0",
        "3 0.500000 eth0 ARP who-has 192.168.0.1 tell 192.168.0.11",
    ]


def test_jsonl_is_the_contract(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "c.pcap", FRAMES)
    r = run("decode", path, "--format", "jsonl")
    assert r.returncode == 0 and r.stderr == ""
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    frames = list(read_capture(path))
    assert objs == [decode_frame(f.data, f.linktype).to_contract(f.number, f.ts, f.interface) for f in frames]
    required = {"frame", "ts", "interface", "layers", "ip", "l4", "tunnels", "notes"}
    assert all(required <= set(o) for o in objs)
    assert objs[0]["ts"] == T0 and objs[0]["interface"] is None
    assert objs[2]["l4"] is None and objs[2]["ip"] == [] and objs[2]["layers"] == ["eth", "arp"]


def test_vxlan_port_option_and_count(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "c.pcap", [vxlan_tcp_frame(port=4790)] * 3)
    plain = run("decode", path, "--format", "jsonl", "-c", "1")
    assert [json.loads(x)["tunnels"] for x in plain.stdout.splitlines()] == [[]]
    extra = run("decode", path, "--format", "jsonl", "--vxlan-port", "4790")
    assert [json.loads(x)["tunnels"] for x in extra.stdout.splitlines()] == [[{"type": "vxlan", "vni": 1}]] * 3
    bad = run("decode", path, "--vxlan-port", "0")
    assert bad.returncode == 2 and "not a UDP port" in bad.stderr and "Traceback" not in bad.stderr


def test_sll2_interface_index_and_direction(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "any.pcap", [sll2(ipv4(udp()), ifindex=5, pkttype=4)], linktype=276)
    r = run("decode", path)
    assert r.stdout.startswith("1 0.000000 if5 Out 10.0.0.1:40000 -> 10.0.0.2:53 UDP len=0")


def _assert_bad(r: subprocess.CompletedProcess[str], status: int, *needles: str) -> None:
    assert r.returncode == status, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


def test_not_a_capture(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("GET / HTTP/1.1\r\n")
    r = run("decode", p)
    _assert_bad(r, 3, f"k8s-trace: error: {p}: not a pcap or pcapng file (magic 0x47455420)")
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1


def test_cut_off_file_header(tmp_path: Path) -> None:
    p = tmp_path / "head.pcap"
    p.write_bytes(pcap_bytes(FRAMES)[:17])
    r = run("decode", p)
    _assert_bad(r, 3, f"k8s-trace: error: {p}: byte 17: file ends inside the 24-byte pcap file header")
    assert len(r.stderr.splitlines()) == 1 and r.stdout == ""


def test_cut_off_last_record_keeps_the_frames_before(tmp_path: Path) -> None:
    p = tmp_path / "cut.pcap"
    p.write_bytes(pcap_bytes(FRAMES)[:-9])
    r = run("decode", p)
    _assert_bad(r, 0, f"k8s-trace: warning: {p}: packet #3: record of")
    assert len(r.stdout.splitlines()) == 2 and len(r.stderr.splitlines()) == 1


def test_record_longer_than_snaplen_and_file(tmp_path: Path) -> None:
    raw = bytearray(pcap_bytes(FRAMES, snaplen=1500))
    second = 24 + 16 + len(FRAMES[0][1])
    struct.pack_into("<I", raw, second + 8, 300000)
    p = tmp_path / "snap.pcap"
    p.write_bytes(raw)
    r = run("decode", p)
    _assert_bad(r, 0, f"{p}: packet #2: record claims 300000 bytes, more than the snaplen 1500 (byte {second})")
    assert len(r.stdout.splitlines()) == 1
    raw = bytearray(pcap_bytes(FRAMES))
    struct.pack_into("<I", raw, second + 8, 3000)
    p.write_bytes(raw)
    r = run("decode", p)
    _assert_bad(r, 0, f"{p}: packet #2: record of 3000 bytes is cut off")


def test_unknown_link_type_is_warned_once_and_noted(tmp_path: Path) -> None:
    p = write_pcap(tmp_path / "usr.pcap", FRAMES[:1], linktype=162)
    r = run("decode", p)
    _assert_bad(r, 0, f"k8s-trace: warning: {p}: byte 20: link type 162 is not supported")
    assert len(r.stderr.splitlines()) == 1
    assert r.stdout.startswith("1 0.000000 - link type 162 !! link type 162 is not supported; frame left undecoded")


def test_damaged_pcapng_blocks(tmp_path: Path) -> None:
    raw = bytearray(pcapng_bytes([f for _t, f in FRAMES], interfaces=[(1, "eth0")]))
    # the second EPB: leading length != trailing length
    pos = 0
    blocks = []
    while pos < len(raw):
        n = struct.unpack_from("<I", raw, pos + 4)[0]
        blocks.append((pos, n))
        pos += n
    off, n = blocks[3]
    struct.pack_into("<I", raw, off + n - 4, 12)
    p = tmp_path / "dmg.pcapng"
    p.write_bytes(raw)
    r = run("decode", p, "--format", "jsonl")
    _assert_bad(r, 0, f"k8s-trace: warning: {p}: packet #2: damaged block (length {n} at the start, 12 at the end)")
    assert [json.loads(x)["frame"] for x in r.stdout.splitlines()] == [1, 3]
    assert [json.loads(x)["interface"] for x in r.stdout.splitlines()] == ["eth0", "eth0"]


def test_output_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    frame = bytes(vxlan_tcp_frame())
    p = tmp_path / "big.pcap"
    p.write_bytes(pcap_bytes([frame] * 20000))
    r = subprocess.run(f"'{sys.executable}' -m analyzer decode '{p}' | head -n 2", shell=True, capture_output=True,
                       text=True, timeout=120)
    assert len(r.stdout.splitlines()) == 2
    assert r.stderr == ""


IP_LINK = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
2: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000
    link/ether 02:42:c0:a8:38:0b brd ff:ff:ff:ff:ff:ff link-netnsid 0
4: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN mode DEFAULT group default
    link/ether 6e:2d:60:3d:3b:1d brd ff:ff:ff:ff:ff:ff
"""


def test_sll2_indexes_named_from_the_node_bundle(tmp_path: Path) -> None:
    node = tmp_path / "node1"
    node.mkdir()
    frames = [sll2(vxlan_tcp_frame()[14:], ifindex=2, pkttype=4), sll2(ipv4(udp()), ifindex=4),
              sll2(ipv4(udp()), ifindex=77)]
    cap = write_pcap(node / "any.pcap", frames, linktype=276)
    (node / "ip-link").write_text(IP_LINK)
    r = run("decode", cap, "--format", "jsonl")
    assert r.returncode == 0 and r.stderr == ""
    assert [json.loads(x)["interface"] for x in r.stdout.splitlines()] == ["eth0", "flannel.1", None]
    text = run("decode", cap).stdout.splitlines()
    assert [line.split()[2:4] for line in text] == [["eth0", "Out"], ["flannel.1", "In"], ["if77", "In"]]
    # the same capture elsewhere: unresolved unless --node names the bundle
    other = write_pcap(tmp_path / "any.pcap", frames, linktype=276)
    assert run("decode", other).stdout.split()[2] == "if2"
    assert run("decode", other, "--node", node).stdout.split()[2] == "eth0"


def test_filters_look_inside_tunnels(tmp_path: Path) -> None:
    frames = [
        vxlan_tcp_frame(vni=1, src="10.244.1.5", dst="10.244.2.7", dport=80),
        vxlan_tcp_frame(vni=2, src="10.244.1.6", dst="10.244.2.8", dport=443),
        ether(ipv4(udp(dport=53), src="10.244.1.5", dst="10.96.0.10")),
        ether(ipv4(udp(b"\x08\x00\x00", dport=8472, checksum=0), src="192.168.0.11", dst="192.168.0.12")),
    ]
    path = write_pcap(tmp_path / "c.pcap", [(T0 + i, f) for i, f in enumerate(frames)])

    def numbers(*args: str) -> list[int]:
        r = run("decode", path, *args)
        assert r.returncode == 0, r.stderr
        return [int(line.split()[0]) for line in r.stdout.splitlines()]

    assert numbers("--host", "10.244.1.5") == [1, 3]  # inner address of frame 1, plain frame 3
    assert numbers("--host", "192.168.0.12") == [1, 2, 4]  # outer address
    assert numbers("--port", "443") == [2]
    assert numbers("--port", "8472", "--vni", "2") == [2]
    assert numbers("--host", "10.244.1.5", "--port", "53") == [3]
    assert numbers("--with-notes") == [4]
    r = run("decode", path, "--port", "443")
    assert r.stdout.split()[1] == "1.000000"  # relative to the file's first frame
    bad = run("decode", path, "--host", "pod-a")
    assert bad.returncode == 2 and "not an IP address" in bad.stderr


def test_standard_input_plain_gzip_and_pcapng(tmp_path: Path) -> None:
    import gzip

    raw = pcap_bytes(FRAMES)
    expected = run("decode", write_pcap(tmp_path / "c.pcap", FRAMES), "--format", "jsonl").stdout
    for data in (raw, gzip.compress(raw)):
        r = subprocess.run([sys.executable, "-m", "analyzer", "decode", "-", "--format", "jsonl"], input=data,
                           capture_output=True, timeout=120)
        assert r.returncode == 0 and r.stderr == b""
        assert r.stdout.decode() == expected
    ng = pcapng_bytes([f for _t, f in FRAMES], interfaces=[(1, "eth3")])
    r = subprocess.run([sys.executable, "-m", "analyzer", "decode", "-"], input=ng[:-5], capture_output=True,
                       timeout=120)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    assert r.stdout.split()[2] == b"eth3"
    assert b"-: packet #3: block of" in r.stderr and len(r.stderr.splitlines()) == 1


def test_corpus_files_that_cannot_be_read(corpus_dir: Path) -> None:
    shb = corpus_dir / "PcapPlusPlus/crash-null-deref-pcapng-shb"
    _assert_bad(run("decode", shb), 3, f"k8s-trace: error: {shb}: not a pcap or pcapng file (magic 0x00000000)")
    epb = corpus_dir / "PcapPlusPlus/crash-pcapng-epb-unbounded-length"
    r = run("decode", epb)
    _assert_bad(r, 3, f"k8s-trace: error: {epb}: packet #1: claims 65536 captured bytes but its block holds 0")
    assert len(r.stderr.splitlines()) == 1
    cut = corpus_dir / "PcapPlusPlus/crash-81dba690a3f67ee41a41390a625db732fa1413a1"
    r = run("decode", cut, "--format", "jsonl")
    _assert_bad(r, 0, f"k8s-trace: warning: {cut}: packet #12: record of 19200 bytes is cut off")
    assert len(r.stdout.splitlines()) == 11 and len(r.stderr.splitlines()) == 1
    empty = run("decode", corpus_dir / "tcpdump/empty.pcapng")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "")
