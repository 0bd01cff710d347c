"""An ``iptables-save`` / ``ip6tables-save`` rule set as records that keep their ``file:line``.

A ``RuleSet`` holds tables, a table holds chains (built-in chains carry a policy), a chain holds
rules in order. Each ``Rule`` keeps its verbatim text and ``SourceRef`` and the parsed pieces the
netfilter engine needs: the generic selectors (``-s -d -i -o -p -f`` with their negation), the
``-m`` matches with their options, and the target with its options. Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from analyzer.model.refs import SourceRef

#: built-in chains of each table, in the order the kernel registers them
BUILTIN_CHAINS: Mapping[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


@dataclass(frozen=True, slots=True)
class Option:
    """One ``--name value...`` of a match or target; ``negated`` when written ``! --name``/``--name !``."""

    name: str  # without the leading dashes: "dport", "ctstate", "to-destination"
    values: tuple[str, ...] = ()
    negated: bool = False

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""

    def __str__(self) -> str:
        neg = "! " if self.negated else ""
        vals = "".join(f" {v}" for v in self.values)
        return f"{neg}--{self.name}{vals}"


@dataclass(frozen=True, slots=True)
class Match:
    """One ``-m module`` with its options (``-p tcp`` adds an implicit ``tcp`` match)."""

    module: str
    options: tuple[Option, ...] = ()
    implicit: bool = False  # created by -p (options such as --dport given without -m tcp)

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)


@dataclass(frozen=True, slots=True)
class Selector:
    """A generic selector (``-s``, ``-d``, ``-i``, ``-o``, ``-p``) with its negation."""

    value: str
    negated: bool = False

    def __str__(self) -> str:
        return f"! {self.value}" if self.negated else self.value


#: what a Rule's options parse into (the keyword arguments of ``Rule`` besides its place)
RULE_FIELDS = ("src", "dst", "in_interface", "out_interface", "protocol", "fragment", "matches", "target",
               "goto", "target_options", "truncated")
_EMPTY_FIELDS: Mapping[str, object] = {"matches": (), "target_options": (), "goto": False}


class Rule:
    """One ``-A CHAIN ...`` line: its place (table, chain, 1-based index, file:line and verbatim
    text) and its parsed pieces.

    The pieces are parsed on first use by the ``parse`` callable the reader gives (a 120k-rule
    dump loads in a fraction of the time, and a walk only parses the rules it reaches). A rule
    whose options cannot be parsed has ``error`` set and no matches or target. Immutable.
    """

    __slots__ = ("table", "chain", "index", "_file", "_line", "_text", "_source", "_counters", "_fields", "_parse",
                 "_error")

    table: str
    chain: str
    index: int  # 1-based position in its chain (as ``iptables -L --line-numbers`` shows it)

    def __init__(self, table: str, chain: str, index: int, source: SourceRef, *,
                 counters: tuple[int, int] | None = None,
                 parse: Callable[[str], Mapping[str, object]] | None = None, **fields: object) -> None:
        if fields:
            unknown = set(fields) - set(RULE_FIELDS)
            if unknown:
                raise TypeError(f"unknown Rule fields {sorted(unknown)}")
        _init(self, table, chain, index, source.file, source.line, source.text, source, counters,
              dict(fields) if (fields or parse is None) else None, parse)

    @classmethod
    def lazy(cls, table: str, chain: str, index: int, file: str, line: int, text: str,
             counters: tuple[int, int] | None, parse: Callable[[str], Mapping[str, object]]) -> Rule:
        """A rule whose options are parsed by ``parse(text)`` on first use (the reader's fast path)."""
        rule = cls.__new__(cls)
        _init(rule, table, chain, index, file, line, text, None, counters, None, parse)
        return rule

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Rule is immutable (tried to set {name})")

    @property
    def source(self) -> SourceRef:
        """file, 1-based line, verbatim text"""
        src = self._source
        if src is None:
            src = SourceRef(self._file, self._line, self._text)
            object.__setattr__(self, "_source", src)
        return src

    def _get(self, name: str) -> object:
        fields = self._fields
        if fields is None:
            try:
                parsed = dict(self._parse(self._text)) if self._parse else {}
            except ValueError as exc:
                parsed = {}
                object.__setattr__(self, "_error", str(exc))
            object.__setattr__(self, "_fields", parsed)
            fields = parsed
        if name in fields:
            return fields[name]
        return _EMPTY_FIELDS.get(name)

    @property
    def parsed(self) -> bool:
        return self._fields is not None

    @property
    def error(self) -> str | None:
        """Why the rule's options could not be parsed (None: they could)."""
        self._get("target")
        return self._error

    src = property(lambda self: self._get("src"))  # Selector | None
    dst = property(lambda self: self._get("dst"))
    in_interface = property(lambda self: self._get("in_interface"))
    out_interface = property(lambda self: self._get("out_interface"))
    protocol = property(lambda self: self._get("protocol"))
    fragment = property(lambda self: self._get("fragment"))  # -f: True, ! -f: False, absent: None
    matches = property(lambda self: self._get("matches"))  # tuple[Match, ...]
    target = property(lambda self: self._get("target"))  # str | None (None: no -j/-g, the rule only counts)
    goto = property(lambda self: self._get("goto"))  # -g instead of -j
    target_options = property(lambda self: self._get("target_options"))  # tuple[Option, ...]
    #: the last line of a cut-off dump: the rule may have lost options at its end
    truncated = property(lambda self: bool(self._get("truncated")))

    @property
    def counters(self) -> tuple[int, int] | None:
        """[packets:bytes] before -A (``iptables-save -c``) or ``-c P B`` in the rule."""
        if self._counters is not None:
            return self._counters
        return self._get("counters")  # type: ignore[return-value]

    @property
    def text(self) -> str:
        return self._text

    @property
    def file(self) -> str:
        return self._file

    @property
    def line(self) -> int:
        return self._line

    def match(self, module: str) -> Match | None:
        return next((m for m in self.matches if m.module == module), None)

    def target_option(self, name: str) -> Option | None:
        return next((o for o in self.target_options if o.name == name), None)

    @property
    def comment(self) -> str | None:
        m = self.match("comment")
        if m is None:
            return None
        opt = m.option("comment")
        return opt.value if opt else None

    def where(self) -> str:
        return f"{self._file}:{self._line}"

    def _key(self) -> tuple:
        return (self.table, self.chain, self.index, self._file, self._line, self._text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Rule({self.where()}, {self.table}/{self.chain}#{self.index}: {self._text!r})"


_SLOT_SETTERS = tuple(Rule.__dict__[n].__set__ for n in Rule.__slots__)


def _init(rule: Rule, *values: object) -> None:
    """Fill a Rule's slots in ``__slots__`` order (error last, None) without ``__setattr__``."""
    for setter, value in zip(_SLOT_SETTERS, (*values, None)):
        setter(rule, value)


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    table: str
    policy: str | None  # ACCEPT/DROP for built-in chains, None for user chains ("-")
    source: SourceRef | None = None  # the ":NAME POLICY [p:b]" line (None when only created by -N/-A)
    rules: tuple[Rule, ...] = ()
    counters: tuple[int, int] | None = None

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN_CHAINS.get(self.table, ())


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    chains: Mapping[str, Chain] = field(default_factory=dict)
    source: SourceRef | None = None  # the "*name" line

    def chain(self, name: str) -> Chain | None:
        return self.chains.get(name)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every table of one ``iptables-save`` (or ``ip6tables-save``) output."""

    source: str
    tables: Mapping[str, Table] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # lines that were skipped or look wrong, "file:line: ..."
    notes: tuple[str, ...] = ()  # informative header facts ("iptables-legacy tables present")
    family: str = "ipv4"  # "ipv6" when the dump holds ip6tables rules
    backend: str | None = None  # "legacy" / "nf_tables" when the header says so
    generator: str | None = None  # "iptables-save v1.8.4" from the "# Generated by" line
    #: a dump cut off inside a table: table -> the chains whose end is missing (the chain being
    #: written when the file ends, and every chain declared after it)
    incomplete: Mapping[str, frozenset[str]] = field(default_factory=dict)
    cut_at: int | None = None  # the last line of a cut-off dump

    def is_complete(self, table: str, chain: str) -> bool:
        return chain not in self.incomplete.get(table, frozenset())

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)

    def chain(self, table: str, name: str) -> Chain | None:
        t = self.tables.get(table)
        return t.chains.get(name) if t else None

    def rules(self, table: str | None = None) -> tuple[Rule, ...]:
        out: list[Rule] = []
        for tname, t in self.tables.items():
            if table is not None and tname != table:
                continue
            for c in t.chains.values():
                out.extend(c.rules)
        return tuple(out)

    def problems(self) -> tuple[str, ...]:
        """``file:line: ...`` for every rule whose options cannot be parsed (parses them all)."""
        return tuple(f"{r.where()}: rule skipped by the walk: {r.error}" for r in self.rules() if r.error)

    def rule_count(self) -> int:
        return sum(len(c.rules) for t in self.tables.values() for c in t.chains.values())

    def rule_at(self, line: int) -> Rule | None:
        """The rule written on 1-based line ``line`` of the dump."""
        for t in self.tables.values():
            for c in t.chains.values():
                for r in c.rules:
                    if r.source.line == line:
                        return r
        return None

    def find(self, text: str) -> tuple[Rule, ...]:
        """Rules whose verbatim text contains ``text`` (handy in tests and reports)."""
        return tuple(r for r in self.rules() if text in r.source.text)
