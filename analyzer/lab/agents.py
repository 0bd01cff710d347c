"""The programs the lab runs inside pod and host namespaces: servers and clients.

This file is executed as a script (``python agents.py ROLE ...``) inside a namespace, so it uses
the standard library only and imports nothing from ``analyzer``. Servers print one line
``ready`` on stdout once they listen; clients print one JSON object (their result) on stdout and
always exit 0, so the lab records a failure as data, never as a crash.
"""

from __future__ import annotations

import argparse
import errno
import http.server
import json
import os
import socket
import socketserver
import struct
import sys
import time

# ---------------------------------------------------------------- servers


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "k8s-trace-lab/1"
    pod_name = "?"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        size = 0
        if self.path.startswith("/bytes/"):
            try:
                size = max(0, min(int(self.path.split("/")[2]), 8_000_000))
            except ValueError:
                size = 0
        head = f"pod={self.pod_name}\n".encode()
        body = head + b"x" * max(0, size - len(head))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _ready() -> None:
    """Say "ready", then let go of the pipes: `lab up` closes them when it exits, the server lives on."""
    os.write(1, b"ready\n")  # one write of a few bytes: atomic on a pipe, so "ready" is never half-said
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def serve_http(port: int, name: str) -> None:
    _Handler.pod_name = name
    server = _Server(("0.0.0.0", port), _Handler)
    _ready()
    server.serve_forever()


def _dns_answer(query: bytes, a: str, aaaa: str | None) -> bytes | None:
    """A reply to a one-question query: A -> a, AAAA -> aaaa (or an empty NOERROR answer)."""
    if len(query) < 12:
        return None
    qid, _flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        return None
    pos = 12
    while pos < len(query) and query[pos] != 0:
        pos += query[pos] + 1
    if pos + 5 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[pos + 1 : pos + 5])
    question = query[12 : pos + 5]
    answers = b""
    if qtype == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, qclass, 30, 4) + socket.inet_aton(a)
    elif qtype == 28 and aaaa:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 28, qclass, 30, 16) + socket.inet_pton(socket.AF_INET6, aaaa)
    ancount = 1 if answers else 0
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, ancount, 0, 0)
    return header + question + answers


def serve_dns(port: int, a: str, aaaa: str | None) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    _ready()
    while True:
        data, peer = sock.recvfrom(4096)
        reply = _dns_answer(data, a, aaaa)
        if reply is not None:
            sock.sendto(reply, peer)


# ---------------------------------------------------------------- clients


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno is not None:
        return {
            errno.EHOSTUNREACH: "host-unreachable",
            errno.ENETUNREACH: "net-unreachable",
            errno.EMSGSIZE: "message-too-long",
        }.get(exc.errno, errno.errorcode.get(exc.errno, str(exc.errno)).lower())
    return type(exc).__name__


def http_get(host: str, port: int, path: str, timeout: float) -> dict:
    """One HTTP GET over a fresh TCP connection; the body's first line names the serving pod."""
    start = time.monotonic()
    result: dict = {"op": "http", "target": f"{host}:{port}", "path": path}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
        result["local"] = "{}:{}".format(*sock.getsockname())
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "?"
        first = body.split(b"\n", 1)[0].decode(errors="replace")
        result.update(ok=status == "200", status=status, bytes=len(body),
                      served_by=first.removeprefix("pod=") if first.startswith("pod=") else None)
    except OSError as exc:
        result.update(ok=False, error=_error_name(exc))
    finally:
        sock.close()
    result["elapsed"] = round(time.monotonic() - start, 3)
    return result


def _dns_query(qid: int, name: str, qtype: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def dns_lookup(server: str, port: int, name: str, timeout: float) -> dict:
    """A and AAAA queries sent back to back from one UDP socket (as glibc does)."""
    start = time.monotonic()
    result: dict = {"op": "dns", "target": f"{server}:{port}", "name": name, "answers": {}}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    pending = {0x1A01: "A", 0x1A02: "AAAA"}
    try:
        sock.connect((server, port))
        result["local"] = "{}:{}".format(*sock.getsockname())
        for qid, kind in pending.items():
            sock.send(_dns_query(qid, name, 1 if kind == "A" else 28))
        while pending:
            reply = sock.recv(4096)
            qid, _flags, _qd, ancount = struct.unpack("!HHHH", reply[:8])
            kind = pending.pop(qid, None)
            if kind is None:
                continue
            if ancount and len(reply) >= 4:
                rdata = reply[-4:] if kind == "A" else reply[-16:]
                family = socket.AF_INET if kind == "A" else socket.AF_INET6
                result["answers"][kind] = socket.inet_ntop(family, rdata)
            else:
                result["answers"][kind] = None
        result["ok"] = True
    except OSError as exc:
        result.update(ok=False, error=_error_name(exc), unanswered=sorted(pending.values()))
    finally:
        sock.close()
    result["elapsed"] = round(time.monotonic() - start, 3)
    return result


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(host: str, size: int, count: int, timeout: float, df: bool) -> dict:
    """ICMP echo with `size` payload bytes (IP packet = size + 28), DF set when `df`."""
    result: dict = {"op": "ping", "target": host, "size": size, "df": df, "replies": 0, "errors": []}
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.IPPROTO_IP, 10, 2 if df else 0)  # IP_MTU_DISCOVER: DO / DONT
    sock.settimeout(timeout)
    ident = os.getpid() & 0xFFFF
    start = time.monotonic()
    for seq in range(1, count + 1):
        payload = bytes(size)
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
        try:
            sock.sendto(packet, (host, 0))
        except OSError as exc:
            result["errors"].append({"seq": seq, "error": _error_name(exc)})
            continue
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                data, _ = sock.recvfrom(65535)
            except OSError:
                result["errors"].append({"seq": seq, "error": "timeout"})
                break
            ihl = (data[0] & 0x0F) * 4
            icmp_type, code = data[ihl], data[ihl + 1]
            if icmp_type == 0 and struct.unpack("!HH", data[ihl + 4 : ihl + 8]) == (ident, seq):
                result["replies"] += 1
                break
            if icmp_type == 3:
                mtu = struct.unpack("!H", data[ihl + 6 : ihl + 8])[0] if code == 4 else None
                src = socket.inet_ntoa(data[12:16])
                result["errors"].append({"seq": seq, "error": f"icmp-unreachable code {code}",
                                         "from": src, "mtu": mtu})
                break
    sock.close()
    result["ok"] = result["replies"] == count
    result["elapsed"] = round(time.monotonic() - start, 3)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agents")
    sub = parser.add_subparsers(dest="role", required=True)
    p = sub.add_parser("http-server")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--name", default="?")
    p = sub.add_parser("dns-server")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--a", required=True)
    p.add_argument("--aaaa")
    p = sub.add_parser("http")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--path", default="/")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--count", type=int, default=1)
    p = sub.add_parser("dns")
    p.add_argument("server")
    p.add_argument("name")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--timeout", type=float, default=2.0)
    p = sub.add_parser("ping")
    p.add_argument("host")
    p.add_argument("--size", type=int, default=56)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--df", action="store_true")
    args = parser.parse_args(argv)
    if args.role == "http-server":
        serve_http(args.port, args.name)
    elif args.role == "dns-server":
        serve_dns(args.port, args.a, args.aaaa)
    elif args.role == "http":
        results = [http_get(args.host, args.port, args.path, args.timeout) for _ in range(args.count)]
        print(json.dumps(results[0] if args.count == 1 else {"op": "http-many", "results": results}))
    elif args.role == "dns":
        print(json.dumps(dns_lookup(args.server, args.port, args.name, args.timeout)))
    elif args.role == "ping":
        print(json.dumps(ping(args.host, args.size, args.count, args.timeout, args.df)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
