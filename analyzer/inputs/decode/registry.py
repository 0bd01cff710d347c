"""The decoding state (``Cursor``) and the explicit binding tables that pick the next decoder.

Every decoder is a plain function ``decode_x(cur, off, end) -> None``: ``off`` is where its
header starts, ``end`` where the enclosing header says the data ends (it may lie beyond the
captured bytes, ``cur.n``; read only below ``(end if end < cur.n else cur.n)``). A decoder appends its layer,
then hands the rest to the next decoder through one of the tables below. Tables are filled by
``bind_*`` calls at the bottom of each protocol module, so the binding sits beside the protocol.
"""

from __future__ import annotations

from collections.abc import Callable

from analyzer.model.packet import Layer, Raw

Decoder = Callable[["Cursor", int, int], None]

#: Ethernet type (also SLL protocol, GRE protocol type, GENEVE protocol type) -> decoder
ETHERTYPES: dict[int, Decoder] = {}
#: IP protocol / IPv6 next header -> decoder (the IP decoders put the tunnel markers in front)
IP_PROTOS: dict[int, Decoder] = {}
#: UDP "kind" (vxlan, geneve, flannel-udp) -> decoder; the ports come from the Cursor
UDP_KINDS: dict[str, Decoder] = {}

#: nested layers are capped: a 64 KiB frame of IPIP headers must not recurse 3,000 deep
MAX_LAYERS = 48


def bind_ethertype(value: int, decoder: Decoder) -> None:
    if ETHERTYPES.setdefault(value, decoder) is not decoder:
        raise RuntimeError(f"conflicting decoders for ethertype 0x{value:04x}")


def bind_ip_proto(value: int, decoder: Decoder) -> None:
    if IP_PROTOS.setdefault(value, decoder) is not decoder:
        raise RuntimeError(f"conflicting decoders for IP protocol {value}")


def bind_udp_kind(kind: str, decoder: Decoder) -> None:
    if UDP_KINDS.setdefault(kind, decoder) is not decoder:
        raise RuntimeError(f"conflicting decoders for UDP payload {kind}")


class Cursor:
    """Mutable state of one ``decode_frame`` call (never escapes it)."""

    __slots__ = (
        "data",
        "n",
        "layers",
        "notes",
        "quote_start",
        "quoted",
        "cut",
        "udp_ports",
        "payload_offset",
        "payload_end",
        "ip_src",
        "ip_dst",
        "ip_version",
        "first_fragment",
        "pending_csum",
        "etype",
    )

    def __init__(self, data: bytes, udp_ports: dict[int, str]) -> None:
        self.data = data
        self.n = len(data)
        self.layers: list[Layer] = []
        self.notes: list[str] = []
        self.quote_start: int | None = None
        self.quoted = False  # decoding the packet quoted by an ICMP error
        self.cut = False  # a truncation was already noted
        self.udp_ports = udp_ports
        self.payload_offset: int | None = None
        self.payload_end: int | None = None
        # raw addresses of the last IP header, for UDP pseudo-header checksums
        self.ip_src = b""
        self.ip_dst = b""
        self.ip_version = 0
        self.first_fragment = False  # the last IP header is an offset-0 fragment (MF set)
        # outer UDP checksum mismatches: (layer index, offset, length, found, wanted, src, dst)
        self.pending_csum: list[tuple[int, int, int, int, int, bytes, bytes]] = []
        self.etype = 0  # the Ethernet type being dispatched (a VLAN tag learns its TPID from it)

    def note(self, text: str) -> None:
        self.notes.append(f"quoted packet: {text}" if self.quoted else text)

    def short(self, off: int, what: str, need: int, end: int) -> None:
        """Note that ``what`` at ``off`` needs ``need`` bytes and fewer are left before ``end``.

        A quote inside an ICMP error is cut by design and a snaplen cut is noted once per frame,
        so only the first truncation of a frame outside a quote becomes a note.
        """
        left = max(0, min(end, self.n) - off)
        if not self.quoted and not self.cut:
            self.cut = True
            self.notes.append(f"byte {off}: {what} needs {need} bytes, {left} left")

    def truncated(self, off: int, what: str, need: int, end: int) -> None:
        """``what`` at ``off`` is cut short: note it (as ``short``) and keep its bytes as a
        ``raw`` layer ("short <what>")."""
        self.short(off, what, need, end)
        self.raw(off, end, f"short {what}")

    def raw(self, off: int, end: int, what: str) -> None:
        """Leave the bytes from ``off`` undecoded (a ``raw`` layer), if any were captured."""
        stop = min(end, self.n)
        if stop > off:
            self.layers.append(Raw(off, stop - off, what))

    def room(self) -> bool:
        if len(self.layers) < MAX_LAYERS:
            return True
        self.notes.append(f"decoding stopped after {MAX_LAYERS} layers")
        return False

    def quote(self, decoder: Decoder, off: int, end: int) -> None:
        """Decode the packet an ICMP/ICMPv6 error quotes at ``off``: its layers are quoted ones."""
        if self.room():
            if self.quote_start is None:
                self.quote_start = len(self.layers)
            self.quoted = True
            decoder(self, off, end)

    def ethertype(self, value: int, off: int, end: int) -> None:
        self.etype = value
        decoder = ETHERTYPES.get(value)
        if decoder is None:
            if value <= 1500:
                self.raw(off, end, f"802.3 length {value} (LLC)")
            else:
                self.raw(off, end, f"ethertype 0x{value:04x}")
        elif len(self.layers) < MAX_LAYERS or self.room():
            decoder(self, off, end)

    def ip_proto(self, value: int, off: int, end: int) -> None:
        decoder = IP_PROTOS.get(value)
        if decoder is None:
            self.raw(off, end, f"IP protocol {value}")
        elif len(self.layers) < MAX_LAYERS or self.room():
            decoder(self, off, end)

    def udp_kind(self, kind: str, off: int, end: int) -> None:
        if len(self.layers) < MAX_LAYERS or self.room():
            UDP_KINDS[kind](self, off, end)
