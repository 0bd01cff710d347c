"""The CLI boundary: help, version, usage errors and the one-line error contract."""

from __future__ import annotations

import subprocess
import sys

from analyzer import __version__
from analyzer.cli import COMMANDS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command() -> None:
    r = run("--help")
    assert r.returncode == 0, r.stderr
    for name in COMMANDS:
        assert name in r.stdout


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0
    assert __version__ in r.stdout


def test_unknown_command_is_a_usage_error() -> None:
    r = run("frobnicate")
    assert r.returncode == 2
    assert "No such command" in r.stderr
    assert "Traceback" not in r.stderr


def test_every_command_has_help() -> None:
    for name in COMMANDS:
        r = run(name, "--help")
        assert r.returncode == 0, f"{name}: {r.stderr}"
        assert "Usage:" in r.stdout


def test_missing_input_file_is_one_line_and_no_traceback(tmp_path) -> None:
    missing = tmp_path / "nope.pcap"
    for name in ("decode", "flows", "explain"):
        r = run(name, str(missing))
        assert r.returncode in (2, 3), f"{name}: {r.returncode} {r.stderr}"
        assert "Traceback" not in r.stderr
        assert "nope.pcap" in r.stderr
