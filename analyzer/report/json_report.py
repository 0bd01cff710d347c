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
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

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

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(", ", ": "))
# what ``_encoder.encode`` does for a container, without building a new C encoder per call
_c_encode = (json.encoder.c_make_encoder(None, _encoder.default, json.encoder.encode_basestring, None, ": ", ", ",
                                         False, False, False) if json.encoder.c_make_encoder is not None else None)


def _compact(value: Any) -> str:
    if _c_encode is None or not isinstance(value, dict | list | tuple):
        return _encoder.encode(value)
    return "".join(_c_encode(value, 0))


_CONTAINERS = (dict, list, tuple)


_CONTAINER_TYPES = frozenset(_CONTAINERS)


def _all_scalar(values: Any) -> bool:
    types = set(map(type, values))  # the document holds plain dicts, lists and tuples
    if _CONTAINER_TYPES.isdisjoint(types):
        return all(not issubclass(t, _CONTAINERS) for t in types)
    return False


_encode_str = json.encoder.encode_basestring  # what the encoder gives a str with ensure_ascii=False
_KEYS: dict[str, str] = {}
_WIDE: dict[tuple[str, str], str] = {}  # (compact text, indent) -> indented text of a wide scalar-only object


def _key(k: Any) -> str:
    text = _KEYS.get(k) if type(k) is str else None
    if text is None:
        text = _compact(str(k))
        if type(k) is str and len(_KEYS) < 4096:
            _KEYS[k] = text
    return text


def _leaf(v: Any) -> str:
    t = type(v)
    if t is str:
        return _encode_str(v)
    if v is None:
        return "null"
    if t is int:
        return int.__repr__(v)
    if t is float and math.isfinite(v):
        return float.__repr__(v)
    if t is bool:
        return "true" if v else "false"
    return _compact(v)  # NaN/infinity raise ValueError (then null), anything else as the encoder does  # bool, float (NaN raises ValueError), anything else as the encoder does


def _inline_dicts(items: list | tuple) -> list[str | None] | None:
    """The one-line text of each element of a list of scalar-only objects (None for an element
    over the width), from one call of the C encoder; None when the list is not of that shape."""
    for v in items:
        if type(v) is not dict or not v or not _all_scalar(v.values()):
            return None
    text = _compact(list(items))
    parts = text[2:-2].split("}, {")
    if len(parts) != len(items):  # "}, {" inside a string: encode one by one
        return None
    width = INLINE_WIDTH - 2
    return ["{" + p + "}" if len(p) <= width else None for p in parts]


def _write(value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        if _all_scalar(value.values()):
            text = _compact(value)
            if len(text) <= INLINE_WIDTH:
                out.append(text)
                return
            # over the width: indented; the same object (a hop's explanation) recurs in many flows
            memo = (text, indent)
            done = _WIDE.get(memo)
            if done is None:
                inner = indent + "  "
                done = "{\n" + inner + (",\n" + inner).join(_key(k) + ": " + _leaf(v) for k, v in value.items()) \
                    + "\n" + indent + "}"
                if len(_WIDE) > 8192:
                    _WIDE.clear()
                _WIDE[memo] = done
            out.append(done)
            return
        inner = indent + "  "
        sep = "{\n" + inner
        for k, v in value.items():
            out.append(sep + _key(k) + ": ")
            sep = ",\n" + inner
            if isinstance(v, _CONTAINERS):
                _write(v, inner, out)
            else:
                out.append(_leaf(v))
        out.append("\n" + indent + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        if _all_scalar(value):
            text = _compact(list(value))
            if len(text) <= INLINE_WIDTH:
                out.append(text)
                return
        inner = indent + "  "
        sep = "[\n" + inner
        inline = _inline_dicts(value) if len(value) > 1 else None
        if inline is not None:
            for v, text in zip(value, inline, strict=True):
                out.append(sep)
                sep = ",\n" + inner
                if text is None:
                    _write(v, inner, out)
                else:
                    out.append(text)
        else:
            for v in value:
                out.append(sep)
                sep = ",\n" + inner
                _write(v, inner, out)
        out.append("\n" + indent + "]")
    else:
        out.append(_leaf(value))


def _top(doc: dict) -> dict:
    return _ordered(doc, TOP_ORDER)  # each flow is put in order as it is written (flow_pieces)


def _piece(head: str, value: Any, indent: str) -> str:
    out = [head]
    try:
        _write(value, indent, out)
    except ValueError:  # NaN or infinity somewhere: unknown, so null (walk this part only then)
        out = [head]
        _write(_clean(value), indent, out)
    return "".join(out)


def flow_pieces(flows: Iterable[Any]) -> Iterator[str]:
    """The text of the top-level ``flows`` list (after its key), a flow at a time."""
    sep = "[\n    "
    for f in flows:
        yield _piece(sep, _ordered(f, FLOW_ORDER) if isinstance(f, dict) else f, "    ")
        sep = ",\n    "
    yield "[]" if sep == "[\n    " else "\n  ]"


def _chunks(top: dict, flows_text: TextIO | None = None) -> Iterator[str]:
    """The text of ``top`` in pieces: one per top-level value and one per flow (``flows_text``:
    the flows list already rendered by ``flow_pieces``, copied in place of ``top["flows"]``)."""
    if not top:
        yield "{}"
        return
    sep = "{\n  "
    for k, v in top.items():
        head = sep + _compact(str(k)) + ": "
        sep = ",\n  "
        if k == "flows" and flows_text is not None:
            yield head
            flows_text.seek(0)
            while block := flows_text.read(1 << 20):
                yield block
        elif k == "flows" and isinstance(v, list):
            yield head
            yield from flow_pieces(v)
        else:
            yield _piece(head, v, "  ")
    yield "\n}"


def write_json(doc: dict, fh: TextIO, *, flows_text: TextIO | None = None) -> None:
    """``render_json(doc)`` written to ``fh`` a flow at a time (the text is never whole in memory).

    ``flows_text``: a file holding the ``flow_pieces`` of the flows (written while they were
    explained, before the summary that precedes them was known); ``doc["flows"]`` is then ignored.
    """
    top = _top(doc)
    for piece in _chunks(top, flows_text):
        fh.write(piece)
    fh.write("\n")


def render_json(doc: dict) -> str:
    """``doc`` as indented JSON text (UTF-8 characters kept), ending with a newline."""
    return "".join(_chunks(_top(doc))) + "\n"
