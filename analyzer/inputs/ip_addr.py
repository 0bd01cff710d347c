"""``ip [-d] addr show`` and ``ip [-d] link show`` (text and ``-j`` JSON) -> ``Interface``.

Both commands print the same per-device header; ``addr`` adds ``inet``/``inet6`` lines and
``-d`` adds a detail line naming the device kind (``vxlan id 1 local ... dstport 8472``).
``merge_interfaces`` joins the two dumps by device name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from typing import Any

from analyzer.inputs.ip_route import iter_lines, json_array, parse_ip
from analyzer.model.node import Interface, IPInterface, TunnelInfo, VxlanInfo
from analyzer.model.refs import SourceRef

_HEADER = re.compile(r"^(\d+):\s+([^:@\s]+)(?:@([^:\s]+))?:\s+<([^>]*)>(.*)$")
#: first word of a ``-d`` detail line that names the device kind
KINDS = frozenset(
    {"veth", "bridge", "vxlan", "ipip", "sit", "gre", "gretap", "ip6tnl", "ip6gre", "dummy", "tun",
     "bond", "vlan", "macvlan", "macvtap", "ipvlan", "wireguard", "geneve", "vrf", "team", "ifb",
     "openvswitch", "nlmon", "vti", "erspan", "xfrm", "netkit", "bareudp", "macsec", "hsr", "can",
     "vcan", "veth_pair", "batadv", "ipoib", "gtp", "amt"}
)
#: first words of detail lines that carry nothing the model keeps
_IGNORED = frozenset(
    {"valid_lft", "altname", "prop", "addrgenmode", "numtxqueues", "numrxqueues", "gso_max_size",
     "bridge_slave", "bond_slave", "team_slave", "vrf_slave", "promiscuity", "openvswitch_slave",
     "alias", "vf", "parentbus", "inet6_addr_gen_mode", "RX:", "TX:", "RX", "TX", "cdc_ncm",
     "xdp", "xdpgeneric", "prog/xdp", "netns", "vlan_protocol"}
)


#: ``ip -s`` column names -> our counter names (old and new iproute2 spellings)
_STAT_NAMES = {"errors": "errors", "dropped": "dropped", "overrun": "overrun", "missed": "missed",
               "mcast": "multicast", "carrier": "carrier_errors", "collsns": "collisions"}


def parse_ip_addr(text: str, source: str) -> tuple[tuple[Interface, ...], tuple[str, ...]]:
    """Parse ``ip -d addr``/``ip -d link`` text, or their ``-j`` JSON."""
    if text.lstrip().startswith("["):
        return _parse_json(text, source)
    interfaces: list[Interface] = []
    warnings: list[str] = []
    current: dict[str, Any] | None = None
    stats_next = False
    stats_header: list[str] = []

    def flush() -> None:
        if current is not None:
            interfaces.append(Interface(**current))

    for number, line in iter_lines(text):
        ref = SourceRef(source, number, line.rstrip())
        header = _HEADER.match(line)
        if header:
            flush()
            current = _header(header, ref)
            stats_next = False
            continue
        if current is None:
            warnings.append(f"{source}:{number}: unrecognised line before any device header: {line.strip()}")
            continue
        words = line.split()
        first = words[0]
        if stats_next:  # the numbers line under "RX: bytes packets ..." (ip -s)
            stats_next = False
            if all(w.isdigit() for w in words):
                names = stats_header[2:] if stats_header[1:2] == ["errors"] else stats_header[1:]  # ip -s -s
                prefix = "rx" if stats_header[0].startswith("RX") else "tx"
                stats = dict(current.get("stats", {}))
                for key, value in zip(names, words):
                    stats[f"{prefix}_{_STAT_NAMES.get(key, key)}"] = int(value)
                current["stats"] = stats
                continue
        if first.startswith("link/"):
            _link_line(current, words)
        elif first in ("inet", "inet6") and len(words) > 1:
            try:
                addr = _address(words)
            except ValueError as exc:
                warnings.append(f"{source}:{number}: unrecognised address ({exc}): {line.strip()}")
                continue
            current["addresses"] = current["addresses"] + (addr,)
            current["address_sources"] = current["address_sources"] + (ref,)
        elif first in KINDS:
            current["kind"] = first
            try:
                if first == "vxlan":
                    current["vxlan"] = _vxlan(words[1:], ref)
                elif first in ("ipip", "sit", "gre", "ip6tnl", "vti"):
                    current["tunnel"] = _tunnel(first, words[1:], ref)
            except ValueError as exc:
                warnings.append(f"{source}:{number}: unrecognised {first} details ({exc}): {line.strip()}")
        elif first == "bridge_slave" and "hairpin" in words[:-1]:
            current["hairpin"] = words[words.index("hairpin") + 1] == "on"
            current["hairpin_source"] = ref
        elif first in _IGNORED or first.endswith("_slave"):
            if first in ("RX:", "TX:", "RX", "TX"):
                stats_next = True
                stats_header = [w.rstrip(":") for w in words]
                current.setdefault("stats_source", ref)
        else:
            warnings.append(f"{source}:{number}: unrecognised interface line: {line.strip()}")
    flush()
    return tuple(interfaces), tuple(warnings)


def _header(match: re.Match[str], ref: SourceRef) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": match.group(2),
        "source": ref,
        "index": int(match.group(1)),
        "peer": match.group(3),
        "flags": frozenset(f for f in match.group(4).split(",") if f),
        "addresses": (),
        "address_sources": (),
    }
    words = match.group(5).split()
    for key, value in zip(words, words[1:]):
        if key == "mtu" and value.isdigit():
            fields["mtu"] = int(value)
        elif key == "master":
            fields["master"] = value
        elif key == "state":
            fields["state"] = value
        elif key == "link-netnsid" and value.isdigit():
            fields["link_netnsid"] = int(value)
    if "LOOPBACK" in fields["flags"]:
        fields["kind"] = "loopback"
    return fields


def _link_line(current: dict[str, Any], words: list[str]) -> None:
    link_type = words[0][5:]
    if link_type == "ether" and len(words) > 1:
        current["mac"] = words[1].lower()
        current.setdefault("kind", "ether")
    elif link_type == "loopback":
        current["kind"] = "loopback"
    elif link_type in ("ipip", "sit", "gre", "tunnel6") and "kind" not in current:
        current["kind"] = {"tunnel6": "ip6tnl"}.get(link_type, link_type)
    elif link_type == "none" and "kind" not in current:
        current["kind"] = "none"
    for key, value in zip(words, words[1:]):
        if key == "link-netnsid" and value.isdigit():
            current["link_netnsid"] = int(value)


def _address(words: list[str]) -> IPInterface:
    value = words[1]
    if "peer" in words:  # "inet 10.0.0.1 peer 10.0.0.2/32": the prefix belongs to the peer
        peer = words[words.index("peer") + 1]
        prefix = peer.split("/", 1)[1] if "/" in peer else ("32" if ":" not in value else "128")
        value = f"{value.split('/')[0]}/{prefix}"
    return ipaddress.ip_interface(value)


def _vxlan(words: list[str], ref: SourceRef) -> VxlanInfo:
    fields: dict[str, Any] = {}
    learning = True
    i = 0
    while i < len(words):
        key = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if key == "id" and value is not None:
            fields["vni"] = int(value)
        elif key in ("local", "remote", "group") and value is not None and value != "any":
            fields["local" if key == "local" else "remote"] = parse_ip(value)
        elif key == "dev" and value is not None:
            fields["dev"] = value
        elif key in ("dstport", "port") and value is not None and value.isdigit():
            fields["port"] = int(value)
        elif key == "ttl" and value is not None and value.isdigit():
            fields["ttl"] = int(value)
        elif key == "nolearning":
            learning = False
        i += 1
    return VxlanInfo(vni=fields.pop("vni", 0), source=ref, learning=learning, **fields)


def _tunnel(mode: str, words: list[str], ref: SourceRef) -> TunnelInfo:
    fields: dict[str, Any] = {}
    if words and words[0] in ("ipip", "ip6ip", "any", "gre", "sit"):
        words = words[1:]
    for key, value in zip(words, words[1:]):
        if key in ("local", "remote") and value != "any":
            fields[key] = parse_ip(value)
        elif key == "dev":
            fields["dev"] = value
    return TunnelInfo(mode=mode, source=ref, **fields)


def _parse_json(text: str, source: str) -> tuple[tuple[Interface, ...], tuple[str, ...]]:
    items, warnings = json_array(text, source)
    interfaces: list[Interface] = []
    for index, line, item in items:
        if not isinstance(item, dict) or "ifname" not in item:
            if item:  # ip -j addr prints {} for devices filtered out
                warnings.append(f"{source}:{line}: unrecognised interface entry #{index + 1}")
            continue
        short = {k: item[k] for k in ("ifindex", "ifname", "flags", "mtu", "operstate") if k in item}
        ref = SourceRef(source, line, json.dumps(short, separators=(",", ":")))
        try:
            info = item.get("linkinfo") or {}
            kind = info.get("info_kind")
            link_type = item.get("link_type")
            if kind is None:
                kind = {"loopback": "loopback", "ether": "ether", "ipip": "ipip", "none": "none"}.get(
                    link_type or "", link_type
                )
            data_ = info.get("info_data") or {}
            vxlan = None
            tunnel = None
            if kind == "vxlan":
                vxlan = VxlanInfo(
                    vni=int(data_.get("id", 0)),
                    source=ref,
                    port=int(data_["port"]) if "port" in data_ else None,
                    local=parse_ip(data_["local"]) if data_.get("local") else None,
                    remote=parse_ip(data_.get("remote") or data_["group"])
                    if data_.get("remote") or data_.get("group") else None,
                    dev=data_.get("link"),
                    learning=bool(data_.get("learning", True)),
                    ttl=int(data_["ttl"]) if data_.get("ttl") else None,
                )
            elif kind in ("ipip", "sit", "gre", "ip6tnl", "vti"):
                tunnel = TunnelInfo(
                    mode=kind,
                    source=ref,
                    local=parse_ip(data_["local"]) if data_.get("local") not in (None, "any") else None,
                    remote=parse_ip(data_["remote"]) if data_.get("remote") not in (None, "any") else None,
                    dev=data_.get("link"),
                )
            addrs = tuple(
                ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
                for a in item.get("addr_info", []) or []
                if "local" in a and "prefixlen" in a
            )
            stats: dict[str, int] = {}
            for direction in ("rx", "tx"):
                block = (item.get("stats64") or item.get("stats") or {}).get(direction) or {}
                for key, value in block.items() if isinstance(block, dict) else ():
                    if isinstance(value, int):
                        stats[f"{direction}_{key}"] = value
            peer = item.get("link")
            if peer is None and item.get("link_index") is not None:
                peer = f"if{item['link_index']}"
            interfaces.append(
                Interface(
                    name=item["ifname"],
                    source=ref,
                    index=item.get("ifindex"),
                    peer=peer,
                    flags=frozenset(item.get("flags", [])),
                    mtu=item.get("mtu"),
                    mac=(item.get("address") or "").lower() or None if link_type == "ether" else None,
                    kind=kind,
                    master=item.get("master"),
                    state=item.get("operstate"),
                    addresses=addrs,
                    address_sources=(ref,) * len(addrs),
                    vxlan=vxlan,
                    tunnel=tunnel,
                    link_netnsid=item.get("link_netnsid"),
                    stats=stats,
                    stats_source=ref if stats else None,
                    hairpin=_json_hairpin(item),
                    hairpin_source=ref if _json_hairpin(item) is not None else None,
                )
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            warnings.append(f"{source}:{line}: unrecognised interface entry #{index + 1} ({exc})")
    return tuple(interfaces), tuple(warnings)


def _json_hairpin(item: dict[str, Any]) -> bool | None:
    """``ip -j -d link``: linkinfo.info_slave_data.hairpin of a bridge port."""
    info = item.get("linkinfo") or {}
    slave = info.get("info_slave_data") if isinstance(info, dict) else None
    value = slave.get("hairpin") if isinstance(slave, dict) else None
    return value if isinstance(value, bool) else None


def merge_interfaces(*dumps: tuple[Interface, ...]) -> tuple[Interface, ...]:
    """Join ``ip addr`` and ``ip link`` views of the same devices (by name, first dump's order)."""
    merged: dict[str, Interface] = {}
    for dump in dumps:
        for iface in dump:
            old = merged.get(iface.name)
            if old is None:
                merged[iface.name] = iface
                continue
            updates: dict[str, Any] = {}
            for f in dataclasses.fields(Interface):
                mine, theirs = getattr(old, f.name), getattr(iface, f.name)
                if f.name in ("addresses", "address_sources"):
                    continue
                if _empty(mine) and not _empty(theirs):
                    updates[f.name] = theirs
            if not old.addresses and iface.addresses:
                updates["addresses"] = iface.addresses
                updates["address_sources"] = iface.address_sources
            if old.kind in ("ether", None) and iface.kind not in ("ether", None):
                updates["kind"] = iface.kind
            merged[iface.name] = dataclasses.replace(old, **updates) if updates else old
    return tuple(merged.values())


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, tuple | frozenset | dict) and not value)
