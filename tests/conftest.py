"""Shared fixtures: where ../shared is, and which real tools and privileges this machine has."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the shared corpus and contract: ../shared beside the checkout, or $K8S_TRACE_SHARED
SHARED = Path(os.environ.get("K8S_TRACE_SHARED") or ROOT.parent / "shared")

# Helper modules that tests share (builders.py, realcap.py, cdp.py...) live directly in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (the corpus and contract live there; or set K8S_TRACE_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def corpus_dir(shared_dir: Path) -> Path:
    path = shared_dir / "corpus"
    if not path.is_dir():
        pytest.skip("../shared/corpus is absent")
    return path


def _have(tool: str) -> bool:
    return shutil.which(tool) is not None


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed (.ci/run installs it)")
    return path


def netns_available() -> str | None:
    """None when network namespaces can be built here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "tcpdump", "iptables"):
        if not _have(tool):
            return f"{tool} is not installed (.ci/run installs it)"
    name = f"k8st-probe-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", name], check=True, capture_output=True, timeout=10)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"cannot create a network namespace here: {exc}"
    return None


@pytest.fixture(scope="session")
def netns() -> None:
    reason = netns_available()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (.ci/run installs it)")
