"""The wheel carries every module and template, so an installed k8s-trace works, not only a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_package_data(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    [wheel] = tmp_path.glob("k8s_trace-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "analyzer").rglob("*") if p.is_file()
               and "__pycache__" not in p.parts}
    missing = sorted(s for s in sources if s not in names)
    assert not missing, f"not packaged: {missing}"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "k8s-trace = analyzer.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
