"""Real captures from a real kernel: two network namespaces joined by a flannel-like VXLAN link.

``record_vxlan_pair(tmp_path)`` builds, inside two fresh namespaces ``<prefix><pid>-a`` and
``<prefix><pid>-b``::

    a: ul0 192.168.77.1/24  <== veth ==>  b: ul0 192.168.77.2/24          (the "node" network)
    a: flannel.1 10.244.0.1/16  <== VXLAN id 1, UDP 8472 over ul0 ==>  b: flannel.1 10.244.1.1/16

(``ip link add flannel.1 type vxlan id 1 dstport 8472 local ... remote ... dev ul0``, MTU 1450 as
flannel sets it), captures in namespace ``a`` with tcpdump on ``ul0`` (outer VXLAN frames),
on ``flannel.1`` (inner frames) and with ``-i any`` (Linux cooked), and with dumpcap on both
interfaces into one pcapng when dumpcap is installed, while it sends real traffic from ``a``:

* 3 ICMP echo requests to 10.244.1.1 (a raw socket: no ``ping`` binary needed), answered;
  the ARP for 10.244.1.1 travels inside VXLAN first;
* one TCP connection 10.244.0.1 -> 10.244.1.1:8080 (python sockets), 3000 bytes each way,
  then a clean close (FIN both ways);
* 3 UDP datagrams to 10.244.1.1:5353, echoed back by the server;
* 1 UDP datagram to the closed port 10.244.1.1:5400 (ICMP port unreachable comes back, inside
  VXLAN, quoting the UDP packet).

It returns ``{"underlay": ul0.pcap, "vxlan": flannel.1.pcap, "any": any.pcap[, "pcapng": both.pcapng]}``
(files in ``tmp_path``). Everything is torn down in ``finally``: ``ip netns list`` is unchanged.
Needs root, iproute2, tcpdump and VXLAN support; use the ``netns`` fixture of conftest.py to skip
cleanly elsewhere. Traffic goes only between the two namespaces.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

UNDERLAY = ("192.168.77.1", "192.168.77.2")
OVERLAY = ("10.244.0.1", "10.244.1.1")
VNI = 1
VXLAN_PORT = 8472
TCP_PORT = 8080
UDP_ECHO_PORT = 5353
UDP_CLOSED_PORT = 5400
TCP_BYTES = 3000
UDP_DATAGRAMS = 3
PINGS = 3
PING_ID = 0x4B38

_SERVER = r"""
import socket, sys, threading
ip, tcp_port, udp_port, datagrams, size = sys.argv[1], *map(int, sys.argv[2:6])
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((ip, tcp_port)); t.listen(1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((ip, udp_port))
def udp_echo():
    for _ in range(datagrams):
        data, peer = u.recvfrom(2048)
        u.sendto(data.upper(), peer)
echo = threading.Thread(target=udp_echo, daemon=True)
echo.start()
print("ready", flush=True)
c, _ = t.accept()
got = b""
while len(got) < size:
    chunk = c.recv(65536)
    if not chunk:
        break
    got += chunk
c.sendall(got.upper())
c.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()
echo.join(timeout=15)
"""

_CLIENT = r"""
import socket, struct, sys
src, dst = sys.argv[1], sys.argv[2]
tcp_port, udp_port, closed_port, datagrams, size, pings, ident = map(int, sys.argv[3:10])
def csum(b):
    s = sum(struct.unpack("!" + str(len(b) // 2) + "H", b))
    s = (s & 0xFFFF) + (s >> 16)
    s += s >> 16
    return ~s & 0xFFFF
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
icmp.settimeout(5)
icmp.bind((src, 0))
for seq in range(1, pings + 1):
    echo = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"k8s-trace-ping!!"
    icmp.sendto(echo[:2] + struct.pack("!H", csum(echo)) + echo[4:], (dst, 0))
    while True:
        reply, _ = icmp.recvfrom(2048)
        if reply[20] == 0 and struct.unpack_from("!H", reply, 26)[0] == seq:
            break
s = socket.create_connection((dst, tcp_port), timeout=10, source_address=(src, 0))
s.sendall(b"k" * size)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
s.close()
assert got == b"K" * size, len(got)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5); u.bind((src, 0))
for i in range(datagrams):
    u.sendto(b"query-" + str(i).encode(), (dst, udp_port))
    u.recvfrom(2048)
u.sendto(b"nobody", (dst, closed_port))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _wait_line(proc: subprocess.Popen[bytes], needle: bytes, stream: str, timeout: float = 10.0) -> bytes:
    """Read ``proc``'s stdout/stderr (raw fd reads: no hidden buffering) until ``needle`` shows up."""
    pipe = proc.stderr if stream == "stderr" else proc.stdout
    assert pipe is not None
    fd = pipe.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = b""
    try:
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                chunk = os.read(fd, 4096)
                seen += chunk
                if needle in seen:
                    return seen
                if not chunk:
                    break
    finally:
        sel.close()
    raise RuntimeError(f"{proc.args!r} did not say {needle!r}: {seen!r}")


def record_vxlan_pair(tmp_path: Path, *, prefix: str = "k8sA-") -> dict[str, Path]:
    """Build the link, capture the traffic described in the module doc, tear down; return the files."""
    ns_a, ns_b = f"{prefix}{os.getpid()}-a", f"{prefix}{os.getpid()}-b"
    out = {"underlay": tmp_path / "ul0.pcap", "vxlan": tmp_path / "flannel.1.pcap", "any": tmp_path / "any.pcap"}
    procs: list[subprocess.Popen[bytes]] = []
    created: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            _ip("netns", "add", ns)
            created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # no IPv6 autoconfiguration chatter (MLD, RS, DAD): the captures hold only our traffic
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                            "net.ipv6.conf.default.disable_ipv6=1"], check=True, capture_output=True, timeout=20)
        _ip("link", "add", "k8sA-veth", "netns", ns_a, "type", "veth", "peer", "name", "k8sA-peer", "netns", ns_b)
        for ns, dev, addr, peer, overlay in (
            (ns_a, "k8sA-veth", UNDERLAY[0], UNDERLAY[1], OVERLAY[0]),
            (ns_b, "k8sA-peer", UNDERLAY[1], UNDERLAY[0], OVERLAY[1]),
        ):
            _ip("-n", ns, "link", "set", dev, "name", "ul0")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "ul0")
            _ip("-n", ns, "link", "set", "ul0", "up")
            _ip("-n", ns, "link", "add", "flannel.1", "type", "vxlan", "id", str(VNI), "dstport", str(VXLAN_PORT),
                "local", addr, "remote", peer, "dev", "ul0")
            _ip("-n", ns, "link", "set", "flannel.1", "mtu", "1450", "up")
            _ip("-n", ns, "addr", "add", f"{overlay}/16", "dev", "flannel.1")
        for key, iface in (("underlay", "ul0"), ("vxlan", "flannel.1"), ("any", "any")):
            p = subprocess.Popen(["ip", "netns", "exec", ns_a, "tcpdump", "-n", "-U", "--immediate-mode", "-B", "8192", "-i", iface, "-s", "0",
                                  "-w", str(out[key])], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(p)
            _wait_line(p, b"listening on", "stderr")
        if shutil.which("dumpcap"):
            out["pcapng"] = tmp_path / "both.pcapng"
            p = subprocess.Popen(["ip", "netns", "exec", ns_a, "dumpcap", "-q", "-i", "ul0", "-i", "flannel.1",
                                  "-w", str(out["pcapng"])], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(p)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (out["pcapng"].exists() and out["pcapng"].stat().st_size):
                time.sleep(0.05)
            time.sleep(0.3)  # dumpcap writes its header before its capture loop starts
        server = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, "-c", _SERVER, OVERLAY[1],
                                   *map(str, (TCP_PORT, UDP_ECHO_PORT, UDP_DATAGRAMS, TCP_BYTES))],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(server)
        _wait_line(server, b"ready", "stdout")
        subprocess.run(["ip", "netns", "exec", ns_a, sys.executable, "-c", _CLIENT, OVERLAY[0], OVERLAY[1],
                        *map(str, (TCP_PORT, UDP_ECHO_PORT, UDP_CLOSED_PORT, UDP_DATAGRAMS, TCP_BYTES, PINGS, PING_ID))],
                       check=True, capture_output=True, timeout=60)
        server.wait(timeout=20)
        time.sleep(0.5)  # let the ICMP error and the last FIN/ACK reach the captures
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
    return out
