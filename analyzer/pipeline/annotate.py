"""``explain --annotate DIR``: the input captures again, as pcapng, with explain's verdict on every
packet of every explained flow (a packet comment Wireshark shows in its packet list and in
``frame.comment``).

Each input capture becomes one pcapng file with the same frames in the same order (frame numbers
stay those of the report's evidence), its interfaces kept by name. A frame of an explained flow is
commented ``k8s-trace f3 DROPPED: <verdict>``, with ``seen as A -> B`` when the frame carries a
translated address (after DNAT, before un-DNAT, masqueraded), and ICMP errors are commented with the
flow they are about. Frames of no explained flow (ARP, multicast, undecodable) carry no comment.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from analyzer.engines import stitch
from analyzer.errors import InputError
from analyzer.model.explain import StitchedFlow
from analyzer.model.flow import endpoint_text
from analyzer.model.record import PacketRecord

Warn = Callable[[str], None]

_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_OPT_END, _OPT_COMMENT, _IF_NAME = 0, 1, 2


@dataclass(slots=True)
class FlowIndex:
    """Conversation key -> the explained flow it belongs to, filled as flows are explained."""

    by_key: dict[tuple, tuple[str, tuple]] = field(default_factory=dict)  # key -> comment, (client, server)
    by_pair: dict[tuple[str, str], str] = field(default_factory=dict)  # (src, dst) -> comment, for quoted tunnels

    def add(self, flow: StitchedFlow, doc: dict) -> None:
        status = str(doc.get("status", "")).upper().replace("-", " ")
        verdict = (doc.get("verdict") or {}).get("en", "")
        text = f"k8s-trace {flow.id} {status}: {verdict}"
        original = (flow.client, flow.server)
        for src, sport, dst, dport in flow.tuples:
            key = stitch.conv_key_of(flow.proto, (src, sport), (dst, dport))
            self.by_key.setdefault(key, (text, original))
            self.by_pair.setdefault((src, dst), text)

    def comment(self, r: PacketRecord) -> str | None:
        if r.quoted is not None:
            q = r.quoted
            if q.tunnel and q.inner_src and q.inner_dst:  # an error about a tunnel packet: its inner pair
                about = self.by_pair.get((q.inner_src, q.inner_dst))
            else:
                hit = self.by_key.get(stitch.conv_key_of(q.proto, (q.src, q.sport), (q.dst, q.dport)))
                about = hit[0] if hit is not None else None
            if about is None:
                return None
            return f"{about} [ICMP {r.icmp_type}/{r.icmp_code} from {r.src} about this flow]"
        key = stitch.conv_key(r)
        hit = self.by_key.get(key) if key is not None else None
        if hit is None:
            return None
        text, (client, server) = hit
        seen = ((r.src, r.sport), (r.dst, r.dport))
        if seen not in ((client, server), (server, client)):
            text += f" [seen as {endpoint_text(r.src or '?', r.sport)} -> {endpoint_text(r.dst or '?', r.dport)}: translated]"
        return text


def output_names(captures: Sequence[tuple[str, str | None, str | None, str]]) -> list[str]:
    """One distinct file name per capture: ``node1-eth0.pcapng`` (node prefix when known)."""
    names: list[str] = []
    for path, node, _iface, shown in captures:
        stem = Path(shown or path).name
        stem = re.sub(r"\.(pcapng|pcap|cap)(\.(gz|bz2|xz))?$", "", stem)
        base = f"{node}-{stem}" if node else stem
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", base) or "capture"
        name, n = f"{base}.pcapng", 2
        while name in names:
            name, n = f"{base}-{n}.pcapng", n + 1
        names.append(name)
    return names


def annotate_captures(captures: Sequence[tuple[str, str | None, str | None, str]], index: FlowIndex,
                      out_dir: Path, *, vxlan_ports: Iterable[int], warn: Warn,
                      ifnames: Mapping[str, Mapping[int, str]] | None = None) -> list[tuple[Path, int, int]]:
    """Write the annotated copy of every capture into ``out_dir``; returns (file, frames, commented).

    ``ifnames`` (file -> interface index -> name, from the bundle's ``ip link``) names the
    interfaces of a ``tcpdump -i any`` capture: its frames then sit on one pcapng interface each."""
    from analyzer.inputs.fastpath import GeneralDecoder

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(str(out_dir), f"cannot create the directory: {exc.strerror or exc}") from exc
    decoder = GeneralDecoder(frozenset(vxlan_ports))
    written = []
    for (path, _node, iface, _shown), name in zip(captures, output_names(captures), strict=True):
        target = out_dir / name
        try:
            with open(target, "wb") as fh:
                frames, commented = _annotate_one(path, iface, index, decoder, fh, warn, (ifnames or {}).get(path))
        except OSError as exc:
            raise InputError(str(target), f"cannot write: {exc.strerror or exc}") from exc
        written.append((target, frames, commented))
    return written


def _annotate_one(path: str, iface: str | None, index: FlowIndex, decoder, fh: BinaryIO,  # noqa: ANN001
                  warn: Warn, names: Mapping[int, str] | None) -> tuple[int, int]:
    fh.write(_block(_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    interfaces: dict[tuple[int, str | None], int] = {}
    frames = commented = 0
    # the explain pass read the same file with the same reader and has reported its problems
    for raw in decoder.read_capture(path, None):
        frames += 1
        name = raw.interface or iface
        if names and raw.linktype == 276 and len(raw.data) >= 8:  # SLL2: the interface index at offset 4
            name = names.get(int.from_bytes(raw.data[4:8], "big"), name)
        ifkey = (raw.linktype, name)
        ifid = interfaces.get(ifkey)
        if ifid is None:
            ifid = interfaces[ifkey] = len(interfaces)
            opts = _option(_IF_NAME, name.encode("utf-8")) if name else b""
            fh.write(_block(_IDB, struct.pack("<HHI", raw.linktype, 0, 0) + opts + _option(_OPT_END, b"")))
        rec = decoder.record(path, raw.number, raw.ts, raw.linktype, raw.data, raw.wire_len, raw.interface)
        text = index.comment(rec) if rec.ip_version else None
        opts = b""
        if text:
            commented += 1
            opts = _option(_OPT_COMMENT, text.encode("utf-8")) + _option(_OPT_END, b"")
        micros = int(round(raw.ts * 1_000_000))
        data = raw.data
        body = struct.pack("<IIIII", ifid, (micros >> 32) & 0xFFFFFFFF, micros & 0xFFFFFFFF, len(data),
                           max(raw.wire_len, len(data))) + data + b"\0" * (-len(data) % 4) + opts
        fh.write(_block(_EPB, body))
    return frames, commented


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)
