"""The glue's kernel routes: ``<prefix> via <next hop> dev eth0 proto bird``, over netlink.

The glue runs inside its host's netns (ExaBGP starts it there), so a plain ``IPRoute()``
talks to the right kernel. "Ours" without memory: a route is the glue's when its protocol
is ``bird`` (12) AND it has a gateway. The host's ``blackhole <block> proto bird`` (its own
blocks, written by the lab runtime) shares the protocol but has no gateway: never touched.
"""

from __future__ import annotations

from typing import Any, Protocol

from testbed.naming import HOST_INTERFACE
from testbed.netns.links import PROTO_BIRD

MAIN_TABLE = 254
AF_INET = 2


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

    def close(self) -> None: ...


class KernelError(Exception):
    """A netlink request failed (one line: what, which prefix, the kernel's reason)."""


def _prefix(msg: Any) -> str:
    return f"{msg.get_attr('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}"


class NetlinkKernel:
    """The real thing: pyroute2 in the current network namespace."""

    def __init__(self, device: str = HOST_INTERFACE, proto: int = PROTO_BIRD) -> None:
        from pyroute2 import IPRoute  # type: ignore[import-untyped]  # here: unit tests never need it

        self.device = device
        self.proto = proto
        self._ipr = IPRoute()
        self._index: int | None = None

    def _oif(self) -> int:
        if self._index is None:
            found = self._ipr.link_lookup(ifname=self.device)
            if not found:
                raise KernelError(f"no interface {self.device} in this netns")
            self._index = int(found[0])
        return self._index

    def _ours(self) -> list[Any]:
        """The glue's routes: protocol bird with a gateway, main table, IPv4."""
        return [
            msg for msg in self._ipr.get_routes(family=AF_INET, table=MAIN_TABLE)
            if msg["proto"] == self.proto and msg.get_attr("RTA_GATEWAY") is not None
        ]  # fmt: skip

    def _delete(self, msg: Any) -> None:
        spec: dict[str, Any] = {
            "dst": _prefix(msg),
            "gateway": msg.get_attr("RTA_GATEWAY"),  # the kernel then never matches a blackhole
            "proto": self.proto,
            "table": MAIN_TABLE,
        }
        self._ipr.route("del", **spec)

    def replace(self, prefix: str, gateway: str) -> None:
        try:
            self._ipr.route("replace", dst=prefix, gateway=gateway, oif=self._oif(), proto=self.proto)
        except KernelError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyroute2 raises NetlinkError and others
            raise KernelError(f"route replace {prefix} via {gateway}: {exc}") from exc

    def remove(self, prefix: str) -> bool:
        try:
            doomed = [msg for msg in self._ours() if _prefix(msg) == prefix]
            for msg in doomed:
                self._delete(msg)
        except Exception as exc:  # noqa: BLE001
            raise KernelError(f"route del {prefix}: {exc}") from exc
        return bool(doomed)

    def flush(self) -> list[str]:
        removed: list[str] = []
        try:
            for msg in self._ours():
                self._delete(msg)
                removed.append(_prefix(msg))
        except Exception as exc:  # noqa: BLE001
            raise KernelError(f"flushing proto {self.proto} routes: {exc}") from exc
        return removed

    def close(self) -> None:
        self._ipr.close()
