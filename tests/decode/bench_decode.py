"""Per-packet CPU cost of the general decoder on a typical flannel VXLAN TCP frame.

Run: ``.venv/bin/python tests/decode/bench_decode.py`` (not collected by pytest). CPU time
(``time.process_time``), best of 5, so a busy machine disturbs it less; the first line is a
plain Python loop to compare machines.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builders import vxlan_tcp_frame  # noqa: E402

from analyzer.inputs.decode import decode_frame, to_record  # noqa: E402
from analyzer.model.packet import RawFrame, summarize  # noqa: E402


def per_call(fn, n: int = 30000) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n)
    return best * 1e6


def main() -> None:
    frame = bytes(vxlan_tcp_frame(flags="PA", payload=b"x" * 200))
    raw = RawFrame("bench.pcap", 1, 0.0, 1, frame, len(frame), "eth0")
    pkt = decode_frame(frame, 1, wire_len=len(frame))

    def loop() -> None:
        x = 0
        for i in range(100):
            x += i

    rows = [
        ("python loop, 100 additions (machine yardstick)", per_call(loop)),
        ("decode_frame (eth/ipv4/udp/vxlan/eth/ipv4/tcp)", per_call(lambda: decode_frame(frame, 1, wire_len=len(frame)))),
        ("to_record", per_call(lambda: to_record(raw, pkt))),
        ("decode_frame + to_record", per_call(lambda: to_record(raw, decode_frame(frame, 1, wire_len=len(frame))))),
        ("summarize (text line)", per_call(lambda: summarize(pkt))),
        ("to_contract (jsonl object)", per_call(lambda: pkt.to_contract(1, 0.0, "eth0"))),
    ]
    for name, us in rows:
        print(f"{name:50s} {us:7.2f} us")


if __name__ == "__main__":
    main()
