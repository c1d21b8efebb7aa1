"""The address plan of every lab (the network policy lab's own) and Calico-style block IPAM.

Everything here is pure: given what is already taken, compute what comes next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

FABRIC = IPv4Network("172.18.203.0/24")
FABRIC_GATEWAY = IPv4Address("172.18.203.1")  # bridge address, hosts' default gateway, etcd
ROUTE_REFLECTOR = IPv4Address("172.18.203.254")
FIRST_HOST = IPv4Address("172.18.203.11")
POOL = IPv4Network("10.65.0.0/16")
POOL_NAME = "default-ipv4-ippool"
BLOCK_PREFIX = 26
WORKLOAD_GATEWAY = IPv4Address("169.254.1.1")
SERVICE_CIDR = IPv4Network("10.96.0.0/16")
CLUSTER_DNS = IPv4Address("10.96.0.10")
NODE_PORTS = range(30000, 32768)
AS_NUMBER = 64512
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380

RESERVED_FABRIC = frozenset({FABRIC.network_address, FABRIC.broadcast_address, FABRIC_GATEWAY, ROUTE_REFLECTOR})


class AddressError(ValueError):
    """An address request that the plan cannot satisfy (taken, outside its range, exhausted)."""


def block_of(ip: IPv4Address, pool: IPv4Network = POOL, prefix: int = BLOCK_PREFIX) -> IPv4Network:
    """The IPAM block that holds an address."""
    if ip not in pool:
        raise AddressError(f"{ip} is not in the pool {pool}")
    return ip_network(f"{ip}/{prefix}", strict=False)  # type: ignore[return-value]


def assign_host_ips(hosts: Sequence[tuple[str, str | None]]) -> dict[str, IPv4Address]:
    """Give each host its pinned fabric IP, or the next free one from .11 upwards.

    ``hosts`` is (name, pinned IP or None) in topology order.
    """
    taken: set[IPv4Address] = set()
    result: dict[str, IPv4Address] = {}
    for name, pinned in hosts:
        if pinned is None:
            continue
        ip = IPv4Address(pinned)
        if ip not in FABRIC or ip in RESERVED_FABRIC:
            raise AddressError(f"host {name}: {ip} is not a usable address of {FABRIC}")
        if ip in taken:
            raise AddressError(f"host {name}: {ip} is already used by another host")
        taken.add(ip)
        result[name] = ip
    candidates = (ip for ip in FABRIC.hosts() if ip >= FIRST_HOST and ip not in RESERVED_FABRIC)
    for name, pinned in hosts:
        if pinned is not None:
            continue
        free = next((c for c in candidates if c not in taken), None)
        if free is None:
            raise AddressError(f"host {name}: no free address left in {FABRIC}")
        taken.add(free)
        result[name] = free
    return {name: result[name] for name, _ in hosts}


@dataclass(frozen=True)
class Allocation:
    """One pod address: which block it came from, and whether it is borrowed."""

    ip: IPv4Address
    block: IPv4Network
    host: str
    borrowed: bool  # the block is affine to another host (Calico's borrowed address)


@dataclass
class BlockAllocator:
    """Calico's IPAM in miniature: /26 blocks with host affinity, addresses handed out in order.

    ``affinity`` maps each claimed block to its host; ``used`` holds every allocated address.
    """

    pool: IPv4Network = POOL
    prefix: int = BLOCK_PREFIX
    affinity: dict[IPv4Network, str] = field(default_factory=dict)
    used: set[IPv4Address] = field(default_factory=set)

    def blocks_of(self, host: str) -> list[IPv4Network]:
        return sorted(b for b, h in self.affinity.items() if h == host)

    def claim_block(self, host: str) -> IPv4Network:
        """Give ``host`` the lowest block nobody has claimed."""
        for block in self.pool.subnets(new_prefix=self.prefix):
            if block not in self.affinity:
                self.affinity[block] = host
                return block
        raise AddressError(f"host {host}: the pool {self.pool} has no free /{self.prefix} block")

    def ensure_block(self, host: str) -> IPv4Network:
        blocks = self.blocks_of(host)
        return blocks[0] if blocks else self.claim_block(host)

    def assign(self, host: str) -> Allocation:
        """The next free address in the host's blocks, claiming a new block when they are full."""
        for block in self.blocks_of(host):
            free = next((ip for ip in block if ip not in self.used), None)
            if free is not None:
                self.used.add(free)
                return Allocation(free, block, host, borrowed=False)
        block = self.claim_block(host)
        ip = next(iter(block))
        self.used.add(ip)
        return Allocation(ip, block, host, borrowed=False)

    def assign_pinned(self, host: str, ip: IPv4Address, owner: str) -> Allocation:
        """A requested address: claims its block for ``host`` if unclaimed, else borrows it."""
        if ip not in self.pool:
            raise AddressError(f"{owner}: {ip} is not in the pool {self.pool}")
        if ip in self.used:
            raise AddressError(f"{owner}: {ip} is already assigned")
        block = block_of(ip, self.pool, self.prefix)
        holder = self.affinity.setdefault(block, host)
        self.used.add(ip)
        return Allocation(ip, block, host, borrowed=holder != host)


def parse_ipv4(value: str) -> IPv4Address:
    """An IPv4 address from text, or AddressError."""
    try:
        ip = ip_address(value)
    except ValueError as exc:
        raise AddressError(f"{value!r} is not an IPv4 address") from exc
    if not isinstance(ip, IPv4Address):
        raise AddressError(f"{value!r} is not an IPv4 address")
    return ip
