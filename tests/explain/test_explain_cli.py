"""`k8s-trace explain` as a user runs it: formats, exit statuses, bad input, no traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from explaincheck import ROOT, copy_sample, sample


def k8s_trace(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _clean(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def test_json_to_stdout_is_the_contract_document() -> None:
    proc = k8s_trace("explain", str(sample("cross-node")), "--format", "json")
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "k8s-trace.explain/1"
    assert {"inputs", "nodes", "flows", "findings", "warnings"} <= set(doc)
    [flow] = doc["flows"]
    assert flow["status"] == "delivered"
    assert proc.stderr == ""  # no progress when stderr is not a terminal


def test_text_is_the_default_and_names_the_flow() -> None:
    proc = k8s_trace("explain", str(sample("vxlan-blocked")))
    _clean(proc)
    assert proc.returncode == 0
    assert "10.244.1.2" in proc.stdout and "10.244.2.2:8080" in proc.stdout
    assert "OVERLAY_PORT_BLOCKED" in proc.stdout
    zh = k8s_trace("explain", str(sample("vxlan-blocked")), "--lang", "zh")
    assert zh.returncode == 0 and zh.stdout != proc.stdout
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh.stdout)


@pytest.mark.parametrize(("suffix", "check"), [
    (".html", lambda text: text.lstrip().lower().startswith("<!doctype html")),
    (".json", lambda text: json.loads(text)["schema"] == "k8s-trace.explain/1"),
])
def test_output_file_format_follows_its_suffix(tmp_path: Path, suffix: str, check) -> None:  # noqa: ANN001
    out = tmp_path / f"report{suffix}"
    proc = k8s_trace("explain", str(sample("service-remote")), "-o", str(out))
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert check(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("name", "status"), [
    ("cross-node", 0),
    ("vxlan-blocked", 4),  # rejected
    ("missing-fdb", 4),  # dropped
    ("no-endpoints", 4),  # rejected
    ("external-no-masq", 5),  # no reply: inconclusive
])
def test_fail_on_drop_exit_statuses(name: str, status: int) -> None:
    proc = k8s_trace("explain", str(sample(name)), "--format", "json", "--fail-on-drop")
    _clean(proc)
    assert proc.returncode == status, proc.stderr
    # without the flag the verdict never changes the exit status
    plain = k8s_trace("explain", str(sample(name)), "--format", "json")
    assert plain.returncode == 0


def test_not_a_capture_is_one_clear_line(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pcap"
    bogus.write_text("this is not a capture\n")
    proc = k8s_trace("explain", str(bogus))
    _clean(proc)
    assert proc.returncode == 3
    assert proc.stderr.startswith("k8s-trace: error: ") and "notes.pcap" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_input_and_empty_directory(tmp_path: Path) -> None:
    proc = k8s_trace("explain", str(tmp_path / "nope.pcap"))
    _clean(proc)
    assert proc.returncode == 3 and "nope.pcap" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = k8s_trace("explain", str(empty))
    _clean(proc)
    assert proc.returncode == 3 and "empty" in proc.stderr


def test_usage_errors(tmp_path: Path) -> None:
    proc = k8s_trace("explain")
    assert proc.returncode == 2
    proc = k8s_trace("explain", str(sample("cross-node")), "--vxlan-port", "70000")
    assert proc.returncode == 2 and "70000" in proc.stderr
    _clean(proc)


def test_cut_capture_and_bad_dump_lines_are_warnings(tmp_path: Path) -> None:
    bundle = copy_sample("cross-node", tmp_path)
    cap = bundle / "node1" / "eth0.pcap"
    data = cap.read_bytes()
    cap.write_bytes(data[: len(data) - 7])  # the last record is cut off
    rules = bundle / "node2" / "iptables-save"
    rules.write_text(rules.read_text() + "-A FORWARD --frobnicate yes -j ACCEPT\n")
    route = bundle / "node2" / "ip-route"
    route.write_text(route.read_text() + "this is not a route at all\n")
    proc = k8s_trace("explain", str(bundle), "--format", "json")
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert any("eth0.pcap" in w for w in doc["warnings"])
    assert any("ip-route:" in w for w in doc["warnings"])
    assert all(line.startswith("k8s-trace: warning: ") for line in proc.stderr.strip().splitlines())
    [flow] = doc["flows"]
    assert flow["status"] == "delivered"


def test_tarball_bundles_and_a_kubectl_file(tmp_path: Path) -> None:
    src = sample("service-remote")
    for node in ("node1", "node2"):
        shutil.make_archive(str(tmp_path / f"{node}-k8s-trace"), "gztar", root_dir=src, base_dir=node)
    proc = k8s_trace("explain", str(tmp_path / "node1-k8s-trace.tar.gz"), str(tmp_path / "node2-k8s-trace.tar.gz"),
                     "--format", "json")
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    [flow] = doc["flows"]
    assert flow["kind"] == "pod-to-service" and flow["server"]["name"] == "default/web:http"
    assert {n["name"] for n in doc["nodes"]} == {"node1", "node2"}
    # evidence names the capture as the user knows it, not a temporary directory
    files = {p["file"] for h in flow["hops"] for p in h["packets"]}
    assert files and not any("k8s-trace-bundle-" in f for f in files)


def test_fail_on_drop_ignores_a_refused_connection(tmp_path: Path) -> None:
    from builders import ether, ipv4, tcp, write_pcap

    syn = ether(ipv4(tcp(sport=40001, dport=8080, flags="S", seq=7), src="10.244.1.2", dst="10.244.1.3", ident=1))
    rst = ether(ipv4(tcp(sport=8080, dport=40001, flags="RA", ack=8), src="10.244.1.3", dst="10.244.1.2"))
    cap = write_pcap(tmp_path / "cni0.pcap", [(1.0, syn), (1.001, rst)])
    proc = k8s_trace("explain", str(cap), "--format", "json", "--fail-on-drop")
    _clean(proc)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["flows"][0]["status"] == "refused"


def test_a_kubectl_file_names_the_pods_of_a_bare_capture() -> None:
    node1 = sample("cross-node") / "node1"
    proc = k8s_trace("explain", str(node1 / "any.pcap"), str(node1 / "kubectl.json"), "--format", "json")
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    [flow] = doc["flows"]
    assert flow["client"]["name"] == "default/client" and flow["server"]["name"] == "default/web"
    assert {i["type"] for i in doc["inputs"]} == {"capture", "kubectl"}
