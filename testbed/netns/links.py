"""Links, addresses, routes and neighbours inside one named netns, over netlink (pyroute2).

``NetnsLinks`` has pyroute2 open its netlink socket inside the namespace (a child
process creates it there and hands it back), so the caller's own namespace never
changes. Do not open pyroute2 sockets from a thread that joined a namespace instead:
pyroute2 creates its socket lazily, on first use, in whatever thread uses it, and a
lab's bridge then lands in the root namespace (seen once, removed by hand). Veth peers are created
directly in their target namespace: no interface of a lab ever appears in the root netns.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pyroute2 import IPRoute

from testbed.netns.rtnetlink import PROTO_BIRD, PROTO_BOOT  # noqa: F401 - one definition of each

PROTO_FELIX = 80  # routes Felix owns outright


@dataclass(frozen=True)
class Route:
    dst: str  # "a.b.c.d/len"
    gateway: str | None
    dev: str | None
    proto: int
    kind: str  # unicast, blackhole, ...
    scope: int


ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 6: "blackhole", 7: "unreachable", 8: "prohibit"}


class NetnsLinks:
    """A netlink handle in one netns. Use as a context manager."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._ipr = IPRoute(netns=netns)
        self._indices: dict[str, int] = {}

    def __enter__(self) -> NetnsLinks:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._ipr.close()

    def forget(self) -> None:
        """Drop the cached interface indexes (a long-lived handle, between two uses: an
        interface may have been deleted and made again under the same name meanwhile)."""
        self._indices.clear()

    # -- links -------------------------------------------------------------------------
    def index(self, ifname: str) -> int:
        if ifname not in self._indices:
            found = self._ipr.link_lookup(ifname=ifname)
            if not found:
                raise LookupError(f"no interface {ifname} in netns {self.netns}")
            self._indices[ifname] = int(found[0])
        return self._indices[ifname]

    def has(self, ifname: str) -> bool:
        """Is there an interface ``ifname`` in this netns (now: absence is not cached)?"""
        return ifname in self._indices or bool(self._ipr.link_lookup(ifname=ifname))

    def delete_link(self, ifname: str) -> None:
        """Remove interface ``ifname`` (a veth takes its peer with it); missing is no error."""
        found = self._ipr.link_lookup(ifname=ifname)
        self._indices.pop(ifname, None)
        if found:
            self._ipr.link("del", index=int(found[0]))

    def set_up(self, ifname: str) -> None:
        self._ipr.link("set", index=self.index(ifname), state="up")

    def add_bridge(self, ifname: str) -> None:
        self._ipr.link("add", ifname=ifname, kind="bridge")

    def add_veth(self, ifname: str, peer: str, peer_netns: str, mac: str | None = None) -> None:
        """A veth pair whose peer end is born inside ``peer_netns``."""
        spec: dict[str, Any] = {"ifname": ifname, "kind": "veth", "peer": {"ifname": peer, "net_ns_fd": peer_netns}}
        if mac is not None:
            spec["address"] = mac
        self._ipr.link("add", **spec)

    def set_master(self, ifname: str, bridge: str) -> None:
        self._ipr.link("set", index=self.index(ifname), master=self.index(bridge), state="up")

    def mac(self, ifname: str) -> str:
        link = self._ipr.get_links(self.index(ifname))[0]
        return str(link.get_attr("IFLA_ADDRESS"))

    # -- addresses, routes, neighbours -----------------------------------------------------
    def add_address(self, ifname: str, address: str, prefixlen: int, replace: bool = False) -> None:
        """Add an address; ``replace``: no error when the interface has it already."""
        command = "replace" if replace else "add"
        self._ipr.addr(command, index=self.index(ifname), address=address, prefixlen=prefixlen)

    def add_route(
        self,
        dst: str,
        *,
        dev: str | None = None,
        via: str | None = None,
        scope: str | None = None,
        blackhole: bool = False,
        proto: int = PROTO_BOOT,
        replace: bool = False,
    ) -> None:
        """Add a route; protocol ``boot`` by default, as Calico's CNI plugin and Felix do.
        ``replace``: overwrite a route to the same destination instead of failing."""
        spec: dict[str, Any] = {"dst": dst, "proto": proto}
        if dev is not None:
            spec["oif"] = self.index(dev)
        if via is not None:
            spec["gateway"] = via
        if scope is not None:
            spec["scope"] = scope
        if blackhole:
            spec["type"] = "blackhole"
        self._ipr.route("replace" if replace else "add", **spec)

    def routes(self, proto: int | None = None) -> list[Route]:
        """IPv4 routes of the main table (optionally one protocol's), as `ip route` lists them."""
        names = {int(link["index"]): str(link.get_attr("IFLA_IFNAME")) for link in self._ipr.get_links()}
        found = []
        for msg in self._ipr.get_routes(family=2, table=254):
            if proto is not None and msg["proto"] != proto:
                continue
            dst = msg.get_attr("RTA_DST") or "0.0.0.0"
            oif = msg.get_attr("RTA_OIF")
            found.append(
                Route(
                    dst=f"{dst}/{msg['dst_len']}",
                    gateway=msg.get_attr("RTA_GATEWAY"),
                    dev=names.get(oif) if oif is not None else None,
                    proto=int(msg["proto"]),
                    kind=ROUTE_TYPES.get(int(msg["type"]), str(msg["type"])),
                    scope=int(msg["scope"]),
                )
            )
        return found

    def add_neighbour(self, ip: str, mac: str, dev: str) -> None:
        """A permanent neighbour entry, as Felix adds for each workload."""
        self._ipr.neigh("replace", dst=ip, lladdr=mac, ifindex=self.index(dev), state="permanent")
