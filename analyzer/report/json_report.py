"""The explain document as JSON (the contract's ``k8s-trace.explain/1``), stable and valid.

Keys of the top level and of each flow come in a fixed order (contract keys first, then the
extension keys, then anything else sorted by name); nested objects keep the order the engine gave
them. Non-finite floats, which JSON cannot carry, become null (unknown).
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


def render_json(doc: dict) -> str:
    """``doc`` as indented JSON text (UTF-8 characters kept), ending with a newline."""
    top = _ordered(_clean(doc), TOP_ORDER)
    if isinstance(top.get("flows"), list):
        top["flows"] = [_ordered(f, FLOW_ORDER) if isinstance(f, dict) else f for f in top["flows"]]
    return json.dumps(top, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
