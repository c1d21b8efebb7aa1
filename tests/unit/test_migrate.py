"""The pure parts of `testbed migrate`: records re-homed, the kernel's route choice."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from testbed.netns.links import Route
from testbed.runtime.migrate import (
    best_route,
    is_borrowed,
    moved_endpoint,
    moved_pod,
    reattributed_block,
    routes_to_target,
)

ENDPOINT = {
    "kind": "WorkloadEndpoint",
    "metadata": {"name": "host1-k8s-web--1-eth0", "namespace": "demo", "uid": "u1", "labels": {"app": "web"}},
    "spec": {"node": "host1", "pod": "web-1", "interfaceName": "cali0123456789a", "ipNetworks": ["10.65.0.3/32"]},
}


def test_endpoint_changes_only_name_and_node() -> None:
    moved = moved_endpoint(ENDPOINT, "host-2")
    assert moved["metadata"]["name"] == "host--2-k8s-web--1-eth0"
    assert moved["spec"]["node"] == "host-2"
    assert moved["metadata"]["uid"] == "u1" and moved["spec"]["interfaceName"] == "cali0123456789a"
    assert moved["spec"]["ipNetworks"] == ["10.65.0.3/32"]
    assert ENDPOINT["spec"]["node"] == "host1"  # the input is not changed


def test_pod_gets_new_node_and_host_ip_but_keeps_its_ip() -> None:
    pod = {"spec": {"nodeName": "host1"}, "status": {"podIP": "10.65.0.3", "hostIP": "172.18.203.11"}}
    moved = moved_pod(pod, "host2", IPv4Address("172.18.203.12"))
    assert moved["spec"]["nodeName"] == "host2"
    assert moved["status"] == {"podIP": "10.65.0.3", "hostIP": "172.18.203.12"}
    assert pod["spec"]["nodeName"] == "host1"


def test_block_attributes_name_the_new_node_for_that_handle_only() -> None:
    block = {
        "attributes": [
            {"handle_id": "k8s-pod-network.demo.web-1", "secondary": {"node": "host1", "pod": "web-1"}},
            {"handle_id": "k8s-pod-network.demo.other", "secondary": {"node": "host1", "pod": "other"}},
        ]
    }
    moved = reattributed_block(block, "k8s-pod-network.demo.web-1", "host2")
    assert moved is not None
    assert [a["secondary"]["node"] for a in moved["attributes"]] == ["host2", "host1"]
    assert reattributed_block(moved, "k8s-pod-network.demo.web-1", "host2") is None
    assert reattributed_block(block, "k8s-pod-network.demo.absent", "host2") is None


def test_borrowed_when_outside_every_block_of_the_new_host() -> None:
    blocks = [IPv4Network("10.65.0.64/26")]
    assert is_borrowed(IPv4Address("10.65.0.3"), blocks)
    assert not is_borrowed(IPv4Address("10.65.0.70"), blocks)
    assert is_borrowed(IPv4Address("10.65.0.3"), [])


def route(dst: str, gateway: str | None = None, dev: str | None = None, kind: str = "unicast") -> Route:
    return Route(dst=dst, gateway=gateway, dev=dev, proto=12, kind=kind, scope=0)


OLD_HOST = [
    route("0.0.0.0/0", "172.18.203.1", "eth0"),
    route("10.65.0.0/26", kind="blackhole"),
    route("10.65.0.64/26", "172.18.203.12", "eth0"),
]


def test_longest_prefix_wins_over_the_own_block_blackhole() -> None:
    ip = IPv4Address("10.65.0.3")
    assert best_route(OLD_HOST, ip).kind == "blackhole"
    table = [*OLD_HOST, route("10.65.0.3/32", "172.18.203.12", "eth0")]
    chosen = best_route(table, ip)
    assert chosen is not None and chosen.dst == "10.65.0.3/32"
    assert routes_to_target(chosen, on_target=False, interface="cali0", target_ip="172.18.203.12")
    assert not routes_to_target(best_route(OLD_HOST, ip), on_target=False, interface="cali0", target_ip="172.18.203.12")


def test_on_the_new_host_the_route_must_be_its_interface() -> None:
    ip = IPv4Address("10.65.0.3")
    wrong = [route("10.65.0.0/26", "172.18.203.11", "eth0")]
    right = [*wrong, route("10.65.0.3/32", dev="cali0")]
    assert not routes_to_target(best_route(wrong, ip), on_target=True, interface="cali0", target_ip="x")
    assert routes_to_target(best_route(right, ip), on_target=True, interface="cali0", target_ip="x")
    assert not routes_to_target(best_route([], ip), on_target=True, interface="cali0", target_ip="x")
