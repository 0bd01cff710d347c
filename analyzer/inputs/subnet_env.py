"""flannel's ``/run/flannel/subnet.env`` -> ``SubnetEnv``."""

from __future__ import annotations

import ipaddress
from typing import Any

from analyzer.inputs.ip_route import iter_lines
from analyzer.model.node import SubnetEnv
from analyzer.model.refs import SourceRef

_KEYS = {
    "FLANNEL_NETWORK": "network",
    "FLANNEL_SUBNET": "subnet",
    "FLANNEL_MTU": "mtu",
    "FLANNEL_IPMASQ": "ipmasq",
    "FLANNEL_IPV6_NETWORK": "ipv6_network",
    "FLANNEL_IPV6_SUBNET": "ipv6_subnet",
}


def parse_subnet_env(text: str, source: str) -> tuple[SubnetEnv | None, tuple[str, ...]]:
    fields: dict[str, Any] = {}
    lines: dict[str, SourceRef] = {}
    warnings: list[str] = []
    first: SourceRef | None = None
    for number, line in iter_lines(text):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        ref = SourceRef(source, number, line.rstrip())
        first = first or ref
        key, sep, value = stripped.removeprefix("export ").partition("=")
        value = value.strip().strip('"').strip("'")
        if not sep or key not in _KEYS:
            if sep and key.startswith("FLANNEL_"):
                lines[key] = ref  # e.g. FLANNEL_ENABLE_IPV4 / FLANNEL_IPV6_MTU: kept as evidence only
                continue
            warnings.append(f"{source}:{number}: unrecognised subnet.env line: {stripped}")
            continue
        name = _KEYS[key]
        try:
            if name in ("network", "ipv6_network"):
                fields[name] = ipaddress.ip_network(value, strict=False)
            elif name in ("subnet", "ipv6_subnet"):
                fields[name] = ipaddress.ip_interface(value)
            elif name == "mtu":
                fields[name] = int(value)
            else:
                fields[name] = value.lower() == "true"
        except ValueError as exc:
            warnings.append(f"{source}:{number}: bad {key} value {value!r} ({exc})")
            continue
        lines[key] = ref
    if first is None or not fields:
        return None, tuple(warnings)
    return SubnetEnv(source=first, lines=lines, **fields), tuple(warnings)
