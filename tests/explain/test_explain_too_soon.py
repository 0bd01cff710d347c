"""A flow whose first packet came right before the capture ended had no time to be answered: it is
``incomplete`` (said why), not ``no-reply``."""

from __future__ import annotations

from pathlib import Path

from builders import ether, ipv4, tcp, write_pcap
from explaincheck import explain

T0 = 1_700_000_000.0


def _syn(sport: int, ident: int) -> bytes:
    return ether(ipv4(tcp(sport=sport, dport=80, flags="S", seq=sport), src="10.244.1.5", dst="10.244.2.7",
                      ident=ident))


def test_first_packet_at_the_end_of_the_capture(tmp_path: Path) -> None:
    cap = tmp_path / "eth0.pcap"
    write_pcap(cap, [(T0, _syn(40000, 1)), (T0 + 1.0, _syn(40000, 2)), (T0 + 3.0, _syn(40000, 3)),
                     (T0 + 5.9, _syn(40001, 4)), (T0 + 6.0, _syn(40002, 5))])
    flows = {f["client"]["port"]: f for f in explain(cap)["flows"]}
    assert flows[40000]["status"] == "no-reply"  # 6 s of capture after it, three SYNs unanswered
    late = flows[40001]
    assert late["status"] == "incomplete"
    assert "the capture ends 100 ms after the flow's first packet" in late["verdict"]["en"]
    assert "100 ms 就结束了" in late["verdict"]["zh"]
    assert flows[40002]["status"] == "incomplete"
