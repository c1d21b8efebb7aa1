"""ReplicaSet and ReplicationController controllers over the in-memory store."""

from __future__ import annotations

import random
import sys
import threading
from typing import Any

from testbed.controllers import objects as obj
from testbed.controllers.base import settle
from testbed.controllers.replicasets import replica_set_controller, replication_controller_controller
from testbed.datastore import keys
from testbed.datastore.base import Versioned
from testbed.datastore.memory import MemoryDatastore
from tests.unit.controller_fixtures import (
    NOW,
    active_pods,
    add_namespace,
    key_of,
    kubelet,
    pods,
    schedule_all,
    update_spec,
    workload,
)

LABELS = {"app": "web"}


def setup(replicas: int = 3, kind: str = "ReplicaSet", **spec: Any) -> tuple[MemoryDatastore, str, dict[str, Any]]:
    store = MemoryDatastore()
    add_namespace(store)
    rs = workload(kind, "web", replicas, LABELS, **spec)
    store.put(key_of(rs), rs)
    return store, key_of(rs), rs


def test_creates_replicas_pods_as_pending_owned_objects() -> None:
    store, key, rs = setup(3, template={"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "args": ["-x"]}]}})
    settle(store, [replica_set_controller(random.Random(1))], NOW)
    made = pods(store)
    assert len(made) == 3
    for name, pod in made.items():
        assert name.startswith("web-") and len(name) == len("web-") + 5
        assert pod["status"] == {"phase": "Pending"}
        assert "nodeName" not in pod["spec"]
        assert pod["spec"]["containers"] == [{"name": "c", "image": "nginx:1.25", "args": ["-x"]}]
        assert pod["spec"]["restartPolicy"] == "Always" and pod["spec"]["terminationGracePeriodSeconds"] == 30
        assert pod["metadata"]["labels"] == LABELS
        assert pod["metadata"]["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True,
        }]  # fmt: skip
        assert pod["metadata"]["uid"] and pod["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    status = store.get(key)["status"]  # type: ignore[index]
    assert status == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 0, "availableReplicas": 0, "observedGeneration": 1}


def test_scale_down_deletes_unscheduled_outright_and_scheduled_gracefully() -> None:
    store, key, _ = setup(4)
    controller = replica_set_controller(random.Random(2))
    settle(store, [controller], NOW)
    # Two pods scheduled, one of them Ready: the unscheduled ones go first, then not-ready.
    names = sorted(pods(store))
    for name in names[:2]:
        v = store.get_versioned(keys.pod("default", name))
        assert v is not None
        v.value["spec"]["nodeName"] = "h1"
        store.put(keys.pod("default", name), v.value)
    kubelet(store, ready=1)
    ready_name = next(n for n, p in pods(store).items() if obj.is_ready_pod(p))
    update_spec(store, key, replicas=1)
    settle(store, [controller], NOW + 5)
    left = pods(store)
    assert set(left) == set(names[:2]), "the two unscheduled pods are removed outright"
    assert list(active_pods(store)) == [ready_name], "the not-ready scheduled one is deleted first"
    terminating = next(p for n, p in left.items() if n != ready_name)
    assert terminating["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:25Z"  # when it was asked
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    assert store.get(key)["status"]["replicas"] == 1  # type: ignore[index]


def test_a_deleted_pod_is_replaced_and_a_terminating_one_is_not_counted() -> None:
    store, key, _ = setup(2)
    controller = replica_set_controller()
    settle(store, [controller], NOW)
    first, second = sorted(pods(store))
    store.delete(keys.pod("default", first))
    settle(store, [controller], NOW + 1)
    assert len(active_pods(store)) == 2 and first not in pods(store)
    pod = store.get(keys.pod("default", second))
    assert pod is not None
    pod["metadata"]["deletionTimestamp"] = "2023-11-14T22:14:00Z"
    store.put(keys.pod("default", second), pod)
    settle(store, [controller], NOW + 2)
    assert len(active_pods(store)) == 2 and len(pods(store)) == 3


def test_status_counts_ready_and_available_after_min_ready_seconds() -> None:
    store, key, _ = setup(3, minReadySeconds=10)
    controller = replica_set_controller()
    settle(store, [controller], NOW)
    schedule_all(store)
    kubelet(store, NOW, ready=2)
    settle(store, [controller], NOW + 1)
    status = store.get(key)["status"]  # type: ignore[index]
    assert (status["readyReplicas"], status["availableReplicas"]) == (2, 0)
    assert controller.reconcile(store, key, NOW + 4) == 6.0, "look again when minReadySeconds ran out"
    settle(store, [controller], NOW + 10)
    assert store.get(key)["status"]["availableReplicas"] == 2  # type: ignore[index]


def test_status_is_written_only_when_it_changed() -> None:
    store, key, _ = setup(2)
    controller = replica_set_controller()
    settle(store, [controller], NOW)
    before = store.revision()
    assert settle(store, [controller], NOW + 1) == 1
    assert store.revision() == before


def test_replication_controller_with_a_map_selector() -> None:
    store, key, rc = setup(2, kind="ReplicationController")
    store.put(keys.pod("default", "stray"), {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "other"}},
              "spec": {"containers": []}, "status": {"phase": "Running"}})  # fmt: skip
    settle(store, [replication_controller_controller()], NOW)
    owned = {n: p for n, p in pods(store).items() if obj.owned_by(p, rc["metadata"]["uid"])}
    assert len(owned) == 2 and "stray" not in owned
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController" for p in owned.values())
    assert all(p["metadata"]["ownerReferences"][0]["apiVersion"] == "v1" for p in owned.values())
    update_spec(store, key, replicas=0)
    settle(store, [replication_controller_controller()], NOW)
    assert list(pods(store)) == ["stray"]
    assert store.get(key)["status"]["observedGeneration"] == 2  # type: ignore[index]


def test_orphan_pods_matching_the_selector_are_adopted() -> None:
    store, key, rs = setup(2)
    store.put(keys.pod("default", "loose"), {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "loose", "namespace": "default", "labels": LABELS},
              "spec": {"containers": []}, "status": {"phase": "Pending"}})  # fmt: skip
    settle(store, [replica_set_controller()], NOW)
    assert len(pods(store)) == 2
    assert obj.owned_by(pods(store)["loose"], rs["metadata"]["uid"])


def test_no_pods_in_a_terminating_or_missing_namespace() -> None:
    store = MemoryDatastore()
    add_namespace(store, "gone", phase="Terminating")
    for namespace in ("gone", "nowhere"):
        rs = workload("ReplicaSet", "web", 2, LABELS, namespace=namespace)
        store.put(key_of(rs), rs)
    settle(store, [replica_set_controller()], NOW)
    assert store.list(keys.PODS) == {}
    assert store.get(keys.namespaced(keys.REPLICASETS, "gone", "web"))["status"]["replicas"] == 0  # type: ignore[index]


def test_the_namespace_is_rechecked_in_the_create_transaction() -> None:
    """The namespace turns Terminating between the controller's read of it and its commit:
    the commit fails (it expected the namespace's revision) and nothing is created."""
    store, key, _ = setup(2)

    real_get = store.get_versioned

    def get_versioned(k: str) -> Versioned | None:
        found = real_get(k)
        if k == keys.k8s_namespace("default"):
            add_namespace(store, "default", phase="Terminating")
        return found

    store.get_versioned = get_versioned  # type: ignore[method-assign]
    replica_set_controller().reconcile(store, key, NOW)
    assert store.list(keys.PODS) == {}


def test_a_deleted_owner_leaves_its_pods_to_the_garbage_collector() -> None:
    store, key, _ = setup(2)
    controller = replica_set_controller()
    settle(store, [controller], NOW)
    store.delete(key)
    assert controller.reconcile(store, key, NOW) is None
    assert len(pods(store)) == 2


# --- racing ------------------------------------------------------------------------------


class Interleaving:
    """A store whose pod listing lets another reconciler run to the end before returning
    the (now stale) listing: the worst interleaving of two controllers, every time."""

    def __init__(self, inner: MemoryDatastore, other: Any, key: str) -> None:
        self._inner, self._other, self._key = inner, other, key
        self.interleaved = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def list_versioned(self, prefix: str) -> tuple[dict[str, Versioned], int]:
        result = self._inner.list_versioned(prefix)
        if prefix.startswith(keys.PODS) and self.interleaved < 3:
            self.interleaved += 1
            self._other.reconcile(self._inner, self._key, NOW)
        return result


def most_active(store: MemoryDatastore) -> list[int]:
    """The most active pods seen after any write (the memory store's watches are synchronous)."""
    worst = [0]

    def watch(_event: Any) -> None:
        worst[0] = max(worst[0], len(active_pods(store)))

    store.watch_prefix(keys.PODS, watch)
    return worst


def test_a_reconciler_that_lost_the_race_does_not_create_from_a_stale_count() -> None:
    store, key, _ = setup(3)
    worst = most_active(store)
    racing = Interleaving(store, replica_set_controller(random.Random(7)), key)
    replica_set_controller(random.Random(8)).reconcile(racing, key, NOW)  # type: ignore[arg-type]
    assert racing.interleaved >= 1
    assert worst[0] == 3 and len(active_pods(store)) == 3


def test_a_reconciler_that_lost_the_race_does_not_delete_from_a_stale_count() -> None:
    """Four Ready pods, scaled to three. While A holds its listing, the pod A would keep
    turns not-ready and B deletes that one: A's choice (from the stale listing) is another
    pod, untouched, so only the owner's revision tells A that its count is stale."""
    store, key, _ = setup(4)
    settle(store, [replica_set_controller()], NOW)
    schedule_all(store)
    for i, name in enumerate(sorted(pods(store))):  # Ready at different times
        kubelet(store, NOW + i, ready=1)
    settle(store, [replica_set_controller()], NOW + 5)
    update_spec(store, key, replicas=3)
    newest = max(pods(store), key=lambda n: obj.ready_since(pods(store)[n]) or 0)
    keep = min(pods(store), key=lambda n: obj.ready_since(pods(store)[n]) or 0)
    fewest = [4]
    store.watch_prefix(keys.PODS, lambda _e: fewest.__setitem__(0, min(fewest[0], len(active_pods(store)))))

    class Other:
        def reconcile(self, inner: MemoryDatastore, k: str, now: float) -> None:
            pod = inner.get(keys.pod("default", keep))
            assert pod is not None
            pod["status"]["conditions"][0]["status"] = "False"
            inner.put(keys.pod("default", keep), pod)
            replica_set_controller().reconcile(inner, k, now)

    racing = Interleaving(store, Other(), key)
    racing.interleaved = 2  # once
    replica_set_controller().reconcile(racing, key, NOW + 6)  # type: ignore[arg-type]
    assert keep not in active_pods(store) and newest in active_pods(store)
    assert fewest[0] == 3 and len(active_pods(store)) == 3


def test_two_controllers_in_threads_never_exceed_replicas() -> None:
    store, key, _ = setup(5)
    worst = most_active(store)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: between read and commit
    stop = threading.Event()

    def churn() -> None:  # someone keeps deleting pods, so both keep creating
        rng = random.Random(3)
        while not stop.is_set():
            names = sorted(pods(store))
            if names:
                store.delete(keys.pod("default", rng.choice(names)))

    def run(seed: int) -> None:
        controller = replica_set_controller(random.Random(seed))
        for _ in range(150):
            controller.reconcile(store, key, NOW)

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    churner = threading.Thread(target=churn)
    for t in (*threads, churner):
        t.start()
    for t in threads:
        t.join()
    stop.set()
    churner.join()
    sys.setswitchinterval(switch)
    settle(store, [replica_set_controller()], NOW)
    assert worst[0] <= 5
    assert len(active_pods(store)) == 5


def test_an_empty_selector_adopts_nothing() -> None:
    store, key, _ = setup(1, selector={})
    store.put(keys.pod("default", "loose"), {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "loose", "namespace": "default", "labels": {"x": "y"}},
              "spec": {"containers": []}, "status": {"phase": "Pending"}})  # fmt: skip
    settle(store, [replica_set_controller()], NOW)
    assert obj.controller_of(pods(store)["loose"]) is None
    assert len(pods(store)) == 2
