"""A probe for reachability: one TCP connection or one UDP exchange, with a short timeout.

Exit 0 and print the answer when the server answered; exit 1 when not (refused, timed out).
Usage: python -m agents.apps.connect 10.65.0.5 80 [--protocol udp] [--timeout 1]
Many at once (for a reachability matrix): --many 10.65.0.5,10.65.0.6 prints one JSON
object {ip: answer or null}, probing in parallel.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor


def probe(ip: str, port: int, protocol: str, timeout: float) -> str | None:
    """The server's answer, or None when the connection did not work."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(timeout)
        try:
            if protocol == "tcp":
                sock.connect((ip, port))
                data = sock.recv(256)
            else:
                sock.sendto(b"probe\n", (ip, port))
                data, _ = sock.recvfrom(256)
        except OSError:
            return None
    return data.decode(errors="replace").strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="connect", description=__doc__)
    parser.add_argument("ip", nargs="?")
    parser.add_argument("port", type=int)
    parser.add_argument("--protocol", choices=["tcp", "udp"], default="tcp")
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--many", help="comma-separated IPs: probe all, print JSON")
    args = parser.parse_args(argv)
    if args.many:
        targets = [ip for ip in args.many.split(",") if ip]
        with ThreadPoolExecutor(max_workers=max(1, min(64, len(targets)))) as pool:
            answers = pool.map(lambda ip: probe(ip, args.port, args.protocol, args.timeout), targets)
            print(json.dumps(dict(zip(targets, answers))))
        return 0
    if args.ip is None:
        parser.error("give IP, or --many")
    answer = probe(args.ip, args.port, args.protocol, args.timeout)
    if answer is None:
        print(f"{args.protocol} {args.ip}:{args.port}: no answer", file=sys.stderr)
        return 1
    print(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
