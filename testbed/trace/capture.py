"""The kernel side of a trace, kept thin: AF_PACKET sockets opened inside each netns of
the path (each from a thread that joined that netns; a socket stays bound to the netns it
was made in), one raw send from the source netns, and the hosts' rule counters.

Sources are always set explicitly (scapy's routing table is the root netns's)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from testbed.netns.namespaces import run_inside
from testbed.trace.model import Leg, Point, Sighting

ETH_P_ALL = 0x0003
MARK_SEQ = 0x7E570000  # "testbed" in a TCP sequence number: our SYN, recognisable in a capture
PAYLOAD = b"testbed-trace"
QUIET = 0.25  # seconds without a new sighting after which a dropped packet is given up on


@dataclass(frozen=True)
class Probe:
    src: str
    dst: str
    protocol: str  # tcp, udp, icmp
    sport: int  # TCP/UDP source port, ICMP id
    dport: int | None


def warm_up() -> None:
    """Import scapy's layers (about 0.2 s): run in a thread while the counters are read."""
    import scapy.layers.inet  # noqa: F401, PLC0415
    import scapy.layers.l2  # noqa: F401, PLC0415


def packet_bytes(probe: Probe) -> bytes:
    from scapy.layers.inet import ICMP, IP, TCP, UDP

    ip = IP(src=probe.src, dst=probe.dst, ttl=64)
    if probe.protocol == "tcp":
        return bytes(ip / TCP(sport=probe.sport, dport=probe.dport, flags="S", seq=MARK_SEQ + probe.sport, window=64240))
    if probe.protocol == "udp":
        return bytes(ip / UDP(sport=probe.sport, dport=probe.dport) / PAYLOAD)
    return bytes(ip / ICMP(type=8, id=probe.sport, seq=1) / PAYLOAD)


def classify(data: bytes, probe: Probe, translated: Iterable[str] = ()) -> tuple[Leg, str, str, int | None, int | None, str] | None:
    """(leg, src, dst, sport, dport, detail) when a frame is our probe or its reply.

    ``translated``: addresses the destination may have become (a Service's endpoints)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether

    frame = Ether(data)
    ip = frame.getlayer(IP)
    if ip is None:
        return None
    peers = {probe.dst, *translated}
    if probe.protocol == "tcp" and ip.haslayer(TCP):
        tcp = ip[TCP]
        flags = str(tcp.flags)
        if ip.src == probe.src and ip.dst in peers and tcp.sport == probe.sport and tcp.seq == MARK_SEQ + probe.sport and "S" in flags:
            return "request", ip.src, ip.dst, tcp.sport, tcp.dport, "SYN"
        if ip.dst == probe.src and ip.src in peers and tcp.dport == probe.sport and ("S" in flags or "R" in flags):
            return "reply", ip.src, ip.dst, tcp.sport, tcp.dport, "SYN-ACK" if "S" in flags else "RST"
    elif probe.protocol == "udp" and ip.haslayer(UDP):
        udp = ip[UDP]
        if ip.src == probe.src and ip.dst in peers and udp.sport == probe.sport:
            return "request", ip.src, ip.dst, udp.sport, udp.dport, "UDP"
        if ip.dst == probe.src and ip.src in peers and udp.dport == probe.sport:
            return "reply", ip.src, ip.dst, udp.sport, udp.dport, "UDP"
    elif probe.protocol == "icmp" and ip.haslayer(ICMP):
        icmp = ip[ICMP]
        if icmp.id == probe.sport and icmp.type == 8 and ip.src == probe.src:
            return "request", ip.src, ip.dst, None, None, "echo-request"
        if icmp.id == probe.sport and icmp.type == 0 and ip.dst == probe.src:
            return "reply", ip.src, ip.dst, None, None, "echo-reply"
    return None


def open_socket(point: Point) -> socket.socket:
    """An AF_PACKET socket on ``point.iface``, made inside ``point.netns``."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((point.iface, 0))
        sock.setblocking(False)
        return sock

    return run_inside(point.netns, make)


def send(netns: str, probe: Probe) -> None:
    data = packet_bytes(probe)

    def go() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
            sock.sendto(data, (probe.dst, 0))

    run_inside(netns, go)


def capture(
    points: Sequence[Point], netns: str, probe: Probe, translated: Iterable[str], done: Callable[[list[Sighting]], bool],
    timeout: float,
) -> list[Sighting]:
    """Send the probe and collect its sightings (first per point and leg) until ``done``
    says the walk is complete, nothing new came for ``QUIET`` seconds (a drop: hops are
    microseconds apart), or ``timeout`` passes."""
    with ThreadPoolExecutor(max_workers=max(1, len(points))) as pool:  # each one a setns thread
        socks = dict(zip(pool.map(open_socket, points), points))
    translated = tuple(translated)
    sightings: list[Sighting] = []
    first: set[tuple[Point, str]] = set()
    try:
        send(netns, probe)
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while (left := min(deadline, last + QUIET) - time.monotonic()) > 0:
            ready, _, _ = select.select(list(socks), [], [], left)
            for sock in ready:
                while True:
                    try:
                        data = sock.recv(65535)
                    except BlockingIOError:
                        break
                    seen = classify(data, probe, translated)
                    if seen is None or (socks[sock], seen[0]) in first:
                        continue
                    first.add((socks[sock], seen[0]))
                    sightings.append(Sighting(socks[sock], *seen))
                    last = time.monotonic()
            if done(sightings):
                break
    finally:
        # Closing a packet socket waits for the kernel's RCU grace period (~13 ms each):
        # let a background thread pay it, the result is ready now.
        threading.Thread(target=lambda: [sock.close() for sock in socks], daemon=True).start()
    return sightings


def _save_cmd(netns: str) -> list[str]:
    return ["ip", "netns", "exec", netns, "iptables-legacy-save", "-c"]


def counters(netns_list: Sequence[str]) -> dict[str, str]:
    """`iptables-legacy-save -c` of each netns, read in parallel."""
    procs = {ns: subprocess.Popen(_save_cmd(ns), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for ns in netns_list}
    return {ns: p.communicate(timeout=10)[0] for ns, p in procs.items()}


def conntrack_dnat(netns: str, probe: Probe) -> str | None:
    """The address conntrack translated the probe's destination to on a host, if any."""
    if probe.protocol not in ("tcp", "udp"):
        return None
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "conntrack", "-L", "-p", probe.protocol, "--orig-src", probe.src,
         "--sport", str(probe.sport)],
        capture_output=True, text=True, timeout=10,
    ).stdout
    for line in out.splitlines():
        fields = [f.split("=", 1) for f in line.split() if "=" in f]
        srcs = [v for k, v in fields if k == "src"]
        if len(srcs) >= 2 and srcs[1] != probe.dst:
            return srcs[1]  # the reply's source: the endpoint the destination became
    return None


def pick_sport() -> int:
    """A random source port above Linux's ephemeral range (32768-60999): no socket of the
    source uses it, and two traces in a row do not share a conntrack entry."""
    return 61000 + int.from_bytes(os.urandom(2), "big") % 4000
