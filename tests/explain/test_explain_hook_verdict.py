"""diagnose.hook_verdict: the netfilter engine's DROP/REJECT for a first packet, with its dump line."""

from __future__ import annotations

from pathlib import Path

from analyzer.engines.diagnose import hook_verdict
from analyzer.inputs.bundle import load_bundle

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_input_reject_names_the_rule_and_ssh_passes() -> None:
    snap = load_bundle(SAMPLES / "vxlan-blocked" / "node2")
    v = hook_verdict(snap, "INPUT", "192.168.56.11", "192.168.56.12", "udp", None, 8472)
    assert v is not None and v.target == "REJECT"
    assert v.ref is not None and v.ref.line == 21 and "icmp-host-prohibited" in v.ref.text
    assert hook_verdict(snap, "INPUT", "192.168.56.11", "192.168.56.12", "tcp", 40000, 22) is None
    assert hook_verdict(snap, "INPUT", "192.168.56.11", "not-an-ip", "udp", None, 8472) is None


def test_forward_policy_drop_points_at_the_policy_line() -> None:
    snap = load_bundle(SAMPLES / "forward-drop" / "node2")
    v = hook_verdict(snap, "FORWARD", "10.244.1.2", "10.244.2.2", 6, 40000, 80)
    assert v is not None and v.target == "DROP"
    assert v.ref is not None and v.ref.line == 4 and v.ref.text.startswith(":FORWARD DROP")
