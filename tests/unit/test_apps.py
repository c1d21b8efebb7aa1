"""The server and probe the agnhost image runs, over loopback (no root, no namespaces)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from agents.apps.connect import probe


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_tcp_and_udp_and_probe_reads_it() -> None:
    tcp, udp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    server = subprocess.Popen(
        [sys.executable, "-m", "agents.apps.serve", "--tcp", str(tcp), "--udp", str(udp), "--name", "x-a"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert "serving 'x-a'" in (server.stdout.readline() if server.stdout else "")
        deadline = time.monotonic() + 5
        while probe("127.0.0.1", tcp, "tcp", 0.5) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert probe("127.0.0.1", tcp, "tcp", 1.0) == "x-a"
        assert probe("127.0.0.1", udp, "udp", 1.0) == "x-a"
        closed = free_port(socket.SOCK_STREAM)
        assert probe("127.0.0.1", closed, "tcp", 0.5) is None
    finally:
        server.kill()
        server.wait()


def test_sctp_inits_are_recognised_in_ethernet_frames() -> None:
    from agents.apps.sctp_probe import init_packet, sctp_init_source

    ethernet = b"\xee" * 6 + b"\x02" * 6 + b"\x08\x00"
    frame = ethernet + init_packet("10.65.0.1", "10.65.0.2", 80)
    assert sctp_init_source(frame, 80) == "10.65.0.1"
    assert sctp_init_source(frame, 81) is None  # another port
    assert sctp_init_source(ethernet[:12] + b"\x86\xdd" + frame[14:], 80) is None  # not IPv4
