"""Waiting on status: the predicates kubectl's rollout status and wait use, and the poll."""

from __future__ import annotations

import threading

import pytest

from testbed.datastore import MemoryDatastore
from testbed.kube import waits


def _deployment(want: int, generation: int, **status: int) -> dict:
    return {"kind": "Deployment", "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": want}, "status": status}  # fmt: skip


def test_a_rollout_is_complete_only_when_the_new_replicas_are_all_available() -> None:
    assert waits.deployment_complete(_deployment(2, 1, observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=2))
    assert not waits.deployment_complete(_deployment(2, 2, observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=2))
    assert not waits.deployment_complete(_deployment(2, 1, observedGeneration=1, replicas=3, updatedReplicas=2, availableReplicas=2))
    assert not waits.deployment_complete(_deployment(2, 1, observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=1))


def test_pods_are_ready_by_their_condition() -> None:
    ready = {"kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    down = {"kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}
    assert waits.is_ready(ready) and not waits.is_ready(down)
    assert waits.is_ready({"kind": "Pod", "status": {"phase": "Succeeded"}})
    assert waits.is_ready({"kind": "Service"})  # kinds without a notion of ready


def test_wait_returns_when_the_status_arrives_and_names_what_is_late() -> None:
    store = MemoryDatastore()
    store.put("/registry/pods/a/p", {"kind": "Pod", "status": {"phase": "Pending"}})
    timer = threading.Timer(0.1, lambda: store.put(
        "/registry/pods/a/p", {"kind": "Pod", "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
    timer.start()
    assert waits.wait_ready(store, ["/registry/pods/a/p"], timeout=5) >= 0.05
    with pytest.raises(TimeoutError, match="not deleted within 0.1 s: pods/a/p"):
        waits.wait_gone(store, ["/registry/pods/a/p"], timeout=0.1)



def test_waiting_for_something_deleted_meanwhile_ends_at_once() -> None:
    store = MemoryDatastore()
    store.put("/registry/deployments/a/web", {"kind": "Deployment", "spec": {"replicas": 1}, "status": {}})
    threading.Timer(0.1, lambda: store.delete("/registry/deployments/a/web")).start()
    with pytest.raises(waits.Deleted, match="deleted while waiting for it to be ready: deployments/a/web"):
        waits.wait_ready(store, ["/registry/deployments/a/web"], timeout=10)
