"""The bare dump readers (iptables-save, nft list ruleset) share one reader: an unreadable or binary
file is an InputError naming the file and what it should have been, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.errors import InputError
from analyzer.inputs.iptables_save import read_iptables_save
from analyzer.inputs.nft_ruleset import read_nft_ruleset


@pytest.mark.parametrize(("reader", "what"), [(read_iptables_save, "iptables-save"),
                                              (read_nft_ruleset, "`nft list ruleset`")])
def test_binary_and_unreadable_files_are_input_errors(tmp_path: Path, reader, what: str) -> None:  # noqa: ANN001
    binary = tmp_path / "dump"
    binary.write_bytes(b"table ip x {\0\x01\x02")
    with pytest.raises(InputError) as err:
        reader(binary, "node1/dump")
    assert str(err.value) == f"node1/dump: binary data, not {what} output"
    with pytest.raises(InputError) as err:
        reader(tmp_path)  # a directory
    assert str(err.value).startswith(f"{tmp_path}: cannot read: ")


def test_text_is_read_with_bad_bytes_replaced(tmp_path: Path) -> None:
    f = tmp_path / "nft-ruleset"
    f.write_bytes(b"table ip t {\n\tchain c { # \xff\n\t}\n}\n")
    nft = read_nft_ruleset(f, "nft-ruleset")
    assert [t.name for t in nft.tables] == ["t"] and nft.file == "nft-ruleset"
