"""SCTP reachability without SCTP sockets (this kernel has none; netfilter still matches SCTP).

`send`: from inside the source pod, one SCTP INIT per target, crafted with scapy and sent
on a raw IP socket (source address set explicitly). `listen`: inside the destination pod,
count the INITs that arrive on eth0 for a port, by source address, for a while; print
JSON. A connection counts as allowed when its INIT reached the destination pod.

  python -m agents.apps.sctp_probe listen --port 80 --seconds 2
  python -m agents.apps.sctp_probe send --src 10.65.0.1 --port 80 --to 10.65.0.2,10.65.0.3
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence

ETH_P_IP = 0x0800
IPPROTO_SCTP = 132
SCTP_INIT = 1


def init_packet(src: str, dst: str, port: int) -> bytes:
    from scapy.layers.inet import IP
    from scapy.layers.sctp import SCTP, SCTPChunkInit

    packet = IP(src=src, dst=dst) / SCTP(sport=40000 + port % 20000, dport=port, tag=0) / SCTPChunkInit(
        init_tag=0x5EED, a_rwnd=65535, n_out_streams=1, n_in_streams=1, init_tsn=1
    )
    return bytes(packet)


def send(src: str, targets: Sequence[str], port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        for dst in targets:
            try:
                sock.sendto(init_packet(src, dst, port), (dst, 0))
            except OSError:
                pass  # no route, or dropped on the way out: the listener will not see it


def sctp_init_source(frame: bytes, port: int) -> str | None:
    """The source address of an IPv4 SCTP INIT to ``port`` in an Ethernet frame, else None."""
    if len(frame) < 14 + 20 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    header = (ip[0] & 0x0F) * 4
    if ip[9] != IPPROTO_SCTP or len(ip) < header + 13:
        return None
    dport = struct.unpack("!H", ip[header + 2 : header + 4])[0]
    if dport != port or ip[header + 12] != SCTP_INIT:
        return None
    return socket.inet_ntoa(ip[12:16])


def listen(port: int, seconds: float, interface: str = "eth0", ready: Callable[[], None] = lambda: None) -> dict[str, int]:
    """Count INITs to ``port`` by source until stdin closes (or ``seconds`` pass);
    ``ready`` runs once the socket is bound."""
    counts: dict[str, int] = {}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP)) as sock:
        sock.bind((interface, 0))
        ready()
        deadline = time.monotonic() + seconds
        watched = [sock, sys.stdin]
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select(watched, [], [], left)
            if sys.stdin in readable and not sys.stdin.readline():
                watched.remove(sys.stdin)  # the sender side is done: drain what already arrived
                deadline = min(deadline, time.monotonic() + 0.2)
            if sock not in readable:
                continue
            frame, info = sock.recvfrom(65535)
            if info[2] == socket.PACKET_OUTGOING:
                continue
            source = sctp_init_source(frame, port)
            if source is not None:
                counts[source] = counts.get(source, 0) + 1
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sctp_probe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    lis = sub.add_parser("listen")
    lis.add_argument("--port", type=int, required=True)
    lis.add_argument("--seconds", type=float, default=30.0, help="at most this long (default: until stdin closes)")
    snd = sub.add_parser("send")
    snd.add_argument("--src", required=True)
    snd.add_argument("--port", type=int, required=True)
    snd.add_argument("--to", required=True, help="comma-separated destination IPs")
    args = parser.parse_args(argv)
    if args.mode == "listen":
        counts = listen(args.port, args.seconds, ready=lambda: print("listening", flush=True))
        print(json.dumps(counts), flush=True)
    else:
        send(args.src, [ip for ip in args.to.split(",") if ip], args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
