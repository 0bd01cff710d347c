"""Exit statuses and the few exception types that cross module boundaries.

Only ``analyzer.cli`` turns these into messages and exit codes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitStatus(IntEnum):
    OK = 0  # analysis done, whatever the verdict
    INTERNAL = 1  # a bug: message plus "rerun with --traceback"
    USAGE = 2  # click's UsageError
    BAD_INPUT = 3  # an input file could not be used at all
    DROPPED = 4  # only with --fail-on-drop: a flow was dropped or rejected
    INCONCLUSIVE = 5  # only with --fail-on-drop: a flow could not be decided
    INTERRUPTED = 130


class TraceError(Exception):
    """Base of the errors the CLI reports as one line."""

    exit_status: ClassVar[ExitStatus] = ExitStatus.INTERNAL


class InputError(TraceError):
    """An input file (capture, dump, bundle) that cannot be used.

    ``str()`` is gcc style: ``nodes/n1/iptables-save:42: unknown match "--foo"`` or
    ``capture.pcap: packet #17: truncated record``. Line and packet numbers are 1-based.
    """

    exit_status = ExitStatus.BAD_INPUT

    def __init__(
        self,
        source: str,
        message: str,
        *,
        line: int | None = None,
        packet: int | None = None,
        offset: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = str(source)
        if line is not None:
            where += f":{line}"
        if packet is not None:
            where += f": packet #{packet}"
        if offset is not None:
            where += f": byte {offset}"
        text = f"{where}: {message}"
        if hint:
            text += f" (hint: {hint})"
        super().__init__(text)
        self.source = str(source)
        self.message = message
        self.line = line
        self.packet = packet
        self.offset = offset
        self.hint = hint


class LabError(TraceError):
    """The lab could not build or run a topology (needs root, iproute2...)."""

    exit_status = ExitStatus.BAD_INPUT
