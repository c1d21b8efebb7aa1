"""The kubelet's heartbeat: its Node and Lease in Kubernetes' shapes, conditional writes."""

from __future__ import annotations

from agents.kubelet import node
from testbed.datastore import keys
from testbed.datastore.memory import MemoryDatastore

T0 = 1_800_000_000.0


def lab_store() -> MemoryDatastore:
    store = MemoryDatastore()
    store.put(keys.node("host1"), {"metadata": {"name": "host1"}, "spec": {"bgp": {"ipv4Address": "172.18.203.11/24"}}})
    return store


def test_keys_are_kubernetes_registry_keys() -> None:
    assert keys.k8s_node("host1") == "/registry/minions/host1"
    assert keys.node_lease("host1") == "/registry/leases/kube-node-lease/host1"


def test_the_node_object() -> None:
    value = node.node_object("host1", "172.18.203.11", T0, None)
    assert (value["apiVersion"], value["kind"], value["metadata"]["name"]) == ("v1", "Node", "host1")
    assert value["metadata"]["labels"]["kubernetes.io/hostname"] == "host1"
    assert {"type": "InternalIP", "address": "172.18.203.11"} in value["status"]["addresses"]
    assert value["status"]["nodeInfo"]["kubeletVersion"] == "testbed"
    ready = node.ready_condition(value)
    assert ready is not None and ready["status"] == "True" and ready["lastHeartbeatTime"] == node.timestamp(T0)
    later = node.node_object("host1", "172.18.203.11", T0 + 30, value)
    again = node.ready_condition(later)
    assert again is not None
    assert (again["lastTransitionTime"], again["lastHeartbeatTime"]) == (node.timestamp(T0), node.timestamp(T0 + 30))
    assert later["metadata"]["uid"] == value["metadata"]["uid"]
    unknown = {**value, "status": {**value["status"], "conditions": [{**ready, "status": "Unknown"}]}}
    back = node.ready_condition(node.node_object("host1", "172.18.203.11", T0 + 40, unknown))
    assert back is not None and back["lastTransitionTime"] == node.timestamp(T0 + 40)


def test_nothing_before_the_labs_records_then_node_and_lease() -> None:
    store = MemoryDatastore()
    beat = node.Heartbeat(store, "host1")
    beat.beat(T0)
    assert store.get(keys.k8s_node("host1")) is None
    store.put(keys.node("host1"), {"metadata": {"name": "host1"}, "spec": {"bgp": {"ipv4Address": "172.18.203.11/24"}}})
    beat.beat(T0 + 1)
    lease = store.get(keys.node_lease("host1"))
    k8s_node = store.get(keys.k8s_node("host1"))
    assert lease is not None and k8s_node is not None
    assert lease["spec"] == {"holderIdentity": "host1", "leaseDurationSeconds": 40, "renewTime": node.micro_time(T0 + 1)}
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == k8s_node["metadata"]["uid"]


def test_the_lease_is_renewed_each_beat_the_node_every_ten_seconds() -> None:
    store = lab_store()
    beat = node.Heartbeat(store, "host1")
    node_revisions, renewals = set(), []
    for i in range(12):
        beat.beat(T0 + i)
        node_revisions.add(store.get_versioned(keys.k8s_node("host1")).revision)  # type: ignore[union-attr]
        renewals.append(store.get(keys.node_lease("host1"))["spec"]["renewTime"])  # type: ignore[index]
    assert len(set(renewals)) == 12
    assert len(node_revisions) == 2  # at 0 s and at 10 s


def test_a_write_by_someone_else_is_read_again_not_overwritten_blindly() -> None:
    store = lab_store()
    beat = node.Heartbeat(store, "host1")
    beat.beat(T0)
    lease = store.get(keys.node_lease("host1")) or {}
    store.put(keys.node_lease("host1"), {**lease, "metadata": {**lease["metadata"], "labels": {"x": "y"}}})
    beat.beat(T0 + 1)
    renewed = store.get(keys.node_lease("host1")) or {}
    assert renewed["metadata"]["labels"] == {"x": "y"}
    assert renewed["spec"]["renewTime"] == node.micro_time(T0 + 1)


def test_after_a_gap_the_node_is_made_ready_again_at_once() -> None:
    store = lab_store()
    beat = node.Heartbeat(store, "host1")
    beat.beat(T0)
    value = store.get(keys.k8s_node("host1")) or {}
    ready = node.ready_condition(value) or {}
    store.put(keys.k8s_node("host1"), {**value, "status": {**value["status"], "conditions": [{**ready, "status": "Unknown"}]}})
    beat.beat(T0 + 6)  # frozen for 6 s: the node lifecycle controller marked it Unknown
    assert (node.ready_condition(store.get(keys.k8s_node("host1"))) or {}).get("status") == "True"


def test_lease_freshness() -> None:
    lease = node.lease_object("host1", T0, None, None)
    assert node.lease_fresh(lease, T0 + 3, 4.0) is True
    assert node.lease_fresh(lease, T0 + 5, 4.0) is False
    assert node.lease_fresh(None, T0, 4.0) is None
