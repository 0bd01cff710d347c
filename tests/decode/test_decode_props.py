"""Properties: the decoder is total over arbitrary bytes; a cut capture gives the frames before the cut."""

from __future__ import annotations

import contextlib
import gzip
import struct
from pathlib import Path

import pytest
from builders import (
    arp,
    ether,
    geneve,
    geneve_option,
    gre,
    icmp_frag_needed,
    icmpv6,
    ipv4,
    ipv6,
    ipv6_ext,
    ipv6_frag,
    pcap_bytes,
    pcapng_bytes,
    sctp,
    sll,
    sll2,
    tcp,
    udp,
    vlan,
    vxlan_tcp_frame,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analyzer.errors import InputError
from analyzer.inputs.capture import capture_info, read_capture
from analyzer.inputs.decode import decode_frame, to_record
from analyzer.model.packet import RawFrame, summarize

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]

_inner = ether(ipv4(tcp(b"GET / HTTP/1.1\r\n", sport=40000, dport=80, flags="PA", seq=1, ack=1),
                    src="10.244.1.5", dst="10.244.2.7"))
#: well-formed frames of every shape, mutated by the structured fuzzer below
SEEDS: list[tuple[int, bytes]] = [
    (1, vxlan_tcp_frame()),
    (1, vxlan_tcp_frame(udp_checksum=None, port=4789)),
    (1, ether(vlan(vlan(ipv4(udp(b"q" * 12, dport=53)), vid=100), vid=30, tpid=0x88A8))),
    (1, ether(arp())),
    (1, ether(ipv4(udp(geneve(_inner, vni=0x1092, options=geneve_option()), dport=6081)))),
    (1, ether(ipv4(gre(_inner, protocol=0x6558, key=7, seq=9, checksum=True)))),
    (1, ether(ipv4(ipv4(udp(b"x", sport=30000, dport=13000)), src="1.2.3.4", dst="5.6.7.8"))),
    (1, ether(ipv4(ipv6(icmpv6(type=128)), src="10.0.0.1", dst="10.0.0.2"))),
    (1, ether(ipv6(ipv4(tcp(flags="S", mss=1460, wscale=7)), src="2002::1", dst="2002::2"))),
    (1, ether(ipv4(icmp_frag_needed(bytes(vxlan_tcp_frame())[14:], mtu=1450), src="192.168.0.1"))),
    (1, ether(ipv6(icmpv6(bytes(ipv6(udp(b"abcd", sport=30000, dport=13000)))[:52], type=2,
                          rest=struct.pack("!I", 1280))))),
    (1, ether(ipv6(udp(b"z" * 30, dport=6363), ext=ipv6_ext(44, body=b"\x00" * 6) + ipv6_frag(17, mf=True),
                   ext_nh=0))),
    (1, ether(ipv4(sctp()))),
    (1, ether(ipv4(udp(bytes(ipv4(tcp(flags="S"), src="10.1.0.2", dst="10.1.1.3")), dport=8285)))),
    (113, sll(ipv4(tcp(flags="SA", mss=1400)), pkttype=4)),
    (276, sll2(vxlan_tcp_frame()[14:], ifindex=7)),
    (101, ipv4(udp(b"dns", dport=53))),
    (229, ipv6(tcp(flags="S"))),
    (0, struct.pack("<I", 2) + ipv4(icmp_frag_needed(b"", mtu=0))),
    (108, struct.pack(">I", 24) + ipv6(udp())),
]


def _check(data: bytes, linktype: int) -> None:
    pkt = decode_frame(data, linktype)
    assert not any("decoder bug" in n for n in pkt.notes), pkt.notes
    end = 0
    for layer in pkt.layers:
        assert layer.offset >= end, f"{layer} starts before the end of the previous layer ({end})"
        assert layer.length >= 0 and layer.offset + layer.length <= len(data), layer
        end = layer.offset + layer.length
    if pkt.quote_start is not None:
        assert 0 < pkt.quote_start <= len(pkt.layers)
        assert pkt.layers[pkt.quote_start - 1].name in ("icmp", "icmpv6")
    frame = RawFrame("fuzz.pcap", 1, 0.0, linktype, data, len(data), None)
    rec = to_record(frame, pkt)
    assert rec.cap_len == len(data)
    obj = pkt.to_contract(1, 0.0, None)
    assert obj["layers"] == [layer.name for layer in pkt.layers]
    assert isinstance(summarize(pkt), str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), linktype=st.sampled_from(LINKTYPES))
@example(data=bytes(12) + b"\x08\x00\x45", linktype=1)  # IPv4 cut after its first byte
@example(data=bytes(12) + b"\x08\x00\x4f" + bytes(40), linktype=1)  # IHL 60 with 42 bytes
@example(data=b"\x60" + bytes(39) + b"\x00" * 8, linktype=229)  # hop-by-hop chain of zeros
@example(data=b"\x45\x00\x00\x00" + bytes(5) + b"\x04" + bytes(10) + b"\x45" * 100, linktype=101)  # IPIP, TSO
def test_decoder_is_total_and_in_bounds(data: bytes, linktype: int) -> None:
    _check(data, linktype)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_real_frames_stay_total(seed: tuple[int, bytes], data: st.DataObject) -> None:
    """Flip, cut and splice bytes of well-formed frames: deep layers see broken headers too."""
    linktype, frame = seed
    buf = bytearray(frame)
    for _ in range(data.draw(st.integers(0, 4))):
        if buf:
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    _check(bytes(buf[:cut]), linktype)


def test_pathological_nesting_is_capped() -> None:
    # 2,000 nested IPIP headers in one 40 KB frame: decoded as far as the cap, then a note
    pkt = ipv4(udp(b"x"))
    for _ in range(2000):
        pkt = ipv4(pkt)  # proto 4 taken from the payload
    frame = bytes(ether(pkt))
    assert len(frame) == 14 + 2001 * 20 + 9
    decoded = decode_frame(frame, 1)
    assert len(decoded.layers) <= 60
    assert any("decoding stopped after" in n for n in decoded.notes)
    _check(frame, 1)


# --- captures cut at every byte ------------------------------------------------------------------

FRAMES = [bytes(f) for _lt, f in SEEDS if _lt == 1][:6]


def _pcap_ends(raw: bytes) -> list[int]:
    """Byte offset where each record ends."""
    ends, pos = [], 24
    while pos < len(raw):
        caplen = struct.unpack_from("<I", raw, pos + 8)[0]
        pos += 16 + caplen
        ends.append(pos)
    return ends


def _pcapng_ends(raw: bytes) -> tuple[list[int], list[int]]:
    """(end offset of every packet block, end offset of every block)."""
    packets, blocks, pos = [], [], 0
    while pos < len(raw):
        btype, n = struct.unpack_from("<II", raw, pos)
        pos += n
        blocks.append(pos)
        if btype in (2, 3, 6):
            packets.append(pos)
    return packets, blocks


PCAP = pcap_bytes(FRAMES)
PCAPNG = pcapng_bytes(FRAMES, interfaces=[(1, "eth0")])


def _read_cut(tmp: Path, raw: bytes, cut: int, gz: bool = False) -> tuple[list, list[str]]:
    path = tmp / f"cut{cut}.bin"
    path.write_bytes(gzip.compress(raw[:cut]) if gz else raw[:cut])
    warnings: list[str] = []
    frames = list(read_capture(path, warn=warnings.append))
    path.unlink()
    return frames, warnings


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(PCAP)), gz=st.booleans())
def test_pcap_cut_anywhere(tmp_path: Path, cut: int, gz: bool) -> None:
    if cut < 4:
        with pytest.raises(InputError, match="too short to be a capture"):
            _read_cut(tmp_path, PCAP, cut, gz)
        return
    frames, warnings = _read_cut(tmp_path, PCAP, cut, gz)
    ends = _pcap_ends(PCAP)
    whole = [i for i, e in enumerate(ends) if e <= cut]
    assert [f.data for f in frames] == [FRAMES[i] for i in whole]
    assert [f.number for f in frames] == [i + 1 for i in whole]
    clean = cut == 24 or cut in ends
    assert len(warnings) == (0 if clean else 1), warnings
    if warnings:
        assert warnings[0].startswith(f"{tmp_path / f'cut{cut}.bin'}: ")
        assert ("packet #" in warnings[0]) or ("byte " in warnings[0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(PCAPNG)))
@example(cut=len(PCAPNG))
def test_pcapng_cut_anywhere(tmp_path: Path, cut: int) -> None:
    if cut < 4:
        with pytest.raises(InputError, match="too short to be a capture"):
            _read_cut(tmp_path, PCAPNG, cut)
        return
    frames, warnings = _read_cut(tmp_path, PCAPNG, cut)
    packets, blocks = _pcapng_ends(PCAPNG)
    whole = [i for i, e in enumerate(packets) if e <= cut]
    assert [f.data for f in frames] == [FRAMES[i] for i in whole]
    assert all(f.interface == "eth0" for f in frames)
    assert len(warnings) == (0 if cut in blocks else 1), warnings


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=4, max_size=200), prefix=st.sampled_from([b"", PCAP[:24], PCAPNG[:28], PCAPNG[:_pcapng_ends(PCAPNG)[1][1]]]))
def test_reader_raises_only_input_error(tmp_path: Path, prefix: bytes, data: bytes) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(prefix + data)
    warnings: list[str] = []
    try:
        frames = list(read_capture(path, warn=warnings.append))
    except InputError:
        return
    assert len(warnings) <= len(frames) + 2
    for f in frames:
        assert f.number >= 1 and isinstance(f.data, bytes)
    with contextlib.suppress(InputError):  # capture_info may refuse, but only that way
        capture_info(path)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80))
def test_dns_summary_is_total(data: bytes) -> None:
    from analyzer.inputs.decode.dns import dns_summary

    text = dns_summary(data, 0, len(data))
    assert text is None or text.startswith("DNS ")
