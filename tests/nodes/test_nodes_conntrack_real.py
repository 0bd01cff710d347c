"""conntrack -L as the real tool prints it: entries made by real traffic in namespaces (a DNATed
UDP flow, an established TCP connection, an ICMP echo), parsed back with their NAT."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys

import pytest

from analyzer.inputs.conntrack import parse_conntrack

SERVER = """
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("192.168.88.2", 5353))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("192.168.88.2", 8080)); t.listen()
print("ready", flush=True)
data, peer = u.recvfrom(100); u.sendto(b"answer", peer)
conn, _ = t.accept(); conn.recv(10); conn.sendall(b"ok")
sys.stdin.readline()
"""
CLIENT = """
import socket, struct
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
u.sendto(b"query", ("10.99.0.10", 53)); u.recvfrom(100)
t = socket.create_connection(("192.168.88.2", 8080), timeout=3); t.sendall(b"hi"); t.recv(10)
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
body = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"k8s-trace!"
csum = sum(struct.unpack("!9H", body))
csum = (csum >> 16) + (csum & 0xFFFF); csum = ~(csum + (csum >> 16)) & 0xFFFF
icmp.sendto(body[:2] + struct.pack("!H", csum) + body[4:], ("192.168.88.2", 0))
print("done", flush=True)
"""


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30)


@pytest.mark.netns
def test_real_conntrack_output(netns: None) -> None:
    if shutil.which("conntrack") is None:
        pytest.skip("conntrack is not installed (.ci/run installs it)")
    cli, srv = f"k8sC-ctc-{os.getpid()}", f"k8sC-cts-{os.getpid()}"
    server = None
    try:
        for ns in (cli, srv):
            run("ip", "netns", "add", ns)
            run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        run("ip", "netns", "exec", cli, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", srv)
        for ns, addr in ((cli, "192.168.88.1/24"), (srv, "192.168.88.2/24")):
            run("ip", "netns", "exec", ns, "ip", "addr", "add", addr, "dev", "eth0")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
        run("ip", "netns", "exec", cli, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", "10.99.0.10", "-p", "udp",
            "--dport", "53", "-j", "DNAT", "--to-destination", "192.168.88.2:5353")
        run("ip", "netns", "exec", cli, "ip", "route", "add", "10.99.0.0/16", "dev", "eth0")
        server = subprocess.Popen(["ip", "netns", "exec", srv, sys.executable, "-c", SERVER],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        assert run("ip", "netns", "exec", cli, sys.executable, "-c", CLIENT).stdout.strip() == "done"
        dump = run("ip", "netns", "exec", cli, "conntrack", "-L").stdout
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        for ns in (cli, srv):
            run("ip", "netns", "del", ns, check=False)
    assert not [n for n in run("ip", "netns", "list").stdout.split() if n in (cli, srv)]

    entries, warnings = parse_conntrack(dump, "conntrack")
    assert warnings == (), dump
    by_proto = {e.proto: e for e in entries}
    udp, tcp, icmp = by_proto["udp"], by_proto["tcp"], by_proto["icmp"]
    ip = ipaddress.ip_address
    assert udp.orig is not None and udp.reply is not None
    assert (udp.orig.dst, udp.orig.dport, udp.reply.src, udp.reply.sport) == (ip("10.99.0.10"), 53,
                                                                             ip("192.168.88.2"), 5353)
    assert udp.dnat and not udp.snat and not udp.unreplied
    assert tcp.state in ("ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "TIME_WAIT", "LAST_ACK", "CLOSE")
    assert tcp.assured and tcp.orig is not None and tcp.orig.dport == 8080 and not tcp.dnat
    assert icmp.orig is not None and icmp.orig.icmp_type == 8 and icmp.orig.icmp_id == 0x4242
    assert all(e.use is not None and e.timeout is not None for e in entries)
    assert [str(e.source) for e in entries] == [f"conntrack:{i}" for i in range(1, len(entries) + 1)]
