"""Bundles: captures recognised as capture.py recognises them (compressed ones too), cut tarballs,
and ``is_bundle_dir`` as the one answer to "is this directory a node bundle?"."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import random
import re
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from analyzer.errors import InputError
from analyzer.inputs.bundle import find_bundles, is_bundle_dir, load_bundle
from analyzer.inputs.capture import read_capture
from analyzer.pipeline.explain import explain_inputs

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

IPTABLES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 8472 -j ACCEPT
COMMIT
"""
ROUTES = "default via 10.0.0.1 dev eth0\n10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1\n"


def pcap(magic: int = 0xA1B2C3D4, record: int = 16, frames: int = 1) -> bytes:
    """``frames`` records of 14 bytes each (30 with the header), of incompressible content."""
    rnd = random.Random(frames)
    recs = b"".join(struct.pack("<IIII", 1, 0, 14, 14) + bytes(record - 16) + rnd.randbytes(14)
                    for _ in range(frames))
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1) + recs


def test_modified_pcap_is_a_capture_as_for_read_capture(tmp_path: Path) -> None:
    node = tmp_path / "n1"
    node.mkdir()
    (node / "ip-route").write_text(ROUTES)
    (node / "eth0.pcap").write_bytes(pcap(0xA1B2CD34, record=24))  # old Red Hat tcpdump
    snap = load_bundle(node)
    assert [(c.interface, c.display) for c in snap.captures] == [("eth0", f"{node}/eth0.pcap")]
    assert snap.warnings == ()


def _compress(path: Path, kind: str) -> Path:
    packed = path.with_name(path.name + {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}[kind])
    opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}[kind]
    with opener(packed, "wb") as out:
        out.write(path.read_bytes())
    path.unlink()
    return packed


def test_compressed_captures_are_picked_up_with_their_interface(tmp_path: Path) -> None:
    node = tmp_path / "n1"
    node.mkdir()
    (node / "ip-route").write_text(ROUTES)
    for name, kind in (("eth0.pcap", "gzip"), ("cni0.pcap", "bzip2"), ("flannel.1.pcap", "xz"),
                       ("any.pcap", "gzip"), ("dump", "gzip")):
        (node / name).write_bytes(pcap())
        _compress(node / name, kind)
    (node / "notes.gz").write_bytes(gzip.compress(b"not a capture\n"))
    snap = load_bundle(node)
    got = {Path(c.path).name: c.interface for c in snap.captures}
    assert got == {"eth0.pcap.gz": "eth0", "cni0.pcap.bz2": "cni0", "flannel.1.pcap.xz": "flannel.1",
                   "any.pcap.gz": "any", "dump.gz": None}
    assert [c.display for c in snap.captures][0] == f"{node}/any.pcap.gz"
    assert snap.warnings == (
        f"{node}/dump.gz: capture without an interface in its name (use <iface>.pcap)",
        f"{node}/notes.gz: binary file that is neither a capture nor a dump; ignored",
    )


def _normalised(doc: dict, root: Path) -> str:
    doc = {k: v for k, v in doc.items() if k not in ("generated_at", "generated")}
    text = json.dumps(doc, sort_keys=True).replace(str(root), "ROOT")
    return re.sub(r"\.pcap(?:\.gz|\.bz2|\.xz)", ".pcap", text)


def test_explain_reads_a_bundle_of_compressed_captures_as_the_plain_one(tmp_path: Path) -> None:
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    shutil.copytree(SAMPLES / "cross-node", plain, ignore=shutil.ignore_patterns("*.md", "scenario.json"))
    shutil.copytree(plain, packed)
    kinds = iter(("gzip", "bzip2", "xz") * 10)
    for capture in sorted(packed.glob("*/*.pcap")):
        _compress(capture, next(kinds))
    assert not list(packed.glob("*/*.pcap"))
    docs = [explain_inputs([root], generated_at="2026-01-01T00:00:00Z") for root in (plain, packed)]
    assert docs[0]["flows"] and docs[0]["flows"][0]["status"] == "delivered"
    assert _normalised(docs[1], packed) == _normalised(docs[0], plain)


def _tarball(tmp_path: Path, members: list[tuple[str, bytes]]) -> tuple[bytes, dict[str, tarfile.TarInfo]]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        infos = {m.name: m for m in tar.getmembers()}
    return buf.getvalue(), infos


MEMBERS = [("n1/ip-route", ROUTES.encode()), ("n1/eth0.pcap", pcap(frames=2000)),
           ("n1/iptables-save", IPTABLES.encode()), ("n1/node", b"worker-1\n")]


def test_cut_tarball_keeps_the_files_before_the_cut(tmp_path: Path) -> None:
    data, infos = _tarball(tmp_path, MEMBERS)
    tarball = tmp_path / "n1-k8s-trace.tar"
    tarball.write_bytes(data)
    snap = load_bundle(tarball)  # whole: no warning
    assert snap.name == "worker-1" and snap.warnings == () and snap.ruleset is not None

    # cut inside the text dump: the files before it are read, the cut one is left out
    ipt = infos["n1/iptables-save"]
    tarball.write_bytes(data[: ipt.offset_data + 100])
    snap = load_bundle(tarball)
    assert snap.warnings == (
        f"{tarball}: the tarball is cut off or damaged inside n1/iptables-save, 0 of its {ipt.size} bytes read "
        "(unexpected end of data); the 2 files before it are read, n1/iptables-save is left out",)
    assert snap.ruleset is None and "iptables-save" not in snap.files
    assert len(snap.routes) == 2 and snap.name == "n1"
    assert [c.interface for c in snap.captures] == ["eth0"]
    assert len(list(read_capture(snap.captures[0].path))) == 2000

    # cut inside the capture: the frames that arrived are read, and the reader says where it ends
    cap = infos["n1/eth0.pcap"]
    tarball.write_bytes(data[: cap.offset_data + 24 + 1500 * 30 + 12])
    snap = load_bundle(tarball)
    assert len(snap.warnings) == 1, snap.warnings
    got = re.fullmatch(rf"{tarball}: the tarball is cut off or damaged inside n1/eth0\.pcap, (\d+) of its "
                       rf"{cap.size} bytes read \(unexpected end of data\); the 1 file before it is read, and this "
                       r"capture up to the cut", snap.warnings[0])
    assert got is not None, snap.warnings[0]
    arrived = int(got[1])
    assert 24 + 1000 * 30 < arrived <= 24 + 1500 * 30 + 12
    assert Path(snap.captures[0].path).stat().st_size == arrived
    notes: list[str] = []
    complete = (arrived - 24) // 30
    assert len(list(read_capture(snap.captures[0].path, warn=notes.append))) == complete
    assert notes == [] if arrived == 24 + complete * 30 else notes[0].split(": ")[1] == f"packet #{complete + 1}"

    # cut inside a header, or exactly after a file: the end-of-archive blocks are missing
    for cut in (cap.offset + 100, cap.offset):
        tarball.write_bytes(data[:cut])
        snap = load_bundle(tarball)
        assert snap.warnings == (f"{tarball}: the tarball is cut off or damaged after its 1 complete file "
                                 "(it ends without the end-of-archive blocks); they are read",)
        assert snap.captures == () and len(snap.routes) == 2
    last = infos["n1/node"]
    tarball.write_bytes(data[: last.offset_data + 512])
    assert load_bundle(tarball).warnings[0].endswith("after its 4 complete files "
                                                     "(it ends without the end-of-archive blocks); they are read")
    tarball.write_bytes(data[: last.offset_data + 1024])  # one zero block is enough
    assert load_bundle(tarball).warnings == ()

    # nothing readable before the cut: the tarball is unusable
    tarball.write_bytes(data[: infos["n1/ip-route"].offset_data + 10])
    with pytest.raises(InputError, match="cannot read the bundle tarball"):
        load_bundle(tarball)


@pytest.mark.parametrize("mode", ["gz", "xz"])
def test_cut_compressed_tarball(tmp_path: Path, mode: str) -> None:
    data, _ = _tarball(tmp_path, MEMBERS)
    packed = gzip.compress(data) if mode == "gz" else lzma.compress(data)
    tarball = tmp_path / f"n1.tar.{mode}"
    tarball.write_bytes(packed[: len(packed) * 2 // 3])
    snap = load_bundle(tarball)
    assert len(snap.warnings) == 1
    assert snap.warnings[0].startswith(f"{tarball}: the tarball is cut off or damaged inside n1/eth0.pcap, ")
    assert len(snap.routes) == 2 and snap.ruleset is None
    frames = list(read_capture(snap.captures[0].path, warn=lambda _m: None))
    assert 100 < len(frames) < 2000


@pytest.mark.skipif(shutil.which("tar") is None, reason="the tar command is not installed")
@pytest.mark.parametrize("flag,suffix", [("z", ".tar.gz"), ("J", ".tar.xz"), ("j", ".tar.bz2"), ("", ".tar")])
def test_tar_command_tarballs_read_whole(tmp_path: Path, flag: str, suffix: str) -> None:
    node = tmp_path / "worker-2"
    node.mkdir()
    for name, data in MEMBERS:
        (node / name.split("/")[1]).write_bytes(data)
    tarball = tmp_path / f"worker-2-k8s-trace{suffix}"
    subprocess.run(["tar", f"c{flag}f", str(tarball), "-C", str(tmp_path), "worker-2"], check=True)
    snap = load_bundle(tarball)
    assert snap.warnings == () and snap.name == "worker-1" and snap.ruleset is not None
    assert len(list(read_capture(snap.captures[0].path))) == 2000
    data = tarball.read_bytes()
    tarball.write_bytes(data[: len(data) // 2])
    if flag == "j":  # bzip2 packs 900 kB blocks: half of this one block gives nothing
        with pytest.raises(InputError, match="cannot read the bundle tarball"):
            load_bundle(tarball)
        return
    cut = load_bundle(tarball)
    assert len(cut.warnings) == 1
    assert cut.warnings[0].startswith(f"{tarball}: the tarball is cut off or damaged inside worker-2/eth0.pcap, ")
    assert 0 < len(list(read_capture(cut.captures[0].path, warn=lambda _m: None))) < 2000


KUBECTL = json.dumps({"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
     "spec": {"nodeName": "n1"}, "status": {"podIP": "10.244.1.5"}}]})

DIRS: dict[str, tuple[dict[str, bytes], bool]] = {
    "canonical-name": ({"iptables-save": b"whatever it holds\n"}, True),
    "renamed-dump": ({"routes.txt": ROUTES.encode()}, True),
    "ip-j-json": ({"r.json": b'[{"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"}]'}, True),
    "capture-only": ({"eth0.pcap": pcap()}, True),
    "compressed-capture-only": ({"eth0.pcap.gz": gzip.compress(pcap())}, True),
    "capture-by-magic": ({"trace.bin": pcap()}, True),
    "capture-by-name": ({"eth0.pcapng": b"not yet written"}, True),  # the loader reports it
    "kubectl-only": ({"kubectl.json": KUBECTL.encode(), "cluster.json": KUBECTL.encode()}, False),
    "bookkeeping": ({"README.md": b"# cross-node\n\nwhat this shows\n", "missing": b"conntrack: not found\n",
                     "collect.log": b"started\n", "scenario.json": b'{"schema": "k8s-trace.lab-scenario/1"}'},
                    False),
    "hidden": ({".ip-route": ROUTES.encode(), ".eth0.pcap": pcap()}, False),
    "gzip-not-capture": ({"notes.gz": gzip.compress(b"default via 10.0.0.1 dev eth0\n")}, False),
    "empty": ({}, False),
}


@pytest.mark.parametrize("name", sorted(DIRS))
def test_is_bundle_dir(tmp_path: Path, name: str) -> None:
    files, expected = DIRS[name]
    root = tmp_path / name
    root.mkdir()
    for file, data in files.items():
        (root / file).write_bytes(data)
    assert is_bundle_dir(root) is expected
    wrapped = tmp_path / "unpacked"
    wrapped.mkdir()
    root.rename(wrapped / name)  # `tar xzf` of a tarball made with `tar czf x.tgz node/`
    assert is_bundle_dir(wrapped) is expected
    if expected and name != "capture-by-name":
        load_bundle(wrapped)  # what is_bundle_dir accepts, the loader reads


def test_is_bundle_dir_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "ip-route").write_text(ROUTES)
    assert is_bundle_dir(tmp_path / "ip-route") is False
    assert is_bundle_dir(tmp_path / "absent") is False


def test_find_bundles_with_cluster_files_beside_the_nodes(tmp_path: Path) -> None:
    shutil.copytree(SAMPLES / "service-remote", tmp_path / "set")
    root = tmp_path / "set"
    shutil.move(root / "node1" / "kubectl.json", root / "kubectl.json")  # cluster-wide, beside the nodes
    (root / "node2" / "eth0.pcap").rename(root / "node2" / "eth0.pcap.gz")  # (not really compressed)
    (root / "node3").mkdir()
    (root / "node3" / "eth0.pcap.gz").write_bytes(gzip.compress(pcap()))
    assert not is_bundle_dir(root)
    assert find_bundles(root) == (root / "node1", root / "node2", root / "node3")
    assert [is_bundle_dir(d) for d in find_bundles(root)] == [True, True, True]
