"""Network namespaces, the processes inside them, and their guaranteed teardown.

``Sandbox`` remembers every namespace, ``/etc/netns/<ns>`` directory and process it creates and
``close()`` removes all of them, whatever state the build was left in. Every command is run as
an argument list (no shell on the host side); a failing command raises ``LabError`` with its
stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.errors import LabError

NETNS_RUN = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")
PREFIX = "k8sl-"


#: every process the lab starts carries this in its environment, naming its namespace, so that
#: teardown checks (and `ps e`) can tell lab processes apart from everything else on the machine
ENV_MARK = "K8S_TRACE_LAB_NS"


def lab_env(ns: str) -> dict[str, str]:
    return {**os.environ, ENV_MARK: ns}


def ns_argv(ns: str, argv: list[str], hostname: str | None = None) -> list[str]:
    """argv run inside network namespace ns; with `hostname`, in a private UTS namespace of that
    name (so `hostname`, and the bundle commands, answer ``node1``, not the host's name)."""
    full = ["ip", "netns", "exec", ns]
    if hostname:
        full += ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname]
    return full + argv


def marked_processes(prefix: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes whose K8S_TRACE_LAB_NS starts with `prefix`."""
    wanted = f"{ENV_MARK}={prefix}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            if not any(var.startswith(wanted) for var in environ.split(b"\0")):
                continue
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(entry), cmd.strip()))
    return found


def check_host() -> None:
    """Raise LabError unless this process can build a lab (root, Linux, the tools)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise LabError("the lab needs root (it creates network namespaces); run it with sudo")
    missing = [t for t in ("ip", "bridge", "tcpdump", "iptables-restore", "unshare") if shutil.which(t) is None]
    if missing:
        raise LabError(f"the lab needs {', '.join(missing)} (packages iproute2, iptables, tcpdump, util-linux)")


def existing_namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@dataclass
class Proc:
    """A process started inside a namespace."""

    ns: str
    argv: list[str]
    popen: subprocess.Popen
    label: str
    said: str = ""  # what it printed on stderr so far (tcpdump's banner and counters)


@dataclass
class Sandbox:
    """Everything a lab created, so that ``close()`` can undo it."""

    namespaces: list[str] = field(default_factory=list)
    etc_dirs: list[Path] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    made_etc_root: bool = False  # /etc/netns did not exist before this lab: remove it again if empty

    # ---------------------------------------------------------------- namespaces

    def add_namespace(self, name: str, nameserver: str | None = None, search: str | None = None) -> None:
        if not name.startswith(PREFIX):
            raise LabError(f"refusing to create namespace {name!r}: lab namespaces start with {PREFIX!r}")
        if name in existing_namespaces():
            raise LabError(f"namespace {name} already exists (a lab is up? `k8s-trace lab down`; leftovers of a "
                           "killed run: `k8s-trace lab down --force`)")
        # resolv.conf first, so that nothing started in the namespace can ever use the host's resolver
        etc = NETNS_ETC / name
        if not NETNS_ETC.exists():
            self.made_etc_root = True
        etc.mkdir(parents=True, exist_ok=True)
        self.etc_dirs.append(etc)
        lines = [f"# k8s-trace lab namespace {name}: resolver inside the lab only"]
        if search:
            lines.append(f"search {search}")
        lines.append(f"nameserver {nameserver or '127.0.0.1'}")
        lines.append("options ndots:5 timeout:1 attempts:1")
        (etc / "resolv.conf").write_text("\n".join(lines) + "\n")
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n::1 localhost\n# {name}\n")
        # files and DNS only: no NSS module (resolve, mdns, myhostname...) that could ask a resolver on the
        # host over D-Bus or multicast
        (etc / "nsswitch.conf").write_text(
            f"# k8s-trace lab namespace {name}\npasswd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
            "networks: files\nprotocols: files\nservices: files\n")
        self.run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.ns_run(name, ["ip", "link", "set", "lo", "up"])
        # IPv4-only lab: no IPv6 link-local addresses, router solicitations or MLD reports in the captures
        for key in ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"):
            self.sysctl(name, key, "1")

    # ---------------------------------------------------------------- commands

    def run(self, argv: list[str], *, input: str | None = None, check: bool = True,
            timeout: float = 20) -> subprocess.CompletedProcess:
        self.log.append(" ".join(argv))
        try:
            done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LabError(f"`{' '.join(argv)}` failed: {exc}") from exc
        if check and done.returncode != 0:
            raise LabError(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()}")
        return done

    def ns_run(self, ns: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return self.run(["ip", "netns", "exec", ns, *argv], **kwargs)

    def ip(self, ns: str, *args: str) -> None:
        self.run(["ip", "-n", ns, *args])

    def sysctl(self, ns: str, key: str, value: str) -> bool:
        """Set a sysctl inside ns; False when the key does not exist there."""
        path = "/proc/sys/" + key.replace(".", "/")
        done = self.ns_run(ns, ["sh", "-c", f"[ -e {path} ] && echo {value} > {path}"], check=False)
        return done.returncode == 0

    # ---------------------------------------------------------------- processes

    def start(self, ns: str, argv: list[str], label: str, *, ready: str | None = None,
              ready_stream: str = "stdout", timeout: float = 5.0, hostname: str | None = None) -> Proc:
        """Start argv inside ns; with `ready`, wait until that text appears on the given stream."""
        full = ns_argv(ns, argv, hostname)
        self.log.append(" ".join(full) + " &")
        try:
            popen = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=lab_env(ns),
                                     stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise LabError(f"cannot start {label}: {exc}") from exc
        proc = Proc(ns, full, popen, label)
        self.procs.append(proc)
        if ready is not None:
            stream = popen.stdout if ready_stream == "stdout" else popen.stderr
            proc.said = wait_for_text(popen, stream, ready, time.monotonic() + timeout, label)
        return proc

    def run_client(self, ns: str, argv: list[str], timeout: float) -> dict:
        """Run a client agent to completion and return its JSON result (errors become data)."""
        full = ["ip", "netns", "exec", ns, *argv]
        self.log.append(" ".join(full))
        try:
            done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False,
                                  env=lab_env(ns))
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "client-hung", "argv": argv}
        try:
            return json.loads(done.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return {"ok": False, "error": "client-crashed", "stderr": done.stderr.strip()[-300:]}

    def stop(self, proc: Proc, sig: int = signal.SIGTERM, wait: float = 3.0) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, sig)
            try:
                proc.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=wait)
        for stream in (proc.popen.stdout, proc.popen.stderr):
            if stream is not None:
                stream.close()

    # ---------------------------------------------------------------- teardown

    def close(self) -> list[str]:
        """Kill every process, delete every namespace and /etc/netns dir; return what failed."""
        problems: list[str] = []
        for proc in reversed(self.procs):
            try:
                self.stop(proc, signal.SIGTERM, wait=2.0)
            except Exception as exc:  # keep tearing down whatever happens
                problems.append(f"process {proc.label}: {exc}")
        self.procs.clear()
        for ns in reversed(self.namespaces):
            problems += kill_namespace_processes(ns)
            failure = delete_namespace(ns)
            if failure:
                problems.append(f"namespace {ns}: {failure}")
        self.namespaces.clear()
        for etc in self.etc_dirs:
            shutil.rmtree(etc, ignore_errors=True)
            if etc.exists():
                problems.append(f"{etc} could not be removed")
        self.etc_dirs.clear()
        if self.made_etc_root:
            with contextlib.suppress(OSError):  # not empty: another lab (or something else) uses it now
                NETNS_ETC.rmdir()
        return problems


def wait_for_text(popen: subprocess.Popen, stream, text: str, deadline: float, label: str) -> str:  # noqa: ANN001
    """Read a child's pipe until `text` appears; LabError if the child exits or the deadline passes."""
    fd = stream.fileno()
    seen = b""
    wanted = text.encode()
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LabError(f"{label} was not ready in time: {seen.decode(errors='replace').strip()[-300:]}")
        readable, _, _ = select.select([fd], [], [], min(left, 0.2))
        if readable:
            chunk = os.read(fd, 4096)
            if chunk:
                seen += chunk
                continue
        if popen.poll() is not None:
            rest = b""
            if popen.stderr is not None and popen.stderr is not stream:
                rest = popen.stderr.read() or b""
            said = (seen + rest).decode(errors="replace").strip()[-300:]
            raise LabError(f"{label} exited {popen.returncode} before it was ready: {said}")
    return seen.decode(errors="replace")


def close_shielded(sb: Sandbox) -> list[str]:
    """``sb.close()`` with Ctrl-C, SIGTERM and SIGHUP ignored, so a second Ctrl-C cannot cut teardown short."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread: signals cannot reach us there anyway
            previous[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        return sb.close()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def delete_namespace(ns: str, attempts: int = 5) -> str | None:
    """`ip netns del ns`, retried briefly (a busy machine can be slow to let go); None once it is gone."""
    error = ""
    for attempt in range(attempts):
        try:
            done = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True, timeout=30,
                                  check=False)
            error = done.stderr.strip() or f"exit {done.returncode}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
        if ns not in existing_namespaces():
            return None
        time.sleep(0.1 * (attempt + 1))
    return error


def kill_namespace_processes(ns: str) -> list[str]:
    """SIGKILL anything still running inside ns (e.g. a grandchild that escaped its group)."""
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    problems = []
    for pid in done.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
        except OSError as exc:
            problems.append(f"pid {pid} in {ns}: {exc}")
    return problems
