"""A compressed collect tarball is read without leaving its file open (the decompressors do not
close the file they are given); a bundle's capture names give their interface."""

from __future__ import annotations

import gc
import io
import tarfile
import warnings
from pathlib import Path

import pytest

from analyzer.inputs.bundle import BUNDLE_COMMANDS, capture_interface, load_bundle
from analyzer.inputs.capture import interface_from_name

ROUTES = b"default via 10.0.0.1 dev eth0\n10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1\n"


@pytest.mark.parametrize("mode", ["gz", "bz2", "xz", ""])
def test_tarball_file_is_closed(tmp_path: Path, mode: str) -> None:
    tarball = tmp_path / f"n1.tar{'.' + mode if mode else ''}"
    with tarfile.open(tarball, f"w:{mode}") as tar:
        info = tarfile.TarInfo("n1/ip-route")
        info.size = len(ROUTES)
        tar.addfile(info, io.BytesIO(ROUTES))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        snap = load_bundle(tarball)
        gc.collect()
    assert snap.name == "n1" and len(snap.routes) == 2 and snap.warnings == ()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


@pytest.mark.parametrize("name,iface", [
    ("cni0.pcap", "cni0"), ("flannel.1.pcapng", "flannel.1"), ("any.pcap", "any"), ("eth0.pcap.gz", "eth0"),
    ("uplink.cap.xz", "uplink"), ("a.pcapng.bz2", "a"), ("x.pcap.pcap", "x.pcap"), (".pcap", None),
    (".pcap.gz", None), ("notes.gz", None), ("eth0.pcap.zst", None), ("pcap", None), ("eth0.pcapng2", None),
])
def test_capture_interface_in_a_bundle(name: str, iface: str | None) -> None:
    assert capture_interface(name) == iface


@pytest.mark.parametrize("dump", sorted({name for name, _ in BUNDLE_COMMANDS} - {"date", "uname"}))
def test_any_node_dump_makes_a_capture_name_an_interface(tmp_path: Path, dump: str) -> None:
    """A capture beside any of collect's node dumps is named after its interface, whatever the name."""
    (tmp_path / dump).write_text("x\n")
    assert interface_from_name(tmp_path / "uplink.pcap") == "uplink"
    assert interface_from_name(tmp_path.parent / "uplink.pcap") is None
