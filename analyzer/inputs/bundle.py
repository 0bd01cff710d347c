"""Node bundles: the directory (or ``collect`` tarball) of one node's dumps and captures.

``BUNDLE_COMMANDS`` is the single list of (file name, shell command) pairs that ``collect`` runs
on a node and the lab runs inside its namespaces; ``docs/bundle.md`` documents the same table
(a test keeps the two in step). ``load_bundle`` reads a bundle back into a ``NodeSnapshot``.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import lzma
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from analyzer.errors import InputError
from analyzer.inputs.bridge_fdb import parse_bridge_fdb
from analyzer.inputs.capture import (
    READABLE_COMPRESSION,
    capture_stem,
    compression_of,
    decompressor,
    sniff_capture,
)
from analyzer.inputs.conntrack import parse_conntrack
from analyzer.inputs.ip_addr import merge_interfaces, parse_ip_addr
from analyzer.inputs.ip_neigh import parse_ip_neigh
from analyzer.inputs.ip_route import iter_lines, parse_ip_route
from analyzer.inputs.ip_rule import parse_ip_rule
from analyzer.inputs.iptables_save import parse_iptables_save
from analyzer.inputs.kubectl import looks_like_kubectl, parse_kubectl
from analyzer.inputs.nft_ruleset import parse_nft_ruleset
from analyzer.inputs.subnet_env import parse_subnet_env
from analyzer.inputs.sysctl import parse_sysctl
from analyzer.model.node import CaptureFile, KubeInventory, NodeSnapshot, Route
from analyzer.model.refs import SourceRef


def _save_command(tool: str) -> str:
    """``TOOL -c`` (counters; plain ``TOOL`` where -c is refused), keeping the ``# Warning:`` lines it
    writes to stderr, after the dump: iptables-nft's "iptables-legacy tables present" says the kernel
    runs rules this dump cannot show. The rest of a successful run's stderr is dropped (as ``2>/dev/null``
    did); when both runs fail, the second one's stderr goes to stderr and the status is 1. Runs under
    dash and busybox sh."""
    return (f"exec 3>&1; e=$({tool} -c 2>&1 >&3) || e=$({tool} 2>&1 >&3) || {{ printf '%s\\n' \"$e\" >&2; exit 1; }}; "
            f"printf '%s\\n' \"$e\" | grep '^# Warning' || true")


#: (file name in the bundle, POSIX sh command run as root on the node), in collection order.
#: ``K8S_TRACE_SUBNET_ENV`` overrides where flannel's subnet.env is read from.
BUNDLE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("node", "hostname"),
    ("date", "date -u +%Y-%m-%dT%H:%M:%SZ"),
    ("uname", "uname -srm"),
    ("iptables-save", _save_command("iptables-save")),
    ("ip6tables-save", _save_command("ip6tables-save")),
    (
        "iptables-legacy-save",
        "command -v iptables-legacy-save >/dev/null 2>&1 && iptables -V 2>/dev/null | grep -q nf_tables || exit 0; "
        "iptables-legacy-save -c",
    ),
    ("nft-ruleset", "nft list ruleset"),
    ("ip-addr", "ip -d addr show"),
    ("ip-link", "ip -s -d link show"),
    ("ip-route", "ip route show table all"),
    ("ip6-route", "ip -6 route show table all"),
    ("ip-rule", "ip rule show"),
    ("ip6-rule", "ip -6 rule show"),
    ("bridge-fdb", "bridge fdb show"),
    ("ip-neigh", "ip neigh show"),
    ("subnet.env", 'cat "${K8S_TRACE_SUBNET_ENV:-/run/flannel/subnet.env}"'),
    ("conntrack", "conntrack -L 2>/dev/null"),
    (
        "sysctl",
        r"sysctl -a 2>/dev/null | grep -E '^net\.(ipv4\.(ip_forward|conf\..*\.(rp_filter|forwarding|route_localnet))"
        r"|bridge\.|netfilter\.nf_conntrack_(max|count|tcp_be_liberal))'",
    ),
    ("kubectl.json", "kubectl get pods,svc,endpointslices,nodes -A -o json --request-timeout=20s"),
)

#: the tool a command needs, where it is not the command's first word (collect checks it is installed)
#: (``iptables-legacy-save`` is only taken where iptables is iptables-nft and the legacy tool exists: its
#: own check, so that nodes without it do not list it as missing)
COMMAND_TOOLS: dict[str, str] = {"iptables-save": "iptables-save", "ip6tables-save": "ip6tables-save",
                                 "iptables-legacy-save": "sh"}

#: kinds a bundle file can be; ``NodeSnapshot.files`` maps these to the file's display name
KINDS = ("node", "date", "uname", "iptables-save", "ip6tables-save", "iptables-legacy-save", "nft-ruleset", "ip-addr", "ip-link", "ip-route", "ip-rule",
         "bridge-fdb", "ip-neigh", "subnet.env", "conntrack", "sysctl", "kubectl.json", "missing")
#: canonical file name -> kind (names of BUNDLE_COMMANDS plus a few common spellings)
_NAME_KINDS: dict[str, str] = {name: name for name, _ in BUNDLE_COMMANDS}
_NAME_KINDS.update({
    "ip6-route": "ip-route", "ip6-rule": "ip-rule", "hostname": "node", "subnet.env": "subnet.env", "missing": "missing",
    "collect.log": "missing", "ip-addr.json": "ip-addr", "ip-link.json": "ip-link",
    "ip-route.json": "ip-route", "ip-rule.json": "ip-rule", "bridge-fdb.json": "bridge-fdb",
    "ip-neigh.json": "ip-neigh", "kubectl": "kubectl.json", "iptables": "iptables-save",
    "ip6tables": "ip6tables-save", "conntrack.txt": "conntrack",
})
_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.xz", ".tar.bz2")

_STATE_WORDS = r"(PERMANENT|NOARP|REACHABLE|STALE|DELAY|PROBE|FAILED|INCOMPLETE|NONE)"
_LINE_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ip-addr", re.compile(r"^\d+:\s+[^:\s]+:\s+<[^>]*>")),
    ("ip-rule", re.compile(r"^\d+:\s+(not\s+)?(from|to|iif|oif|fwmark|all|tos|lookup)\b")),
    ("bridge-fdb", re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\s+dev\s")),
    ("ip-neigh", re.compile(r"^[0-9a-fA-F.:]+\s+dev\s+\S+.*\b" + _STATE_WORDS + r"\s*$")),
    ("conntrack", re.compile(r"^(ipv[46]\s+\d+\s+)?[a-z0-9]+\s+\d+\s.*\bsrc=\S+\s+dst=\S+")),
    ("subnet.env", re.compile(r"^(export\s+)?FLANNEL_\w+=")),
    ("sysctl", re.compile(r"^[a-z0-9_]+(\.[\w\-/]+)+\s*=")),
    ("ip-route", re.compile(
        r"^((unicast|local|broadcast|multicast|anycast|blackhole|unreachable|prohibit|throw|nat)\s+)?"
        r"(default|[0-9a-fA-F.:]+(/\d+)?)(\s+(dev|via|proto|scope|table|metric|src|nhid|pref|mtu|onlink)\b|\s*$)")),
)


def sniff_kind(text: str, name: str = "") -> str | None:
    """Which dump ``text`` is, judged from its content (``name`` only breaks ties): a kind or None."""
    body = text.lstrip()
    if not body:
        return None
    if body.startswith("["):
        return _sniff_json(body)
    if looks_like_kubectl(body):
        return "kubectl.json"
    if re.match(r"(#[^\n]*\n\s*)*table\s+(ip|ip6|inet|arp|bridge|netdev)\s+\S+\s*\{", body):
        return "nft-ruleset"
    if re.search(r"^\*(filter|nat|mangle|raw|security)\s*$", text, re.M) and re.search(r"^COMMIT\s*$", text, re.M):
        head = text[:2000]
        six = "ip6tables" in head or "ip6tables" in name or re.search(r"\s-[sd]\s+[0-9a-fA-F]*:[0-9a-fA-F:]*/", text)
        return "ip6tables-save" if six else "iptables-save"
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")][:400]
    if len(lines) == 1 and _NAME_KINDS.get(name) == "node" and re.fullmatch(r"[A-Za-z0-9][\w.\-]*", lines[0].strip()):
        return "node"
    if len(lines) == 1 and _NAME_KINDS.get(name) == "date" and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]+Z", lines[0].strip()):
        return "date"
    if len(lines) == 1 and _NAME_KINDS.get(name) == "uname" and lines[0].startswith("Linux "):
        return "uname"
    counts = dict.fromkeys((k for k, _ in _LINE_KINDS), 0)
    for line in lines:
        for kind, pattern in _LINE_KINDS:
            if pattern.match(line):
                counts[kind] += 1
                break
    if counts["ip-addr"] and _LINE_KINDS[0][1].match(lines[0]):
        return "ip-addr" if re.search(r"^\s+inet6?\s", text, re.M) else "ip-link"
    counts["ip-addr"] = 0
    best = max(counts, key=lambda k: counts[k])
    if counts[best] * 2 >= len(lines) and counts[best] > 0:
        return best
    return None


def _sniff_json(body: str) -> str | None:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    items = [i for i in data if isinstance(i, dict) and i] if isinstance(data, list) else []
    if not items:
        return None
    keys = set().union(*(i.keys() for i in items[:50]))
    if "mac" in keys:
        return "bridge-fdb"
    if "ifname" in keys:
        return "ip-addr" if "addr_info" in keys else "ip-link"
    if "priority" in keys:
        return "ip-rule"
    if "dst" in keys and ("lladdr" in keys or "state" in keys):
        return "ip-neigh"
    if "dst" in keys:
        return "ip-route"
    return None


def is_tarball(path: Path) -> bool:
    return path.is_file() and (path.name.endswith(_TAR_SUFFIXES) or tarfile.is_tarfile(path))


def capture_interface(file_name: str) -> str | None:
    """``cni0.pcap`` -> cni0, ``flannel.1.pcapng`` -> flannel.1, ``any.pcap`` -> any, the same
    with ``.gz``/``.bz2``/``.xz`` after it (``eth0.pcap.gz`` -> eth0); else None. Inside a bundle
    any name is an interface's (unlike ``capture.interface_from_name`` for a capture alone)."""
    return capture_stem(file_name)


def is_bundle_dir(path: str | Path) -> bool:
    """Is ``path`` a directory that ``load_bundle`` reads as one node's bundle?

    True when the directory (or the lone directory inside it, as ``tar xzf`` of a ``collect``
    tarball leaves it) holds, directly, at least one of:

    - a capture: a file recognised by ``sniff_capture`` (pcap/pcapng, plain or gzip/bzip2/xz) or
      named like one (``*.pcap``, ``*.pcapng``, ``*.cap``, each optionally ``.gz``/``.bz2``/``.xz``;
      a directory of captures alone is a bundle, and a damaged one is reported by the loader);
    - a node dump: a file whose content ``sniff_kind`` recognises, or with a dump's canonical name
      (``iptables-save``, ``ip-route``, ``node``... see ``BUNDLE_COMMANDS``).

    Cluster-wide or bookkeeping files do not make a node: ``kubectl.json`` (it sits beside the
    node directories of a multi-node set), ``missing``, ``collect.log``, ``scenario.json``, READMEs.
    Hidden files and subdirectories are not looked at. False for a file or an absent path.
    """
    root = Path(path)
    try:
        if not root.is_dir():
            return False
        root = _bundle_root(root)
        files = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_file())
    except OSError:
        return False
    if any(_NAME_KINDS.get(p.name) not in (None, "missing", "kubectl.json") or capture_interface(p.name)
           for p in files):
        return True  # by name: no file needs opening
    return any(_is_node_file(p) for p in files)


def _is_node_file(path: Path) -> bool:
    """Is this file a capture or a node dump (not kubectl JSON), judged by its content?"""
    if sniff_capture(path) is not None:
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    if b"\0" in head[:4096]:
        return False
    return sniff_kind(head.decode("utf-8", errors="replace"), path.name) not in (None, "kubectl.json")


def find_bundles(path: str | Path) -> tuple[Path, ...]:
    """A bundle path as given, or, for a directory holding one directory (or tarball) per node
    (``lab`` output, several unpacked ``collect`` tarballs), each of those.

    A directory is itself a bundle when ``is_bundle_dir`` says so; other files beside the node
    directories (``scenario.json``, ``kubectl.json``, notes) do not make it one.
    """
    root = Path(path)
    if not root.is_dir() or is_bundle_dir(root):
        return (root,)
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    nodes = [d for d in entries if d.is_dir() and is_bundle_dir(d)]
    tars = [p for p in entries if p.is_file() and p.name.endswith(_TAR_SUFFIXES)]
    return tuple(nodes) + tuple(tars) if nodes or tars else (root,)


class _Counted:
    """A read-only stream that counts the bytes it hands out (tarfile reads it as ``r|``)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.pos = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.pos += len(data)
        return data


def _uncompressed(raw: BinaryIO, display: str) -> BinaryIO:
    """The uncompressed bytes of a tarball (gzip, bzip2, xz or none, chosen by magic number).
    Closing the decompressor does not close ``raw``: the caller does."""
    kind = compression_of(raw.read(8))
    raw.seek(0)
    if kind is None:
        return raw
    if kind not in READABLE_COMPRESSION:
        raise InputError(display, f"{kind}-compressed tarball; decompress it first", hint=f"{kind} -d")
    return decompressor(kind, raw)


def _extract(path: Path, display: str) -> tuple[Path, list[str]]:
    """Unpack a ``collect`` tarball into a fresh temp dir (removed at exit); no links or escapes.

    Read as a stream, member by member, so a tarball cut short (an interrupted copy or upload)
    keeps every file before the cut; a capture cut in the middle keeps the bytes that arrived (the
    capture reader then reports the packet it ends in), any other cut file is dropped. The cut
    becomes one warning naming the tarball, the file and how far it got; a tarball without its
    end-of-archive blocks counts as cut. Only a tarball of which nothing is readable, or one with
    a member that would land outside the bundle, raises ``InputError``.
    """
    target = Path(tempfile.mkdtemp(prefix="k8s-trace-bundle-"))
    atexit.register(shutil.rmtree, target, True)
    hint = "k8s-trace collect writes <hostname>-k8s-trace.tar.gz"
    files = 0
    reading: tuple[tarfile.TarInfo, Path] | None = None  # the member being written, and where
    written = 0
    end = 0  # where the last complete member's data (padded to 512 bytes) ends
    try:
        with path.open("rb") as raw, _uncompressed(raw, display) as stream:
            counted = _Counted(stream)
            with tarfile.open(fileobj=counted, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    if member.isfile() or member.isdir():
                        dest = target / tarfile.data_filter(member, str(target)).name
                        if member.isdir():
                            dest.mkdir(parents=True, exist_ok=True)
                        else:
                            dest.parent.mkdir(parents=True, exist_ok=True)
                            reading, written = (member, dest), 0
                            source = tar.extractfile(member)
                            with dest.open("wb") as out:  # small reads: a cut loses at most 8 KiB
                                while chunk := source.read(8192):  # type: ignore[union-attr]
                                    out.write(chunk)
                                    written += len(chunk)
                            if written < member.size:
                                raise tarfile.ReadError("unexpected end of data")
                            reading = None
                            files += 1
                    end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            while counted.read(1 << 16):
                pass  # to the end, so a stream cut after the last member is noticed
            if counted.pos - end < tarfile.BLOCKSIZE:
                raise tarfile.ReadError("it ends without the end-of-archive blocks")
    except tarfile.FilterError as exc:
        raise InputError(display, f"cannot read the bundle tarball: {exc}", hint=hint) from exc
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        reason = str(exc) or type(exc).__name__
        before = f"the {files} file{'s' * (files != 1)} before it {'are' if files != 1 else 'is'} read"
        kept = False
        if reading is None:
            where = f"after its {files} complete file{'s' * (files != 1)} ({reason}); they are read"
        else:
            member, dest = reading
            kept = written > 0 and sniff_capture(dest) is not None
            where = (f"inside {member.name}, {written} of its {member.size} bytes read ({reason}); {before}, "
                     + ("and this capture up to the cut" if kept else f"{member.name} is left out"))
            if not kept:
                dest.unlink(missing_ok=True)
        if not files and not kept:
            raise InputError(display, f"cannot read the bundle tarball: {reason}", hint=hint) from exc
        return target, [f"{display}: the tarball is cut off or damaged {where}"]
    return target, []


def _bundle_root(directory: Path) -> Path:
    """Descend through a lone top-level directory (``tar czf x.tgz node1/``)."""
    while True:
        entries = [p for p in directory.iterdir() if not p.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir():
            directory = entries[0]
            continue
        return directory


def load_bundle(path: str | Path, *, name: str | None = None) -> NodeSnapshot:
    """Read one node's bundle (directory, ``.tar.gz``/``.tgz``, or a single dump file).

    Files are recognised by content first, by name second. Every parse problem becomes a warning
    ``file:line: ...`` in ``NodeSnapshot.warnings``; only an unusable bundle raises ``InputError``.
    """
    given = Path(path)
    display_root = str(path).rstrip("/") or str(path)
    if not given.exists():
        raise InputError(display_root, "no such file or directory")
    warnings: list[str] = []
    if given.is_dir():
        root = _bundle_root(given)
        rel = root.relative_to(given)
        prefix = display_root if str(rel) == "." else f"{display_root}/{rel}"
        files = sorted(p for p in root.iterdir() if not p.name.startswith("."))
        default_name = root.name
    elif is_tarball(given):
        unpacked, cut = _extract(given, display_root)
        warnings.extend(cut)
        root = _bundle_root(unpacked)
        prefix = display_root + ("" if root.name.startswith("k8s-trace-bundle-") else f"/{root.name}")
        files = sorted(p for p in root.iterdir() if not p.name.startswith("."))
        default_name = root.name if not root.name.startswith("k8s-trace-bundle-") else _strip_suffix(given.name)
    else:
        root = given.parent
        prefix = str(Path(display_root).parent) if "/" in display_root else ""
        files = [given]
        default_name = _strip_suffix(given.parent.resolve().name or given.name)
    texts: dict[str, list[tuple[str, str]]] = {}
    captures: list[CaptureFile] = []
    for file in files:
        display = f"{prefix}/{file.name}" if prefix else file.name
        if file.is_dir():
            warnings.append(f"{display}: subdirectory ignored (a bundle holds one node; give each node's "
                            "directory separately)")
            continue
        if sniff_capture(file) is not None:  # a capture is only recognised here (read later, streaming)
            iface = capture_interface(file.name)
            if iface is None:
                warnings.append(f"{display}: capture without an interface in its name (use <iface>.pcap)")
            captures.append(CaptureFile(path=str(file), interface=iface, display=display))
            continue
        try:
            data = file.read_bytes()
        except OSError as exc:
            warnings.append(f"{display}: cannot read ({exc.strerror or exc}); ignored")
            continue
        if b"\0" in data[:4096]:
            warnings.append(f"{display}: binary file that is neither a capture nor a dump; ignored")
            continue
        text = data.decode("utf-8", errors="replace")
        # (iptables-legacy-save reads like iptables-save: its name says which backend it is)
        kind = _NAME_KINDS.get(file.name) if file.name in ("missing", "collect.log", "iptables-legacy-save") else None
        kind = kind or sniff_kind(text, file.name)
        if kind is None:
            named = _NAME_KINDS.get(file.name)
            if not text.strip():
                continue  # an empty dump (no conntrack entries, no subnet.env): nothing to say
            if named is not None:
                kind = named  # the name says what it is; its parser reports the lines it cannot read
            else:
                warnings.append(f"{display}: unrecognised file (not a known node dump or capture); ignored")
                continue
        texts.setdefault(kind, []).append((display, text))
    if not texts and not captures:
        raise InputError(display_root, "no node dump or capture found in this bundle",
                         hint="make one with `k8s-trace collect > collect.sh` and run it on the node as root")
    return _build(texts, captures, warnings, name or default_name)


def _strip_suffix(file_name: str) -> str:
    for suffix in _TAR_SUFFIXES:
        if file_name.endswith(suffix):
            file_name = file_name[: -len(suffix)]
    return file_name.removesuffix("-k8s-trace")


def _build(texts: dict[str, list[tuple[str, str]]], captures: list[CaptureFile], warnings: list[str],
           name: str) -> NodeSnapshot:
    files: dict[str, str] = {}
    fields: dict[str, Any] = {}
    node_name = name

    def each(kind: str) -> list[tuple[str, str]]:
        for display, _ in texts.get(kind, []):
            files.setdefault(kind, display)
        return texts.get(kind, [])

    for _display, text in each("node"):
        node_name = text.strip().splitlines()[0].strip() or node_name
    for kind, field_name in (("date", "collected_at"), ("uname", "kernel")):
        for _display, text in each(kind):
            fields[field_name] = text.strip().splitlines()[0].strip()
    link_dumps = []
    for kind in ("ip-addr", "ip-link"):
        for display, text in each(kind):
            ifaces, w = parse_ip_addr(text, display)
            link_dumps.append(ifaces)
            warnings.extend(w)
    fields["interfaces"] = merge_interfaces(*link_dumps)
    routes: dict[tuple[Any, ...], Route] = {}
    for display, text in each("ip-route"):
        parsed, w = parse_ip_route(text, display)
        warnings.extend(w)
        for route in parsed:
            key = (route.table, route.type, route.dst, route.dev, route.via, route.metric, route.tos)
            routes.setdefault(key, route)  # `ip route show table all` and `ip -6 route ...` overlap
    fields["routes"] = tuple(routes.values())
    for kind, parser, field_name in (("ip-rule", parse_ip_rule, "rules"), ("bridge-fdb", parse_bridge_fdb, "fdb"),
                                     ("ip-neigh", parse_ip_neigh, "neigh"),
                                     ("conntrack", parse_conntrack, "conntrack")):
        found: tuple[Any, ...] = ()
        for display, text in each(kind):
            records, w = parser(text, display)  # type: ignore[operator]
            if kind == "ip-rule" and _is_ipv6_name(display):
                records = tuple(dataclasses.replace(r, family=6) for r in records)  # `ip -6 rule` looks like v4
            found += records
            warnings.extend(w)
        fields[field_name] = found
    for display, text in each("subnet.env"):
        env, w = parse_subnet_env(text, display)
        warnings.extend(w)
        fields["subnet_env"] = fields.get("subnet_env") or env
    sysctl: dict[str, str] = {}
    sysctl_sources: dict[str, SourceRef] = {}
    for display, text in each("sysctl"):
        values, refs, w = parse_sysctl(text, display)
        sysctl.update(values)
        sysctl_sources.update(refs)
        warnings.extend(w)
    kube: KubeInventory | None = None
    for display, text in each("kubectl.json"):
        inv, w = parse_kubectl(text, display)
        kube = inv if kube is None else kube.merged(inv)
        warnings.extend(w)
    for kind, field_name in (("iptables-save", "ruleset"), ("ip6tables-save", "ip6ruleset"),
                             ("iptables-legacy-save", "legacy_ruleset")):
        for display, text in each(kind):
            ruleset = parse_iptables_save(text, display)
            warnings.extend(ruleset.warnings)
            fields[field_name] = fields.get(field_name) or ruleset
    for display, text in each("nft-ruleset"):
        nft = parse_nft_ruleset(text, display)
        warnings.extend(nft.warnings)
        fields["nft"] = fields.get("nft") or nft
    for display, text in each("missing"):
        for number, line in iter_lines(text):
            warnings.append(f"{display}:{number}: not collected: {line.strip()}")
    return NodeSnapshot(
        name=node_name, files=files, sysctl=sysctl, sysctl_sources=sysctl_sources, kube=kube,
        captures=tuple(sorted(captures, key=lambda c: c.display)), warnings=tuple(warnings), **fields,
    )


def _is_ipv6_name(display: str) -> bool:
    base = display.rsplit("/", 1)[-1]
    return base.startswith(("ip6", "ipv6")) or "-6" in base or "inet6" in base
