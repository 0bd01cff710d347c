"""The fast path's columns equal the general decoder's ``to_record`` fields, frame by frame.

Every shape the fast path recognises, every shape it must hand over (options, fragments,
IPv6 extension headers, ICMP errors, GENEVE, GRE, cut frames, damaged headers...), every link
type, and random mutations of all of them: the columns must be exactly what ``to_record`` says.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from builders import (
    arp,
    ether,
    geneve,
    gre,
    icmp,
    icmp_frag_needed,
    ipv4,
    ipv6,
    ipv6_ext,
    ipv6_frag,
    sll,
    sll2,
    tcp,
    udp,
    vlan,
    vxlan,
    vxlan_tcp_frame,
    write_pcap,
    write_pcapng,
)
from flows.flowcheck import differences, fast_rows, reference_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.errors import InputError
from analyzer.inputs.fastpath import AddressTable, iter_batches

ROOT = Path(__file__).resolve().parents[2]
POD_A, POD_B = "10.244.1.5", "10.244.2.7"


def _ip_payloads() -> list[bytes]:
    """Network-layer packets (no link header) of every kind the fast path meets."""
    data = tcp(b"x" * 30, sport=40000, dport=80, flags="PA", seq=1000, ack=2000)
    inner_tcp = ether(ipv4(data, src=POD_A, dst=POD_B), src="0a:58:0a:f4:01:05", dst="0a:58:0a:f4:02:07")
    inner6 = ether(ipv6(tcp(b"y" * 7, sport=5555, dport=443, flags="A", seq=5, ack=6), src="fd00::5", dst="fd00::7"))
    quoted = ipv4(udp(vxlan(inner_tcp, vni=1), sport=50000, dport=8472, checksum=0),
                  src="192.168.0.11", dst="192.168.0.12", df=True)
    return [
        ipv4(data, src=POD_A, dst=POD_B),  # plain TCP
        ipv4(tcp(sport=40001, dport=80, flags="S", mss=1460, wscale=7), src=POD_A, dst=POD_B),  # options
        ipv4(udp(b"q" * 20, sport=33333, dport=53), src=POD_A, dst="10.96.0.10"),  # DNS
        ipv4(udp(vxlan(inner_tcp, vni=1), sport=51000, dport=8472, checksum=0), src="192.168.0.11",
             dst="192.168.0.12"),  # flannel VXLAN
        ipv4(udp(vxlan(inner_tcp, vni=42), sport=51000, dport=4789), src="192.168.0.11",
             dst="192.168.0.12"),  # IANA port, real checksum
        ipv4(udp(vxlan(inner6, vni=7), dport=8472, checksum=0), src="192.168.0.11", dst="192.168.0.12"),  # v6 inner
        ipv4(udp(vxlan(ether(vlan(ipv4(data, src=POD_A, dst=POD_B), vid=5)), vni=1), dport=8472, checksum=0),
             src="192.168.0.11", dst="192.168.0.12"),  # VLAN inside VXLAN
        ipv4(udp(vxlan(inner_tcp, vni=1, flags=0x00), dport=8472, checksum=0), src="192.168.0.11",
             dst="192.168.0.12"),  # I flag clear
        ipv4(udp(b"not vxlan", sport=8472, dport=40000), src="192.168.0.11", dst="192.168.0.12"),
        ipv4(ipv4(data, src=POD_A, dst=POD_B), src="192.168.0.11", dst="192.168.0.12"),  # IPIP
        ipv4(ipv4(icmp(b"p" * 16), src=POD_A, dst=POD_B), src="192.168.0.11", dst="192.168.0.12"),
        ipv4(ipv6(tcp(sport=1, dport=2), src="fd00::1", dst="fd00::2"), src="192.168.0.11",
             dst="192.168.0.12"),  # 6in4
        ipv4(udp(geneve(inner_tcp, vni=9), dport=6081), src="192.168.0.11", dst="192.168.0.12"),
        ipv4(udp(ipv4(data, src=POD_A, dst=POD_B), dport=8285), src="192.168.0.11", dst="192.168.0.12"),
        ipv4(gre(inner_tcp, protocol=0x6558, key=3), src="192.168.0.11", dst="192.168.0.12"),
        ipv4(icmp(b"ping" * 8), src=POD_A, dst=POD_B),  # echo
        ipv4(icmp_frag_needed(quoted[:28 + 8 + 8 + 14 + 40], mtu=1450), src="192.168.0.12",
             dst="192.168.0.11"),  # underlay frag-needed quoting VXLAN
        ipv4(icmp(ipv4(udp(b"", sport=33333, dport=53), src=POD_A, dst="10.96.0.10")[:28], type=3, code=3),
             src="10.96.0.10", dst=POD_A),  # port unreachable
        ipv4(data, src=POD_A, dst=POD_B, options=b"\x01\x01\x01\x00"),  # IPv4 options
        ipv4(data, src=POD_A, dst=POD_B, mf=True, ident=77),  # first fragment
        ipv4(b"z" * 24, src=POD_A, dst=POD_B, proto=6, frag_offset=1480, ident=77),  # later fragment
        ipv4(data, src=POD_A, dst=POD_B, total_len=0),  # TSO
        ipv4(data, src=POD_A, dst=POD_B, total_len=30),  # total length too small for TCP
        ipv4(tcp(sport=1, dport=2, data_offset=3), src=POD_A, dst=POD_B),  # bogus data offset
        ipv4(udp(b"abc", sport=1, dport=2, length=200), src=POD_A, dst=POD_B),  # bogus UDP length
        ipv6(tcp(b"d" * 10, sport=40000, dport=443, flags="PA", seq=1, ack=1), src="fd00::1", dst="fd00::2"),
        ipv6(udp(b"q" * 9, sport=5353, dport=53), src="fd00::1", dst="fd00::53"),
        ipv6(tcp(sport=1, dport=2), src="fd00::1", dst="fd00::2", ext=ipv6_ext(6), ext_nh=0),
        ipv6(tcp(sport=1, dport=2), src="fd00::1", dst="fd00::2", ext=ipv6_frag(6, mf=True), ext_nh=44),
        # a fragment id above 2**31 (the id is 32 bits unsigned: it once overflowed an int32 column)
        ipv6(tcp(sport=1, dport=2), src="fd00::1", dst="fd00::2", ext=ipv6_frag(6, mf=True, ident=0xF8DB_5A66),
             ext_nh=44),
        ipv6(b"", src="fe80::1", dst="ff02::1", nh=59),
    ]


def _ether_frames() -> list[bytes]:
    frames = [ether(p) for p in _ip_payloads()]
    frames += [ether(vlan(p, vid=100)) for p in _ip_payloads()[:6]]
    frames += [ether(vlan(vlan(_ip_payloads()[0], vid=10), vid=20, tpid=0x88A8))]  # QinQ
    frames += [ether(arp()), ether(arp(op=2)), ether(b"\x00" * 40, ethertype=0x88CC)]  # ARP, LLDP
    frames += [ether(b"\xaa\xaa\x03" + b"\x00" * 40, ethertype=43)]  # 802.3 length + LLC
    full = vxlan_tcp_frame(payload=b"p" * 200)
    frames += [full[:n] for n in (10, 14, 20, 33, 40, 49, 60, 77, 91, 100, len(full) - 1)]  # cut frames
    return frames


def _write(tmp_path: Path, name: str, frames: list[bytes], **kw) -> Path:
    return write_pcap(tmp_path / name, frames, **kw)


def _assert_equal(path: Path, **kw) -> None:
    diff = differences(path, **kw)
    assert not diff, "\n".join(diff[:30])


def test_every_shape_on_ethernet_agrees_with_the_decoder(tmp_path: Path) -> None:
    path = _write(tmp_path, "eth.pcap", _ether_frames())
    _assert_equal(path)
    rows = fast_rows(path)
    # the common shapes really took the fast path (not everything through the fallback)
    fast = [r for r in rows if not r["fallback"]]
    assert len(fast) >= 15
    assert {r["tunnel"] for r in fast} >= {"vxlan", "ipip", None}
    vx = rows[3]
    assert (vx["src"], vx["dst"], vx["sport"], vx["dport"], vx["vni"], vx["outer_port"]) == (
        POD_A, POD_B, 40000, 80, 1, 8472)
    assert (vx["outer_src"], vx["outer_dst"], vx["payload_len"], vx["seq"], vx["flags"]) == (
        "192.168.0.11", "192.168.0.12", 30, 1000, 0x18)


@pytest.mark.parametrize(
    ("linktype", "wrap"),
    [
        (113, lambda p: sll(p, pkttype=4)),
        (276, lambda p: sll2(p, ifindex=3)),
        (101, lambda p: p),
        (228, lambda p: p),
        (229, lambda p: p),
    ],
    ids=["sll", "sll2", "raw", "ipv4", "ipv6"],
)
def test_cooked_and_raw_link_types_agree(tmp_path: Path, linktype: int, wrap) -> None:
    frames = [wrap(p) for p in _ip_payloads()]
    frames += [wrap(p)[: len(wrap(b"")) + 30] for p in _ip_payloads()[:4]]  # cut inside the headers
    if linktype in (113, 276):
        frames.append(wrap(arp()))
        frames.append(sll(_ip_payloads()[0], arphrd=824) if linktype == 113 else sll2(_ip_payloads()[0], arphrd=824))
    path = _write(tmp_path, f"lt{linktype}.pcap", frames, linktype=linktype)
    _assert_equal(path)
    # linktype 229 carries IPv6 only: its two plain IPv6 TCP/UDP frames are the fast ones
    assert sum(not r["fallback"] for r in fast_rows(path)) >= (2 if linktype == 229 else 5)


def test_snaplen_cut_frames_agree_and_wire_length_is_kept(tmp_path: Path) -> None:
    full = vxlan_tcp_frame(payload=b"p" * 1000)
    frames = [(1.0 + i, full[:cut], len(full)) for i, cut in enumerate((96, 128, 200, len(full)))]
    path = write_pcap(tmp_path / "snap.pcap", frames, snaplen=200)
    _assert_equal(path)
    assert [r["wire_len"] for r in fast_rows(path)] == [len(full)] * 4


def test_byte_orders_and_nanoseconds_agree(tmp_path: Path) -> None:
    frames = [(1_700_000_000.123456789 + i, f) for i, f in enumerate(_ether_frames()[:12])]
    for big in (False, True):
        for nanos in (False, True):
            path = write_pcap(tmp_path / f"o{big}{nanos}.pcap", frames, big_endian=big, nanos=nanos)
            _assert_equal(path)
            assert fast_rows(path)[0]["ts"] == reference_rows(path)[0]["ts"]


def test_pcapng_and_gzip_go_through_the_general_reader_with_the_same_columns(tmp_path: Path) -> None:
    frames = _ether_frames()
    ng = write_pcapng(tmp_path / "c.pcapng", [(0, f) for f in frames[:20]] + [(1, sll2(p)) for p in _ip_payloads()],
                      interfaces=((1, "eth0"), (276, "any")))
    gz = write_pcap(tmp_path / "c.pcap.gz", frames, gz=True)
    for path in (ng, gz):
        _assert_equal(path)
        assert len(fast_rows(path)) == len(reference_rows(path))


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz"])
def test_compressed_pcap_streams_through_the_fast_path(tmp_path: Path, kind: str) -> None:
    import bz2
    import gzip
    import lzma

    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind]
    plain = _write(tmp_path, "c.pcap", _ether_frames())
    path = tmp_path / f"c.pcap.{kind}"
    path.write_bytes(compress(plain.read_bytes()))
    _assert_equal(path)
    rows = fast_rows(path)
    assert sum(not r["fallback"] for r in rows) >= 15
    # damaged in the middle: the frames before the damage, then one warning from the general reader
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    warnings: list[str] = []
    try:
        got = [int(f) for b in iter_batches(path, addrs=AddressTable(), warn=warnings.append) for f in b.frame]
    except InputError as exc:  # bzip2 compresses 900 kB blocks: this file is one block, nothing survives
        assert kind == "bz2" and str(path) in str(exc)
        return
    assert got == list(range(1, len(got) + 1)) and len(got) < len(rows)
    assert len(warnings) == 1 and str(path) in warnings[0]


def test_extra_vxlan_port(tmp_path: Path) -> None:
    frames = [vxlan_tcp_frame(port=9999), vxlan_tcp_frame(port=8472)]
    path = _write(tmp_path, "port.pcap", frames)
    _assert_equal(path, vxlan_ports=frozenset({4789, 8472, 9999}))
    rows = fast_rows(path, vxlan_ports=frozenset({4789, 8472, 9999}))
    assert [r["tunnel"] for r in rows] == ["vxlan", "vxlan"]
    assert fast_rows(path)[0]["tunnel"] is None  # without the extra port: plain UDP between nodes


def test_generated_mix_agrees_across_chunk_boundaries(tmp_path: Path) -> None:
    """~1.3 MB of the bench mix: records straddle the 512 KiB read boundaries."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from gen_mix import generate
    finally:
        sys.path.pop(0)
    path = tmp_path / "mix.pcap"
    generate(3000, path, seed=5)
    _assert_equal(path, chunk_bytes=1)
    rows = fast_rows(path, chunk_bytes=1)
    assert [r["frame"] for r in rows] == list(range(1, 3001))
    assert sum(r["fallback"] for r in rows) < 100  # ARP, ICMP echo, IPv6 TCP are fast shapes too


def test_the_walker_process_gives_the_same_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big files are walked by a helper process; force it on small ones, damaged ones included."""
    import analyzer.inputs.fastpath as fastpath

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from gen_mix import generate
    finally:
        sys.path.pop(0)
    path = tmp_path / "mix.pcap"
    generate(4000, path, seed=9)
    own = fast_rows(path)
    monkeypatch.setattr(fastpath, "WALKER_MIN_BYTES", 0)
    monkeypatch.setenv("K8S_TRACE_WALKER", "1")
    monkeypatch.setattr(fastpath, "_WALK_RECORDS", 333)  # many messages
    calls = []
    real = fastpath._walked_chunks

    def counted(*args, **kw):
        calls.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(fastpath, "_walked_chunks", counted)
    assert fast_rows(path, chunk_bytes=100_000) == own
    assert calls == [str(path)]
    _assert_equal(path, chunk_bytes=100_000)
    data = path.read_bytes()
    for cut in (len(data) - 7, len(data) // 2):  # a cut-off record at the end, in the middle
        bad = tmp_path / f"cut{cut}.pcap"
        bad.write_bytes(data[:cut])
        warnings: list[str] = []
        got = [int(f) for b in iter_batches(bad, addrs=AddressTable(), warn=warnings.append) for f in b.frame]
        assert got == list(range(1, len(got) + 1)) and 0 < len(got) < 4000
        assert len(warnings) == 1 and "is cut off" in warnings[0]
    # stopping early leaves no helper behind
    batches = iter_batches(path, addrs=AddressTable())
    next(batches)
    batches.close()


def test_a_cut_off_last_record_keeps_the_frames_before_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "cut.pcap", _ether_frames()[:8])
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    warnings: list[str] = []
    addrs = AddressTable()
    frames = [int(f) for b in iter_batches(path, addrs=addrs, warn=warnings.append) for f in b.frame]
    assert frames == list(range(1, 8))
    assert len(warnings) == 1 and "cut.pcap: packet #8" in warnings[0]
    _assert_equal(path)


def test_an_impossible_record_length_is_reported_and_the_frames_before_kept(tmp_path: Path) -> None:
    frames = _ether_frames()[:6]
    path = _write(tmp_path, "bad.pcap", frames)
    data = bytearray(path.read_bytes())
    off = 24
    for f in frames[:3]:
        off += 16 + len(f)
    struct.pack_into("<I", data, off + 8, 10_000_000)
    path.write_bytes(bytes(data))
    warnings: list[str] = []
    got = [int(f) for b in iter_batches(path, addrs=AddressTable(), warn=warnings.append) for f in b.frame]
    assert got == [1, 2, 3]
    assert any("packet #4" in w for w in warnings)


_SEEDS = [bytes(f) for f in _ether_frames()[:20]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    picks=st.lists(
        st.tuples(st.integers(0, len(_SEEDS) - 1), st.lists(st.tuples(st.integers(0, 150), st.integers(0, 255)),
                                                           max_size=3), st.integers(0, 40)),
        min_size=1, max_size=12,
    ),
    linktype=st.sampled_from([1, 1, 113, 276, 101]),
)
def test_mutated_frames_agree(tmp_path: Path, picks, linktype: int) -> None:
    """Random byte edits and cuts of valid frames: fast path and decoder still agree exactly."""
    frames = []
    for idx, edits, cut in picks:
        f = bytearray(_SEEDS[idx])
        if linktype == 113:
            f = bytearray(sll(bytes(f[14:])))
        elif linktype == 276:
            f = bytearray(sll2(bytes(f[14:])))
        elif linktype == 101:
            f = f[14:]
        for pos, val in edits:
            if pos < len(f):
                f[pos] = val
        frames.append(bytes(f[: len(f) - cut] if cut < len(f) else f))
    path = write_pcap(tmp_path / "mut.pcap", frames, linktype=linktype)
    _assert_equal(path)


def test_the_flows_command_imports_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from analyzer.cli import main\n"
        "try:\n    main(['flows', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in ('scapy', 'networkx', 'jinja2', 'dpkt') if m in sys.modules)\n"
        "print('HEAVY', bad)\n"
    )
    path = _write(tmp_path, "c.pcap", _ether_frames())  # fast and fallback frames
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr
    # only common shapes: not even the general decoder is loaded
    fast = _write(tmp_path, "fast.pcap", [vxlan_tcp_frame(), ether(arp())])
    code += "print('DECODER', 'analyzer.inputs.decode' in sys.modules)\n"
    r = subprocess.run([sys.executable, "-c", code, str(fast)], capture_output=True, text=True, timeout=60)
    assert "DECODER False" in r.stdout, r.stdout + r.stderr


def test_limits_agree_with_the_capture_reader() -> None:
    import analyzer.inputs.capture as capture
    import analyzer.inputs.fastpath as fastpath

    assert (fastpath.MAX_RECORD, fastpath.MAX_BLOCK, fastpath.LINKTYPE_MASK) == (
        capture.MAX_RECORD, capture.MAX_BLOCK, capture.LINKTYPE_MASK)


def test_interface_comes_from_the_file_name_in_samples(tmp_path: Path) -> None:
    from analyzer.pipeline.flows import scan_flows

    path = _write(tmp_path, "flannel.1.pcap", [vxlan_tcp_frame(), ether(ipv4(icmp(), src=POD_A, dst=POD_B))])
    flows = scan_flows([path], sample=1).flows
    assert {r.interface for f in flows for r in f.samples} == {"flannel.1"}
