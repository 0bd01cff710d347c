"""Where a fact came from: a line of a dump file or a frame of a capture (both 1-based)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Line ``line`` (1-based) of dump file ``file``; ``text`` is the verbatim line."""

    file: str
    line: int
    text: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class FrameRef:
    """Frame ``number`` (1-based, as Wireshark numbers it) of capture ``file``."""

    file: str
    number: int
    ts: float = 0.0

    def __str__(self) -> str:
        return f"{self.file}: packet #{self.number}"
