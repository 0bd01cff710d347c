"""A text dump file as given (``iptables-save``, ``nft list ruleset``): its text, or ``InputError``."""

from __future__ import annotations

from pathlib import Path

from analyzer.errors import InputError


def read_dump_text(path: str | Path, display: str | None, what: str) -> tuple[str, str]:
    """(the name to show, the text) of a dump file; an unreadable or binary file raises ``InputError``
    saying it is not ``what`` output."""
    name = display or str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(name, f"cannot read: {exc.strerror or exc}") from exc
    if b"\0" in data[:4096]:
        raise InputError(name, f"binary data, not {what} output")
    return name, data.decode("utf-8", errors="replace")
