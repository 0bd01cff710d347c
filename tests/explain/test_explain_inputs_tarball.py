"""classify_inputs accepts every tarball compression the bundle loader reads (not only .tar.gz)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from analyzer.pipeline.explain import classify_inputs

NODE2 = Path(__file__).resolve().parents[2] / "samples" / "vxlan-blocked" / "node2"


@pytest.mark.parametrize("suffix,mode", [(".tar.xz", "w:xz"), (".tar.bz2", "w:bz2"), (".tar.gz", "w:gz")])
def test_tarball_given_directly_or_in_a_directory_is_a_bundle(tmp_path: Path, suffix: str, mode: str) -> None:
    tarball = tmp_path / f"node2{suffix}"
    with tarfile.open(tarball, mode) as tf:
        tf.add(NODE2, arcname="node2")
    for given in (tarball, tmp_path):
        got = classify_inputs([given], warn=lambda _line: None)
        assert len(got.bundles) == 1 and got.bundles[0].ruleset is not None
        assert got.captures and {c[1] for c in got.captures} == {"node2"}  # the bundle's own pcaps
