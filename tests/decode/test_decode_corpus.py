"""Every capture of ../shared/corpus decodes without an exception and agrees with tshark.

The reference is the ``*.tshark.tsv`` dissection stored beside each file (see
``../shared/corpus/README.md``): per frame, every IPv4 / IPv6 address, IPv4 protocol, TCP and
UDP port and VXLAN / GENEVE VNI, outermost first, the headers quoted inside ICMP errors included.
Where we differ from tshark on purpose, the difference is listed in ``KNOWN_DIFFERENCES`` with
its reason; everything else must match exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analyzer.errors import InputError
from analyzer.inputs.capture import capture_info, read_capture
from analyzer.inputs.decode import decode_frame, to_record
from analyzer.model.packet import GENEVE, TCP, UDP, VXLAN, IPv4, IPv6

CORPUS_DIRS = ("PcapPlusPlus", "tcpdump", "zeek")
COLUMNS = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "tcp.srcport", "tcp.dstport",
           "udp.srcport", "udp.dstport", "vxlan.vni", "geneve.vni")
CORPUS = Path(os.environ.get("K8S_TRACE_SHARED") or Path(__file__).resolve().parents[3] / "shared") / "corpus"

#: files tshark cannot read at all (no .tsv): what we do instead
UNREADABLE = {
    # the SHB block type was zeroed: not a capture at all
    "PcapPlusPlus/crash-null-deref-pcapng-shb": "error",
    # an EPB claims 65536 bytes in a 32-byte block: skipped with a warning, 0 frames
    "PcapPlusPlus/crash-pcapng-epb-unbounded-length": "warning",
}

#: files whose reference is the -nodefrag TSV: tshark reassembles IP fragments by default and
#: then shows the UDP ports on the last fragment; we decode each packet on its own, so the ports
#: are on the offset-0 fragment, exactly as tshark shows them with reassembly off.
NODEFRAG = {"PcapPlusPlus/IPv4Frag.pcap", "PcapPlusPlus/ipv6_opt_fragments.pcap"}

#: (file, frame, column) -> (tshark's value, ours, why)
KNOWN_DIFFERENCES: dict[tuple[str, int, str], tuple[list[str], list[str], str]] = {
    ("PcapPlusPlus/ipv4-options.pcap", 6, "ip.dst"): (
        ["0.0.0.0"], ["10.0.0.138"],
        "strict source route option: Wireshark reports the route's final hop (0.0.0.0 here) as "
        "ip.dst; we keep the header's destination, the address this hop routes on",
    ),
    ("PcapPlusPlus/ipv4-options.pcap", 7, "ip.dst"): (
        ["0.0.0.0"], ["10.0.0.138"],
        "loose source route option: same as frame 6",
    ),
    ("tcpdump/ipv6_invalid_length.pcap", 1, "ipv6.src"): (
        ["2605:bc80:3010:104::8cd3:9ce"], [],
        "only 39 of the 40 IPv6 header bytes were captured: tshark shows the source it could read; "
        "we make no IPv6 layer from a cut fixed header (the frame gets a truncation note instead)",
    ),
}

#: damaged files: the frames tshark reads before the damage, and our one warning about it
DAMAGED = {
    "PcapPlusPlus/crash-81dba690a3f67ee41a41390a625db732fa1413a1": (11, "packet #12: record of 19200 bytes is cut off"),
    "PcapPlusPlus/crash-eec28dafde1f1ac2299674a75a914ae16d4046fa": (1, "packet #2: record claims 4294967295 bytes"),
    "PcapPlusPlus/crash-8534c61cdf5987482365d7877ade12eef5aaf8b7": (2, "packet #3: file ends inside its record header"),
    "PcapPlusPlus/clusterfuzz-testcase-minimized-FuzzTarget-5757531338309632": (
        1, "packet #2: file ends inside its record header"),
}


def _captures() -> list[str]:
    if not CORPUS.is_dir():
        return []
    out = []
    for d in CORPUS_DIRS:
        for p in sorted((CORPUS / d).iterdir()):
            if p.is_file() and ".tshark" not in p.name:
                out.append(f"{d}/{p.name}")
    return out


def _columns(layers) -> dict[str, list[str]]:
    c: dict[str, list[str]] = {k: [] for k in COLUMNS}
    for layer in layers:
        if isinstance(layer, IPv4):
            c["ip.src"].append(layer.src)
            c["ip.dst"].append(layer.dst)
            c["ip.proto"].append(str(layer.proto))
        elif isinstance(layer, IPv6):
            c["ipv6.src"].append(layer.src)
            c["ipv6.dst"].append(layer.dst)
        elif isinstance(layer, TCP):
            c["tcp.srcport"].append(str(layer.sport))
            c["tcp.dstport"].append(str(layer.dport))
        elif isinstance(layer, UDP):
            c["udp.srcport"].append(str(layer.sport))
            c["udp.dstport"].append(str(layer.dport))
        elif isinstance(layer, VXLAN):
            c["vxlan.vni"].append(str(layer.vni))
        elif isinstance(layer, GENEVE):
            c["geneve.vni"].append(f"0x{layer.vni:06x}")  # tshark 4.0 prints the GENEVE VNI in hex
    return c


def _reference(name: str) -> Path | None:
    suffix = ".tshark-nodefrag.tsv" if name in NODEFRAG else ".tshark.tsv"
    path = CORPUS / (name + suffix)
    return path if path.exists() else None


CAPTURES = _captures()


@pytest.mark.parametrize("name", CAPTURES or ["(corpus absent)"])
def test_corpus_file_matches_tshark(name: str, corpus_dir: Path) -> None:
    path = corpus_dir / name
    warnings: list[str] = []
    if UNREADABLE.get(name) == "error":
        with pytest.raises(InputError, match="not a pcap or pcapng file"):
            list(read_capture(path, warn=warnings.append))
        return
    frames = list(read_capture(path, warn=warnings.append))
    decoded = [decode_frame(f.data, f.linktype) for f in frames]
    for f, pkt in zip(frames, decoded, strict=True):
        rec = to_record(f, pkt)  # must not raise either
        assert rec.frame == f.number
        obj = pkt.to_contract(f.number, f.ts, f.interface)
        assert obj["frame"] == f.number and len(obj["layers"]) == len(pkt.layers)
        assert not any("decoder bug" in n for n in pkt.notes), pkt.notes
    assert [f.number for f in frames] == list(range(1, len(frames) + 1))

    if UNREADABLE.get(name) == "warning":
        assert frames == [] and len(warnings) == 1 and "packet #1" in warnings[0]
        return
    if name in DAMAGED:
        count, message = DAMAGED[name]
        assert len(frames) == count
        assert len(warnings) == 1 and message in warnings[0], warnings
    else:
        assert warnings == []

    ref = _reference(name)
    assert ref is not None, f"{name} has no tshark reference"
    rows = [line.rstrip("\n").split("\t") for line in ref.read_text().splitlines() if line.strip()]
    assert len(rows) == len(frames), f"tshark read {len(rows)} frames, we read {len(frames)}"
    problems = []
    for row, frame, pkt in zip(rows, frames, decoded):
        assert int(row[0]) == frame.number
        ours = _columns(pkt.layers)
        for i, col in enumerate(COLUMNS, 1):
            theirs = row[i].split(",") if i < len(row) and row[i] else []
            if theirs == ours[col]:
                continue
            known = KNOWN_DIFFERENCES.get((name, frame.number, col))
            if known is not None and known[0] == theirs and known[1] == ours[col]:
                continue
            problems.append(f"frame {frame.number} {col}: tshark {theirs}, ours {ours[col]}")
    assert not problems, "\n".join(problems)


def test_every_known_difference_is_still_real(corpus_dir: Path) -> None:
    """A fixed difference must leave the list (keeps the exceptions honest)."""
    for (name, number, col), (theirs, ours, _why) in KNOWN_DIFFERENCES.items():
        frame = next(f for f in read_capture(corpus_dir / name) if f.number == number)
        assert _columns(decode_frame(frame.data, frame.linktype).layers)[col] == ours
        ref = _reference(name)
        assert ref is not None
        row = ref.read_text().splitlines()[number - 1].split("\t")
        assert row[1 + COLUMNS.index(col)].split(",") == theirs


def _records(corpus_dir: Path, name: str):
    return [to_record(f, decode_frame(f.data, f.linktype)) for f in read_capture(corpus_dir / name)]


def test_pcapplusplus_file_level_facts(corpus_dir: Path) -> None:
    """The counts PcapPlusPlus' own FileTests assert (corpus README, "Facts")."""
    def count(recs):
        return (len(recs), sum(r.ip_version != 0 for r in recs), sum(r.proto == 6 for r in recs),
                sum(r.proto == 17 for r in recs))

    sll = [f for f in read_capture(corpus_dir / "PcapPlusPlus/sll.pcap")]
    assert {f.linktype for f in sll} == {113}
    pkts = [decode_frame(f.data, f.linktype) for f in sll]
    assert len(pkts) == 518
    # PcapPlusPlus' "510 IP" counts IPv4 (its IPv4Layer); the one IPv6 mDNS frame comes on top
    assert sum(any(layer.name == "ipv4" for layer in p.layers) for p in pkts) == 510
    assert sum(any(layer.name == "ipv6" for layer in p.layers) for p in pkts) == 1
    assert sum(any(layer.name == "arp" for layer in p.layers) for p in pkts) == 7
    assert sum(any(layer.name == "tcp" for layer in p.layers) for p in pkts) == 483
    assert sum(any(layer.name == "udp" for layer in p.layers) for p in pkts) == 28
    assert count(_records(corpus_dir, "PcapPlusPlus/raw_ip.pcap")) == (100, 100, 92, 8)
    assert sum(r.ip_version == 6 for r in _records(corpus_dir, "PcapPlusPlus/raw_ip.pcap")) == 50
    many = list(read_capture(corpus_dir / "PcapPlusPlus/many_interfaces-1.pcapng"))
    assert len(many) == 64
    assert sum(f.linktype == 1 for f in many) == 62 and sum(f.linktype == 0 for f in many) == 2
    assert {f.interface for f in many} == {"en0", "lo0"}
    assert count(_records(corpus_dir, "PcapPlusPlus/many_interfaces-1.pcapng")) == (64, 64, 32, 32)
    info = capture_info(corpus_dir / "PcapPlusPlus/many_interfaces-1.pcapng")
    assert info.format == "pcapng" and len(info.linktypes) == 11 and info.linktypes.count(0) == 2


def test_timestamps_and_formats(corpus_dir: Path) -> None:
    [only] = list(read_capture(corpus_dir / "PcapPlusPlus/too_many_interfaces.pcapng"))
    assert only.ts == pytest.approx(1460283000.005015, abs=1e-6)  # interface 82 has no tsresol: µs
    assert capture_info(corpus_dir / "PcapPlusPlus/too_many_interfaces.pcapng").nanoseconds is True  # some are 9
    be = capture_info(corpus_dir / "PcapPlusPlus/nanosecs_big_endian.pcap")
    assert (be.format, be.byte_order, be.nanoseconds) == ("pcap", "big", True)
    le = capture_info(corpus_dir / "tcpdump/tcp-handshake-nano.pcap")
    assert (le.byte_order, le.nanoseconds, le.linktypes) == ("little", True, (113,))
    # PcapPlusPlus' .pcap names that are really pcapng: chosen by magic
    assert capture_info(corpus_dir / "PcapPlusPlus/IcmpPackets.pcap").format == "pcapng"
    snap = capture_info(corpus_dir / "PcapPlusPlus/SllPacket.pcap")
    assert snap.snaplen == 128
    [cut] = list(read_capture(corpus_dir / "PcapPlusPlus/SllPacket.pcap"))
    assert (len(cut.data), cut.wire_len) == (128, 1296)


def test_corpus_facts_from_pcapplusplus_tests(corpus_dir: Path) -> None:
    """Header fields the PcapPlusPlus unit tests assert on these exact frames."""
    def first(name: str, number: int = 1):
        f = next(f for f in read_capture(corpus_dir / name) if f.number == number)
        return decode_frame(f.data, f.linktype)

    vx = first("PcapPlusPlus/Vxlan1.pcap")
    [v] = [layer for layer in vx.layers if isinstance(layer, VXLAN)]
    assert (v.vni, v.group_policy, v.flags) == (3000001, 100, 0x8848)
    vlans = [layer for layer in first("PcapPlusPlus/ArpRequestWithVlan.pcap").layers if layer.name == "vlan"]
    assert [(t.vid, t.dei, t.pcp) for t in vlans] == [(666, 1, 5), (200, 0, 2)]
    qinq = [layer for layer in first("PcapPlusPlus/QinQ_802.1_AD.pcapng").layers if layer.name == "vlan"]
    assert [(t.tpid, t.vid) for t in qinq] == [(0x88A8, 30), (0x8100, 100)]
    sll2 = first("PcapPlusPlus/Sll2Packet.pcap").layers[0]
    assert (sll2.name, sll2.protocol, sll2.ifindex, sll2.arphrd, sll2.pkttype, sll2.length) == (
        "sll2", 0x0800, 20, 1, 4, 20)
    gre7 = [layer for layer in first("PcapPlusPlus/GrePackets.pcap", 7).layers if layer.name == "gre"]
    assert [(g.key, g.protocol) for g in gre7] == [(0xFDE8, 0x6558)]
    assert first("PcapPlusPlus/GrePackets.pcap", 7).layers[-1].sport == 1232
    gre6 = [layer for layer in first("PcapPlusPlus/GrePackets.pcap", 6).layers if layer.name == "gre"]
    assert [(g.version, g.key, g.seq, g.ppp_protocol) for g in gre6] == [(1, 17, 539320, 0x21)]
    icmp6 = first("PcapPlusPlus/IcmpPackets.pcap", 6)
    assert [layer.name for layer in icmp6.layers][-3:] == ["icmp", "ipv4", "udp"]
    assert icmp6.quote_start is not None and icmp6.layers[icmp6.quote_start].src == "10.0.1.2"
    tcp_bad = first("PcapPlusPlus/tcp-malformed.pcap")
    assert "ipv4" in [layer.name for layer in tcp_bad.layers]
    # PcapPlusPlus makes no TCP layer here; tshark shows the ports (see the .tsv) and so do we,
    # with a note about the impossible data offset
    assert tcp_bad.notes == ("byte 34: TCP header length 28 exceeds the 20 bytes of the segment",)
    frag = [to_record(f, decode_frame(f.data, f.linktype))
            for f in read_capture(corpus_dir / "PcapPlusPlus/IPv4Frag.pcap")]
    assert [(r.frag_offset, r.more_fragments, r.sport) for r in frag] == [(0, True, 2049), (1480, True, None),
                                                                          (2960, False, None)]
    malformed = [decode_frame(f.data, f.linktype) for f in read_capture(corpus_dir / "PcapPlusPlus/ipv4-malformed.pcap")]
    assert all("ipv4" not in [layer.name for layer in p.layers] for p in malformed)
    assert all(p.notes for p in malformed)
    toobig = to_record(*(lambda f: (f, decode_frame(f.data, f.linktype)))(
        next(iter(read_capture(corpus_dir / "zeek/icmp6-toobig.pcap")))))
    assert (toobig.icmp_type, toobig.icmp_mtu) == (2, 1280)
    assert toobig.quoted is not None and (toobig.quoted.sport, toobig.quoted.dport) == (30000, 13000)
