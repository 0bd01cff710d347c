"""When `flows` forks its record-walking helper: only where the load average leaves it a core."""

from __future__ import annotations

import pytest

from analyzer.inputs import fastpath


@pytest.mark.parametrize(("cpus", "load", "used"), [
    (1, 0.0, False),  # nowhere to run it
    (2, 0.8, True),  # an idle 2-vCPU machine: one core is free
    (2, 1.5, False),  # busy: the two processes would slow each other down (measured)
    (4, 2.0, True),  # two idle CPUs
    (4, 2.5, False),
])
def test_the_helper_needs_a_free_core(monkeypatch: pytest.MonkeyPatch, cpus: int, load: float, used: bool) -> None:
    monkeypatch.delenv("K8S_TRACE_WALKER", raising=False)
    monkeypatch.setattr(fastpath.os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(fastpath.os, "getloadavg", lambda: (load, load, load))
    assert fastpath._core_free() is used


@pytest.mark.parametrize(("forced", "used"), [("0", False), ("1", True)])
def test_the_environment_forces_it(monkeypatch: pytest.MonkeyPatch, forced: str, used: bool) -> None:
    monkeypatch.setenv("K8S_TRACE_WALKER", forced)
    monkeypatch.setattr(fastpath.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert fastpath._core_free() is used
