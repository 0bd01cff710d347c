"""``FlowTable.frames_at``: many kept frames at once, each the frame ``sample_frames`` gives for it,
None for a frame the table did not keep; from column rows and from frame objects alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzer.pipeline.flows import scan_table

ROOT = Path(__file__).resolve().parents[2]


def _frame(s) -> tuple:  # noqa: ANN001 - SampleFrame
    return (s.file, s.frame, s.data, s.ts, s.linktype, s.wire_len, s.interface)


@pytest.mark.parametrize("gz", [False, True])
def test_frames_at_is_sample_frames_for_each(tmp_path: Path, gz: bool) -> None:
    cap = tmp_path / "mix.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_mix.py"), "6000", str(cap), "--seed", "5"],
                   check=True, capture_output=True)
    if gz:  # a compressed capture keeps its samples as frame objects (no offsets to read again)
        import gzip

        gzipped = tmp_path / "mix.pcap.gz"
        gzipped.write_bytes(gzip.compress(cap.read_bytes()))
        cap = gzipped
    t = scan_table([cap], sample=2).table
    g, d, f, _n, _first = t.slot_stats()
    rng = np.random.default_rng(1)
    wanted, want = [], []
    for i in rng.choice(len(g), size=min(300, len(g)), replace=False).tolist():
        slot = (int(g[i]), int(d[i]), int(f[i]))
        frames = t.sample_frames(*slot)
        pick = frames[int(rng.integers(len(frames)))]
        wanted.append((*slot, pick.frame))
        want.append(_frame(pick))
        wanted.append((*slot, 10**9))  # not a frame of that slot
        want.append(None)
    got = t.frames_at(wanted)
    assert [None if s is None else _frame(s) for s in got] == want
    assert t.frames_at([]) == []
