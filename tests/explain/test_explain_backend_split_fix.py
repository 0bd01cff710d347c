"""IPTABLES_BACKEND_SPLIT's fix, run for real: its command that empties the other iptables backend
leaves no rule and no DROP policy there (the lab's iptables-split fault is a legacy FORWARD policy
DROP, which ``-F`` alone keeps), for either backend."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from analyzer.engines.explain import finding_text


@pytest.fixture
def ns(netns: None):  # noqa: ANN201
    name = f"k8st-rv-split-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _in(ns: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", command], capture_output=True, text=True,
                          check=False, timeout=60)


def _cleanup_command(cmd: str) -> str:
    params = {"node": "node2", "where": "node2 cni0", "shown": "nf_tables", "hidden": cmd, "tell": "# Warning",
              "save": f"{cmd}-save", "cmd": cmd, "outcome": "forwarded", "outcome_zh": "转发"}
    _, _, fix, fix_zh = finding_text("IPTABLES_BACKEND_SPLIT", params)
    found = [c for c in re.findall(r"`([^`]+)`", fix) if f"{cmd} -P" in c]
    assert len(found) == 1, fix
    assert found[0] in fix_zh, fix_zh  # the same command in both languages
    return found[0]


@pytest.mark.parametrize("cmd", ["iptables-legacy", "iptables-nft"])
def test_the_fix_empties_the_other_backend(ns: str, cmd: str) -> None:
    if shutil.which(cmd) is None:
        pytest.skip(f"{cmd} is not installed")
    setup = (f"{cmd} -P FORWARD DROP && {cmd} -P INPUT DROP && {cmd} -A FORWARD -s 10.244.0.0/16 -j ACCEPT && "
             f"{cmd} -t nat -N FOO && {cmd} -t nat -A POSTROUTING -j FOO && {cmd} -t mangle -A PREROUTING -j MARK "
             f"--set-mark 1 && {cmd} -N BAR")
    done = _in(ns, setup)
    assert done.returncode == 0, done.stderr
    assert ":FORWARD DROP" in _in(ns, f"{cmd}-save").stdout
    done = _in(ns, _cleanup_command(cmd))
    assert done.returncode == 0, done.stderr
    left = _in(ns, f"{cmd}-save").stdout
    assert " DROP " not in left and "-A " not in left and ":FOO" not in left and ":BAR" not in left, left
