"""The DaemonSet controller over the in-memory store."""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from typing import Any

from testbed.controllers import objects as obj
from testbed.controllers.base import settle
from testbed.controllers.daemonsets import HASH_LABEL, DaemonSetController
from testbed.datastore import keys
from testbed.datastore.memory import MemoryDatastore
from testbed.kube.workloads import template_hash
from tests.unit.controller_fixtures import (
    NOW,
    active_pods,
    add_namespace,
    add_node,
    key_of,
    kubelet,
    pods,
    template,
    update_spec,
    workload,
)

LABELS = {"app": "agent"}


def setup(hosts: dict[str, bool], namespace: str = "default", **spec: Any) -> tuple[MemoryDatastore, str]:
    store = MemoryDatastore()
    add_namespace(store, namespace)
    for host, ready in hosts.items():
        add_node(store, host, ready)
    ds = workload("DaemonSet", "agent", 0, LABELS, namespace=namespace, **spec)
    del ds["spec"]["replicas"]
    store.put(key_of(ds), ds)
    return store, key_of(ds)


def nodes_of(store: MemoryDatastore) -> Counter[str]:
    return Counter(p["spec"]["nodeName"] for p in active_pods(store).values())


def status(store: MemoryDatastore, key: str) -> dict[str, int]:
    value = store.get(key)
    assert value is not None
    return value["status"]


def test_one_bound_pod_per_ready_node() -> None:
    store, key = setup({"h1": True, "h2": True, "h3": False})
    settle(store, [DaemonSetController(random.Random(1))], NOW)
    assert nodes_of(store) == {"h1": 1, "h2": 1}
    ds = store.get(key)
    assert ds is not None
    for pod in pods(store).values():
        assert pod["metadata"]["labels"] == {**LABELS, HASH_LABEL: template_hash(ds["spec"]["template"])}
        assert obj.owned_by(pod, ds["metadata"]["uid"])
        assert pod["status"] == {"phase": "Pending"}
    assert status(store, key)["desiredNumberScheduled"] == 2
    assert status(store, key)["currentNumberScheduled"] == 2
    kubelet(store, NOW)
    settle(store, [DaemonSetController()], NOW)
    assert (status(store, key)["numberReady"], status(store, key)["numberAvailable"]) == (2, 2)
    assert status(store, key)["updatedNumberScheduled"] == 2 and status(store, key)["numberUnavailable"] == 0


def test_nodes_coming_going_and_turning_not_ready() -> None:
    store, key = setup({"h1": True, "h2": True})
    controller = DaemonSetController()
    settle(store, [controller], NOW)
    add_node(store, "h2", ready=False)  # NotReady: keeps its pod, gets no new one
    add_node(store, "h3", ready=True)  # a new node: gets one
    settle(store, [controller], NOW + 1)
    assert nodes_of(store) == {"h1": 1, "h2": 1, "h3": 1}
    assert status(store, key)["desiredNumberScheduled"] == 2
    assert status(store, key)["numberMisscheduled"] == 0
    on_h2 = next(n for n, p in pods(store).items() if p["spec"]["nodeName"] == "h2")
    store.delete(keys.pod("default", on_h2))  # evicted by the node lifecycle controller
    settle(store, [controller], NOW + 2)
    assert nodes_of(store) == {"h1": 1, "h3": 1}, "no new pod on a NotReady node"
    store.delete(keys.k8s_node("h3"))
    settle(store, [controller], NOW + 3)
    assert nodes_of(store) == {"h1": 1} and len(pods(store)) == 1, "a gone node's pod is removed outright"
    add_node(store, "h2", ready=True)
    settle(store, [controller], NOW + 4)
    assert nodes_of(store) == {"h1": 1, "h2": 1}


def test_node_selector() -> None:
    store, key = setup({"h1": True, "h2": True}, template={**template(LABELS), "spec": {
        "containers": [{"name": "main", "image": "nginx:1.25"}], "nodeSelector": {"role": "edge"}}})  # fmt: skip
    add_node(store, "h2", labels={"role": "edge"})
    settle(store, [DaemonSetController()], NOW)
    assert nodes_of(store) == {"h2": 1}
    add_node(store, "h2", labels={"role": "core"})  # relabelled: its pod goes
    settle(store, [DaemonSetController()], NOW + 1)
    assert nodes_of(store) == {}


def test_failed_and_duplicate_pods_are_replaced() -> None:
    store, key = setup({"h1": True})
    controller = DaemonSetController()
    settle(store, [controller], NOW)
    (name, pod), = pods(store).items()
    twin = {**pod, "metadata": {**pod["metadata"], "name": name + "x", "creationTimestamp": "2030-01-01T00:00:00Z"}}
    store.put(keys.pod("default", name + "x"), twin)
    settle(store, [controller], NOW + 1)
    assert set(active_pods(store)) == {name}, "the newer twin goes"
    kubelet(store, NOW + 1)
    failed = store.get(keys.pod("default", name))
    assert failed is not None
    failed["status"]["phase"] = "Failed"
    store.put(keys.pod("default", name), failed)
    settle(store, [controller], NOW + 2)
    assert nodes_of(store) == {"h1": 1} and name not in active_pods(store)


def test_template_change_rolls_one_node_at_a_time() -> None:
    hosts = {f"h{i}": True for i in range(1, 5)}
    store, key = setup(hosts)
    controller = DaemonSetController()
    settle(store, [controller], NOW)
    kubelet(store, NOW)
    settle(store, [controller], NOW)
    worst = [0]

    def check(_event: Any) -> None:
        ready_on = {p["spec"]["nodeName"] for p in active_pods(store).values() if obj.is_ready_pod(p)}
        worst[0] = max(worst[0], len(hosts) - len(ready_on))

    store.watch_prefix(keys.REGISTRY, check)
    update_spec(store, key, template=template(LABELS, "nginx:1.26"))
    new_hash = template_hash(template(LABELS, "nginx:1.26"))
    for step in range(20):
        settle(store, [controller], NOW + step)
        if status(store, key)["updatedNumberScheduled"] == 4 and status(store, key)["numberAvailable"] == 4:
            break
        kubelet(store, NOW + step)
    assert worst[0] == 1
    assert {p["metadata"]["labels"][HASH_LABEL] for p in active_pods(store).values()} == {new_hash}
    assert nodes_of(store) == {h: 1 for h in hosts}
    assert status(store, key)["observedGeneration"] == 2


def test_on_delete_keeps_old_pods() -> None:
    store, key = setup({"h1": True}, updateStrategy={"type": "OnDelete"})
    settle(store, [DaemonSetController()], NOW)
    update_spec(store, key, template=template(LABELS, "nginx:1.26"))
    settle(store, [DaemonSetController()], NOW + 1)
    assert len(active_pods(store)) == 1 and status(store, key)["updatedNumberScheduled"] == 0


def test_no_pods_in_a_terminating_namespace() -> None:
    store, key = setup({"h1": True}, namespace="gone")
    add_namespace(store, "gone", phase="Terminating")
    settle(store, [DaemonSetController()], NOW)
    assert store.list(keys.PODS) == {}


def test_two_controllers_never_put_two_pods_on_a_node() -> None:
    store, key = setup({f"h{i}": True for i in range(1, 6)})
    worst = [0]
    store.watch_prefix(keys.PODS, lambda _e: worst.__setitem__(0, max([worst[0], *nodes_of(store).values()])))
    stop = threading.Event()

    def churn() -> None:
        rng = random.Random(4)
        while not stop.is_set():
            names = sorted(pods(store))
            if names:
                store.delete(keys.pod("default", rng.choice(names)))

    def run(seed: int) -> None:
        controller = DaemonSetController(random.Random(seed))
        for _ in range(100):
            controller.reconcile(store, key, NOW)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    churner = threading.Thread(target=churn)
    for t in (*threads, churner):
        t.start()
    for t in threads:
        t.join()
    stop.set()
    churner.join()
    sys.setswitchinterval(switch)
    settle(store, [DaemonSetController()], NOW)
    assert worst[0] == 1
    assert nodes_of(store) == {f"h{i}": 1 for i in range(1, 6)}
