"""The capture reader: formats by magic, timestamps, interface names, damage handling, streaming."""

from __future__ import annotations

import gzip
import random
import struct
import tracemalloc
from pathlib import Path

import pytest
from builders import (
    ether,
    ipv4,
    pcap_bytes,
    pcapng_bytes,
    udp,
    write_pcap,
    write_pcapng,
)

from analyzer.errors import InputError
from analyzer.inputs.capture import capture_info, interface_from_name, read_capture

FRAMES = [ether(ipv4(udp(b"x" * n, sport=1000 + n, dport=53), src="10.0.0.1", dst="10.0.0.2")) for n in range(5)]
TIMES = [(1_700_000_000.123456 + i, f) for i, f in enumerate(FRAMES)]


def read(path: Path) -> tuple[list, list[str]]:
    warnings: list[str] = []
    return list(read_capture(path, warn=warnings.append)), warnings


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanos", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, big_endian: bool, nanos: bool) -> None:
    frames = [(1_700_000_000.123456789 + i, f) for i, f in enumerate(FRAMES)]
    path = write_pcap(tmp_path / "c.pcap", frames, big_endian=big_endian, nanos=nanos)
    got, warnings = read(path)
    assert warnings == []
    assert [f.number for f in got] == [1, 2, 3, 4, 5]
    assert [f.data for f in got] == [bytes(f) for f in FRAMES]
    assert all(f.linktype == 1 and f.wire_len == len(f.data) for f in got)
    tol = 2e-9 if nanos else 1e-6
    assert got[2].ts == pytest.approx(1_700_000_002.123456789, abs=tol)
    assert got[0].interface is None and got[0].file == str(path)
    info = capture_info(path)
    assert (info.format, info.byte_order, info.nanoseconds, info.linktypes, info.compressed) == (
        "pcap", "big" if big_endian else "little", nanos, (1,), None)


def test_gzip_by_magic_not_extension(tmp_path: Path) -> None:
    path = tmp_path / "capture.bin"
    path.write_bytes(gzip.compress(pcap_bytes(TIMES)))
    got, warnings = read(path)
    assert len(got) == 5 and warnings == []
    assert capture_info(path).compressed == "gzip"
    ng = tmp_path / "x.pcap"  # a pcapng called .pcap, gzipped
    ng.write_bytes(gzip.compress(pcapng_bytes(FRAMES, interfaces=[(1, "eth7")])))
    got, _ = read(ng)
    assert [f.interface for f in got] == ["eth7"] * 5
    assert capture_info(ng).format == "pcapng"


def test_pcapng_interfaces_resolutions_and_offsets(tmp_path: Path) -> None:
    packets = [(0, (1_700_000_000.5, FRAMES[0])), (1, (1_700_000_001.25, FRAMES[1])),
               (2, (1_700_000_002.0, FRAMES[2])), (0, (1_700_000_003.000001, FRAMES[3]))]
    path = write_pcapng(tmp_path / "multi.pcapng", packets,
                        interfaces=[(1, "eth0", 6), (1, "flannel.1", 9), (113, None, 0x80 | 20)])
    got, warnings = read(path)
    assert warnings == []
    assert [(f.interface, f.linktype) for f in got] == [("eth0", 1), ("flannel.1", 1), (None, 113), ("eth0", 1)]
    assert [round(f.ts, 6) for f in got] == [1_700_000_000.5, 1_700_000_001.25, 1_700_000_002.0, 1_700_000_003.000001]
    info = capture_info(path)
    assert info.linktypes == (1, 1, 113) and info.interfaces == ("eth0", "flannel.1", None)
    assert info.nanoseconds is True
    off = write_pcapng(tmp_path / "off.pcapng", [(0, (1_600_001_000.5, FRAMES[0]))], interfaces=[(1, "eth0")],
                       tsoffset=1_600_000_000)  # stored as 1000.5 s after if_tsoffset
    [frame], _ = read(off)
    assert frame.ts == pytest.approx(1_600_001_000.5)


def test_pcapng_big_endian_spb_and_obsolete_packet_block(tmp_path: Path) -> None:
    be = write_pcapng(tmp_path / "be.pcapng", FRAMES[:2], interfaces=[(1, "eth1")], big_endian=True)
    got, warnings = read(be)
    assert [f.data for f in got] == [bytes(f) for f in FRAMES[:2]] and warnings == []
    assert capture_info(be).byte_order == "big"
    spb = write_pcapng(tmp_path / "spb.pcapng", FRAMES[:3], simple=True)
    got, warnings = read(spb)
    assert [f.data for f in got] == [bytes(f) for f in FRAMES[:3]] and warnings == []
    assert all(f.ts == 0.0 for f in got)  # SPBs carry no timestamp
    # obsolete Packet Block (type 2): if_id(2) drops(2) ts_hi ts_lo caplen len data
    data = bytes(FRAMES[0])
    body = struct.pack("<HHIIII", 0, 0, 0, 1_000_000, len(data), len(data)) + data + b"\x00" * (-len(data) % 4)
    pb = struct.pack("<II", 2, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    raw = pcapng_bytes([], interfaces=[(1, "eth2")])
    (tmp_path / "pb.pcapng").write_bytes(raw + pb)
    got, warnings = read(tmp_path / "pb.pcapng")
    assert [(f.number, f.ts, f.interface, f.data) for f in got] == [(1, 1.0, "eth2", data)] and warnings == []


def test_interface_from_file_name(tmp_path: Path) -> None:
    assert interface_from_name("nodes/n1/eth0.pcap") == "eth0"
    assert interface_from_name("flannel.1.pcapng") == "flannel.1"
    assert interface_from_name("cni0.pcap.gz") == "cni0"
    assert interface_from_name("any.pcap") is None
    assert interface_from_name("capture.pcap") is None  # not an interface-like name outside a bundle
    node = tmp_path / "node1"
    node.mkdir()
    (node / "ip-route").write_text("default via 10.0.0.1 dev uplink\n")
    assert interface_from_name(node / "uplink.pcap") == "uplink"  # any name inside a node bundle
    path = write_pcap(node / "uplink.pcap", FRAMES[:1])
    [frame], _ = read(path)
    assert frame.interface == "uplink"


def test_not_a_capture_raises_input_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.pcap"
    text.write_text("hello, this is text\n")
    with pytest.raises(InputError, match=r"notes.pcap: not a pcap or pcapng file \(magic 0x68656c6c\)"):
        list(read_capture(text))
    short = tmp_path / "short.pcap"
    short.write_bytes(b"\xd4\xc3")
    with pytest.raises(InputError, match="too short to be a capture"):
        list(read_capture(short))
    with pytest.raises(InputError, match="cannot open"):
        list(read_capture(tmp_path / "missing.pcap"))
    zstd = tmp_path / "c.pcap.zst"
    zstd.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    with pytest.raises(InputError, match="zstd-compressed"):
        list(read_capture(zstd))
    with pytest.raises(InputError, match="not a pcap"):
        capture_info(text)


def test_pcap_cut_off_header_and_records(tmp_path: Path) -> None:
    full = pcap_bytes(TIMES)
    p = tmp_path / "c.pcap"
    p.write_bytes(full[:20])
    got, warnings = read(p)
    assert got == [] and warnings == [f"{p}: byte 20: file ends inside the 24-byte pcap file header"]
    # cut inside the record header of packet 3
    rec3 = 24 + sum(16 + len(f) for f in FRAMES[:2])
    p.write_bytes(full[: rec3 + 5])
    got, warnings = read(p)
    assert [f.number for f in got] == [1, 2]
    assert warnings == [f"{p}: packet #3: file ends inside its record header (byte {rec3}: 5 of 16 bytes)"]
    # cut inside the data of packet 3
    p.write_bytes(full[: rec3 + 16 + 10])
    got, warnings = read(p)
    assert [f.number for f in got] == [1, 2]
    assert warnings == [f"{p}: packet #3: record of {len(FRAMES[2])} bytes is cut off: the file ends 10 bytes "
                        f"into it (byte {rec3})"]


def test_pcap_cut_off_inside_gzip(tmp_path: Path) -> None:
    full = pcap_bytes(TIMES)
    p = tmp_path / "c.pcap.gz"
    p.write_bytes(gzip.compress(full[:-7]))
    got, warnings = read(p)
    assert [f.number for f in got] == [1, 2, 3, 4]
    assert len(warnings) == 1 and "packet #5: record of" in warnings[0]
    # a damaged gzip stream (cut in the middle of the compressed data)
    many = [ether(ipv4(udp(random.randbytes(300)))) for _ in range(300)]
    p.write_bytes(gzip.compress(pcap_bytes(many))[:-40])
    got, warnings = read(p)
    assert [f.data for f in got] == [bytes(f) for f in many[: len(got)]] and len(got) > 250
    assert len(warnings) == 1 and warnings[0].startswith(f"{p}: packet #{len(got) + 1}: ")
    assert "compressed data is damaged" in warnings[0] or "is cut off" in warnings[0]


def test_pcap_record_longer_than_snaplen_or_file(tmp_path: Path) -> None:
    # a record that claims more than any snaplen: unreadable from there on
    full = bytearray(pcap_bytes(TIMES, snaplen=65535))
    rec2 = 24 + 16 + len(FRAMES[0])
    struct.pack_into("<I", full, rec2 + 8, 0xFFFFFFFF)
    p = tmp_path / "huge.pcap"
    p.write_bytes(full)
    got, warnings = read(p)
    assert [f.number for f in got] == [1]
    assert warnings == [f"{p}: packet #2: record claims 4294967295 bytes, more than the snaplen 65535 "
                        f"(byte {rec2}); the rest of the file is unreadable"]
    # larger than the snaplen but plausible: read, warned once
    p2 = write_pcap(tmp_path / "snap.pcap", TIMES, snaplen=30)
    got, warnings = read(p2)
    assert len(got) == 5
    assert warnings == [f"{p2}: packet #1: record of {len(FRAMES[0])} bytes is longer than the snaplen 30"]
    # a record that claims more than the rest of the file
    full = bytearray(pcap_bytes(TIMES))
    last = len(full) - 16 - len(FRAMES[4])
    struct.pack_into("<I", full, last + 8, 5000)
    p3 = tmp_path / "long.pcap"
    p3.write_bytes(full)
    got, warnings = read(p3)
    assert [f.number for f in got] == [1, 2, 3, 4]
    assert warnings == [f"{p3}: packet #5: record of 5000 bytes is cut off: the file ends {len(FRAMES[4])} "
                        f"bytes into it (byte {last})"]


def test_unknown_link_type_is_read_and_noted(tmp_path: Path) -> None:
    from analyzer.inputs.decode import decode_frame

    p = write_pcap(tmp_path / "odd.pcap", TIMES[:2], linktype=147)  # USER0
    [frame, _second], warnings = read(p)
    assert frame.linktype == 147
    assert warnings == [f"{p}: byte 20: link type 147 is not supported; its frames are read but left undecoded"]
    ng = write_pcapng(tmp_path / "odd.pcapng", [(0, FRAMES[0]), (1, (1.0, FRAMES[1])), (1, (2.0, FRAMES[2]))],
                      interfaces=[(1, "eth0"), (147, "usr0")])
    got, warnings = read(ng)
    assert [f.linktype for f in got] == [1, 147, 147]
    assert len(warnings) == 1 and "interface 1 (usr0) has link type 147, which is not supported" in warnings[0]
    pkt = decode_frame(frame.data, frame.linktype)
    assert pkt.notes == ("link type 147 is not supported; frame left undecoded",)
    assert [layer.name for layer in pkt.layers] == ["raw"]


def _ng_blocks(raw: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each block of a little-endian pcapng."""
    out, pos = [], 0
    while pos < len(raw):
        n = struct.unpack_from("<I", raw, pos + 4)[0]
        out.append((pos, n))
        pos += n
    return out


def test_pcapng_damaged_blocks_are_skipped(tmp_path: Path) -> None:
    raw = bytearray(pcapng_bytes(FRAMES, interfaces=[(1, "eth0")]))
    blocks = _ng_blocks(bytes(raw))
    assert len(blocks) == 2 + 5
    # packet 2: trailing length differs from the leading one -> skipped, the rest read
    off2, n2 = blocks[3]
    struct.pack_into("<I", raw, off2 + n2 - 4, n2 + 4)
    # packet 4: caplen larger than the block -> skipped
    off4, _n4 = blocks[5]
    struct.pack_into("<I", raw, off4 + 20, 9999)
    p = tmp_path / "damaged.pcapng"
    p.write_bytes(raw)
    got, warnings = read(p)
    assert [f.number for f in got] == [1, 3, 5]
    assert [f.data for f in got] == [bytes(FRAMES[i]) for i in (0, 2, 4)]
    assert warnings == [
        f"{p}: packet #2: damaged block (length {n2} at the start, {n2 + 4} at the end); skipped",
        f"{p}: packet #4: claims 9999 captured bytes but its block holds {len(FRAMES[3]) + (-len(FRAMES[3]) % 4)} "
        f"(byte {off4}); skipped",
    ]


def test_pcapng_impossible_block_length_stops(tmp_path: Path) -> None:
    raw = bytearray(pcapng_bytes(FRAMES, interfaces=[(1, "eth0")]))
    off3, _ = _ng_blocks(bytes(raw))[4]
    struct.pack_into("<I", raw, off3 + 4, 7)  # not a multiple of 4, less than 12
    p = tmp_path / "bad.pcapng"
    p.write_bytes(raw)
    got, warnings = read(p)
    assert [f.number for f in got] == [1, 2]
    assert warnings == [f"{p}: byte {off3}: block of type 0x00000006 has an impossible length 7; "
                        "the rest of the file is unreadable"]


def test_pcapng_packet_on_undescribed_interface(tmp_path: Path) -> None:
    p = write_pcapng(tmp_path / "if.pcapng", [(0, FRAMES[0]), (3, (1.0, FRAMES[1])), (0, FRAMES[2])],
                     interfaces=[(1, "eth0"), (1, "eth1"), (1, "eth2"), (1, "eth3")])
    raw = bytearray(p.read_bytes())
    blocks = _ng_blocks(bytes(raw))
    struct.pack_into("<I", raw, blocks[6][0] + 8, 9)  # packet 2 -> interface 9
    p.write_bytes(raw)
    got, warnings = read(p)
    assert [f.number for f in got] == [1, 3]
    assert warnings == [f"{p}: packet #2: refers to interface 9, but only 4 are described; skipped"]


def test_pcapng_bad_byte_order_magic(tmp_path: Path) -> None:
    raw = bytearray(pcapng_bytes(FRAMES[:1]))
    raw[8:12] = b"\x01\x02\x03\x04"
    p = tmp_path / "bom.pcapng"
    p.write_bytes(raw)
    with pytest.raises(InputError, match="bad byte-order magic"):
        read(p)


def test_reader_streams_in_constant_memory(tmp_path: Path) -> None:
    frame = bytes(ether(ipv4(udp(b"z" * 1000), src="10.0.0.1", dst="10.0.0.2")))
    path = tmp_path / "big.pcap"
    with path.open("wb") as f:
        f.write(pcap_bytes([]))
        rec = struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
        f.write(rec * 30_000)  # about 31 MB
    tracemalloc.start()
    n = 0
    for n, _frame in enumerate(read_capture(path), 1):  # noqa: B007
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 30_000
    assert peak < 4 << 20, f"peak {peak} bytes while reading a 31 MB file"


def test_pcapng_several_sections_each_with_their_interfaces(tmp_path: Path) -> None:
    first = pcapng_bytes(FRAMES[:2], interfaces=[(1, "eth0")])
    second = pcapng_bytes([(1, FRAMES[2]), (0, FRAMES[3])], interfaces=[(113, "any"), (1, "cni0")], big_endian=True)
    p = tmp_path / "sections.pcapng"
    p.write_bytes(first + second)
    got, warnings = read(p)
    assert warnings == []
    assert [(f.number, f.interface, f.linktype) for f in got] == [(1, "eth0", 1), (2, "eth0", 1), (3, "cni0", 1),
                                                                   (4, "any", 113)]
    info = capture_info(p)
    assert info.linktypes == (1, 113, 1) and info.byte_order == "little"


def test_pcap_snaplen_zero_is_not_a_problem(tmp_path: Path) -> None:
    got, warnings = read(write_pcap(tmp_path / "z.pcap", TIMES, snaplen=0))
    assert len(got) == 5 and warnings == []


def test_modified_pcap_of_old_redhat_tcpdump(tmp_path: Path) -> None:
    """Kuznetzov's format: magic a1b2cd34, 24-byte records (ifindex, protocol, pkt_type, pad)."""
    head = struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1)
    recs = b"".join(struct.pack("<IIIIIHBx", 100 + i, 5, len(f), len(f), 3, 0x0800, 0) + f
                    for i, f in enumerate(FRAMES))
    p = tmp_path / "old.pcap"
    p.write_bytes(head + recs)
    got, warnings = read(p)
    assert warnings == [] and [f.data for f in got] == [bytes(f) for f in FRAMES]
    assert got[1].ts == pytest.approx(101.000005)
    assert capture_info(p).format == "pcap-modified"
