"""What the explain engine knows and derives: capture points, the cluster's shape, stitched flows.

These records sit between the inputs (captures, node bundles) and the explain engines
(``analyzer/engines/{classify,stitch,paths,diagnose}.py``). Addresses are kept as strings because
they come straight from ``PacketRecord`` and go straight into the JSON document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.model.packet import fast_frozen
from analyzer.model.record import PacketRecord

#: ``CapturePoint.interface`` of a cooked ``tcpdump -i any`` capture whose frames carry no name.
ANY_INTERFACE = "any"
#: ``CapturePoint.interface`` of a capture taken between the nodes (a switch mirror port, a router),
#: recognised by the overlay packets of several node pairs in it; such a capture has no node.
UNDERLAY_INTERFACE = "underlay"


@dataclass(frozen=True, slots=True)
class CapturePoint:
    """One capture file and where it was taken."""

    file: str
    node: str | None  # node name (bundle) or an inferred name, None when unknown
    interface: str | None  # "eth0", "cni0"...; "any" for a -i any capture; None when unknown
    frames: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    link: str = "unknown"  # "ethernet", "sll", "sll2", "raw", "unknown"

    @property
    def is_any(self) -> bool:
        return self.interface == ANY_INTERFACE

    @property
    def is_underlay(self) -> bool:
        return self.node is None and self.interface == UNDERLAY_INTERFACE


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """One node as explain sees it, from its dumps or inferred from the packets."""

    name: str
    addresses: tuple[str, ...] = ()  # underlay (node) addresses
    pod_cidr: str | None = None
    backend: str = "unknown"  # contract values: vxlan, host-gw, ..., unknown
    vtep_interface: str | None = None  # flannel.1
    bridge_interface: str | None = None  # cni0
    underlay_interface: str | None = None  # eth0
    mtu: dict[str, int] = field(default_factory=dict)  # interface -> MTU (from dumps)
    from_dumps: bool = False
    pod_veths: dict[str, str] = field(default_factory=dict)  # pod ip -> host-side veth (neigh + bridge FDB)


@dataclass(frozen=True, slots=True)
class Service:
    """A service address (ClusterIP or NodePort target) and its name when known."""

    ip: str
    port: int | None
    name: str | None  # "default/web:http" from a kube-proxy comment, or kubectl
    no_endpoints: bool = False
    evidence: tuple[tuple[str, int, str], ...] = ()  # (file, line, text) of the rules behind it


@dataclass(frozen=True, slots=True)
class Topology:
    """The cluster's shape: nodes, pod/cluster/service ranges, overlay parameters."""

    nodes: tuple[NodeFacts, ...]
    cluster_cidr: str | None = None
    service_cidr: str | None = None
    services: tuple[Service, ...] = ()
    overlay: str | None = None  # "vxlan", "host-gw", None when unseen
    overlay_port: int | None = None
    vni: int | None = None
    pod_names: dict[str, str] = field(default_factory=dict)  # pod ip -> "ns/name"
    has_dumps: bool = False
    inferred: tuple[str, ...] = ()  # sentences saying what was inferred from packets
    #: inner address -> node, from the tunnel headers it travelled in, for addresses no node's pod
    #: CIDR holds (pod subnets shared between nodes, as Calico's /26 blocks in one /24 are)
    pod_hosts: dict[str, str] = field(default_factory=dict)

    def node_named(self, name: str | None) -> NodeFacts | None:
        return next((n for n in self.nodes if n.name == name), None)

    def node_ip(self, name: str | None) -> str | None:
        """The first address of node ``name``; None when the node or its addresses are unknown."""
        facts = self.node_named(name)
        return facts.addresses[0] if facts is not None and facts.addresses else None


@fast_frozen  # @dataclass(frozen=True, slots=True), a faster __init__ (thousands per capture)
class Sighting:
    """One captured copy of a flow's packet at one capture point."""

    record: PacketRecord
    node: str | None
    interface: str | None  # resolved interface of this copy (never "any" when the frame names it)
    direction: str  # "fwd" (client to server) or "rev"
    ts: float  # clock-corrected timestamp
    key: tuple  # identity of the packet across capture points (same packet elsewhere = same key)


@fast_frozen  # @dataclass(frozen=True, slots=True), a faster __init__ (thousands per capture)
class ObservedNat:
    """An address rewrite learnt from the packets: the same packet seen before and after."""

    type: str  # "dnat", "snat" or "masquerade"
    before: str  # "ip:port"
    after: str
    node: str | None
    evidence: tuple[tuple[str, int], ...] = ()  # (file, packet) of the two copies


@dataclass(frozen=True, slots=True)
class ClockOffset:
    node: str
    offset: float  # seconds added to the node's timestamps
    basis: str
    samples: int = 0


@dataclass(slots=True)
class StitchedFlow:
    """One connection as its initiator addressed it, with every copy of its packets."""

    id: str
    proto: int
    client: tuple[str, int | None]
    server: tuple[str, int | None]  # as addressed by the client (before DNAT)
    real_server: tuple[str, int | None]  # after DNAT (== server without DNAT)
    sightings: list[Sighting] = field(default_factory=list)
    errors: list[Sighting] = field(default_factory=list)  # ICMP errors about this flow
    nats: list[ObservedNat] = field(default_factory=list)
    tuples: set[tuple] = field(default_factory=set)  # every (src, sport, dst, dport) seen
    retransmissions: list[Sighting] = field(default_factory=list)


@fast_frozen  # @dataclass(frozen=True, slots=True), a faster __init__ (thousands per capture)
class Evidence:
    """Contract Evidence: a packet of a capture or a line of a dump (1-based)."""

    file: str
    packet: int | None = None
    line: int | None = None
    text: str = ""

    def to_json(self) -> dict:
        return {"file": self.file, "packet": self.packet, "line": self.line, "text": self.text}


@fast_frozen  # @dataclass(frozen=True, slots=True), a faster __init__ (thousands per capture)
class PathHop:
    """One place on a flow's expected path, overlaid with what the captures show there."""

    id: str
    node: str | None
    interface: str | None
    kind: str  # pod, veth, bridge, netfilter, route, vtep, nic, underlay, service, external, host
    action: str  # send, bridge, filter, dnat, snat, route, encap, transmit, receive, decap, deliver...
    label: str
    observed: bool | None = None
    capturable: bool = False  # a capture on (node, interface) can see the packet here
    evidence: tuple[Evidence, ...] = ()
    packets: tuple[tuple[str, int, float], ...] = ()  # (file, packet, ts) of the first few copies
    failed: bool = False
    edge_label: str = ""  # what changes on the way to the next hop
    edge_kind: str = "plain"  # plain, nat, encap, decap, drop
    facts: tuple[tuple[str, str], ...] = ()  # wording parameters (explain.py)


@fast_frozen  # @dataclass(frozen=True, slots=True), a faster __init__ (thousands per capture)
class Finding:
    """A diagnosis: what was observed, where, the evidence and the fix, in English and Chinese."""

    code: str
    severity: str  # error, warning, info
    node: str | None
    message: str
    message_zh: str
    fix: str
    fix_zh: str
    evidence: tuple[Evidence, ...] = ()
    checkable: bool = True
    flow: str | None = None  # flow id, None for a finding about the whole cluster

    def to_json(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "node": self.node,
            "message": self.message,
            "evidence": [e.to_json() for e in self.evidence],
            "fix": self.fix,
            "message_zh": self.message_zh,
            "fix_zh": self.fix_zh,
            "checkable": self.checkable,
        }


class SummaryRow:
    """A delivered flow the text report lists in one line and nothing more (``pipeline.plain``'s
    lane): what its brief document's summary line reads, without building the document;
    ``doc()`` builds the whole document."""

    __slots__ = ("_make", "_src", "client", "encapsulation", "findings", "id", "kind", "proto", "server")

    def __init__(self, id: str, proto: str, client: dict, server: dict, kind: str,  # noqa: A002 - the document's key
                 encapsulation: list, findings: list, make: object, src: object) -> None:
        self.id, self.proto, self.client, self.server, self.kind = id, proto, client, server, kind
        self.encapsulation, self.findings, self._make, self._src = encapsulation, findings, make, src

    def doc(self) -> dict:
        return self._make(self, self._src)  # type: ignore[operator]



class RowBlock:
    """A run of consecutive flows (``f{first}``, ``f{first + 1}``...) that the text report lists
    in one line each: delivered (``pipeline.plain``'s lane); those with findings are in ``special``
    (index in the run -> its ``SummaryRow``), the others have none.
    Per flow ``i`` of the run (0-based): its protocol name ``protos[i]``, client
    ``client_eps[clients[i]]`` (with ``ports[i]`` for its port: the naming of a client whose
    ``client_by_port`` is False does not depend on it; ``client(i)`` gives the flow's own endpoint),
    server ``server_eps[servers[i]]``, kind and tunnel list ``tail_defs[tails[i]]``. The ``*_eps``
    and ``*_defs`` lists are shared by the blocks of a run of ``explain``; ``doc(i)`` gives the
    flow's whole (brief) document."""

    __slots__ = ("_client", "_doc", "client_by_port", "client_eps", "clients", "first", "ports", "protos",
                 "server_eps", "servers", "special", "tail_defs", "tails")

    def __init__(self, first: int, protos: list[str], clients: list[int], ports: list[int | None], servers: list[int],
                 tails: list[int], client_eps: list[dict], client_by_port: list[bool], server_eps: list[dict],
                 tail_defs: list[tuple[str, list]], client: object, doc: object,
                 special: dict[int, SummaryRow] | None = None) -> None:
        self.first, self.protos, self.clients, self.ports, self.servers, self.tails = (
            first, protos, clients, ports, servers, tails)
        self.client_eps, self.client_by_port, self.server_eps, self.tail_defs = (
            client_eps, client_by_port, server_eps, tail_defs)
        self._client, self._doc = client, doc
        self.special = special or {}

    def __len__(self) -> int:
        return len(self.protos)

    def client(self, i: int) -> dict:
        return self._client(i)  # type: ignore[operator]

    def doc(self, i: int) -> dict:
        row = self.special.get(i)
        return row.doc() if row is not None else self._doc(i)  # type: ignore[operator]
