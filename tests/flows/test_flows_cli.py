"""``k8s-trace flows`` as a user runs it: the table, the JSON document, bad input, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from builders import ether, ipv4, tcp, udp, vxlan, vxlan_tcp_frame, write_pcap

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", "flows", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def _vx(flags: str, seq: int, ack: int, *, back: bool = False) -> bytes:
    c, sv, n1, n2 = "10.244.1.5", "10.244.2.7", "192.168.0.11", "192.168.0.12"
    seg = tcp(sport=80 if back else 40000, dport=40000 if back else 80, flags=flags, seq=seq, ack=ack)
    inner = ether(ipv4(seg, src=sv if back else c, dst=c if back else sv))
    return ether(ipv4(udp(vxlan(inner, vni=1), sport=51000, dport=8472, checksum=0),
                      src=n2 if back else n1, dst=n1 if back else n2))


def _capture(tmp_path: Path, name: str = "node1.pcap") -> Path:
    frames = [
        _vx("S", 100, 0),
        _vx("SA", 700, 101, back=True),
        _vx("A", 101, 701),
        ether(ipv4(udp(b"q" * 30, sport=33333, dport=53), src="10.244.1.5", dst="10.96.0.10")),
    ]
    return write_pcap(tmp_path / name, frames)


def test_text_table(tmp_path: Path) -> None:
    r = run(str(_capture(tmp_path)))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["#", "proto", "client", "server"]
    tcp_row = next(line for line in lines if line.startswith("1 "))
    assert "10.244.1.5:40000" in tcp_row and "10.244.2.7:80" in tcp_row
    assert "S SA H" in tcp_row
    assert "vxlan:1/8472 192.168.0.11<>192.168.0.12" in tcp_row
    udp_row = next(line for line in lines if line.startswith("2 "))
    assert udp_row.split()[1:4] == ["udp", "10.244.1.5:33333", "10.96.0.10:53"]
    assert lines[-1].startswith("2 flows in 4 frames of ")
    assert r.stderr == ""  # no progress output when stderr is not a terminal


def test_json_document(tmp_path: Path) -> None:
    path = _capture(tmp_path)
    r = run(str(path), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "k8s-trace.flows/1"
    assert doc["inputs"] == [{"path": str(path), "frames": 4, "bytes": path.stat().st_size, "linktype": 1,
                              "fast_frames": 4, "fallback_frames": 0}]
    assert doc["totals"] == {"frames": 4, "flows": 2, "undecodable_frames": 0, "non_ip_frames": 0}
    assert doc["warnings"] == []
    tcp_flow, udp_flow = doc["flows"]
    assert tcp_flow["id"] == 1 and udp_flow["id"] == 2
    assert tcp_flow["key"] == "tcp 10.244.1.5:40000 > 10.244.2.7:80"
    assert tcp_flow["client"] == {"ip": "10.244.1.5", "port": 40000}
    assert tcp_flow["server"] == {"ip": "10.244.2.7", "port": 80}
    assert (tcp_flow["packets_c2s"], tcp_flow["packets_s2c"], tcp_flow["packets"]) == (2, 1, 3)
    assert tcp_flow["tcp"] == {"syn": True, "syn_ack": True, "handshake": True, "fin": False, "rst": False,
                               "fin_from": [], "rst_from": [], "retransmissions": 0}
    assert {(e["type"], e["vni"], e["port"], e["outer_src"], e["outer_dst"]) for e in tcp_flow["encapsulation"]} == {
        ("vxlan", 1, 8472, "192.168.0.11", "192.168.0.12"), ("vxlan", 1, 8472, "192.168.0.12", "192.168.0.11")}
    assert tcp_flow["per_file"] == [{"file": str(path), "packets": 3}]
    assert udp_flow["tcp"] is None and udp_flow["encapsulation"] == []
    assert tcp_flow["first_seen"] <= tcp_flow["last_seen"]


def test_several_files_and_extra_vxlan_port(tmp_path: Path) -> None:
    a = _capture(tmp_path, "a.pcap")
    inner = ether(ipv4(tcp(sport=1234, dport=9000, flags="S"), src="10.244.3.3", dst="10.244.4.4"))
    b = write_pcap(tmp_path / "b.pcap", [ether(ipv4(udp(vxlan(inner, vni=5), dport=9999, checksum=0),
                                                    src="192.168.0.13", dst="192.168.0.14"))])
    doc = json.loads(run(str(a), str(b), "--format", "json", "--vxlan-port", "9999").stdout)
    assert [i["path"] for i in doc["inputs"]] == [str(a), str(b)]
    keys = {f["key"]: f for f in doc["flows"]}
    assert "tcp 10.244.3.3:1234 > 10.244.4.4:9000" in keys
    assert keys["tcp 10.244.3.3:1234 > 10.244.4.4:9000"]["encapsulation"][0]["port"] == 9999
    plain = json.loads(run(str(b), "--format", "json").stdout)
    assert [f["key"] for f in plain["flows"]] == ["udp 192.168.0.13:40000 > 192.168.0.14:9999"]


def test_damaged_capture_warns_and_continues(tmp_path: Path) -> None:
    path = _capture(tmp_path, "cut.pcap")
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the last record is cut off
    r = run(str(path), "--format", "json")
    assert r.returncode == 0
    assert "Traceback" not in r.stderr
    warn = [line for line in r.stderr.splitlines() if line]
    assert len(warn) == 1 and warn[0].startswith("k8s-trace: warning: ") and "cut.pcap: packet #4" in warn[0]
    doc = json.loads(r.stdout)
    assert doc["totals"]["frames"] == 3 and doc["warnings"] == [warn[0].removeprefix("k8s-trace: warning: ")]


def test_bad_packets_are_named_on_stderr(tmp_path: Path) -> None:
    frames = [vxlan_tcp_frame(), ether(b"\x45\x00\x00"), ether(b"\x45" + bytes(5))]
    path = write_pcap(tmp_path / "bad.pcap", frames)
    r = run(str(path))
    assert r.returncode == 0
    lines = r.stderr.splitlines()
    assert len(lines) == 2
    assert "bad.pcap: packet #2:" in lines[0] and "bad.pcap: packet #3:" in lines[1]
    assert "2 undecodable" in r.stdout


def test_not_a_capture_is_exit_3_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a capture\n")
    r = run(str(path))
    assert r.returncode == 3
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "notes.txt" in r.stderr


def test_unreadable_and_missing_files_are_exit_3(tmp_path: Path) -> None:
    r = run(str(tmp_path / "nope.pcap"))
    assert r.returncode == 3 and "nope.pcap" in r.stderr and "Traceback" not in r.stderr
    r = run(str(tmp_path))  # a directory
    assert r.returncode in (2, 3) and "Traceback" not in r.stderr


def test_empty_capture(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "empty.pcap", [])
    r = run(str(path))
    assert r.returncode == 0
    assert "no IP flows found" in r.stdout
    doc = json.loads(run(str(path), "--format", "json").stdout)
    assert doc["flows"] == [] and doc["totals"]["frames"] == 0
