#!/usr/bin/env python3
"""The baseline a network engineer would write first: dpkt's pcap reader and Ethernet decoder.

    python bench/dpkt_loop.py FILE.pcap

Counts packets per inner 5-tuple (through VXLAN on UDP 4789/8472 and IPIP), as ``k8s-trace flows``
does, and prints the number of distinct directional 5-tuples and of IP packets. dpkt has no VXLAN
decoder, so the 8-byte VXLAN header is skipped by hand and the inner frame decoded as Ethernet.
"""

from __future__ import annotations

import sys
from collections import Counter

import dpkt

VXLAN_PORTS = (4789, 8472)


def count(path: str) -> Counter:
    tuples: Counter = Counter()
    with open(path, "rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            try:
                ip = dpkt.ethernet.Ethernet(buf).data
                if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                    continue
                l4 = ip.data
                if isinstance(l4, dpkt.udp.UDP) and l4.dport in VXLAN_PORTS:
                    ip = dpkt.ethernet.Ethernet(l4.data[8:]).data
                    if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                        continue
                    l4 = ip.data
                elif isinstance(l4, dpkt.ip.IP):  # IPIP
                    ip, l4 = l4, l4.data
                ports = (l4.sport, l4.dport) if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP) else (None, None)
                proto = ip.p if isinstance(ip, dpkt.ip.IP) else ip.nxt
                tuples[(ip.src, ip.dst, proto, *ports)] += 1
            except (dpkt.UnpackError, AttributeError):
                continue
    return tuples


def main() -> int:
    tuples = count(sys.argv[1])
    print(f"{len(tuples)} inner 5-tuples, {sum(tuples.values())} IP packets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
