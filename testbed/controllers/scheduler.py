"""The scheduler: binds each pod without ``spec.nodeName`` (and not being deleted) to a
Ready Kubernetes Node.

Candidates: Nodes (``/registry/minions/<host>``) whose condition Ready is "True", not
cordoned (``spec.unschedulable``), carrying every label of the pod's
``spec.nodeSelector``. Among them the one with the fewest pods of the same controller
owner, then the fewest pods, then the first in node order (as ``testbed up`` spread
pods): pods counted are those bound to the node that are neither finished nor being
deleted. The binding is one conditional write of ``spec.nodeName`` and condition
PodScheduled True. Without a candidate the pod gets PodScheduled False, reason
Unschedulable and the scheduler's message (``0/3 nodes are available: ...``), and is
tried again after ``retry`` seconds or when a Node changes.

One work-queue key, ``pending``: every pending pod is bound in one pass over one listing
(oldest first, as the scheduling queue orders equal priorities), counts updated as it
goes, so that a ReplicaSet's burst of pods spreads without re-listing per pod.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testbed.datastore import keys
from testbed.datastore.records import timestamp
from testbed.datastore.base import Datastore, Value, Versioned, WatchEvent, put_if
from testbed.kube import events

log = logging.getLogger(__name__)

PENDING = "pending"
RETRY_SECONDS = 5.0
COMPONENT = "default-scheduler"  # the source of its events
RETRIES = 3


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ready: bool
    unschedulable: bool
    labels: Mapping[str, str]

    @classmethod
    def from_record(cls, name: str, value: Mapping[str, Any]) -> NodeInfo:
        conditions = (value.get("status") or {}).get("conditions") or []
        return cls(
            name=name,
            ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
            unschedulable=bool((value.get("spec") or {}).get("unschedulable")),
            labels=(value.get("metadata") or {}).get("labels") or {},
        )


def is_pending(pod: Mapping[str, Any]) -> bool:
    """Waiting for a node: no nodeName, no deletionTimestamp, not finished."""
    return (
        not (pod.get("spec") or {}).get("nodeName")
        and not (pod.get("metadata") or {}).get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    )


def _counts(pod: Mapping[str, Any]) -> bool:
    """A bound pod that takes part in spreading."""
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and (pod.get("status") or {}).get(
        "phase"
    ) not in ("Succeeded", "Failed")


def owner_of(pod: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The pod's controller owner: (namespace, uid), or (namespace, kind, name) when the
    reference carries no uid; None for a bare pod."""
    metadata = pod.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("controller"):
            namespace = str(metadata.get("namespace") or "default")
            if ref.get("uid"):
                return (namespace, str(ref["uid"]))
            return (namespace, str(ref.get("kind")), str(ref.get("name")))
    return None


@dataclass
class Load:
    """Pods per node, and per (owner, node)."""

    pods: dict[str, int]
    owned: dict[tuple[tuple[str, ...], str], int]

    @classmethod
    def of(cls, pods: Iterable[Mapping[str, Any]]) -> Load:
        load = cls({}, {})
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and _counts(pod):
                load.add(node, owner_of(pod))
        return load

    def add(self, node: str, owner: tuple[str, ...] | None) -> None:
        self.pods[node] = self.pods.get(node, 0) + 1
        if owner is not None:
            self.owned[(owner, node)] = self.owned.get((owner, node), 0) + 1


def choose_node(pod: Mapping[str, Any], nodes: Sequence[NodeInfo], load: Load) -> NodeInfo | str:
    """The node for ``pod``, or why there is none (the scheduler's message)."""
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    not_ready = [n for n in nodes if not n.ready]
    cordoned = [n for n in nodes if n.ready and n.unschedulable]
    fit = [n for n in nodes if n.ready and not n.unschedulable]
    candidates = [n for n in fit if all(n.labels.get(k) == v for k, v in selector.items())]
    if not candidates:
        reasons = []
        if not_ready:
            reasons.append(f"{len(not_ready)} node(s) were not ready")
        if cordoned:
            reasons.append(f"{len(cordoned)} node(s) were unschedulable")
        if len(fit) > len(candidates):
            reasons.append(f"{len(fit) - len(candidates)} node(s) didn't match Pod's node affinity/selector")
        detail = f": {', '.join(reasons)}." if reasons else "."
        return f"0/{len(nodes)} nodes are available{detail}"
    owner = owner_of(pod)
    order = {n.name: i for i, n in enumerate(nodes)}
    return min(
        candidates,
        key=lambda n: (load.owned.get((owner, n.name), 0) if owner else 0, load.pods.get(n.name, 0), order[n.name]),
    )


def _condition(status: str, now: float, reason: str = "", message: str = "") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "PodScheduled", "status": status, "lastProbeTime": None,
                            "lastTransitionTime": timestamp(now)}  # fmt: skip
    if reason:
        item["reason"] = reason
    if message:
        item["message"] = message
    return item


def _with_condition(pod: Value, condition: dict[str, Any]) -> Value:
    """``pod`` with its PodScheduled condition set (the transition time kept when the
    status does not change)."""
    status = pod.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    if old is not None and old.get("status") == condition["status"]:
        condition["lastTransitionTime"] = old.get("lastTransitionTime", condition["lastTransitionTime"])
    status["conditions"] = [*conditions, condition]
    status.setdefault("phase", "Pending")
    return pod


def bound(pod: Value, node: str, now: float) -> Value:
    pod.setdefault("spec", {})["nodeName"] = node
    return _with_condition(pod, _condition("True", now))


def unschedulable(pod: Value, message: str, now: float) -> Value:
    return _with_condition(pod, _condition("False", now, "Unschedulable", message))


class Scheduler:
    name = "scheduler"
    prefixes: Sequence[str] = (keys.PODS, keys.K8S_NODES)

    def __init__(self, retry: float = RETRY_SECONDS) -> None:
        self.retry = retry

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        if event.key.startswith(keys.K8S_NODES):
            return [PENDING]  # a node came, went or changed: pending pods may fit now
        if event.kind == "put" and event.value is not None and is_pending(event.value):
            return [PENDING]
        return []

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        return [PENDING]

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        if key != PENDING:
            return None
        listed, _ = store.list_versioned(keys.PODS)
        pending = sorted(
            ((k, v) for k, v in listed.items() if is_pending(v.value)),
            key=lambda kv: (str((kv[1].value.get("metadata") or {}).get("creationTimestamp") or ""), kv[0]),
        )
        if not pending:
            return None
        nodes = [NodeInfo.from_record(keys.name_of(k), v) for k, v in store.list(keys.K8S_NODES).items()]
        load = Load.of(v.value for v in listed.values())
        waiting = False
        for pod_key, item in pending:
            outcome = self._schedule(store, pod_key, item, nodes, load, now)
            waiting = waiting or outcome
        return self.retry if waiting else None

    def _schedule(
        self, store: Datastore, key: str, item: Versioned, nodes: Sequence[NodeInfo], load: Load, now: float
    ) -> bool:
        """Bind one pod (re-reading it after a lost race); True if it must wait."""
        current: Versioned | None = item
        for _ in range(RETRIES):
            if current is None or not is_pending(current.value):
                return False  # deleted or bound by someone else meanwhile
            choice = choose_node(current.value, nodes, load)
            name = key[len(keys.PODS) :]
            if isinstance(choice, NodeInfo):
                if put_if(store, key, bound(copy.deepcopy(current.value), choice.name, now), current.revision):
                    load.add(choice.name, owner_of(current.value))
                    log.info("bound pod %s to %s", name, choice.name)
                    events.emit(events.involved(current.value, "Pod", "v1"), "Scheduled",
                                f"Successfully assigned {name} to {choice.name}", component=COMPONENT)  # fmt: skip
                    return False
            else:
                updated = unschedulable(copy.deepcopy(current.value), choice, now)
                if updated == current.value:
                    return True  # already says so
                if put_if(store, key, updated, current.revision):
                    log.info("pod %s: %s", name, choice)
                    events.emit(events.involved(current.value, "Pod", "v1"), "FailedScheduling", choice, "Warning",
                                component=COMPONENT)  # fmt: skip
                    return True
            current = store.get_versioned(key)
        return True


def build(**options: Any) -> Scheduler:
    """The scheduler, for the manager. Option ``scheduler_retry`` (seconds between tries
    of an unschedulable pod); options meant for other controllers are ignored."""
    return Scheduler(float(options.get("scheduler_retry", RETRY_SECONDS)))
