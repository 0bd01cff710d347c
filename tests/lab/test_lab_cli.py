"""`k8s-trace lab` through its command line: list, usage errors, up/exec/down, and Ctrl-C/SIGTERM mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.lab.netns import NETNS_ETC, existing_namespaces, marked_processes
from analyzer.lab.scenarios import SCENARIOS

CLI = [sys.executable, "-c", "from analyzer.cli import main; main()"]


def k8s_trace(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)


def _ours(tag: str) -> tuple[set[str], set[str]]:
    prefix = f"k8sl-{tag}-"
    etc = {p.name for p in NETNS_ETC.iterdir() if p.name.startswith(prefix)} if NETNS_ETC.is_dir() else set()
    return {n for n in existing_namespaces() if n.startswith(prefix)}, etc


def _down(tag: str) -> subprocess.CompletedProcess:
    """`lab down --tag TAG`; whatever it says, nothing of the tag is left for the next test."""
    from analyzer.lab.state import lab_down, state_path

    try:
        done = k8s_trace("lab", "down", "--tag", tag, timeout=180)
    except subprocess.TimeoutExpired as exc:
        done = subprocess.CompletedProcess(exc.cmd, 124, "", f"lab down timed out: {exc}")
    if _ours(tag) != (set(), set()) or state_path(tag).exists():
        lab_down(tag, force=True)
    return done


def _procs(tag: str) -> list[tuple[int, str]]:
    return marked_processes(f"k8sl-{tag}-")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_list_names_every_scenario_with_its_expected_outcome() -> None:
    done = k8s_trace("lab", "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [sc.name for sc in SCENARIOS]
    blocked = next(line for line in lines if line.startswith("vxlan-blocked "))
    assert "timeout (OVERLAY_PORT_BLOCKED)" in blocked
    doc = json.loads(k8s_trace("lab", "list", "--json").stdout)
    assert {d["name"] for d in doc} == {sc.name for sc in SCENARIOS}


def test_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    done = k8s_trace("lab", "run", "nope", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "unknown scenario 'nope'" in done.stderr and "cross-node" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--pod-cidr", "10.244.0.0/24"], "too small"),
    (["--pod-cidr", "192.168.56.0/22"], "overlaps"),
    (["--service-cidr", "banana"], "service-cidr"),
    (["--tag", "a b"], "--tag"),
])
def test_bad_parameters_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    done = k8s_trace("lab", "run", "cross-node", "--out", str(tmp_path / "o"), *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_refuses_a_non_empty_out_dir(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    done = k8s_trace("lab", "run", "cross-node", "--out", str(tmp_path))
    assert done.returncode == 2 and "not empty" in done.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["check", "reports"])
def test_a_damaged_scenario_json_is_an_input_error(tmp_path: Path, command: str) -> None:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "scenario.json").write_text("{not json")
    args = [str(tmp_path / "rec")] if command == "check" else ["--samples", str(tmp_path), "--out", str(tmp_path / "r")]
    done = k8s_trace("lab", command, *args)
    assert done.returncode == 3, done.stderr
    assert "scenario.json: not a lab recording" in done.stderr and "Traceback" not in done.stderr


def test_down_without_a_lab_says_so() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab down checks for root first")
    done = k8s_trace("lab", "down", "--tag", f"none{os.getpid()}")
    assert done.returncode == 3 and "no lab is up" in done.stderr


@pytest.mark.netns
def test_up_exec_down(netns: None) -> None:
    tag = f"u{os.getpid() % 100000}"
    try:
        up = k8s_trace("lab", "up", "service-remote", "--tag", tag, timeout=180)
        assert up.returncode == 0, up.stderr
        assert f"k8sl-{tag}-node1" in up.stdout
        assert len(_ours(tag)[0]) == 7
        assert [cmd for _pid, cmd in _procs(tag) if "http-server" in cmd]  # web outlived `lab up`
        # a real request from the client pod to the ClusterIP, DNATed to web on node2
        from analyzer.lab.run import AGENTS

        got = k8s_trace("lab", "exec", "--tag", tag, "client", "--", sys.executable, AGENTS, "http",
                        "10.96.0.100", "80")
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout).get("served_by") == "web", got.stdout
        env = k8s_trace("lab", "exec", "--tag", tag, "node1", "--", "sh", "-c", 'cat "$K8S_TRACE_SUBNET_ENV"')
        assert "FLANNEL_SUBNET=10.244.1.1/24" in env.stdout
        missing = k8s_trace("lab", "exec", "--tag", tag, "nobody", "--", "true")
        assert missing.returncode == 3 and "no lab object 'nobody'" in missing.stderr
        again = k8s_trace("lab", "up", "cross-node", "--tag", tag)
        assert again.returncode == 3 and "already up" in again.stderr
    finally:
        down = _down(tag)
    assert down.returncode == 0, down.stderr
    assert "removed 7 namespaces" in down.stdout
    assert _ours(tag) == (set(), set())
    assert _procs(tag) == []


@pytest.mark.netns
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_tears_down(tmp_path: Path, netns: None, sig: signal.Signals) -> None:
    tag = f"s{sig.value}{os.getpid() % 100000}"
    # missing-fdb: the client waits 2 s for a SYN that never leaves node1, time enough to interrupt it
    proc = subprocess.Popen([*CLI, "lab", "run", "missing-fdb", "--tag", tag, "--out", str(tmp_path / "o")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "client: http" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert "client: http" in seen, seen
        assert len(_ours(tag)[0]) == 7
        assert any("tcpdump" in cmd for _pid, cmd in _procs(tag))
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert _ours(tag) == (set(), set())
    assert _procs(tag) == []
    assert not (tmp_path / "o" / "scenario.json").exists()


@pytest.mark.netns
def test_down_force_sweeps_leftovers_of_a_killed_run(tmp_path: Path, netns: None) -> None:
    """A run killed with SIGKILL leaves namespaces and processes behind but no state file; `lab down
    --force` finds them by their marker."""
    from analyzer.lab.state import state_path

    tag = f"k{os.getpid() % 100000}"
    try:
        up = k8s_trace("lab", "up", "cross-node", "--tag", tag, timeout=180)
        assert up.returncode == 0, up.stderr
        # what SIGKILL leaves: everything `lab up` built, but nobody wrote down (or will remove) the state
        state_path(tag).unlink()
        made = _ours(tag)[0]
        servers = [pid for pid, cmd in _procs(tag) if "http-server" in cmd]
        assert len(made) >= 2 and servers, (made, _procs(tag))
        busy = k8s_trace("lab", "run", "cross-node", "--tag", tag, "--out", str(tmp_path / "o"))
        assert busy.returncode == 3 and "already exists" in busy.stderr and "--force" in busy.stderr
        assert _ours(tag)[0] == made  # the refused run removed nothing that was not its own
        plain = k8s_trace("lab", "down", "--tag", tag)
        assert plain.returncode == 3 and "no lab is up" in plain.stderr
        forced = k8s_trace("lab", "down", "--tag", tag, "--force")
        assert forced.returncode == 0, forced.stderr
        assert f"removed {len(made)} namespaces" in forced.stdout
        assert _ours(tag) == (set(), set())
        deadline = time.monotonic() + 5
        while _procs(tag) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _procs(tag) == []
        assert not [pid for pid in servers if _alive(pid)]  # killed (a zombie waiting for init is dead)
    finally:
        _down(tag)


@pytest.mark.netns
def test_collect_script_inside_a_lab_node_gives_the_lab_s_bundle(tmp_path: Path, netns: None) -> None:
    """`k8s-trace collect`'s script run in a lab node: the same node, FDB, routes and rules as the lab's dump."""
    from analyzer.inputs.bundle import load_bundle

    tag = f"c{os.getpid() % 100000}"
    script = tmp_path / "collect.sh"
    made = k8s_trace("collect", "--seconds", "1")
    assert made.returncode == 0, made.stderr
    script.write_text(made.stdout)
    try:
        up = k8s_trace("lab", "up", "cross-node", "--tag", tag, timeout=180)
        assert up.returncode == 0, up.stderr
        assert k8s_trace("lab", "exec", "--tag", tag, "web", "--", "hostname").stdout.strip() == "web"
        ran = k8s_trace("lab", "exec", "--tag", tag, "node1", "--", "env", f"K8S_TRACE_OUTPUT={tmp_path}",
                        "sh", str(script), timeout=120)
        assert ran.returncode == 0, ran.stderr
    finally:
        down = _down(tag)
    assert down.returncode == 0, down.stderr
    (tarball,) = tmp_path.glob("*.tar.gz")
    assert tarball.name == "node1-k8s-trace.tar.gz"
    snap = load_bundle(tarball)
    assert snap.name == "node1"
    assert snap.subnet_env is not None and str(snap.subnet_env.subnet) == "10.244.1.1/24"
    assert {(str(e.mac), str(e.dst)) for e in snap.fdb if e.dev == "flannel.1"} == {("0e:6c:61:62:00:02", "192.168.56.12")}
    assert any(str(r.dst) == "10.244.2.0/24" and r.dev == "flannel.1" for r in snap.routes)
    assert snap.ruleset is not None
    assert {c.interface for c in snap.captures} >= {"eth0", "cni0", "flannel.1", "any"}
