"""IP protocol numbers and names: the one table that flows, netfilter and the simulator share.

``proto_name`` gives the name k8s-trace prints: the output contract's ``tcp``, ``udp``, ``icmp``,
``icmpv6``, ``sctp``, and for the others the name ``iptables-save`` prints (``/etc/protocols`` of
netbase, the IANA keywords in lower case), ``proto-N`` for a number without one. ``proto_number``
reads every name ``iptables-save`` and ``ip6tables-save`` print after ``-p`` (and iptables' own
spellings, such as ``icmpv6``, ``mh``, ``all``), the aliases of ``/etc/protocols``, the names
``conntrack -L`` prints, and the bare number.

Beware ``ipip``: in ``/etc/protocols`` and so in iptables it is protocol 94; the IP-in-IP that
flannel's IPIP backend and Calico send is protocol 4, which iptables-save prints as ``ipencap``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: IANA protocol number -> the lower-case name k8s-trace prints (netbase's /etc/protocols, but 58)
PROTO_NAMES: Mapping[int, str] = MappingProxyType({
    1: "icmp", 2: "igmp", 3: "ggp", 4: "ipencap", 5: "st", 6: "tcp", 8: "egp", 9: "igp", 12: "pup", 17: "udp",
    20: "hmp", 22: "xns-idp", 27: "rdp", 29: "iso-tp4", 33: "dccp", 36: "xtp", 37: "ddp", 38: "idpr-cmtp",
    41: "ipv6", 43: "ipv6-route", 44: "ipv6-frag", 45: "idrp", 46: "rsvp", 47: "gre", 50: "esp", 51: "ah",
    57: "skip", 58: "icmpv6", 59: "ipv6-nonxt", 60: "ipv6-opts", 73: "rspf", 81: "vmtp", 88: "eigrp",
    89: "ospf", 93: "ax.25", 94: "ipip", 97: "etherip", 98: "encap", 103: "pim", 108: "ipcomp", 112: "vrrp",
    115: "l2tp", 124: "isis", 132: "sctp", 133: "fc", 135: "mobility-header", 136: "udplite",
    137: "mpls-in-ip", 138: "manet", 139: "hip", 140: "shim6", 141: "wesp", 142: "rohc", 143: "ethernet",
})

#: other spellings (iptables' built-in names, /etc/protocols aliases, RHEL's keywords) -> number
_ALIASES: Mapping[str, int] = {
    "all": 0, "ip": 0, "hopopt": 0,  # iptables: -p 0 is any protocol
    "ipv6-icmp": 58, "icmp6": 58, "ipv6-mh": 135, "mh": 135,
    "ip-encap": 4, "ipv4": 4, "ipsec-esp": 50, "ipsec-ah": 51, "ospfigp": 89,
}

#: every name ``proto_number`` reads -> its number
PROTO_NUMBERS: Mapping[str, int] = MappingProxyType({**{name: num for num, name in PROTO_NAMES.items()},
                                                     **_ALIASES})


def proto_name(proto: int) -> str:
    """IANA protocol number -> the name k8s-trace prints (``"proto-N"`` when unnamed)."""
    return PROTO_NAMES.get(proto, f"proto-{proto}")


def proto_number(proto: str | int | None) -> int | None:
    """A protocol as iptables-save, conntrack or a user writes it (a name in any case, a number,
    or ``proto-N`` as ``proto_name`` prints it) -> its number; None for None or an unknown name."""
    if proto is None or isinstance(proto, int):
        return proto
    text = proto.strip().lower()
    if text.isdigit():
        return int(text)
    if text.startswith("proto-") and text[6:].isdigit():
        return int(text[6:])
    return PROTO_NUMBERS.get(text)
