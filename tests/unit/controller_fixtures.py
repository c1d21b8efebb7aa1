"""Stored objects and stand-ins for the other writers (a scheduler, a kubelet) that the
controller tests share. The stand-ins write what the contract says those writers write,
with the same conditional writes, and nothing more."""

from __future__ import annotations

import uuid
from typing import Any

from testbed.controllers import objects as obj
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore, delete_if, put_if

NOW = 1_700_000_000.0


def add_namespace(store: Datastore, name: str = "default", phase: str = "Active") -> None:
    value: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": records.timestamp(NOW)},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": phase},
    }
    if phase == "Terminating":
        value["metadata"]["deletionTimestamp"] = records.timestamp(NOW)
    store.put(keys.k8s_namespace(name), value)


def template(labels: dict[str, str], image: str = "nginx:1.25", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {"containers": [{"name": "main", "image": image}], **spec},
    }


def workload(kind: str, name: str, replicas: int, labels: dict[str, str], namespace: str = "default", **spec: Any) -> dict[str, Any]:
    api = {"ReplicationController": "v1"}.get(kind, "apps/v1")
    selector: Any = dict(labels) if kind == "ReplicationController" else {"matchLabels": dict(labels)}
    body: dict[str, Any] = {"replicas": replicas, "selector": selector, "template": template(labels)}
    body.update(spec)
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "creationTimestamp": records.timestamp(NOW),
        },
        "spec": body,
    }


PREFIX = {"ReplicaSet": keys.REPLICASETS, "ReplicationController": keys.CONTROLLERS,
          "Deployment": keys.DEPLOYMENTS, "DaemonSet": keys.DAEMONSETS}  # fmt: skip


def key_of(value: dict[str, Any]) -> str:
    meta = value["metadata"]
    return keys.namespaced(PREFIX[value["kind"]], meta["namespace"], meta["name"])


def update_spec(store: Datastore, key: str, **changes: Any) -> None:
    """A client's spec change: conditional, generation bumped (the writer of spec does it)."""
    for _ in range(20):
        current = store.get_versioned(key)
        assert current is not None
        value = current.value
        value["spec"].update(changes)
        value["metadata"]["generation"] = obj.generation_of(value) + 1
        if put_if(store, key, value, current.revision):
            return
    raise AssertionError(f"could not update {key}")


def pods(store: Datastore, namespace: str = "default") -> dict[str, dict[str, Any]]:
    return {keys.name_of(k): v for k, v in store.list(keys.pods_in(namespace)).items()}


def active_pods(store: Datastore, namespace: str = "default") -> dict[str, dict[str, Any]]:
    return {n: p for n, p in pods(store, namespace).items() if obj.is_active_pod(p)}


def ready_pods(store: Datastore, namespace: str = "default") -> dict[str, dict[str, Any]]:
    return {n: p for n, p in active_pods(store, namespace).items() if obj.is_ready_pod(p)}


def schedule_all(store: Datastore, node: str = "h1") -> None:
    """The scheduler's binding: spec.nodeName on every pod without one."""
    for key, current in store.list_versioned(keys.PODS)[0].items():
        value = current.value
        if not value["spec"].get("nodeName") and not obj.is_terminating(value):
            value["spec"]["nodeName"] = node
            put_if(store, key, value, current.revision)


def kubelet(store: Datastore, now: float = NOW, ready: int | None = None) -> None:
    """A kubelet of every node: pods being deleted are removed; up to ``ready`` (all when
    None) bound, not-ready pods become Running and Ready."""
    left = ready
    for key, current in sorted(store.list_versioned(keys.PODS)[0].items()):
        value = current.value
        if obj.is_terminating(value):
            delete_if(store, key, current.revision)
        elif value["spec"].get("nodeName") and not obj.is_ready_pod(value) and (left is None or left > 0):
            value["status"] = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": records.timestamp(now)}],
            }
            if put_if(store, key, value, current.revision) and left is not None:
                left -= 1


def add_node(store: Datastore, host: str, ready: bool = True, labels: dict[str, str] | None = None) -> None:
    store.put(keys.k8s_node(host), {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": host, "uid": str(uuid.uuid4()), "labels": labels or {"kubernetes.io/hostname": host}},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]},
    })  # fmt: skip
