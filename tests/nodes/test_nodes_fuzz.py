"""Every node-dump parser is total: any text (or JSON of any shape) gives records and warnings,
never an exception; load_bundle raises nothing but InputError."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analyzer.errors import InputError
from analyzer.inputs.bridge_fdb import parse_bridge_fdb
from analyzer.inputs.bundle import load_bundle, sniff_kind
from analyzer.inputs.conntrack import parse_conntrack
from analyzer.inputs.ip_addr import parse_ip_addr
from analyzer.inputs.ip_neigh import parse_ip_neigh
from analyzer.inputs.ip_route import parse_ip_route
from analyzer.inputs.ip_rule import parse_ip_rule
from analyzer.inputs.kubectl import parse_kubectl
from analyzer.inputs.subnet_env import parse_subnet_env
from analyzer.inputs.sysctl import parse_sysctl

PARSERS = [parse_ip_route, parse_ip_rule, parse_ip_addr, parse_ip_neigh, parse_bridge_fdb, parse_conntrack,
           parse_kubectl, parse_subnet_env, parse_sysctl]

#: words the parsers react to, so that generated lines reach deep branches
WORDS = ["dev", "via", "inet", "inet6", "table", "metric", "src", "onlink", "mtu", "lock", "local", "blackhole",
         "default", "10.0.0.1", "10.0.0.0/8", "fe80::1", "x", "0x10/0xff", "from", "to", "lookup", "fwmark",
         "not", "iif", "goto", "vxlan", "id", "dstport", "ipip", "remote", "lladdr", "aa:bb:cc:dd:ee:ff",
         "PERMANENT", "FAILED", "self", "dst", "vlan", "master", "port", "vni", "src=1.2.3.4", "dst=1.2.3.5",
         "sport=1", "dport=x", "[ASSURED]", "mark=", "tcp", "6", "100", "nexthop", "1:", "lo:", "<UP>",
         "link/ether", "peer", "FLANNEL_SUBNET=", "a.b = c", "{", "[", '"kind":', "suppress_prefixlength"]
LINES = st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join)
TEXTS = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(LINES, LINES.map(lambda s: "    " + s)), max_size=12).map("\n".join),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(WORDS) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["dst", "dev", "gateway", "ifname", "addr_info", "priority", "mac", "lladdr", "state",
                         "flags", "table", "linkinfo", "info_kind", "info_data", "local", "prefixlen", "items",
                         "kind", "metadata", "spec", "status", "nexthops", "metrics", "src", "srclen"]),
        inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, index=st.integers(0, len(PARSERS) - 1))
@example(text="1: x: <UP>\n    vxlan id x dstport y", index=2)
@example(text="10.0.0.0/8 via inet", index=0)
def test_parsers_are_total_on_text(text: str, index: int) -> None:
    result = PARSERS[index](text, "f")
    assert all(w.startswith("f") for w in result[-1])


@settings(max_examples=300, deadline=None)
@given(value=st.lists(JSON_VALUES, max_size=4), index=st.integers(0, len(PARSERS) - 1))
@example(value=["x"], index=1)
@example(value=["x"], index=3)
@example(value=[{"mac": 1, "flags": 3}], index=4)
def test_parsers_are_total_on_json(value: list[object], index: int) -> None:
    text = json.dumps(value)
    result = PARSERS[index](text, "f")
    assert all(w.startswith("f") for w in result[-1])
    sniff_kind(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.sampled_from(["ip-route", "ip-addr", "node", "x", "ip-rule", "bridge-fdb",
                                              "subnet.env", "conntrack", "kubectl.json", "eth0.pcap"]),
                             st.one_of(TEXTS, st.binary(max_size=64).map(lambda b: b.decode("latin-1"))),
                             max_size=5))
def test_load_bundle_raises_only_input_error(files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="k8sC-fuzz-") as tmp:
        node = Path(tmp) / "n"
        node.mkdir()
        for name, text in files.items():
            (node / name).write_text(text, encoding="utf-8", errors="replace")
        try:
            snap = load_bundle(node)
        except InputError as exc:
            assert str(exc).startswith(str(node))
        else:
            assert snap.name
            snap.backend, snap.node_ip, snap.pod_cidr  # noqa: B018  the derived views never raise


@pytest.mark.parametrize("parser", PARSERS)
def test_parsers_on_empty_input(parser) -> None:  # noqa: ANN001
    parser("", "f")
    parser("[]", "f")
