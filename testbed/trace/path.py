"""Where a packet between two parties passes (pure): the interfaces, in order, and the
route each host matches. The lab's data path is plain routing (no encapsulation), so the
path follows from who is a pod, who is a host, and which host each lives on."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from testbed import naming
from testbed.trace.model import Node, Point

LOOPBACK = "lo"  # where a party talking to itself sends


def pod_point(node: Node) -> Point:
    return Point(node.name, node.netns, naming.POD_INTERFACE)


def host_points(lab: str, host: str) -> tuple[Point, Point]:
    """The host's eth0 and its port on the fabric bridge."""
    return (
        Point(host, naming.host_netns(lab, host), naming.HOST_INTERFACE),
        Point(naming.FABRIC, naming.fabric_netns(lab), naming.fabric_port(host)),
    )


def points(lab: str, src: Node, dst: Node) -> tuple[Point, ...]:
    """The interfaces a packet from ``src`` to ``dst`` crosses, in order. A party talking
    to itself never leaves its netns: the packet is seen on ``lo`` only."""
    if same_party(src, dst):
        return (Point(src.name, src.netns, LOOPBACK),)
    out: list[Point] = []
    if src.kind == "pod":
        out += [pod_point(src), Point(src.host, naming.host_netns(lab, src.host), src.iface or "")]
    if src.host != dst.host:
        src_eth, src_port = host_points(lab, src.host)
        dst_eth, dst_port = host_points(lab, dst.host)
        out += [src_eth, src_port, dst_port, dst_eth]
    if dst.kind == "pod":
        out += [Point(dst.host, naming.host_netns(lab, dst.host), dst.iface or ""), pod_point(dst)]
    return tuple(dict.fromkeys(out))  # a pod on its own host: no point twice


def same_party(src: Node, dst: Node) -> bool:
    return src.netns == dst.netns and src.ip == dst.ip


def hosts_on_path(src: Node, dst: Node) -> tuple[str, ...]:
    """The hosts whose rules judge the packet, in order (none for a party to itself)."""
    if same_party(src, dst):
        return ()
    return tuple(dict.fromkeys((src.host, dst.host)))


def interfaces_at(host: str, src: Node, dst: Node) -> tuple[str | None, str | None]:
    """(in, out) interface of the packet on ``host``; None: from / to the host itself."""
    if src.kind == "host" and src.host == host:
        in_iface = None
    elif src.host == host:
        in_iface = src.iface
    else:
        in_iface = naming.HOST_INTERFACE
    if dst.kind == "host" and dst.host == host:
        out_iface = None
    elif dst.host == host:
        out_iface = dst.iface
    else:
        out_iface = naming.HOST_INTERFACE
    return in_iface, out_iface


def route_lookup(routes: Sequence[tuple[str, str]], dst: str) -> str:
    """The longest-prefix match for ``dst`` among (prefix, `ip route` line) pairs, or ""."""
    address = ipaddress.ip_address(dst)
    best: tuple[int, str] | None = None
    for prefix, line in routes:
        net = ipaddress.ip_network("0.0.0.0/0" if prefix == "default" else prefix, strict=False)
        if address in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, line)
    return best[1] if best else ""
