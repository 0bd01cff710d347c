"""A one-line DNS summary for UDP port 53 (``DNS query A kubernetes.default.svc.cluster.local``).

Cluster DNS through a ClusterIP is where many Kubernetes path problems show first (conntrack
races between parallel A/AAAA queries, NXDOMAIN from a search path, no reply), so the decoder
reads the header and the first question; it is not a DNS dissector. Malformed messages give
None (no summary), never an exception.
"""

from __future__ import annotations

DNS_PORT = 53
_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
          65: "HTTPS", 255: "ANY"}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
MAX_NAME = 255


def dns_summary(data: bytes, off: int, end: int) -> str | None:
    """Summary of the DNS message in ``data[off:end]`` (already capped at the captured bytes)."""
    if end - off < 12:
        return None
    ident = (data[off] << 8) | data[off + 1]
    flags = (data[off + 2] << 8) | data[off + 3]
    qdcount = (data[off + 4] << 8) | data[off + 5]
    ancount = (data[off + 6] << 8) | data[off + 7]
    response = bool(flags & 0x8000)
    text = "DNS " + ("response" if response else "query")
    if qdcount:
        labels: list[str] = []
        pos = off + 12
        size = 0
        while True:
            if pos >= end:
                return None
            n = data[pos]
            if n == 0:
                pos += 1
                break
            if n & 0xC0 or pos + 1 + n > end:  # compression pointers do not belong in a question
                return None
            labels.append(data[pos + 1 : pos + 1 + n].decode("ascii", "replace"))
            size += n + 1
            if size > MAX_NAME:
                return None
            pos += 1 + n
        if pos + 4 > end:
            return None
        qtype = (data[pos] << 8) | data[pos + 1]
        text += f" {_TYPES.get(qtype, f'type{qtype}')} {'.'.join(labels) or '.'}"
    text += f" id=0x{ident:04x}"
    if response:
        rcode = flags & 0x000F
        text += f" {_RCODES.get(rcode, f'rcode{rcode}')} answers={ancount}"
    return text
