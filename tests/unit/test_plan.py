"""Pure planning: names, addresses, blocks and placement of a lab, before anything exists."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address, IPv4Network

import pytest

from testbed import addressing, naming
from testbed.model.topology import HostSpec, PodSpec, Topology
from testbed.runtime.plan import plan_lab


def topo(hosts: list[HostSpec], pods: list[PodSpec]) -> Topology:
    return Topology(name="t", hosts=tuple(hosts), pods=tuple(pods))


def test_names_follow_the_lab_and_calico() -> None:
    plan = plan_lab(topo([HostSpec("host1")], [PodSpec("pod-a", "demo", host="host1")]), "lab1")
    assert plan.fabric_netns == "lab1.fabric"
    assert plan.hosts[0].netns == "lab1.host1"
    pod = plan.pods[0]
    assert pod.netns == "lab1.demo.pod-a"
    assert pod.interface == "cali" + hashlib.sha1(b"demo.pod-a").hexdigest()[:11]
    assert len(pod.interface) == naming.MAX_INTERFACE


def test_hosts_get_addresses_from_11_unless_pinned() -> None:
    plan = plan_lab(topo([HostSpec("a"), HostSpec("b", "172.18.203.11"), HostSpec("c")], []), "l")
    assert [str(h.ip) for h in plan.hosts] == ["172.18.203.12", "172.18.203.11", "172.18.203.13"]


def test_each_host_owns_a_block_and_pods_fill_it_in_order() -> None:
    pods = [PodSpec(f"p{i}", "demo", host="h1" if i < 2 else "h2") for i in range(4)]
    plan = plan_lab(topo([HostSpec("h1"), HostSpec("h2")], pods), "l")
    assert plan.host("h1").blocks == (IPv4Network("10.65.0.0/26"),)
    assert plan.host("h2").blocks == (IPv4Network("10.65.0.64/26"),)
    assert [str(p.ip) for p in plan.pods] == ["10.65.0.0", "10.65.0.1", "10.65.0.64", "10.65.0.65"]
    assert not any(p.borrowed for p in plan.pods)


def test_a_full_block_claims_the_next_one() -> None:
    pods = [PodSpec(f"p{i}", "demo", host="h1") for i in range(65)]
    plan = plan_lab(topo([HostSpec("h1")], pods), "l")
    assert plan.host("h1").blocks == (IPv4Network("10.65.0.0/26"), IPv4Network("10.65.0.64/26"))
    assert plan.pods[-1].ip == IPv4Address("10.65.0.64")


def test_pinned_addresses_claim_their_block_or_borrow() -> None:
    # The lab's routing figure: .21-.23 on two hosts, .24 on a third; one block, two borrowers.
    hosts = [HostSpec("h1", "172.18.203.126"), HostSpec("h2", "172.18.203.129"), HostSpec("h3")]
    pods = [
        PodSpec("w21", "demo", host="h1", ip="10.65.0.21"),
        PodSpec("w22", "demo", host="h1", ip="10.65.0.22"),
        PodSpec("w23", "demo", host="h2", ip="10.65.0.23"),
        PodSpec("w24", "demo", host="h3", ip="10.65.0.24"),
    ]
    plan = plan_lab(topo(hosts, pods), "l")
    assert [p.borrowed for p in plan.pods] == [False, False, True, True]
    assert plan.host("h1").blocks == (IPv4Network("10.65.0.0/26"),)
    assert plan.host("h2").blocks == (IPv4Network("10.65.0.64/26"),)
    assert plan.host("h3").blocks == (IPv4Network("10.65.0.128/26"),)


def test_automatic_placement_balances_hosts() -> None:
    pods = [PodSpec(f"p{i}", "demo") for i in range(5)] + [PodSpec("pinned", "demo", host="h1")]
    plan = plan_lab(topo([HostSpec("h1"), HostSpec("h2")], pods), "l")
    counts = {h: sum(1 for p in plan.pods if p.host == h) for h in ("h1", "h2")}
    assert counts == {"h1": 3, "h2": 3}


def test_namespaces_of_pods_exist_even_when_undeclared() -> None:
    plan = plan_lab(topo([HostSpec("h1")], [PodSpec("p", "extra")]), "l")
    assert [n.name for n in plan.namespaces] == ["extra", "default"]  # and the one every cluster has


def test_duplicate_pinned_pod_address_is_an_error() -> None:
    pods = [PodSpec("a", "demo", ip="10.65.0.5"), PodSpec("b", "demo", ip="10.65.0.5")]
    with pytest.raises(addressing.AddressError, match="pod demo/b: 10.65.0.5 is already assigned"):
        plan_lab(topo([HostSpec("h1")], pods), "l")


def test_host_address_outside_fabric_is_an_error() -> None:
    with pytest.raises(addressing.AddressError, match="host h1: 10.0.0.1 is not a usable address"):
        plan_lab(topo([HostSpec("h1", "10.0.0.1")], []), "l")


@pytest.mark.parametrize("reserved", ["172.18.203.1", "172.18.203.254", "172.18.203.0"])
def test_reserved_fabric_addresses_are_refused(reserved: str) -> None:
    with pytest.raises(addressing.AddressError):
        plan_lab(topo([HostSpec("h1", reserved)], []), "l")


def test_lab_names_cannot_contain_dots() -> None:
    assert naming.is_valid_lab_name("two-hosts")
    assert not naming.is_valid_lab_name("a.b")
    assert not naming.is_valid_lab_name("Upper")
    assert not naming.is_valid_lab_name("x" * 40)


def test_fabric_port_names_fit_the_kernel_limit() -> None:
    assert naming.fabric_port("host1") == "p-host1"
    long = naming.fabric_port("a-very-long-host-name")
    assert len(long) == naming.MAX_INTERFACE and long.startswith("p-")


def test_workload_endpoint_names_double_dashes() -> None:
    assert naming.workload_endpoint_name("host-1", "demo", "pod-a") == "host--1-k8s-pod--a-eth0"


def test_neighbour_entries_grow_quadratically_in_a_mesh_and_linearly_with_a_reflector() -> None:
    from dataclasses import replace

    from testbed.runtime.plan import neighbour_entries

    hosts = [HostSpec(f"h{i}") for i in range(30)]
    mesh = topo(hosts, [PodSpec("p", "demo")])
    assert neighbour_entries(plan_lab(mesh, "l")) == 30 * 30 + 30  # pods' entries are permanent
    reflected = replace(mesh, options=replace(mesh.options, route_reflector=True))
    assert neighbour_entries(plan_lab(reflected, "l")) == 30 * 2 + 30 + 30


def test_a_lab_that_would_fill_the_shared_neighbour_table_is_refused(tmp_path) -> None:
    from testbed.api import LabError, check_neighbour_budget

    limit = tmp_path / "gc_thresh3"
    limit.write_text("1024\n")
    small = plan_lab(topo([HostSpec(f"h{i}") for i in range(4)], []), "l")
    check_neighbour_budget(small, limit)
    big = plan_lab(topo([HostSpec(f"h{i}") for i in range(30)], []), "big")
    with pytest.raises(LabError, match=r"lab big: 30 hosts in a full BGP mesh need about 930 ARP entries.*--route-reflector"):
        check_neighbour_budget(big, limit)
