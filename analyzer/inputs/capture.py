"""Streaming capture reader: pcap (both byte orders, µs/ns, Kuznetzov's modified pcap) and pcapng.

``read_capture(path, warn=...)`` yields one ``RawFrame`` per record and keeps at most one
record (plus a 1 MiB read buffer) in memory. The format is chosen by the magic number, never by
the extension; gzip, bzip2 and xz files are decompressed on the fly (also chosen by magic).
The path ``-`` reads standard input (``tcpdump -U -w - | k8s-trace decode -``), and so do
FIFOs: nothing needs to seek.

A link type the decoder does not know is reported once (per file, or per pcapng interface) and
its frames are still yielded. Damage is reported through ``warn`` as one line, ``"<file>: packet #N: ..."`` or
``"<file>: byte OFFSET: ..."`` (1-based packet numbers, 0-based byte offsets in the uncompressed
stream), and every frame before the damage is still yielded. pcap has no way to resynchronise,
so reading stops there; pcapng skips a damaged block whose length is sane and goes on. Only a file
that is not a capture at all (or cannot be opened) raises ``InputError``.

Interface names: a pcapng frame gets the ``if_name`` of its IDB. Otherwise a file named
``<iface>.pcap`` / ``<iface>.pcapng`` (optionally ``.gz``) names its interface when it sits in a
node bundle directory (one that holds a dump such as ``ip-route`` or ``iptables-save``) or when
``<iface>`` looks like a Linux interface name (``eth0``, ``ens5``, ``flannel.1``, ``cni0``,
``veth…``); ``any.pcap`` (``tcpdump -i any``) names none.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from analyzer.errors import InputError
from analyzer.inputs.decode.linktypes import LINKTYPES
from analyzer.model.packet import RawFrame

__all__ = [
    "READABLE_COMPRESSION", "CaptureInfo", "RawFrame", "capture_format", "capture_info", "capture_stem",
    "compression_of", "decompressor", "interface_from_name", "read_capture", "sniff_capture",
]

Warn = Callable[[str], None]

BUFFER = 1 << 20
#: a record larger than this (and than the snaplen) is damage, not a packet (tshark/libpcap: 256 KiB)
MAX_RECORD = 262144
#: pcapng blocks larger than this are damage (SHB/IDB with huge options are not real)
MAX_BLOCK = 64 << 20

PCAP_MAGICS = {
    # magic as read little-endian -> (byte order, ticks per second, record header size)
    0xA1B2C3D4: ("<", 1_000_000, 16),
    0xA1B23C4D: ("<", 1_000_000_000, 16),
    0xA1B2CD34: ("<", 1_000_000, 24),  # Kuznetzov's modified pcap (old Red Hat tcpdump)
    0xD4C3B2A1: (">", 1_000_000, 16),
    0x4D3CB2A1: (">", 1_000_000_000, 16),
    0x34CDB2A1: (">", 1_000_000, 24),
}
PCAPNG_SHB = 0x0A0D0D0A
BYTE_ORDER_MAGIC = 0x1A2B3C4D
LINKTYPE_MASK = 0x03FFFFFF  # upper bits of the pcap link type field carry FCS information

_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_UNSUPPORTED_COMPRESSION = ((b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"))
#: compressions ``read_capture`` decompresses on the fly (the others are named in its error)
READABLE_COMPRESSION = frozenset(kind for _, kind in _COMPRESSED)

#: the node dumps of ``bundle.BUNDLE_COMMANDS`` (not ``date``/``uname``, too common as names)
_BUNDLE_FILES = frozenset(
    {"node", "iptables-save", "ip6tables-save", "iptables-legacy-save", "nft-ruleset", "ip-route", "ip6-route", "ip-rule", "ip6-rule",
     "ip-addr", "ip-link", "bridge-fdb", "ip-neigh", "subnet.env", "conntrack", "sysctl", "kubectl.json"}
)
_IFNAME_LIKE = re.compile(
    r"^(?:lo|eth\d+(?:\.\d+)?|en[ospx]\w+|em\d+|bond\d+|wlan\d+|wlp\w+|br\d+|br-[0-9a-f]+|cni\d+|cbr\d+|"
    r"docker\d+|flannel[.\w-]*\d+|flannel-wg|tunl\d+|tun\d+|tap\w+|vxlan(?:\.\w+|\d+)|genev_sys_\d+|"
    r"veth\w+|cali[0-9a-f]+|cilium_\w+|kube-ipvs0|weave|nodelocaldns)$"
)
_IFNAME_VALID = re.compile(r"^[^\s/:]{1,15}$")
_CAPTURE_SUFFIX = re.compile(r"\.(?:pcap|pcapng|cap)(?:\.gz|\.bz2|\.xz)?$")


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    """What the file header(s) say. ``snaplen`` is the largest one of the file."""

    path: str
    format: str  # "pcap", "pcap-modified" or "pcapng"
    byte_order: str  # "little" or "big" (pcapng: of the first section)
    nanoseconds: bool  # pcap: nanosecond magic; pcapng: any interface finer than 1 µs
    snaplen: int
    linktypes: tuple[int, ...]  # pcap: one; pcapng: one per interface, in IDB order
    compressed: str | None  # "gzip", "bzip2", "xz" or None
    interfaces: tuple[str | None, ...] = ()  # pcapng IDB names


def capture_stem(file_name: str) -> str | None:
    """A capture file's name without its capture suffix (``.pcap``, ``.pcapng``, ``.cap``, each
    optionally followed by ``.gz``/``.bz2``/``.xz``): ``eth0.pcap.gz`` -> eth0; None when the name
    has no such suffix or nothing before it."""
    m = _CAPTURE_SUFFIX.search(file_name)
    if m is None:
        return None
    return file_name[: m.start()] or None


def interface_from_name(path: str | os.PathLike[str]) -> str | None:
    """The interface a capture file's name says it was taken on, or None (see module doc)."""
    p = Path(path)
    stem = capture_stem(p.name)
    if stem is None or stem == "any" or not _IFNAME_VALID.match(stem):
        return None
    if _IFNAME_LIKE.match(stem):
        return stem
    try:
        parent = p.resolve().parent
        if any((parent / name).exists() for name in _BUNDLE_FILES):
            return stem
    except OSError:
        return None
    return None


def compression_of(head: bytes) -> str | None:
    """The compression a file's first bytes announce: "gzip", "bzip2", "xz" (read on the fly),
    "zstd", "lz4" (recognised, not read: see ``READABLE_COMPRESSION``), or None."""
    for magic, kind in _COMPRESSED + _UNSUPPORTED_COMPRESSION:
        if head.startswith(magic):
            return kind
    return None


def capture_format(head: bytes) -> str | None:
    """"pcap", "pcap-modified" or "pcapng" from the first 4 (uncompressed) bytes, else None."""
    if len(head) < 4:
        return None
    magic = int.from_bytes(head[:4], "little")
    if magic == PCAPNG_SHB:
        return "pcapng"
    spec = PCAP_MAGICS.get(magic)
    if spec is None:
        return None
    return "pcap" if spec[2] == 16 else "pcap-modified"


def sniff_capture(path: str | os.PathLike[str]) -> tuple[str | None, str] | None:
    """``(compression, format)`` when the file at ``path`` is a capture ``read_capture`` can read,
    judged by magic numbers only (never by the name): compression None, "gzip", "bzip2" or "xz";
    format as ``capture_format``. None for anything else, an unreadable file included.

    Reads at most a few KiB (a compressed file is decompressed just far enough for 4 bytes), so
    it is cheap enough to call on every file of a directory.
    """
    try:
        with open(path, "rb") as raw:
            head = raw.read(8)
            compression = compression_of(head)
            if compression is None:
                fmt = capture_format(head)
                return None if fmt is None else (None, fmt)
            if compression not in READABLE_COMPRESSION:
                return None
            raw.seek(0)
            with decompressor(compression, raw) as inner:
                fmt = capture_format(inner.read(4))
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
        return None
    return None if fmt is None else (compression, fmt)


def decompressor(kind: str, raw: BinaryIO) -> BinaryIO:
    """A reader of the decompressed bytes of ``raw``; ``kind`` is one of ``READABLE_COMPRESSION``."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw, mode="rb")
    return lzma.LZMAFile(raw, mode="rb")


class _Reader:
    """A binary stream with an uncompressed-byte position and damage-proof reads."""

    __slots__ = ("f", "raw", "pos", "name", "size", "error", "pushback")

    def __init__(self, f: BinaryIO, name: str, size: int | None, raw: BinaryIO | None = None) -> None:
        self.f = f
        self.raw = raw  # the compressed file under ``f``, if any
        self.pos = 0
        self.name = name
        self.size = size  # None for compressed files
        self.error: str | None = None  # a decompression error, reported as damage
        self.pushback = b""  # the magic bytes read to choose the format

    def read(self, n: int) -> bytes:
        if self.pushback:
            data, self.pushback = self.pushback[:n], self.pushback[n:]
            if len(data) < n and self.error is None:
                data += self._read(n - len(data))
        else:
            data = self._read(n)
        self.pos += len(data)
        return data

    def _read(self, n: int) -> bytes:
        try:
            return self.f.read(n)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            self.error = f"compressed data is damaged ({exc})"
            return b""

    def left(self) -> int | None:
        return None if self.size is None else self.size - self.pos

    def close(self) -> None:
        self.f.close()
        if self.raw is not None:
            self.raw.close()


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``rest`` (a pipe whose first bytes were already read)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read1(len(buf)) if hasattr(self.rest, "read1") else self.rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def fileno(self) -> int:
        return self.rest.fileno()

    def close(self) -> None:
        self.rest.close()
        super().close()


def _open(path: str) -> tuple[_Reader, str | None, bytes]:
    """Open ``path`` (decompressing by magic); return the reader, the compression and 8 magic bytes.

    The magic bytes are read through the reader and pushed back, so reading starts at byte 0.
    """
    try:
        if path == "-":  # a pipe: `tcpdump -w - | k8s-trace decode -`
            raw = open(sys.stdin.fileno(), "rb", buffering=BUFFER, closefd=False)  # noqa: SIM115
            raw = io.BufferedReader(_Prefixed(raw.read(8), raw), BUFFER)  # peek sees all 8 magic bytes
        else:
            raw = open(path, "rb", buffering=BUFFER)  # noqa: SIM115 (closed by the caller)
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a capture file") from None
    except OSError as exc:
        raise InputError(path, f"cannot open: {exc.strerror or exc}") from None
    head = raw.peek(8)[:8]
    compressed = compression_of(head)
    if compressed is not None and compressed not in READABLE_COMPRESSION:
        raw.close()
        raise InputError(path, f"{compressed}-compressed file; decompress it first", hint=f"{compressed} -d")
    if compressed is not None:
        reader = _Reader(decompressor(compressed, raw), path, None, raw)
    else:
        size = os.fstat(raw.fileno()).st_size
        regular = path != "-" and os.path.isfile(path)
        reader = _Reader(raw, path, size if regular else None)
    head = reader._read(8) if compressed else bytes(head)
    if compressed and len(head) < 4 and reader.error:
        reader.close()
        raise InputError(path, f"{compressed}-{reader.error}")
    reader.pushback = head if compressed or reader.size is None else b""
    if not compressed and reader.size is None:
        reader._read(len(head))  # a pipe cannot seek back: the magic bytes stay in pushback
    elif not compressed:
        reader.f.seek(0)
    return reader, compressed, head


def _not_capture(path: str, head: bytes, compressed: str | None) -> InputError:
    what = f"{compressed}-compressed file that is " if compressed else ""
    if len(head) < 4:
        return InputError(path, f"{what}too short to be a capture ({len(head)} bytes)")
    return InputError(path, f"{what}not a pcap or pcapng file (magic 0x{head[:4].hex()})")


def read_capture(path: str | os.PathLike[str], *, warn: Warn | None = None) -> Iterator[RawFrame]:
    """Yield every frame of the capture at ``path``, in file order, streaming (see module doc).

    Raises ``InputError`` (before the first frame) when the file cannot be opened or is not a
    capture; every later problem goes to ``warn`` and ends or skips as the format allows.
    """
    name = str(path)
    reader, compressed, head = _open(name)
    say: Warn = warn if warn is not None else (lambda _msg: None)
    try:
        fmt = capture_format(head)
        if fmt in ("pcap", "pcap-modified"):
            gen = _read_pcap(reader, say)
        elif fmt == "pcapng":
            gen = _read_pcapng(reader, say)
        else:
            raise _not_capture(name, head, compressed)
        yield from gen
    finally:
        reader.close()


# --- pcap ---------------------------------------------------------------------------------------


def _read_pcap(r: _Reader, warn: Warn) -> Iterator[RawFrame]:
    name = r.name
    head = r.read(24)
    order, tps, rec_size = PCAP_MAGICS[int.from_bytes(head[:4], "little")]
    if len(head) < 24:
        warn(f"{name}: byte {len(head)}: file ends inside the 24-byte pcap file header")
        return
    _vmaj, _vmin, _zone, _sig, snaplen, linktype = struct.unpack_from(order + "HHiIII", head, 4)
    linktype &= LINKTYPE_MASK
    if linktype not in LINKTYPES:
        warn(f"{name}: byte 20: link type {linktype} is not supported; its frames are read but left undecoded")
    limit = max(MAX_RECORD, snaplen if snaplen <= MAX_BLOCK else 0)
    iface = interface_from_name(name)
    rec = struct.Struct(order + "IIII")
    divisor = float(tps)
    number = 0
    warned_snaplen = False
    while True:
        start = r.pos
        hdr = r.read(rec_size)
        number += 1
        if len(hdr) < rec_size:
            if r.error:
                warn(f"{name}: packet #{number}: {r.error} (byte {r.pos} of the uncompressed data)")
            elif hdr:
                warn(
                    f"{name}: packet #{number}: file ends inside its record header "
                    f"(byte {start}: {len(hdr)} of {rec_size} bytes)"
                )
            return
        sec, frac, caplen, wire = rec.unpack_from(hdr)
        if caplen > limit:
            warn(
                f"{name}: packet #{number}: record claims {caplen} bytes, more than the snaplen {snaplen} "
                f"(byte {start}); the rest of the file is unreadable"
            )
            return
        left = r.left()
        if left is not None and caplen > left:
            warn(
                f"{name}: packet #{number}: record of {caplen} bytes is cut off: the file ends "
                f"{left} bytes into it (byte {start})"
            )
            return
        data = r.read(caplen)
        if len(data) < caplen:
            if r.error:
                warn(f"{name}: packet #{number}: {r.error} (byte {r.pos} of the uncompressed data)")
            else:
                warn(
                    f"{name}: packet #{number}: record of {caplen} bytes is cut off: the file ends "
                    f"{len(data)} bytes into it (byte {start})"
                )
            return
        if caplen > snaplen and snaplen and not warned_snaplen:  # 0: the writer did not say
            warned_snaplen = True
            warn(f"{name}: packet #{number}: record of {caplen} bytes is longer than the snaplen {snaplen}")
        yield RawFrame(name, number, sec + frac / divisor, linktype, data, max(wire, caplen), iface)


# --- pcapng -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    name: str | None
    ticks: int  # per second when exact power of ten, else 0
    resol: float  # seconds per tick
    offset: int  # if_tsoffset, seconds


def _tsresol(value: int) -> tuple[int, float]:
    if value & 0x80:
        exp = value & 0x7F
        return 0, 2.0**-exp
    return 10**value, 10.0**-value


def _options(body: bytes, start: int, order: str) -> Iterator[tuple[int, bytes]]:
    pos = start
    n = len(body)
    while pos + 4 <= n:
        code, length = struct.unpack_from(order + "HH", body, pos)
        if code == 0:
            return
        value = body[pos + 4 : pos + 4 + length]
        yield code, value
        pos += 4 + ((length + 3) & ~3)


def _parse_idb(body: bytes, order: str, fallback: str | None) -> _Interface:
    linktype, _res, snaplen = struct.unpack_from(order + "HHI", body, 0)
    name: str | None = None
    ticks, resol, offset = 1_000_000, 1e-6, 0
    for code, value in _options(body, 8, order):
        if code == 2 and value:
            name = value.split(b"\x00", 1)[0].decode("utf-8", "replace") or None
            if name is not None and name.startswith("Unknown/not available"):
                name = None  # what Wireshark writes when converting a pcap
        elif code == 9 and value:
            ticks, resol = _tsresol(value[0])
        elif code == 14 and len(value) >= 8:
            offset = struct.unpack_from(order + "q", value)[0]
    return _Interface(linktype, snaplen, name if name is not None else fallback, ticks, resol, offset)


def _read_pcapng(r: _Reader, warn: Warn) -> Iterator[RawFrame]:
    name = r.name
    fallback = interface_from_name(name)
    order = "<"
    ifaces: list[_Interface] = []
    number = 0
    first = True
    while True:
        start = r.pos
        head = r.read(8)
        if len(head) < 8:
            if r.error:
                warn(f"{name}: byte {r.pos}: {r.error}")
            elif head:
                warn(f"{name}: byte {start}: file ends inside a block header ({len(head)} of 8 bytes)")
            return
        btype = int.from_bytes(head[:4], "little")
        if btype == PCAPNG_SHB:
            bom = r.read(4)
            if len(bom) < 4:
                warn(f"{name}: byte {start}: file ends inside the section header block")
                return
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                msg = f"byte {start}: section header with a bad byte-order magic 0x{bom.hex()}"
                if first:
                    raise InputError(name, f"not a valid pcapng file ({msg})")
                warn(f"{name}: {msg}; the rest of the file is unreadable")
                return
            blen = struct.unpack_from(order + "I", head, 4)[0]
            prefix = head + bom
        else:
            blen = struct.unpack_from(order + "I", head, 4)[0]
            btype = struct.unpack_from(order + "I", head, 0)[0]
            prefix = head
        first = False
        left = r.left()
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            warn(f"{name}: byte {start}: block of type 0x{btype:08x} has an impossible length {blen}; "
                 "the rest of the file is unreadable")
            return
        if left is not None and blen - len(prefix) > left:
            is_packet = btype in (2, 3, 6)
            what = f"packet #{number + 1}" if is_packet else f"byte {start}"
            warn(f"{name}: {what}: block of {blen} bytes is cut off: the file ends "
                 f"{left + len(prefix)} bytes into it (byte {start})")
            return
        rest = r.read(blen - len(prefix))
        if len(rest) < blen - len(prefix):
            if r.error:
                warn(f"{name}: byte {r.pos}: {r.error}")
            else:
                what = f"packet #{number + 1}" if btype in (2, 3, 6) else f"byte {start}"
                warn(f"{name}: {what}: block of {blen} bytes is cut off: the file ends "
                     f"{len(rest) + len(prefix)} bytes into it (byte {start})")
            return
        block = prefix + rest
        trailer = struct.unpack_from(order + "I", block, blen - 4)[0]
        body = block[8 : blen - 4]
        is_packet = btype in (2, 3, 6)
        if is_packet:
            number += 1
        if trailer != blen:
            where = f"packet #{number}" if is_packet else f"byte {start}"
            warn(f"{name}: {where}: damaged block (length {blen} at the start, {trailer} at the end); skipped")
            continue
        if btype == PCAPNG_SHB:
            ifaces = []  # a new section starts its own interface list
            continue
        if btype == 1:
            if len(body) < 8:
                warn(f"{name}: byte {start}: interface description block too short; skipped")
                ifaces.append(_Interface(-1, 0, None, 1_000_000, 1e-6, 0))
                continue
            idb = _parse_idb(body, order, fallback)
            if idb.linktype not in LINKTYPES:
                label = f" ({idb.name})" if idb.name else ""
                warn(f"{name}: byte {start}: interface {len(ifaces)}{label} has link type {idb.linktype}, "
                     "which is not supported; its frames are read but left undecoded")
            ifaces.append(idb)
            continue
        if not is_packet:
            continue  # ISB, NRB, DSB, custom blocks: nothing to yield
        frame = _packet(name, number, start, btype, body, order, ifaces, warn)
        if frame is not None:
            yield frame


def _packet(
    name: str,
    number: int,
    start: int,
    btype: int,
    body: bytes,
    order: str,
    ifaces: list[_Interface],
    warn: Warn,
) -> RawFrame | None:
    if btype == 6:  # enhanced packet block
        if len(body) < 20:
            warn(f"{name}: packet #{number}: enhanced packet block too short ({len(body)} bytes); skipped")
            return None
        if_id, hi, lo, caplen, wire = struct.unpack_from(order + "IIIII", body, 0)
        data_at = 20
    elif btype == 2:  # obsolete packet block
        if len(body) < 20:
            warn(f"{name}: packet #{number}: packet block too short ({len(body)} bytes); skipped")
            return None
        if_id, _drops, hi, lo, caplen, wire = struct.unpack_from(order + "HHIIII", body, 0)
        data_at = 20
    else:  # simple packet block: no timestamp, interface 0
        if len(body) < 4:
            warn(f"{name}: packet #{number}: simple packet block too short; skipped")
            return None
        if_id, hi, lo = 0, 0, 0
        wire = struct.unpack_from(order + "I", body, 0)[0]
        data_at = 4
        caplen = min(wire, len(body) - 4)
        if ifaces and ifaces[0].snaplen:
            caplen = min(caplen, ifaces[0].snaplen)
    if if_id >= len(ifaces):
        warn(f"{name}: packet #{number}: refers to interface {if_id}, but only {len(ifaces)} are described; skipped")
        return None
    if caplen > len(body) - data_at:
        warn(
            f"{name}: packet #{number}: claims {caplen} captured bytes but its block holds "
            f"{len(body) - data_at} (byte {start}); skipped"
        )
        return None
    iface = ifaces[if_id]
    if iface.linktype < 0:
        warn(f"{name}: packet #{number}: its interface description is damaged; skipped")
        return None
    units = (hi << 32) | lo
    if iface.ticks:
        ts = units / iface.ticks + iface.offset if iface.ticks != 1 else float(units + iface.offset)
    else:
        ts = units * iface.resol + iface.offset
    data = body[data_at : data_at + caplen]
    return RawFrame(name, number, ts, iface.linktype, data, max(wire, caplen), iface.name)


# --- info ---------------------------------------------------------------------------------------


def capture_info(path: str | os.PathLike[str]) -> CaptureInfo:
    """Describe the capture's format from its header(s); pcapng files are scanned for every IDB."""
    name = str(path)
    reader, compressed, head = _open(name)
    try:
        magic = int.from_bytes(head[:4], "little") if len(head) >= 4 else -1
        if magic in PCAP_MAGICS:
            order, tps, rec_size = PCAP_MAGICS[magic]
            hdr = reader.read(24)
            if len(hdr) < 24:
                raise InputError(name, "file ends inside the 24-byte pcap file header", offset=len(hdr))
            snaplen, linktype = struct.unpack_from(order + "II", hdr, 16)
            return CaptureInfo(
                name,
                "pcap" if rec_size == 16 else "pcap-modified",
                "little" if order == "<" else "big",
                tps == 1_000_000_000,
                snaplen,
                (linktype & LINKTYPE_MASK,),
                compressed,
            )
        if magic != PCAPNG_SHB:
            raise _not_capture(name, head, compressed)
        return _pcapng_info(reader, name, compressed)
    finally:
        reader.close()


def _pcapng_info(r: _Reader, name: str, compressed: str | None) -> CaptureInfo:
    order = ""  # of the first section
    cur_order = "<"  # of the current section
    links: list[int] = []
    names: list[str | None] = []
    snaplen = 0
    nano = False
    while True:
        head = r.read(12)
        if len(head) < 12:
            break
        btype = int.from_bytes(head[:4], "little")
        if btype == PCAPNG_SHB:
            cur_order = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            order = order or cur_order
        else:
            btype = struct.unpack_from(cur_order + "I", head, 0)[0]
        blen = struct.unpack_from(cur_order + "I", head, 4)[0]
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            break
        if btype == 1:
            rest = r.read(blen - 12)
            if len(rest) < blen - 12:
                break
            body = (head + rest)[8 : blen - 4]
            if len(body) >= 8:
                iface = _parse_idb(body, cur_order, None)
                links.append(iface.linktype)
                names.append(iface.name)
                snaplen = max(snaplen, iface.snaplen)
                nano = nano or iface.resol < 1e-6
        elif r.size is not None:  # uncompressed: seek over the block
            if r.pos + blen - 12 > r.size:
                break
            r.f.seek(blen - 12, os.SEEK_CUR)
            r.pos += blen - 12
        else:
            skipped = r.read(blen - 12)
            if len(skipped) < blen - 12:
                break
    return CaptureInfo(
        name, "pcapng", "big" if order == ">" else "little", nano, snaplen, tuple(links), compressed, tuple(names)
    )
