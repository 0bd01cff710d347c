"""``explain --annotate DIR``: every input capture again as pcapng, same frames and times, each
packet of an explained flow commented with its verdict; checked with tshark as the reader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from explaincheck import explain, sample


def _fields(tshark: str, path: Path, *fields: str) -> list[list[str]]:
    args = [tshark, "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_vxlan_blocked_captures_carry_the_verdict(tshark: str, tmp_path: Path) -> None:
    root = sample("vxlan-blocked")
    doc = explain(root / "node1", root / "node2", annotate_dir=tmp_path)
    written = {Path(a["path"]).name: a for a in doc["annotated"]}
    assert {"node1-eth0.pcapng", "node2-eth0.pcapng", "node1-any.pcapng"} <= set(written)
    fid = doc["flows"][0]["id"]
    for name, node in (("node2-eth0.pcapng", "node2"), ("node1-eth0.pcapng", "node1")):
        original = root / node / "eth0.pcap"
        before = _fields(tshark, original, "frame.number", "frame.time_epoch", "frame.len", "_ws.col.Info")
        after = _fields(tshark, tmp_path / name, "frame.number", "frame.time_epoch", "frame.len", "_ws.col.Info",
                        "frame.comment")
        assert [row[:4] for row in after] == before  # same frames, times, lengths, dissection
        commented = [row for row in after if row[4]]
        assert len(commented) == written[name]["commented"] > 0
        assert all(row[4].startswith(f"k8s-trace {fid} REJECTED: ") for row in commented)
        assert not any(row[4] for row in after if row[3].startswith(("Who has", "192.168.56.")))  # ARP
    icmp = [row for row in _fields(tshark, tmp_path / "node2-eth0.pcapng", "icmp.type", "frame.comment") if row[0]]
    assert icmp and all("ICMP 3/10 from 192.168.56.12 about this flow" in row[1] for row in icmp)


def test_translated_frames_say_so_and_interfaces_keep_their_names(tshark: str, tmp_path: Path) -> None:
    root = sample("service-remote")
    out = subprocess.run([sys.executable, "-m", "analyzer", "explain", str(root / "node1"), str(root / "node2"),
                          "--annotate", str(tmp_path), "-o", str(tmp_path / "r.txt")],
                         capture_output=True, text=True, check=True)
    assert "packets commented)" in out.stderr
    rows = _fields(tshark, tmp_path / "node2-eth0.pcapng", "frame.comment")
    assert any("[seen as 10.244.1.2:" in r[0] and "-> 10.244.2.2:8080: translated]" in r[0] for r in rows), rows
    # a pcapng input with several named interfaces keeps them
    names = _fields(tshark, tmp_path / "node1-cni0.pcapng", "frame.interface_name")
    assert {r[0] for r in names} == {"cni0"}
    # a -i any capture: each frame on its own interface, named from the bundle's ip-link
    names = {r[0] for r in _fields(tshark, tmp_path / "node1-any.pcapng", "frame.interface_name")}
    assert {"eth0", "cni0", "flannel.1"} <= names and "any" not in names, names


def test_cut_capture_is_annotated_up_to_the_cut(tshark: str, tmp_path: Path) -> None:
    data = (sample("cross-node") / "node1" / "eth0.pcap").read_bytes()
    cut = tmp_path / "eth0.pcap"
    cut.write_bytes(data[:1500])
    out = subprocess.run([sys.executable, "-m", "analyzer", "explain", str(cut), "--annotate", str(tmp_path / "a"),
                          "-o", str(tmp_path / "r.txt")], capture_output=True, text=True, check=True)
    warnings = [line for line in out.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "is cut off" in warnings[0]  # said once, not again by the annotation
    before = _fields(tshark, sample("cross-node") / "node1" / "eth0.pcap", "frame.number", "frame.time_epoch")
    after = _fields(tshark, tmp_path / "a" / "eth0.pcapng", "frame.number", "frame.time_epoch")
    assert after == before[: len(after)] and len(after) >= 10
