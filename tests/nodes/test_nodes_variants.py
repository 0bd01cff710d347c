"""jc-style fixtures: `data/variants/<parser>-<origin>.out` is command output as other distributions
and iproute2/conntrack versions print it, `<same>.json` the records and warnings we expect. Fields at
their default value are left out of the JSON; every record's source is `file:line`.

Regenerate after a deliberate parser change with `K8S_TRACE_UPDATE_GOLDENS=1 pytest tests/nodes`
and review the diff."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import pytest

from analyzer.inputs.bridge_fdb import parse_bridge_fdb
from analyzer.inputs.conntrack import parse_conntrack
from analyzer.inputs.ip_addr import parse_ip_addr
from analyzer.inputs.ip_neigh import parse_ip_neigh
from analyzer.inputs.ip_route import parse_ip_route
from analyzer.inputs.ip_rule import parse_ip_rule
from analyzer.model.refs import SourceRef

VARIANTS = Path(__file__).resolve().parent / "data" / "variants"
PARSERS = {"ip_route": parse_ip_route, "ip_rule": parse_ip_rule, "ip_addr": parse_ip_addr,
           "ip_neigh": parse_ip_neigh, "bridge_fdb": parse_bridge_fdb, "conntrack": parse_conntrack}


def to_json(value: Any) -> Any:
    if isinstance(value, SourceRef):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            if f.name in ("address_sources",) or (default is not dataclasses.MISSING and item == default):
                continue
            out[f.name] = to_json(item)
        return out
    if isinstance(value, frozenset | set):
        return sorted(to_json(v) for v in value)
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, ipaddress._BaseAddress | ipaddress._BaseNetwork | ipaddress.IPv4Interface
                  | ipaddress.IPv6Interface):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


CASES = sorted(VARIANTS.glob("*.out"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_variant(path: Path) -> None:
    parser = PARSERS[path.stem.split("-", 1)[0]]
    records, warnings = parser(path.read_text(), path.name)
    got = {"records": to_json(records), "warnings": list(warnings)}
    golden = path.with_suffix(".json")
    if os.environ.get("K8S_TRACE_UPDATE_GOLDENS"):
        golden.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(golden.read_text())


def test_every_variant_has_a_golden() -> None:
    assert len(CASES) >= 8
    assert sorted(p.with_suffix(".json") for p in CASES) == sorted(VARIANTS.glob("*.json"))
