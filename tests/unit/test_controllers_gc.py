"""The garbage collector, with the workload controllers, over the in-memory store."""

from __future__ import annotations

import random
import uuid
from typing import Any

from testbed.controllers import objects as obj
from testbed.controllers.base import Controller, settle
from testbed.controllers.deployments import DeploymentController
from testbed.controllers.gc import GarbageCollector
from testbed.controllers.replicasets import replica_set_controller
from testbed.datastore import keys, records
from testbed.datastore.memory import MemoryDatastore
from tests.unit.controller_fixtures import (
    NOW,
    active_pods,
    add_namespace,
    key_of,
    kubelet,
    pods,
    schedule_all,
    workload,
)

LABELS = {"app": "web"}


def controllers(gc: GarbageCollector | None = None) -> list[Controller]:
    return [DeploymentController(), replica_set_controller(random.Random(3)), gc or GarbageCollector()]


def running_deployment(replicas: int = 2) -> tuple[MemoryDatastore, str, list[Controller]]:
    store = MemoryDatastore()
    add_namespace(store)
    d = workload("Deployment", "web", replicas, LABELS)
    store.put(key_of(d), d)
    own = controllers()
    settle(store, own, NOW)
    schedule_all(store)
    kubelet(store, NOW)
    settle(store, own, NOW)
    return store, key_of(d), own


def mark_deleted(store: MemoryDatastore, key: str, *finalizers: str) -> None:
    value = store.get(key)
    assert value is not None
    value["metadata"]["deletionTimestamp"] = records.timestamp(NOW)
    value["metadata"]["finalizers"] = list(finalizers)
    store.put(key, value)


def test_background_deleting_a_deployment_removes_its_replica_set_and_pods() -> None:
    store, key, own = running_deployment()
    store.delete(key)
    settle(store, own, NOW + 1)
    assert store.list(keys.REPLICASETS) == {}
    assert len(pods(store)) == 2 and not active_pods(store), "scheduled pods are deleted gracefully"
    assert all(p["metadata"]["deletionGracePeriodSeconds"] == 30 for p in pods(store).values())
    kubelet(store, NOW + 2)
    settle(store, own, NOW + 2)
    assert pods(store) == {}


def test_unscheduled_pods_of_a_gone_owner_are_removed_outright() -> None:
    store = MemoryDatastore()
    add_namespace(store)
    rs = workload("ReplicaSet", "web", 3, LABELS)
    store.put(key_of(rs), rs)
    own = controllers()
    settle(store, own, NOW)
    store.delete(key_of(rs))
    settle(store, own, NOW)
    assert pods(store) == {}


def test_an_owner_replaced_by_a_namesake_does_not_keep_the_old_dependents() -> None:
    store = MemoryDatastore()
    add_namespace(store)
    old = workload("ReplicaSet", "web", 2, LABELS)
    store.put(key_of(old), old)
    settle(store, [replica_set_controller()], NOW)
    new = workload("ReplicaSet", "web", 2, LABELS)  # same name, new uid, while no GC ran
    store.put(key_of(new), new)
    settle(store, controllers(), NOW + 1)
    assert len(pods(store)) == 2
    assert all(obj.owned_by(p, new["metadata"]["uid"]) for p in pods(store).values())


def test_foreground_deletion_removes_dependents_first() -> None:
    store, key, own = running_deployment()
    order: list[str] = []
    store.watch_prefix(keys.REGISTRY, lambda e: order.append(e.key) if e.kind == "delete" else None)
    mark_deleted(store, key, "foregroundDeletion")
    settle(store, own, NOW + 1)
    (rs,) = store.list(keys.REPLICASETS).values()
    assert obj.is_terminating(rs) and "foregroundDeletion" in rs["metadata"]["finalizers"]
    assert store.get(key) is not None, "the owner waits for its dependents"
    assert len(pods(store)) == 2 and not active_pods(store)
    kubelet(store, NOW + 2)  # the kubelet finishes the pods
    settle(store, own, NOW + 2)
    assert store.get(key) is None and store.list(keys.REPLICASETS) == {} and pods(store) == {}
    kinds = [k.split("/")[2] for k in order]
    assert kinds == ["pods", "pods", "replicasets", "deployments"]


def test_orphan_deletion_keeps_the_dependents_without_the_reference() -> None:
    store, key, own = running_deployment()
    (rs_key,) = store.list(keys.REPLICASETS)
    mark_deleted(store, rs_key, "orphan")
    mark_deleted(store, key, "orphan")
    settle(store, own, NOW + 1)
    assert store.get(key) is None and store.get(rs_key) is None
    assert len(active_pods(store)) == 2
    assert all("ownerReferences" not in p["metadata"] for p in pods(store).values())


def test_only_gone_references_are_dropped_and_guesses_are_never_made() -> None:
    store = MemoryDatastore()
    add_namespace(store)
    rs = workload("ReplicaSet", "web", 0, LABELS)
    store.put(key_of(rs), rs)
    refs = {
        "kept": [{"kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"]},
                 {"kind": "ReplicaSet", "name": "gone", "uid": str(uuid.uuid4())}],
        "no-uid": [{"kind": "ReplicaSet", "name": "gone", "controller": True}],
        "unknown-kind": [{"kind": "Widget", "name": "w", "uid": str(uuid.uuid4())}],
    }  # fmt: skip
    for name, owners in refs.items():
        store.put(keys.pod("default", name), {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "namespace": "default", "uid": str(uuid.uuid4()), "ownerReferences": owners},
            "spec": {"nodeName": "h1"}, "status": {"phase": "Running"}})  # fmt: skip
    settle(store, [GarbageCollector()], NOW)
    left = pods(store)
    assert set(active_pods(store)) == {"kept", "no-uid", "unknown-kind"}
    assert [r["name"] for r in left["kept"]["metadata"]["ownerReferences"]] == ["web"]


def _owned(kind: str, key: str, owner: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {
        "name": keys.name_of(key), "namespace": namespace, "uid": str(uuid.uuid4()),
        "ownerReferences": [obj.owner_reference(owner, owner["kind"], owner["apiVersion"])]}}  # fmt: skip


def test_any_stored_kind_follows_its_owner() -> None:
    store = MemoryDatastore()
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default", "uid": str(uuid.uuid4())}}
    store.put(keys.service("default", "web"), service)
    slice_key = keys.ENDPOINT_SLICES + "default/web-abcde"
    store.put(slice_key, _owned("EndpointSlice", slice_key, service))
    config_key = keys.OTHER_OBJECTS + "configmaps/default/settings"
    store.put(config_key, _owned("ConfigMap", config_key, service))
    gc = GarbageCollector()
    settle(store, [gc], NOW)
    assert store.get(slice_key) is not None and store.get(config_key) is not None
    store.delete(keys.service("default", "web"))
    settle(store, [gc], NOW)
    assert store.get(slice_key) is None and store.get(config_key) is None


def test_a_fresh_collector_finds_garbage_left_while_it_was_away() -> None:
    store, key, _ = running_deployment()
    store.delete(key)  # no collector watching
    settle(store, [GarbageCollector()], NOW + 1)  # a new process: its resync lists everything
    assert store.list(keys.REPLICASETS) == {}
    assert not active_pods(store)


def test_an_object_marked_deleted_without_finalizers_is_removed() -> None:
    store = MemoryDatastore()
    add_namespace(store)
    rs = workload("ReplicaSet", "web", 0, LABELS)
    store.put(key_of(rs), rs)
    mark_deleted(store, key_of(rs))
    settle(store, [GarbageCollector()], NOW)
    assert store.get(key_of(rs)) is None
    assert store.get(keys.k8s_namespace("default")) is not None


def test_owners_of_stored_only_kinds_are_found_where_the_registry_keeps_them() -> None:
    store = MemoryDatastore()
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "reader", "uid": str(uuid.uuid4())}}  # fmt: skip
    role_key = keys.OTHER_OBJECTS + "clusterroles.rbac.authorization.k8s.io/_cluster/reader"
    store.put(role_key, role)
    dependent_key = keys.OTHER_OBJECTS + "configmaps/default/settings"
    store.put(dependent_key, _owned("ConfigMap", dependent_key, role))
    gc = GarbageCollector()
    settle(store, [gc], NOW)
    assert store.get(dependent_key) is not None, "its owner is there"
    store.delete(role_key)
    settle(store, [gc], NOW)
    assert store.get(dependent_key) is None
