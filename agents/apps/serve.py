"""An agnhost-like server for policy tests: answers on TCP and UDP ports with the pod's name.

TCP: accept, write "<name>\n", close. UDP: reply "<name>\n" to every datagram. One thread
per socket; runs until killed. Usage: python -m agents.apps.serve --tcp 80,81 --udp 80,81
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from collections.abc import Sequence


def ports(text: str) -> list[int]:
    values = [int(p) for p in text.split(",") if p]
    for port in values:
        if not 1 <= port <= 65535:
            raise argparse.ArgumentTypeError(f"port {port} is not in 1..65535")
    return values


def serve_tcp(sock: socket.socket, reply: bytes) -> None:
    while True:
        conn, _ = sock.accept()
        with conn:
            try:
                conn.sendall(reply)
            except OSError:
                pass


def serve_udp(sock: socket.socket, reply: bytes) -> None:
    while True:
        _, peer = sock.recvfrom(2048)
        try:
            sock.sendto(reply, peer)
        except OSError:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="serve", description=__doc__)
    parser.add_argument("--tcp", type=ports, default=[], help="TCP ports, comma-separated")
    parser.add_argument("--udp", type=ports, default=[], help="UDP ports, comma-separated")
    parser.add_argument("--name", default=socket.gethostname(), help="what to answer (default: hostname)")
    args = parser.parse_args(argv)
    reply = f"{args.name}\n".encode()
    threads = []
    for port in args.tcp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(64)
        threads.append(threading.Thread(target=serve_tcp, args=(sock, reply), daemon=True))
    for port in args.udp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
        threads.append(threading.Thread(target=serve_udp, args=(sock, reply), daemon=True))
    if not threads:
        parser.error("give at least one of --tcp and --udp")
    for thread in threads:
        thread.start()
    print(f"serving {args.name!r}: tcp {args.tcp} udp {args.udp}", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
