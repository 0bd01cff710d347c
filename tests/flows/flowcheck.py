"""Reference view of a capture for the flows tests: the general decoder's answer, frame by frame.

``reference_rows(path)`` runs ``read_capture`` + ``decode_frame`` + ``to_record`` on every frame
and returns the same per-frame dicts as ``analyzer.inputs.fastpath.iter_rows``, so a test can
assert that the fast path's columns equal the general decoder's fields for every frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analyzer.inputs.capture import read_capture
from analyzer.inputs.decode import decode_frame, to_record
from analyzer.inputs.fastpath import (
    KIND_BAD,
    KIND_IP,
    KIND_NONIP,
    VXLAN_UDP_PORTS,
    AddressTable,
    iter_batches,
    iter_rows,
)

FIELDS = ("frame", "kind", "src", "dst", "proto", "sport", "dport", "flags", "seq", "ack", "payload_len",
          "ip_id", "tunnel", "vni", "outer_src", "outer_dst", "outer_port", "ts", "wire_len")


def reference_rows(path: Path, vxlan_ports: frozenset[int] = VXLAN_UDP_PORTS) -> list[dict[str, Any]]:
    rows = []
    for frame in read_capture(path):
        rec = to_record(frame, decode_frame(frame.data, frame.linktype, vxlan_ports=vxlan_ports))
        if rec.ip_version and rec.src is not None and rec.proto is not None:
            kind = KIND_IP
        elif rec.arp_op is not None or (rec.ip_version == 0 and not rec.notes):
            kind = KIND_NONIP
        else:
            kind = KIND_BAD
        ip = kind == KIND_IP
        rows.append(
            {
                "frame": rec.frame,
                "kind": kind,
                "src": rec.src if ip else None,
                "dst": rec.dst if ip else None,
                "proto": rec.proto if ip else None,
                "sport": rec.sport,
                "dport": rec.dport,
                "flags": rec.tcp_flags,
                "seq": rec.seq,
                "ack": rec.ack,
                "payload_len": rec.payload_len,
                "ip_id": rec.ip_id,
                "tunnel": rec.tunnel,
                "vni": rec.vni,
                "outer_src": rec.outer_src if rec.tunnel else None,
                "outer_dst": rec.outer_dst if rec.tunnel else None,
                "outer_port": rec.outer_dport if rec.tunnel else None,
                "ts": rec.ts,
                "wire_len": rec.wire_len,
            }
        )
    return rows


def fast_rows(path: Path, *, chunk_bytes: int | None = None,
              vxlan_ports: frozenset[int] = VXLAN_UDP_PORTS) -> list[dict[str, Any]]:
    addrs = AddressTable()
    kw = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}
    return list(iter_rows(iter_batches(path, addrs=addrs, vxlan_ports=vxlan_ports, **kw), addrs))


def differences(path: Path, **kw: Any) -> list[str]:
    """Human-readable field differences between the fast path and the general decoder."""
    fast = fast_rows(path, **kw)
    ref = reference_rows(path, kw.get("vxlan_ports", VXLAN_UDP_PORTS))
    out = []
    if len(fast) != len(ref):
        out.append(f"frame count: fast {len(fast)}, reference {len(ref)}")
    for f, r in zip(fast, ref):
        for name in FIELDS:
            if f[name] != r[name]:
                out.append(f"packet #{r['frame']} {name}: fast {f[name]!r} (fallback={f['fallback']}), "
                           f"reference {r[name]!r}")
    return out
