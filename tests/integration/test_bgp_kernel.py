"""The glue's kernel adapter (its own rtnetlink client) against a real kernel, in a netns
of the test's own that looks like a lab host: eth0 on 172.18.203.0/24 and the host's
``blackhole <block> proto bird``, which the glue must never touch."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from agents.bgp.kernel import KernelError, NetlinkKernel
from testbed.netns import namespaces
from tests.integration.labs import RootSnapshot, unique

pytestmark = pytest.mark.root
T = TypeVar("T")


def ip(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def host(root_before: RootSnapshot) -> Iterator[str]:
    name = unique("bgpkernel") + ".host1"
    namespaces.create(name)
    try:
        ip(name, "link", "set", "lo", "up")
        ip(name, "link", "add", "eth0", "type", "veth", "peer", "name", "fabric0")  # both ends in here
        ip(name, "addr", "add", "172.18.203.11/24", "dev", "eth0")
        ip(name, "link", "set", "fabric0", "up")
        ip(name, "link", "set", "eth0", "up")
        ip(name, "route", "add", "blackhole", "10.65.0.0/26", "proto", "bird")
        yield name
    finally:
        namespaces.remove(name)
    assert not namespaces.exists(name)
    assert RootSnapshot.take() == root_before


def inside(netns: str, fn: Callable[[NetlinkKernel], T]) -> T:
    """Run ``fn`` with a NetlinkKernel made and used in a thread that joined ``netns``,
    as the glue is a process inside its host's netns."""

    def work() -> T:
        kernel = NetlinkKernel()
        try:
            return fn(kernel)
        finally:
            kernel.close()

    return namespaces.run_inside(netns, work)


def bird_routes(netns: str) -> list[str]:
    return [line.strip() for line in ip(netns, "route", "show", "proto", "bird").splitlines()]


def test_replace_remove_and_flush_touch_only_the_glues_routes(host: str) -> None:
    inside(host, lambda k: k.replace("10.65.0.64/26", "172.18.203.12"))
    inside(host, lambda k: k.replace("10.65.0.5/32", "172.18.203.12"))
    assert bird_routes(host) == [
        "blackhole 10.65.0.0/26",
        "10.65.0.5 via 172.18.203.12 dev eth0",
        "10.65.0.64/26 via 172.18.203.12 dev eth0",
    ]
    inside(host, lambda k: k.replace("10.65.0.64/26", "172.18.203.13"))  # a new next hop replaces the old
    assert "10.65.0.64/26 via 172.18.203.13 dev eth0" in bird_routes(host)
    assert len(bird_routes(host)) == 3
    assert inside(host, lambda k: k.remove("10.65.0.64/26")) is True
    assert inside(host, lambda k: k.remove("10.65.0.64/26")) is False
    assert inside(host, lambda k: k.remove("10.65.0.0/26")) is False  # the blackhole is not ours
    inside(host, lambda k: k.replace("10.65.0.128/26", "172.18.203.14"))
    assert sorted(inside(host, lambda k: k.flush())) == ["10.65.0.128/26", "10.65.0.5/32"]
    assert bird_routes(host) == ["blackhole 10.65.0.0/26"]
    assert inside(host, lambda k: k.flush()) == []


def test_a_route_the_kernel_refuses_is_one_line_with_its_reason(host: str) -> None:
    with pytest.raises(KernelError) as info:
        inside(host, lambda k: k.replace("10.65.0.64/26", "192.0.2.1"))  # not on eth0's subnet
    assert str(info.value) == "route replace 10.65.0.64/26 via 192.0.2.1: Network is unreachable"
    assert bird_routes(host) == ["blackhole 10.65.0.0/26"]


def test_a_host_without_eth0_is_named(host: str) -> None:
    ip(host, "link", "del", "eth0")
    with pytest.raises(KernelError, match="no interface eth0 in this netns"):
        inside(host, lambda k: k.replace("10.65.0.64/26", "172.18.203.12"))


def test_many_routes_come_back_in_one_dump(host: str) -> None:
    prefixes = [f"10.65.{i // 4}.{64 * (i % 4)}/26" for i in range(4, 404)]

    def install(kernel: NetlinkKernel) -> list[str]:
        for prefix in prefixes:
            kernel.replace(prefix, "172.18.203.12")
        return kernel.flush()

    assert sorted(inside(host, install)) == sorted(prefixes)
    assert bird_routes(host) == ["blackhole 10.65.0.0/26"]


def test_a_route_socket_made_inside_a_netns_stays_there(host: str) -> None:
    """What `up`'s convergence wait relies on: made by a thread that joined the host's netns,
    the socket reads that netns's routes from the caller's own thread (in the root netns)."""
    from testbed.netns.rtnetlink import RouteSocket

    inside(host, lambda k: k.replace("10.65.0.64/26", "172.18.203.12"))
    sock = namespaces.run_inside(host, RouteSocket)
    try:
        seen = {(r.dst, r.gateway) for r in sock.routes() if r.proto == 12}
    finally:
        sock.close()
    assert seen == {("10.65.0.0/26", None), ("10.65.0.64/26", "172.18.203.12")}
