"""The key layout: Calico's etcd v3 keys, Kubernetes' registry keys, the lab record."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from testbed.datastore import keys

BLOCK = IPv4Network("10.65.0.64/26")


def test_calico_resource_keys() -> None:
    base = "/calico/resources/v3/projectcalico.org"
    assert keys.node("node-1") == f"{base}/nodes/node-1"
    assert keys.workload_endpoint("stars", "n1-k8s-p-eth0") == f"{base}/workloadendpoints/stars/n1-k8s-p-eth0"
    assert keys.workload_endpoint_of("node-1", "stars", "fe-1") == (
        f"{base}/workloadendpoints/stars/node--1-k8s-fe--1-eth0"
    )
    assert keys.ip_pool("default-ipv4-ippool") == f"{base}/ippools/default-ipv4-ippool"
    assert keys.namespace_profile("stars") == f"{base}/profiles/kns.stars"
    assert keys.service_account_profile("stars") == f"{base}/profiles/ksa.stars.default"


def test_ipam_keys() -> None:
    assert keys.block(BLOCK) == "/calico/ipam/v2/assignment/ipv4/block/10.65.0.64-26"
    assert keys.block_affinity("node-1", BLOCK) == "/calico/ipam/v2/host/node-1/ipv4/block/10.65.0.64-26"
    assert keys.pod_handle("stars", "fe") == "/calico/ipam/v2/handle/k8s-pod-network.stars.fe"


def test_kubernetes_and_lab_keys() -> None:
    assert keys.k8s_namespace("stars") == "/registry/namespaces/stars"
    assert keys.pod("stars", "fe") == "/registry/pods/stars/fe"
    assert keys.LAB == "/testbed/lab"


def test_control_plane_keys_follow_the_registry_layout() -> None:
    assert keys.endpoints("demo", "web") == "/registry/services/endpoints/demo/web"
    assert keys.endpoint_slice("demo", "web-x7k2p") == "/registry/endpointslices/demo/web-x7k2p"
    assert keys.k8s_node("host1") == "/registry/minions/host1"
    assert keys.node_lease("host1") == "/registry/leases/kube-node-lease/host1"
    assert keys.DAEMONSETS == "/registry/daemonsets/"
    # Endpoints live beside Service specs, never under them.
    assert not keys.endpoints("demo", "web").startswith(keys.SERVICES)
    assert keys.namespace_of(keys.pod("demo", "a"), keys.PODS) == "demo"
    assert keys.namespace_of(keys.PODS + "demo", keys.PODS) is None
    assert keys.namespace_of(keys.service("demo", "a"), keys.PODS) is None


def test_prefixes_end_with_a_slash_so_namespaces_do_not_overlap() -> None:
    assert not keys.pod("ab", "x").startswith(keys.pods_in("a"))
    assert keys.pod("a", "x").startswith(keys.pods_in("a"))
    assert not keys.workload_endpoint("ab", "w").startswith(keys.workload_endpoints_in("a"))
    assert keys.block_affinity("n1", BLOCK).startswith(keys.affinities_of("n1"))
    assert not keys.block_affinity("n10", BLOCK).startswith(keys.affinities_of("n1"))
    for prefix in (keys.NODES, keys.WORKLOAD_ENDPOINTS, keys.BLOCKS, keys.HANDLES, keys.PODS):
        assert prefix.endswith("/")


def test_block_keys_parse_back() -> None:
    assert keys.parse_block_name("10.65.0.64-26") == BLOCK
    assert keys.block_of_key(keys.block(BLOCK)) == BLOCK
    assert keys.block_of_key(keys.block_affinity("n1", BLOCK)) == BLOCK
    assert keys.parse_block_affinity(keys.block_affinity("node-1", BLOCK)) == ("node-1", BLOCK)


@pytest.mark.parametrize("name", ["10.65.0.64", "10.65.0.64-99", "x-26", "10.65.0.65-26", "-"])
def test_bad_block_names_are_refused(name: str) -> None:
    with pytest.raises(keys.KeyFormatError):
        keys.parse_block_name(name)


def test_non_affinity_keys_are_refused() -> None:
    with pytest.raises(keys.KeyFormatError):
        keys.parse_block_affinity(keys.block(BLOCK))
    with pytest.raises(keys.KeyFormatError):
        keys.block_of_key(keys.node("n1"))


def test_prefix_end_bounds_exactly_the_prefix() -> None:
    end = keys.prefix_end("/registry/pods/a/")
    assert end == "/registry/pods/a0"
    assert "/registry/pods/a/zzz" < end <= "/registry/pods/ab/x"
    assert keys.prefix_end("") == "\0"


def test_name_of() -> None:
    assert keys.name_of(keys.pod("stars", "fe")) == "fe"
