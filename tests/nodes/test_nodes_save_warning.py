"""The bundle's iptables-save command keeps iptables-nft's stderr warning that iptables-legacy tables
are present (rules the kernel runs that the dump cannot show), run for real in a namespace."""

from __future__ import annotations

import os
import subprocess

import pytest

from analyzer.inputs.bundle import BUNDLE_COMMANDS
from analyzer.inputs.iptables_save import parse_iptables_save

COMMAND = dict(BUNDLE_COMMANDS)["iptables-save"]
LEGACY = dict(BUNDLE_COMMANDS)["iptables-legacy-save"]


@pytest.fixture
def ns(netns: None):  # noqa: ANN201
    name = f"k8st-savewarn-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _run(ns: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=False)


def test_the_legacy_warning_lands_in_the_dump(ns: str) -> None:
    if subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.find("nf_tables") < 0:
        pytest.skip("the host's iptables is not iptables-nft")
    assert _run(ns, "iptables", "-A", "FORWARD", "-s", "10.244.0.0/16", "-j", "ACCEPT").returncode == 0
    plain = _run(ns, "sh", "-c", COMMAND)
    assert plain.returncode == 0, plain.stderr
    assert "Warning" not in plain.stdout
    assert _run(ns, "iptables-legacy", "-P", "FORWARD", "DROP").returncode == 0
    done = _run(ns, "sh", "-c", COMMAND)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("# Warning: iptables-legacy tables present, use iptables-legacy-save to see them")
    rs = parse_iptables_save(done.stdout, "iptables-save")
    assert rs.backend == "nf_tables" and any("iptables-legacy tables present" in n for n in rs.notes), rs.notes
    assert rs.chain("filter", "FORWARD").rules, "the dump itself is whole"


def test_a_failing_save_fails() -> None:
    done = subprocess.run(["/bin/sh", "-c", COMMAND], capture_output=True, text=True, check=False,
                          env={"PATH": "/nonexistent"})
    assert done.returncode != 0 and done.stdout == ""


def test_the_legacy_tables_are_collected_beside_iptables_nft(ns: str) -> None:
    if subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.find("nf_tables") < 0:
        pytest.skip("the host's iptables is not iptables-nft")
    none = _run(ns, "sh", "-c", LEGACY)
    assert none.returncode == 0 and none.stdout == "", none  # no legacy tables: nothing (the file is dropped)
    assert _run(ns, "iptables-legacy", "-P", "FORWARD", "DROP").returncode == 0
    done = _run(ns, "sh", "-c", LEGACY)
    assert done.returncode == 0, done.stderr
    rs = parse_iptables_save(done.stdout, "iptables-legacy-save")
    assert rs.chain("filter", "FORWARD").policy == "DROP"


def test_no_legacy_tool_is_not_a_failure() -> None:
    done = subprocess.run(["/bin/sh", "-c", LEGACY], capture_output=True, text=True, check=False,
                          env={"PATH": "/nonexistent"})
    assert done.returncode == 0 and done.stdout == ""
