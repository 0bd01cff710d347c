"""Small formatting helpers shared by the text and HTML reports (pure functions over doc dicts).

Every value comes from an explain document, which may be partial: missing keys read as absent,
never as an exception.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

ARROW = "→"
MAX_TEXT = 2000  # longer strings from a document (a whole payload, a giant rule) are cut

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(value: Any) -> str:
    """``value`` as one printable line: control characters (ANSI escapes, bidi overrides) shown as
    ``\\xNN``, so text from a capture cannot drive a terminal or reorder what is shown."""
    if value is None:
        return ""
    s = str(value)
    if s.isascii() and s.isprintable() and len(s) <= MAX_TEXT:  # nothing to show otherwise (the usual case)
        return s
    if len(s) > MAX_TEXT:
        s = s[:MAX_TEXT] + f"… (+{len(s) - MAX_TEXT} characters)"
    s = s.replace("\r\n", "\n").replace("\n", " ").replace("\t", " ")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)


def lst(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def dct(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def host_port(ip: Any, port: Any) -> str:
    ip_s = clean(ip) if ip not in (None, "") else "?"
    if port is None or port == "":
        return ip_s
    if ":" in ip_s and not ip_s.startswith("["):
        ip_s = f"[{ip_s}]"
    return f"{ip_s}:{clean(port)}"


def endpoint(ep: Any) -> str:
    ep = dct(ep)
    return host_port(ep.get("ip"), ep.get("port"))


def endpoint_name(ep: Any) -> str:
    """``default/web (service)``, ``client-7d9 @n1``: the naming part of an endpoint, or ''."""
    ep = dct(ep)
    parts = []
    if ep.get("role") == "node" and ep.get("node") and ep.get("name") in (None, ep["node"]):
        return f"node {clean(ep['node'])}"  # a node's own address: "node n1", not "n1 @n1"
    if ep.get("name"):
        parts.append(clean(ep["name"]))
    elif ep.get("role") and ep["role"] != "unknown":
        parts.append(clean(ep["role"]))
    if ep.get("node"):
        parts.append(f"@{clean(ep['node'])}")
    return " ".join(parts)


def translation(t: Any) -> str:
    t = dct(t)
    kind = clean(t.get("type") or "nat").upper()
    where = f" @{clean(t['node'])}" if t.get("node") else ""
    return f"{kind} {clean(t.get('from')) or '?'} {ARROW} {clean(t.get('to')) or '?'}{where}"


def encapsulation(e: Any) -> str:
    e = dct(e)
    kind = clean(e.get("type") or "tunnel").upper()
    bits = [kind]
    if e.get("vni") is not None:
        bits.append(f"vni {clean(e['vni'])}")
    if e.get("outer_src") or e.get("outer_dst"):
        dst = clean(e.get("outer_dst") or "?")
        if e.get("port") is not None:
            dst = host_port(dst, e["port"])
        bits.append(f"{clean(e.get('outer_src') or '?')} {ARROW} {dst}")
    elif e.get("port") is not None:
        bits.append(f"port {clean(e['port'])}")
    return " ".join(bits)


def rule(r: Any) -> str:
    r = dct(r)
    if not r:
        return ""
    where = f"{clean(r.get('file'))}:{clean(r.get('line'))}" if r.get("file") else ""
    chain = "/".join(clean(x) for x in (r.get("table"), r.get("chain")) if x)
    return " ".join(x for x in (where, chain, clean(r.get("text"))) if x)


def packets_by_file(hop: Any) -> list[tuple[str, list[int]]]:
    """Packet numbers of a hop (from ``packets`` and packet evidence), grouped by file, sorted."""
    hop = dct(hop)
    seen: dict[str, set[int]] = {}
    for item in lst(hop.get("packets")) + lst(hop.get("evidence")):
        item = dct(item)
        num = item.get("packet")
        if isinstance(num, int) and not isinstance(num, bool):
            seen.setdefault(clean(item.get("file")), set()).add(num)
    return [(f, sorted(nums)) for f, nums in sorted(seen.items())]


def _where(item: dict[str, Any]) -> str:
    """``file:line``, ``file #packet`` or ``file``: where an evidence entry points."""
    if item.get("line") is not None:
        return f"{clean(item.get('file'))}:{clean(item.get('line'))}"
    if item.get("packet") is not None:
        return f"{clean(item.get('file'))} #{clean(item.get('packet'))}"
    return clean(item.get("file"))


def evidence(items: Any) -> list[dict[str, str]]:
    """Every evidence entry as ``{"where", "text"}`` (``where`` from :func:`_where`), in order."""
    return [{"where": _where(item), "text": clean(item.get("text"))} for item in map(dct, lst(items))]


def line_evidence(items: Any) -> list[dict[str, str]]:
    """Evidence entries that point at a dump line: ``{"where": "file:line", "text"}``."""
    return [e for e, item in zip(evidence(items), map(dct, lst(items))) if item.get("line") is not None]


def packet_evidence(items: Any) -> list[dict[str, str]]:
    """Evidence entries that point at a packet: ``{"where": "file #N", "text"}``."""
    return [e for e, item in zip(evidence(items), map(dct, lst(items)))
            if item.get("line") is None and item.get("packet") is not None]


def number_list(nums: list[int], limit: int = 8) -> str:
    shown = ", ".join(f"#{n}" for n in nums[:limit])
    if len(nums) > limit:
        shown += f", … (+{len(nums) - limit})"
    return shown


def timestamp(ts: Any) -> str:
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        return ""
    try:
        dt = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return clean(ts)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond:06d}"[:6] + "Z"


def seconds(value: Any, *, signed: bool = False) -> str:
    """``1.234 ms`` / ``2.500 s``: a duration with a unit that keeps 3-4 significant digits."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return ""
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    v = abs(value)
    if v >= 1:
        body = f"{v:.3f} s"
    elif v >= 1e-3:
        body = f"{v * 1e3:.3f} ms"
    elif v > 0:
        body = f"{v * 1e6:.0f} µs"
    else:
        return "0 s"
    return sign + body


def human_bytes(n: Any) -> str:
    if not isinstance(n, int) or isinstance(n, bool):
        return ""
    if n < 10_000:
        return str(n)
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


def duration(flow: Any) -> Any:
    flow = dct(flow)
    a, b = flow.get("first_seen"), flow.get("last_seen")
    if isinstance(a, int | float) and isinstance(b, int | float):
        return b - a
    return None


def is_failing(flow: Any) -> bool:
    flow = dct(flow)
    if flow.get("status") != "delivered":
        return True
    return any(dct(f).get("severity") == "error" for f in lst(flow.get("findings")))


def mark(observed: Any, failed: Any) -> str:
    """One-character hop mark for text: ``!`` failed, ``+`` seen, ``x`` absent, ``?`` inferred."""
    if failed:
        return "!"
    if observed is True:
        return "+"
    if observed is False:
        return "x"
    return "?"


def place(lang: str, hop: Any) -> str:
    """Where a hop with no k8s node is: the underlay, a service, the outside world, or '?'."""
    from analyzer.report import i18n  # i18n is tiny; imported here to keep fmt free of UI words

    kind = dct(hop).get("kind")
    if kind in ("underlay", "service", "external"):
        return i18n.text(lang, f"band_{kind}")
    return "?"


def time_span(first: Any, last: Any) -> str:
    """``2025-11-21 19:59:57.000–20:00:09.900Z``: a capture's span, the date written once when shared."""
    a, b = timestamp(first), timestamp(last)
    if not a or not b:
        return a or b
    if a[:10] == b[:10]:
        return f"{a[:10]} {a[11:23]}–{b[11:23]}Z"
    return f"{a} – {b}"
