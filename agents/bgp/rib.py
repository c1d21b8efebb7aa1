"""The glue's pure state: routes learned per peer, the one chosen per prefix, what to announce.

ExaBGP sends no withdraws when a session drops, so a ``down`` flushes that peer's routes.
Only prefixes inside the pool are accepted: a reflected fabric route would overwrite the
host's connected route (feasibility §6). When several peers announce a prefix, the lowest
next hop wins, and the next one takes over when it goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

from agents.bgp.messages import Event, RouteUpdate, StateChange
from testbed.addressing import POOL


@dataclass(frozen=True)
class RouteDiff:
    """Kernel work: routes to add or replace (prefix -> next hop) and prefixes to delete."""

    add: Mapping[str, str] = field(default_factory=dict)
    remove: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def _pool_prefix(prefix: str, pool: IPv4Network) -> str | None:
    try:
        net = ip_network(prefix)
    except ValueError:
        return None
    if not isinstance(net, IPv4Network) or not net.subnet_of(pool):
        return None
    return str(net)


def _ipv4(text: str) -> IPv4Address | None:
    try:
        addr = ip_address(text)
    except ValueError:
        return None
    return addr if isinstance(addr, IPv4Address) else None


class Rib:
    """Per-peer learned routes and the chosen route per prefix.

    ``local_ip`` (the host's own address) drops routes pointing back at this host.
    """

    def __init__(self, local_ip: str | None = None, pool: IPv4Network = POOL) -> None:
        self._local = _ipv4(local_ip) if local_ip else None
        self._pool = pool
        self._learned: dict[str, dict[str, IPv4Address]] = {}

    def learned(self, peer: str) -> dict[str, str]:
        return {p: str(nh) for p, nh in self._learned.get(peer, {}).items()}

    def selected(self) -> dict[str, str]:
        """The chosen next hop of every known prefix: what the kernel should hold."""
        return {p: str(nh) for p, nh in self._select(self._all_prefixes()).items()}

    def apply(self, event: Event) -> RouteDiff:
        """Take one event in; return what changes in the chosen routes."""
        if isinstance(event, StateChange):
            if event.state != "down":
                return RouteDiff()
            return self._change(event.peer, None)
        if isinstance(event, RouteUpdate):
            return self._change(event.peer, event)
        return RouteDiff()

    def flush(self) -> RouteDiff:
        """Forget everything (the glue is stopping): every chosen route goes."""
        gone = frozenset(self._all_prefixes())
        self._learned.clear()
        return RouteDiff(remove=gone)

    def _update(self, table: dict[str, IPv4Address], event: RouteUpdate) -> None:
        for prefix in event.withdrawn:
            key = _pool_prefix(prefix, self._pool)
            if key is not None:
                table.pop(key, None)
        for prefix, next_hop in event.announced:
            key, hop = _pool_prefix(prefix, self._pool), _ipv4(next_hop)
            if key is None or hop is None or hop == self._local:
                continue
            table[key] = hop

    def _change(self, peer: str, update: RouteUpdate | None) -> RouteDiff:
        """Apply ``update`` to the peer's table (None flushes it); diff the chosen routes."""
        table = self._learned.setdefault(peer, {})
        old = dict(table)
        if update is None:
            table.clear()
        else:
            self._update(table, update)
        if not table:
            del self._learned[peer]
        touched = set(old) | set(table)
        before = self._select(touched, swap=(peer, old))
        after = self._select(touched)
        add = {p: str(nh) for p, nh in sorted(after.items()) if before.get(p) != nh}
        return RouteDiff(add=add, remove=frozenset(set(before) - set(after)))

    def _all_prefixes(self) -> set[str]:
        return {p for table in self._learned.values() for p in table}

    def _select(
        self, prefixes: Iterable[str], swap: tuple[str, dict[str, IPv4Address]] | None = None
    ) -> dict[str, IPv4Address]:
        """Lowest next hop per prefix; ``swap`` stands one peer's table in for its current one."""
        tables = dict(self._learned)
        if swap is not None:
            tables[swap[0]] = swap[1]
        chosen: dict[str, IPv4Address] = {}
        for prefix in prefixes:
            hops = [t[prefix] for t in tables.values() if prefix in t]
            if hops:
                chosen[prefix] = min(hops)
        return chosen


def desired_announcements(
    own_blocks: Iterable[str | IPv4Network], local_pod_ips: Iterable[str | IPv4Address]
) -> set[str]:
    """What a host announces: each block it owns, and a /32 for each local pod outside them.

    A pod outside the host's blocks holds a borrowed address (its block is affine to another
    host), so the /32 is more specific than that host's block and wins. Addresses outside
    the pool are never announced.
    """
    blocks = {ip_network(b) for b in own_blocks}
    wanted = {str(b) for b in blocks if isinstance(b, IPv4Network) and b.subnet_of(POOL)}
    for raw in local_pod_ips:
        ip = ip_address(raw)
        if isinstance(ip, IPv4Address) and ip in POOL and not any(ip in b for b in blocks):
            wanted.add(f"{ip}/32")
    return wanted
