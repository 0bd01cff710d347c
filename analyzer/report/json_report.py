"""The explain document as JSON (the contract's ``k8s-trace.explain/1``), stable and valid.

Keys of the top level and of each flow come in a fixed order (contract keys first, then the
extension keys, then anything else sorted by name); nested objects keep the order the engine gave
them. Non-finite floats, which JSON cannot carry, become null (unknown).

Layout: indent 2, except that a small object or list holding only scalars (an endpoint, an
evidence entry, a ladder event) stays on one line, like ``{"file": "n1/eth0.pcap", "packet": 4}``.
That keeps a document with thousands of events readable and lets the C encoder do most of the
work (the pure-Python indenting encoder is several times slower).
"""

from __future__ import annotations

import json
import math
from typing import Any

TOP_ORDER = (
    "schema", "tool", "generated_at", "inputs", "nodes", "captures", "clock_offsets", "summary",
    "flows", "findings", "not_checkable", "warnings",
)
FLOW_ORDER = (
    "id", "proto", "client", "server", "kind", "status", "verdict", "translations", "encapsulation",
    "hops", "reply", "findings", "packets", "bytes", "first_seen", "last_seen", "graph", "ladder",
)


def _ordered(obj: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    out = {k: obj[k] for k in order if k in obj}
    for k in sorted((k for k in obj if k not in out), key=str):
        out[k] = obj[k]
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


INLINE_WIDTH = 150  # a scalar-only object or list up to this many characters stays on one line

_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(", ", ": ")).encode


def _scalar(v: Any) -> bool:
    return not isinstance(v, dict | list | tuple)


def _write(value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        if all(_scalar(v) for v in value.values()):
            text = _compact(value)
            if len(text) <= INLINE_WIDTH:
                out.append(text)
                return
        inner = indent + "  "
        out.append("{")
        first = True
        for k, v in value.items():
            out.append(("\n" if first else ",\n") + inner + _compact(str(k)) + ": ")
            first = False
            _write(v, inner, out)
        out.append("\n" + indent + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        if all(_scalar(v) for v in value):
            text = _compact(list(value))
            if len(text) <= INLINE_WIDTH:
                out.append(text)
                return
        inner = indent + "  "
        out.append("[")
        for i, v in enumerate(value):
            out.append(("\n" if i == 0 else ",\n") + inner)
            _write(v, inner, out)
        out.append("\n" + indent + "]")
    else:
        out.append(_compact(value))


def render_json(doc: dict) -> str:
    """``doc`` as indented JSON text (UTF-8 characters kept), ending with a newline."""
    top = _ordered(doc, TOP_ORDER)
    if isinstance(top.get("flows"), list):
        top["flows"] = [_ordered(f, FLOW_ORDER) if isinstance(f, dict) else f for f in top["flows"]]
    out: list[str] = []
    try:
        _write(top, "", out)
    except ValueError:  # NaN or infinity somewhere: unknown, so null (walk the tree only then)
        out = []
        _write(_clean(top), "", out)
    return "".join(out) + "\n"
