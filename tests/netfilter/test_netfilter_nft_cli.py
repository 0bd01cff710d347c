"""`k8s-trace simulate` on kube-proxy's nftables mode from the command line: a bare `nft list ruleset`
file is a node, and a bundle with nft-ruleset but no iptables-save is simulated without a warning."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "service-nft"
CLI = [sys.executable, "-c", "from analyzer.cli import main; main()"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "simulate", *args], capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture
def sample() -> Path:
    if not SAMPLE.is_dir():
        pytest.skip("samples/service-nft is absent")
    return SAMPLE


def test_a_bare_nft_ruleset_file_is_a_node(sample: Path, tmp_path: Path) -> None:
    rules = tmp_path / "node1.nft"
    shutil.copy(sample / "node1" / "nft-ruleset", rules)
    done = _run(str(rules), "--src", "10.244.1.2", "--dst", "10.96.0.100:80", "--local-ip", "192.168.56.11")
    assert done.returncode == 0, done.stderr
    assert "entering node node1:" in done.stdout
    assert "DNAT destination 10.96.0.100:80 -> 10.244.2.2:8080" in done.stdout
    assert f"{rules}:" in done.stdout  # the evidence names the file and line


def test_a_bundle_without_iptables_save_is_simulated_from_nft(sample: Path, tmp_path: Path) -> None:
    node = tmp_path / "node1"
    shutil.copytree(sample / "node1", node, ignore=shutil.ignore_patterns("*.pcap", "iptables-save"))
    done = _run(str(node), "--src", "10.244.1.2", "--dst", "10.96.0.100:80")
    assert done.returncode == 0, done.stderr
    assert "not simulated" not in done.stderr
    assert "dnat -> 10.244.2.2:8080" in done.stdout


def test_a_bundle_with_neither_says_so(sample: Path, tmp_path: Path) -> None:
    node = tmp_path / "node1"
    shutil.copytree(sample / "node1", node, ignore=shutil.ignore_patterns("*.pcap", "iptables-save", "nft-ruleset"))
    done = _run(str(node), "--src", "10.244.1.2", "--dst", "10.96.0.100:80")
    assert "neither iptables-save nor nft-ruleset in this bundle" in done.stderr
