"""Namespace deletion over the in-memory store: everything in it removed (pods
gracefully, waited for while a simulated kubelet removes them), racing writers' objects
too, then the namespace and its Calico profiles."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.controllers.base import settle
from testbed.controllers.namespaces import NamespaceLifecycle, build, is_terminating, mark_terminating
from testbed.datastore import keys
from testbed.datastore.base import DatastoreError, WatchEvent
from testbed.datastore.memory import MemoryDatastore

NOW = 1_700_000_000.0
CONFIGMAP = keys.OTHER_OBJECTS + "configmaps/demo/settings"
ROLE = keys.OTHER_OBJECTS + "roles.rbac.authorization.k8s.io/demo/reader"
CLUSTER_ROLE = keys.OTHER_OBJECTS + "clusterroles.rbac.authorization.k8s.io/_cluster/demo"


def namespace(store: MemoryDatastore, name: str) -> None:
    store.put(keys.k8s_namespace(name), {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
    })  # fmt: skip
    store.put(keys.namespace_profile(name), {"kind": "Profile", "metadata": {"name": f"kns.{name}"}})
    store.put(keys.service_account_profile(name), {"kind": "Profile", "metadata": {"name": f"ksa.{name}.default"}})


def pod(store: MemoryDatastore, ns: str, name: str, node: str | None = "host1", grace: int | None = None) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "agnhost"}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    key = keys.pod(ns, name)
    store.put(key, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                    "spec": spec, "status": {"phase": "Running"}})  # fmt: skip
    return key


def objects_of_every_kind(store: MemoryDatastore, ns: str) -> list[str]:
    made = [
        keys.DEPLOYMENTS + f"{ns}/web", keys.REPLICASETS + f"{ns}/web-abc", keys.CONTROLLERS + f"{ns}/rc",
        keys.DAEMONSETS + f"{ns}/agent", keys.service(ns, "web"), keys.endpoints(ns, "web"),
        keys.endpoint_slice(ns, "web-x2k4b"), keys.NETWORK_POLICIES + f"{ns}/deny", keys.LEASES + f"{ns}/lock",
        CONFIGMAP.replace("/demo/", f"/{ns}/"), ROLE.replace("/demo/", f"/{ns}/"),
    ]  # fmt: skip
    for key in made:
        store.put(key, {"metadata": {"name": keys.name_of(key), "namespace": ns}})
    return made


def kubelet_removes_terminating_pods(store: MemoryDatastore) -> list[str]:
    """What each pod's kubelet does once its containers stopped: remove the key."""
    gone = [k for k, v in store.list(keys.PODS).items() if v["metadata"].get("deletionTimestamp")]
    for key in gone:
        store.delete(key)
    return gone


@pytest.fixture
def store() -> MemoryDatastore:
    s = MemoryDatastore()
    for name in ("demo", "demo2", "dem"):
        namespace(s, name)
    s.put(keys.service_account_profile("demo", "builder"), {"kind": "Profile"})
    objects_of_every_kind(s, "demo")
    objects_of_every_kind(s, "demo2")
    s.put(CLUSTER_ROLE, {"metadata": {"name": "demo"}})
    pod(s, "demo", "a")
    pod(s, "demo", "b", node="host2", grace=5)
    pod(s, "demo", "pending", node=None)
    pod(s, "demo2", "a")
    pod(s, "dem", "a")
    return s


def test_deletion_empties_the_namespace_waits_for_its_pods_then_removes_it(store: MemoryDatastore) -> None:
    def of_demo(key: str) -> bool:
        return "/demo/" in key or key in (keys.k8s_namespace("demo"), keys.namespace_profile("demo")) or (
            key.startswith(keys.PROFILES + "ksa.demo.")
        )

    before_others = {k: v for k, v in store.list("").items() if not of_demo(k)}
    assert CLUSTER_ROLE in before_others and keys.pod("demo2", "a") in before_others
    assert mark_terminating(store, "demo", NOW)
    ns = store.get(keys.k8s_namespace("demo"))
    assert ns is not None and ns["status"]["phase"] == "Terminating"
    assert ns["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z" and is_terminating(ns)
    settle(store, [NamespaceLifecycle()], NOW + 1)
    # Pods on a node: deleted gracefully (the kubelet's job to finish); the unscheduled one outright.
    pods = store.list(keys.pods_in("demo"))
    assert sorted(keys.name_of(k) for k in pods) == ["a", "b"]
    assert {keys.name_of(k): (v["metadata"]["deletionTimestamp"], v["metadata"]["deletionGracePeriodSeconds"])
            for k, v in pods.items()} == {"a": ("2023-11-14T22:13:21Z", 30), "b": ("2023-11-14T22:13:21Z", 5)}  # fmt: skip
    # Every other kind: gone already.
    left = [k for k in store.list("") if "/demo/" in k and not k.startswith(keys.PODS)]
    assert left == []
    # The namespace waits, saying why.
    ns = store.get(keys.k8s_namespace("demo"))
    assert ns is not None and ns["spec"]["finalizers"] == ["kubernetes"]
    assert ns["status"]["conditions"] == [{
        "type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
        "message": "Some resources are remaining: pods. has 2 resource instances",
        "lastTransitionTime": "2023-11-14T22:13:21Z",
    }]  # fmt: skip
    assert NamespaceLifecycle().reconcile(store, "demo", NOW + 2) == 1.0  # a short re-check
    # The kubelets finish: the namespace and its profiles go, nothing else does.
    assert sorted(kubelet_removes_terminating_pods(store)) == [keys.pod("demo", "a"), keys.pod("demo", "b")]
    settle(store, [NamespaceLifecycle()], NOW + 3)
    assert store.get(keys.k8s_namespace("demo")) is None
    assert store.get(keys.namespace_profile("demo")) is None
    assert store.list(keys.PROFILES + "ksa.demo.") == {}
    assert {k: v for k, v in store.list("").items()} == before_others


def test_objects_created_meanwhile_are_removed_before_the_namespace_goes(store: MemoryDatastore) -> None:
    mark_terminating(store, "demo", NOW)
    controller = NamespaceLifecycle()
    settle(store, [controller], NOW)
    # A racing writer (a controller that did not look, a client) adds a pod and a ConfigMap.
    late = pod(store, "demo", "late")
    store.put(CONFIGMAP, {"metadata": {"name": "settings"}})
    kubelet_removes_terminating_pods(store)  # a and b go
    settle(store, [controller], NOW + 1)
    assert store.get(keys.k8s_namespace("demo")) is not None
    assert store.get(CONFIGMAP) is None
    value = store.get(late)
    assert value is not None and value["metadata"]["deletionTimestamp"]
    kubelet_removes_terminating_pods(store)
    settle(store, [controller], NOW + 2)
    assert store.get(keys.k8s_namespace("demo")) is None


def test_a_pod_created_while_the_last_ones_go_holds_the_namespace() -> None:
    """The racer writes from inside the store's own notification of the kubelet's delete,
    i.e. between the controller's reads: it must still be found."""
    store = MemoryDatastore()
    namespace(store, "demo")
    pod(store, "demo", "a")
    mark_terminating(store, "demo", NOW)
    controller = NamespaceLifecycle()
    settle(store, [controller], NOW)
    raced: list[str] = []

    def racer(event: WatchEvent) -> None:
        if event.kind == "delete" and not raced:
            raced.append(pod(store, "demo", "racer", node=None))

    cancel = store.watch_prefix(keys.pods_in("demo"), racer)
    kubelet_removes_terminating_pods(store)
    cancel()
    settle(store, [controller], NOW + 1)
    assert store.get(raced[0]) is None  # unscheduled: deleted outright
    assert store.get(keys.k8s_namespace("demo")) is None


def test_another_finalizer_keeps_the_namespace_until_it_is_removed() -> None:
    store = MemoryDatastore()
    namespace(store, "demo")
    value = store.get(keys.k8s_namespace("demo"))
    assert value is not None
    value["metadata"]["finalizers"] = ["example.com/cleanup"]
    store.put(keys.k8s_namespace("demo"), value)
    mark_terminating(store, "demo", NOW)
    settle(store, [NamespaceLifecycle()], NOW)
    value = store.get(keys.k8s_namespace("demo"))
    assert value is not None and value["spec"]["finalizers"] == []  # ours removed, theirs kept
    value["metadata"]["finalizers"] = []
    store.put(keys.k8s_namespace("demo"), value)
    settle(store, [NamespaceLifecycle()], NOW)
    assert store.get(keys.k8s_namespace("demo")) is None


def test_mark_terminating() -> None:
    store = MemoryDatastore()
    assert not mark_terminating(store, "nope", NOW)
    namespace(store, "demo")
    read = store.get_versioned(keys.k8s_namespace("demo"))
    assert read is not None
    assert mark_terminating(store, "demo", NOW)
    revision = store.revision()
    assert mark_terminating(store, "demo", NOW + 60)  # again: nothing to change, nothing written
    assert store.revision() == revision
    value = store.get(keys.k8s_namespace("demo"))
    assert value is not None and value["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z"
    # A creator that checked the namespace before (the contract: expect its revision) loses.
    assert not store.commit({keys.pod("demo", "x"): {}}, expect={keys.k8s_namespace("demo"): read.revision})
    # A namespace that keeps changing under it: a one-line error, nothing half done.
    store.commit = lambda *a, **k: False  # type: ignore[method-assign]
    namespace(store, "busy")
    with pytest.raises(DatastoreError, match="namespace busy: changed by another writer 3 times"):
        mark_terminating(store, "busy", NOW)


def test_active_namespaces_are_not_touched(store: MemoryDatastore) -> None:
    revision = store.revision()
    settle(store, [build(unused=1)], NOW)
    assert store.revision() == revision
    assert list(NamespaceLifecycle().resync_keys(store)) == []


def test_keys_for_map_content_to_its_namespace() -> None:
    c = NamespaceLifecycle()

    def keys_of(key: str) -> list[str]:
        return list(c.keys_for(WatchEvent("put", key, {}, 2)))

    assert keys_of(keys.k8s_namespace("demo")) == ["demo"]
    assert keys_of(keys.pod("demo", "a")) == ["demo"]
    assert keys_of(keys.endpoint_slice("demo", "web-abcde")) == ["demo"]
    assert keys_of(CONFIGMAP) == ["demo"]
    assert keys_of(CLUSTER_ROLE) == []
    assert not any(p.startswith(keys.LEASES) for p in c.prefixes)  # the kubelets' heartbeats
