"""The DaemonSet controller: one pod on each Ready node the template's nodeSelector admits.

Pods are created bound (``spec.nodeName`` preset: the scheduler leaves them alone), named
``<daemonset>-<5 chars>``, labelled ``controller-revision-hash`` with the template's hash.
A node that is not Ready gets no new pod but keeps the one it has (the node lifecycle
controller evicts it if the node stays away); a node that is gone, or no longer
admitted, loses its pod. A changed template rolls node by node: with RollingUpdate
(the default, maxUnavailable 1) at most that many nodes are without an available pod;
with OnDelete the old pods stay until someone deletes them.

As the ReplicaSet controller does, every create/delete transaction rewrites the
DaemonSet (its status after the change) expecting the revision read before listing, so
two reconcilers never create two pods for one node.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from testbed.controllers import objects as obj
from testbed.controllers.rollout import scaled
from testbed.datastore import keys
from testbed.datastore.base import Datastore, Value, Versioned, WatchEvent
from testbed.kube.workloads import template_hash

LOG = logging.getLogger("testbed.controllers.daemonsets")
HASH_LABEL = "controller-revision-hash"


def node_ready(node: Mapping[str, Any]) -> bool:
    cond = obj.condition(node, "Ready")
    return cond is not None and cond.get("status") == "True"


def admits(ds: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Does the template's nodeSelector (a plain map) match the node's labels?"""
    selector = ((obj.spec(ds).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    labels = obj.labels_of(node)
    return all(labels.get(k) == v for k, v in selector.items())


def _pod_rank(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    return (obj.metadata(pod).get("creationTimestamp", ""), obj.metadata(pod).get("name", ""))


class DaemonSetController:
    name = "daemonset"
    prefixes = (keys.DAEMONSETS, keys.PODS, keys.K8S_NODES)

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._known: set[str] = set()  # DaemonSet keys: a node change makes every one dirty
        self._owners = obj.OwnerIndex("DaemonSet", keys.daemonset)
        self._lock = threading.Lock()

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        if event.key.startswith(keys.DAEMONSETS):
            with self._lock:
                (self._known.add if event.kind == "put" else self._known.discard)(event.key)
            return [event.key]
        if event.key.startswith(keys.K8S_NODES):
            with self._lock:
                return sorted(self._known)
        try:
            namespace, pod_name = keys.split_namespaced(event.key, keys.PODS)
        except keys.KeyFormatError:
            return []
        found = self._owners.owners(namespace, event.key, event.kind, event.value)
        if event.kind == "delete" and not found:
            guess = keys.daemonset(namespace, pod_name.rsplit("-", 1)[0])
            with self._lock:
                if guess in self._known:
                    found.add(guess)
        return sorted(found)

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        found = sorted(store.list_versioned(keys.DAEMONSETS)[0])
        with self._lock:
            self._known = set(found)
        return found

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        return obj.in_passes(lambda: self._pass(store, key, now))

    def _pass(self, store: Datastore, key: str, now: float) -> tuple[bool, float | None]:
        current = store.get_versioned(key)
        if current is None:
            return True, None
        ds = current.value
        uid = obj.uid_of(ds)
        try:
            namespace, name = keys.split_namespaced(key, keys.DAEMONSETS)
        except keys.KeyFormatError:
            return True, None
        if uid is None:
            obj.stamp_server_fields(store, key, current, now)
            return True, None
        nodes = {keys.name_of(k): v.value for k, v in store.list_versioned(keys.K8S_NODES)[0].items()}
        admitted = {h for h, n in nodes.items() if admits(ds, n)}
        wanted = sorted(h for h in admitted if node_ready(nodes[h]))
        pods, _ = store.list_versioned(keys.pods_in(namespace))
        owned = {k: v for k, v in pods.items() if obj.owned_by(v.value, uid) and not obj.is_terminating(v.value)}
        digest = template_hash(obj.spec(ds).get("template") or {})
        by_node: dict[str, list[str]] = {}
        for pod_key, pod in owned.items():
            by_node.setdefault(str(obj.spec(pod.value).get("nodeName", "")), []).append(pod_key)
        for pod_keys in by_node.values():
            pod_keys.sort(key=lambda k: _pod_rank(owned[k].value))

        doomed: dict[str, str] = {}  # pod key -> why
        for host, pod_keys in by_node.items():
            if host not in admitted:
                doomed.update((k, f"node {host or '(none)'} is gone or not selected") for k in pod_keys)
                continue
            doomed.update((k, f"node {host} has another") for k in pod_keys[1:])
            first = owned[pod_keys[0]].value
            if obj.status(first).get("phase") in ("Succeeded", "Failed"):
                doomed[pod_keys[0]] = f"it {obj.status(first).get('phase').lower()}"  # type: ignore[union-attr]
        doomed.update(self._outdated(ds, owned, by_node, wanted, doomed, digest, now))
        survivors = {k: v for k, v in owned.items() if k not in doomed}
        served = {str(obj.spec(v.value).get("nodeName")) for v in survivors.values() if obj.is_active_pod(v.value)}
        missing = [h for h in wanted if h not in served] if not obj.is_terminating(ds) else []

        created: dict[str, Value] = {}
        expect: dict[str, int] = {key: current.revision}
        if missing:
            ns = store.get_versioned(keys.k8s_namespace(namespace))
            if obj.namespace_accepts(ns):
                assert ns is not None
                expect[keys.k8s_namespace(namespace)] = ns.revision
                ref = obj.owner_reference(ds, "DaemonSet", "apps/v1")
                taken = {keys.name_of(k) for k in pods}
                for host in missing[: obj.BATCH]:
                    pod_name = obj.generated_name(name, taken, self._rng)
                    taken.add(pod_name)
                    created[keys.pod(namespace, pod_name)] = obj.new_pod(
                        ds, ref, pod_name, now, extra_labels={HASH_LABEL: digest}, node_name=host
                    )
        after = [*(v.value for v in survivors.values()), *created.values()]
        new_status, wait = daemon_status(ds, wanted, admitted, after, digest, now)
        if not doomed and not created:
            if obj.status(ds) != new_status and not store.commit({key: obj.with_status(ds, new_status)}, expect=expect):
                return False, None
            return True, wait
        puts: dict[str, Value] = {**created, key: obj.with_status(ds, new_status)}
        deletes: list[str] = []
        for pod_key in list(doomed)[: obj.BATCH]:
            pod = owned[pod_key].value
            gone = str(obj.spec(pod).get("nodeName", "")) not in nodes  # no kubelet to finish a graceful delete
            marked = None if gone else obj.pod_deletion(pod, now)
            if marked is None:
                deletes.append(pod_key)
            else:
                puts[pod_key] = marked
            expect[pod_key] = owned[pod_key].revision
        expect.update((k, 0) for k in created)
        if store.commit(puts, deletes, expect=expect):
            where = f"daemonset {namespace}/{name}"
            for pod_key in created:
                LOG.info("created pod %s/%s on node %s for %s", namespace, keys.name_of(pod_key), created[pod_key]["spec"]["nodeName"], where)
            for pod_key in [*deletes, *(k for k in puts if k in doomed)]:
                LOG.info("deleted pod %s/%s of %s: %s", namespace, keys.name_of(pod_key), where, doomed[pod_key])
        return False, None

    def _outdated(
        self, ds: Mapping[str, Any], owned: Mapping[str, Versioned], by_node: Mapping[str, list[str]],
        wanted: list[str], doomed: Mapping[str, str], digest: str, now: float,
    ) -> dict[str, str]:  # fmt: skip
        """Pods of an older template to delete now: with RollingUpdate, as many as keep the
        nodes without an available pod within maxUnavailable (not-ready ones first)."""
        strategy = obj.spec(ds).get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            return {}
        rolling = strategy.get("rollingUpdate") or {}
        budget = scaled(rolling.get("maxUnavailable"), len(wanted), False, "1") if "maxUnavailable" in rolling else 1
        budget = max(budget, 1)
        min_ready = obj.int_field(obj.spec(ds), "minReadySeconds", 0)
        unavailable = 0
        stale_unavailable: list[str] = []  # replacing these makes nothing less available
        stale_available: list[str] = []
        for host in wanted:
            pod_keys = [k for k in by_node.get(host, []) if k not in doomed]
            pod = owned[pod_keys[0]].value if pod_keys else None
            available = pod is not None and obj.available_in(pod, min_ready, now) == 0.0
            unavailable += not available
            if pod is not None and obj.labels_of(pod).get(HASH_LABEL) != digest:
                (stale_available if available else stale_unavailable).append(pod_keys[0])
        chosen = stale_unavailable + stale_available[: max(budget - unavailable, 0)]
        return {k: "its template is outdated" for k in chosen}


def build(**options: Any) -> DaemonSetController:
    """For the manager. Option ``rng`` (a random.Random, for pod names); others ignored."""
    rng = options.get("rng")
    return DaemonSetController(rng if isinstance(rng, random.Random) else None)


def daemon_status(
    ds: Mapping[str, Any], wanted: list[str], admitted: set[str], pods: Iterable[Mapping[str, Any]], digest: str,
    now: float,
) -> tuple[dict[str, int], float | None]:
    """DaemonSet status; misscheduled: pods on nodes gone or not selected (a pod on a
    NotReady node it may run on is neither desired nor misscheduled)."""
    min_ready = obj.int_field(obj.spec(ds), "minReadySeconds", 0)
    on: dict[str, Mapping[str, Any]] = {}
    misscheduled = set()
    for pod in pods:
        if not obj.is_active_pod(pod):
            continue
        host = str(obj.spec(pod).get("nodeName", ""))
        if host in wanted:
            on.setdefault(host, pod)
        elif host not in admitted:
            misscheduled.add(host)
    ready = available = updated = 0
    wait: float | None = None
    for pod in on.values():
        updated += obj.labels_of(pod).get(HASH_LABEL) == digest
        if obj.is_ready_pod(pod):
            ready += 1
            left = obj.available_in(pod, min_ready, now)
            if left == 0.0:
                available += 1
            elif left is not None:
                wait = left if wait is None else min(wait, left)
    return {
        "desiredNumberScheduled": len(wanted),
        "currentNumberScheduled": len(on),
        "numberMisscheduled": len(misscheduled),
        "numberReady": ready,
        "numberAvailable": available,
        "numberUnavailable": len(wanted) - available,
        "updatedNumberScheduled": updated,
        "observedGeneration": obj.generation_of(ds),
    }, wait
