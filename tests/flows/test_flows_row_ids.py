"""``flowtable.row_ids`` numbers distinct rows in sorted order and finds each one's first row,
exactly as a plain Python ``sorted(set(rows))`` does (the TCP cells and encapsulation codes of the
flows table rely on both)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.engines.flowtable import row_ids


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(-3, 4), st.integers(0, 1 << 40), st.integers(0, 2)), max_size=80))
def test_row_ids_equal_a_plain_numbering(rows: list[tuple[int, int, int]]) -> None:
    cols = [np.array([r[k] for r in rows], dtype=np.int64) for k in range(3)]
    ids, first = row_ids(cols)
    distinct = sorted(set(rows))
    assert ids.tolist() == [distinct.index(r) for r in rows]
    assert first.tolist() == [rows.index(r) for r in distinct]


def test_one_column() -> None:
    ids, first = row_ids([np.array([7, 3, 7, 9, 3])])
    assert ids.tolist() == [1, 0, 1, 2, 0] and first.tolist() == [1, 0, 3]
