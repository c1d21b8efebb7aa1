"""Where a trace looks (testbed.trace.path): the interfaces in order, and the route each
host matches. Pure: nodes are built by hand."""

from __future__ import annotations

from testbed.naming import workload_interface
from testbed.trace.model import Node
from testbed.trace.path import hosts_on_path, interfaces_at, points, route_lookup

LAB = "lab"
A = Node("pod", "x/a", "10.65.0.0", "host1", "lab.x.a", workload_interface("x", "a"))
B = Node("pod", "x/b", "10.65.0.64", "host2", "lab.x.b", workload_interface("x", "b"))
C = Node("pod", "y/c", "10.65.0.1", "host1", "lab.y.c", workload_interface("y", "c"))
H1 = Node("host", "host1", "172.18.203.11", "host1", "lab.host1")
H2 = Node("host", "host2", "172.18.203.12", "host2", "lab.host2")


def labels(src: Node, dst: Node) -> list[str]:
    return [p.label for p in points(LAB, src, dst)]


def test_cross_host_pods_cross_every_hop_in_order() -> None:
    assert labels(A, B) == [
        "x/a eth0", f"host1 {A.iface}", "host1 eth0", "fabric p-host1",
        "fabric p-host2", "host2 eth0", f"host2 {B.iface}", "x/b eth0",
    ]
    netns = {p.label: p.netns for p in points(LAB, A, B)}
    assert netns["fabric p-host1"] == "lab.fabric" and netns["host2 eth0"] == "lab.host2"


def test_a_party_to_itself_is_seen_on_loopback_only_and_judged_by_no_host() -> None:
    assert [(p.netns, p.iface) for p in points(LAB, A, A)] == [("lab.x.a", "lo")]
    assert hosts_on_path(A, A) == () and hosts_on_path(H1, H1) == ()
    assert labels(A, C)[0] == "x/a eth0"  # another pod of the same host is not "itself"


def test_same_host_pods_never_touch_the_fabric() -> None:
    assert labels(A, C) == ["x/a eth0", f"host1 {A.iface}", f"host1 {C.iface}", "y/c eth0"]
    assert hosts_on_path(A, C) == ("host1",)


def test_hosts_as_parties() -> None:
    assert labels(H2, A) == ["host2 eth0", "fabric p-host2", "fabric p-host1", "host1 eth0", f"host1 {A.iface}", "x/a eth0"]
    assert labels(H1, A) == [f"host1 {A.iface}", "x/a eth0"]
    assert labels(A, H2)[-1] == "host2 eth0"


def test_interfaces_each_host_sees() -> None:
    assert interfaces_at("host1", A, B) == (A.iface, "eth0")
    assert interfaces_at("host2", A, B) == ("eth0", B.iface)
    assert interfaces_at("host1", A, C) == (A.iface, C.iface)
    assert interfaces_at("host1", H1, A) == (None, A.iface)
    assert interfaces_at("host2", A, H2) == ("eth0", None)


def test_route_lookup_takes_the_longest_prefix() -> None:
    table = [
        ("default", "default via 172.18.203.1 dev eth0"),
        ("10.65.0.64/26", "10.65.0.64/26 via 172.18.203.12 dev eth0 proto bird"),
        ("10.65.0.65", "10.65.0.65 via 172.18.203.13 dev eth0 proto bird"),
        ("172.18.203.0/24", "172.18.203.0/24 dev eth0 proto kernel"),
    ]
    assert route_lookup(table, "10.65.0.64").endswith("proto bird") and "/26" in route_lookup(table, "10.65.0.64")
    assert route_lookup(table, "10.65.0.65").startswith("10.65.0.65 via 172.18.203.13")
    assert route_lookup(table, "10.66.0.1").startswith("default")
    assert route_lookup([], "10.65.0.1") == ""
