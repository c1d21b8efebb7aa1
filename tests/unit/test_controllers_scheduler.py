"""The scheduler over the in-memory store: spreading by owner then load then node
order, only Ready and matching nodes, Unschedulable when none, retried when one comes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from testbed.controllers.base import settle
from testbed.controllers.scheduler import PENDING, Scheduler, build
from testbed.datastore import keys
from testbed.datastore.base import WatchEvent
from testbed.datastore.memory import MemoryDatastore

NOW = 1_700_000_000.0


def node(store: MemoryDatastore, name: str, ready: str = "True", labels: dict[str, str] | None = None) -> None:
    store.put(keys.k8s_node(name), {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady"}]},
    })  # fmt: skip


def pod(store: MemoryDatastore, name: str, owner: str | None = "web-rs", node_name: str | None = None,
        selector: dict[str, str] | None = None, created: int = 0, namespace: str = "demo") -> str:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                                "creationTimestamp": f"2023-11-14T22:13:{created:02d}Z"}
    if owner:
        metadata["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                        "uid": f"uid-{owner}", "controller": True, "blockOwnerDeletion": True}]
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "agnhost"}]}
    if node_name:
        spec["nodeName"] = node_name
    if selector:
        spec["nodeSelector"] = selector
    key = keys.pod(namespace, name)
    store.put(key, {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
                    "status": {"phase": "Pending"}})  # fmt: skip
    return key


def placement(store: MemoryDatastore) -> dict[str, str | None]:
    return {keys.name_of(k): v["spec"].get("nodeName") for k, v in store.list(keys.PODS).items()}


def scheduled(store: MemoryDatastore, name: str) -> dict[str, Any]:
    value = store.get(keys.pod("demo", name))
    assert value is not None
    return next(c for c in value["status"]["conditions"] if c["type"] == "PodScheduled")


def test_six_pods_of_one_owner_spread_two_two_two() -> None:
    store = MemoryDatastore()
    for name in ("host1", "host2", "host3"):
        node(store, name)
    for i in range(6):
        pod(store, f"web-{i}", created=i)
    settle(store, [Scheduler()], NOW)
    assert Counter(placement(store).values()) == {"host1": 2, "host2": 2, "host3": 2}
    assert placement(store)["web-0"] == "host1" and placement(store)["web-1"] == "host2"  # node order
    assert scheduled(store, "web-0") == {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                         "lastTransitionTime": "2023-11-14T22:13:20Z"}  # fmt: skip


def test_owner_first_then_total_load() -> None:
    store = MemoryDatastore()
    for name in ("host1", "host2", "host3"):
        node(store, name)
    # host1 runs three others' pods, host2 one of web's, host3 two others'.
    for i, host in enumerate(["host1", "host1", "host1", "host3", "host3"]):
        pod(store, f"other-{i}", owner=None if i % 2 else "db-rs", node_name=host)
    pod(store, "w0", node_name="host2")
    pod(store, "new", created=5)
    settle(store, [Scheduler()], NOW)
    # The least loaded node (host2) already runs one of web's: the new one goes to the
    # less loaded of the two without (host3).
    assert placement(store)["new"] == "host3"
    # A bare pod has no owner to spread from: the least loaded (host2: 1 pod; host3: 3).
    pod(store, "bare", owner=None, created=6)
    settle(store, [Scheduler()], NOW)
    assert placement(store)["bare"] == "host2"


def test_not_ready_nodes_are_skipped_and_node_selector_honoured() -> None:
    store = MemoryDatastore()
    node(store, "host1", ready="Unknown")
    node(store, "host2", labels={"disk": "ssd"})
    node(store, "host3")
    pod(store, "any-0", created=0)
    pod(store, "any-1", created=1)
    pod(store, "ssd", owner=None, selector={"disk": "ssd"}, created=2)
    settle(store, [Scheduler()], NOW)
    assert placement(store) == {"any-0": "host2", "any-1": "host3", "ssd": "host2"}


def test_unschedulable_until_a_node_is_ready() -> None:
    store = MemoryDatastore()
    node(store, "host1", ready="False")
    node(store, "host2", labels={"disk": "hdd"})
    pod(store, "p", owner=None, selector={"disk": "ssd"})
    scheduler = Scheduler(retry=3.0)
    assert scheduler.reconcile(store, PENDING, NOW) == 3.0
    assert placement(store) == {"p": None}
    assert scheduled(store, "p") == {
        "type": "PodScheduled", "status": "False", "lastProbeTime": None, "lastTransitionTime": "2023-11-14T22:13:20Z",
        "reason": "Unschedulable",
        "message": "0/2 nodes are available: 1 node(s) were not ready, 1 node(s) didn't match Pod's node affinity/selector.",
    }  # fmt: skip
    # Tried again: nothing new to say, nothing written.
    revision = store.revision()
    assert scheduler.reconcile(store, PENDING, NOW + 3) == 3.0
    assert store.revision() == revision
    # A node that fits: the Node's event makes the pod pending work again.
    node(store, "host3", labels={"disk": "ssd"})
    settle(store, [scheduler], NOW + 4)
    assert placement(store) == {"p": "host3"}
    assert scheduled(store, "p")["status"] == "True"
    assert [c["type"] for c in store.get(keys.pod("demo", "p"))["status"]["conditions"]] == ["PodScheduled"]  # type: ignore[index]


def test_no_nodes_at_all_and_pods_being_deleted_are_left() -> None:
    store = MemoryDatastore()
    key = pod(store, "p", owner=None)
    doomed = store.get(key)
    assert doomed is not None
    doomed["metadata"]["deletionTimestamp"] = "2023-11-14T22:13:20Z"
    store.put(keys.pod("demo", "q"), {**doomed, "metadata": {**doomed["metadata"], "name": "q"}})
    settle(store, [Scheduler()], NOW)
    assert scheduled(store, "p")["message"] == "0/0 nodes are available."
    assert "conditions" not in store.get(keys.pod("demo", "q"))["status"]  # type: ignore[index]


def test_a_pod_bound_meanwhile_by_someone_else_is_not_rebound() -> None:
    store = MemoryDatastore()
    node(store, "host1")
    node(store, "host2")
    key = pod(store, "p", owner=None)
    real_commit = store.commit

    def racing_commit(puts: Any, deletes: Any = (), expect: Any = None) -> bool:
        if key in puts:
            value = store.get(key)
            assert value is not None and "nodeName" not in value["spec"]
            value["spec"]["nodeName"] = "host2"  # another scheduler was quicker
            store.put(key, value)
        return real_commit(puts, deletes, expect)

    store.commit = racing_commit  # type: ignore[method-assign]
    assert Scheduler().reconcile(store, PENDING, NOW) is None
    assert placement(store) == {"p": "host2"}


def test_keys_for_only_pending_pods_and_nodes() -> None:
    scheduler = build(pod_eviction_timeout=3)
    pending = {"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending"}}
    bound = {"metadata": {"name": "p"}, "spec": {"nodeName": "host1"}, "status": {}}
    assert list(scheduler.keys_for(WatchEvent("put", keys.pod("demo", "p"), pending, 2))) == [PENDING]
    assert list(scheduler.keys_for(WatchEvent("put", keys.pod("demo", "p"), bound, 2))) == []
    assert list(scheduler.keys_for(WatchEvent("delete", keys.pod("demo", "p"), None, 2))) == []
    assert list(scheduler.keys_for(WatchEvent("put", keys.k8s_node("host1"), {}, 2))) == [PENDING]
