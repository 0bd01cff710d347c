"""Fixtures of the report tests: the example documents and golden-file checking.

Regenerate the goldens after an intended change with ``K8S_TRACE_UPDATE_GOLDENS=1``
(``K8S_TRACE_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/report``), then review the diff.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

GOLDENS = HERE / "goldens"
OUT = HERE / "out"


class Golden:
    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, actual: str) -> None:
        path = GOLDENS / name
        if self.update or not path.exists():
            if not self.update:
                pytest.fail(f"golden {path} is missing; create it with K8S_TRACE_UPDATE_GOLDENS=1")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        expected = path.read_text(encoding="utf-8")
        if actual != expected:
            diff = "".join(difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                fromfile=f"goldens/{name}", tofile="rendered", n=2))
            pytest.fail(f"{name} differs from its golden (K8S_TRACE_UPDATE_GOLDENS=1 to accept):\n{diff[:6000]}")


@pytest.fixture
def golden() -> Golden:
    return Golden(os.environ.get("K8S_TRACE_UPDATE_GOLDENS") == "1")


@pytest.fixture
def out_dir() -> Path:
    OUT.mkdir(exist_ok=True)
    return OUT
