"""The glue's kernel routes: ``<prefix> via <next hop> dev eth0 proto bird``, over netlink.

The glue runs inside its host's netns (ExaBGP starts it there), so a plain netlink socket
talks to the right kernel. It is our own small rtnetlink client (``rtnetlink.py``), not
pyroute2: see there why. "Ours" without memory: a route is the glue's when its protocol
is ``bird`` (12) AND it has a gateway. The host's ``blackhole <block> proto bird`` (its own
blocks, written by the lab runtime) shares the protocol but has no gateway: never touched.
"""

from __future__ import annotations

import socket
from typing import Protocol

from testbed.naming import HOST_INTERFACE
from testbed.netns.rtnetlink import PROTO_BIRD, RouteEntry, RouteSocket


class Kernel(Protocol):
    """What the glue needs of the kernel's routing table (a fake in unit tests)."""

    def replace(self, prefix: str, gateway: str) -> None:
        """Add or replace ``prefix via gateway dev eth0 proto bird``."""
        ...

    def remove(self, prefix: str) -> bool:
        """Delete the glue's route to ``prefix`` (proto bird with a gateway); True if one went."""
        ...

    def flush(self) -> list[str]:
        """Delete every route of the glue (proto bird with a gateway); the prefixes removed."""
        ...

    def learned(self) -> dict[str, str]:
        """Every route of the glue now in the kernel: prefix -> gateway."""
        ...

    def close(self) -> None: ...


class KernelError(Exception):
    """A netlink request failed (one line: what, which prefix, the kernel's reason)."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class NetlinkKernel:
    """The real thing: rtnetlink in the current network namespace."""

    def __init__(self, device: str = HOST_INTERFACE, proto: int = PROTO_BIRD) -> None:
        self.device = device
        self.proto = proto
        self._routes = RouteSocket()
        self._index: int | None = None

    def _oif(self) -> int:
        if self._index is None:
            try:
                self._index = socket.if_nametoindex(self.device)
            except OSError:
                raise KernelError(f"no interface {self.device} in this netns") from None
        return self._index

    def _ours(self) -> list[RouteEntry]:
        """The glue's routes: protocol bird with a gateway, main table, IPv4."""
        return [r for r in self._routes.routes() if r.proto == self.proto and r.gateway is not None]

    def replace(self, prefix: str, gateway: str) -> None:
        try:
            self._routes.replace(prefix, gateway, self._oif(), self.proto)
        except OSError as exc:
            raise KernelError(f"route replace {prefix} via {gateway}: {_reason(exc)}") from exc

    def remove(self, prefix: str) -> bool:
        try:
            doomed = [r for r in self._ours() if r.dst == prefix]
            for route in doomed:
                self._routes.delete(route.dst, route.gateway, self.proto)
        except OSError as exc:
            raise KernelError(f"route del {prefix}: {_reason(exc)}") from exc
        return bool(doomed)

    def learned(self) -> dict[str, str]:
        try:
            return {r.dst: str(r.gateway) for r in self._ours()}
        except OSError as exc:
            raise KernelError(f"listing proto {self.proto} routes: {_reason(exc)}") from exc

    def flush(self) -> list[str]:
        removed: list[str] = []
        try:
            for route in self._ours():
                self._routes.delete(route.dst, route.gateway, self.proto)
                removed.append(route.dst)
        except OSError as exc:
            raise KernelError(f"flushing proto {self.proto} routes: {_reason(exc)}") from exc
        return removed

    def close(self) -> None:
        self._routes.close()
