"""ReplicaSet and ReplicationController controllers: as many active pods as ``replicas``.

One key (the owner's store key) at a time: list the namespace's pods, count the active
ones the owner controls (by uid), create the missing ones (objects only: Pending, no
nodeName; the scheduler binds them) or delete the extra ones (unscheduled and not-ready
first), adopt matching orphans, and write the status when it changed.

Two reconcilers of one owner (two controller managers for a moment, a resync racing a
watch) must never both create from one count. Every create or delete transaction
therefore also rewrites the owner (its status, as it will be after the change) expecting
the owner's revision read before the pods were listed: the first to commit moves the
revision, the other's transaction fails, and it re-reads and counts again. Creations
also expect the namespace key's revision (it exists and is not Terminating, still).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from testbed.controllers import objects as obj
from testbed.datastore import keys
from testbed.datastore.base import Datastore, Value, Versioned, WatchEvent
from testbed.kube import events

LOG = logging.getLogger("testbed.controllers.replicasets")


@dataclass(frozen=True)
class OwnerKind:
    kind: str  # "ReplicaSet"
    api_version: str
    prefix: str  # keys.REPLICASETS
    resource: str  # for logs: "replicaset"
    selects: Callable[[Mapping[str, Any], Mapping[str, str]], bool]  # (owner, pod labels)


def _set_selects(owner: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return obj.adopts(obj.spec(owner).get("selector"), labels)


def _map_selects(owner: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A ReplicationController's selector is a plain map (default: the template labels)."""
    selector = obj.spec(owner).get("selector")
    if not isinstance(selector, dict) or not selector:
        selector = ((obj.spec(owner).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


REPLICA_SET = OwnerKind("ReplicaSet", "apps/v1", keys.REPLICASETS, "replicaset", _set_selects)
REPLICATION_CONTROLLER = OwnerKind("ReplicationController", "v1", keys.CONTROLLERS, "replicationcontroller", _map_selects)


def replica_status(
    owner: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], now: float
) -> tuple[dict[str, int], float | None]:
    """The owner's status from the active pods it controls, and the seconds until a Ready
    pod becomes available (minReadySeconds), if one is waiting."""
    template_labels = ((obj.spec(owner).get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = obj.int_field(obj.spec(owner), "minReadySeconds", 0)
    counts = {"replicas": 0, "fullyLabeledReplicas": 0, "readyReplicas": 0, "availableReplicas": 0}
    wait: float | None = None
    for pod in pods:
        counts["replicas"] += 1
        labels = obj.labels_of(pod)
        if all(labels.get(k) == v for k, v in template_labels.items()):
            counts["fullyLabeledReplicas"] += 1
        if obj.is_ready_pod(pod):
            counts["readyReplicas"] += 1
            left = obj.available_in(pod, min_ready, now)
            if left == 0.0:
                counts["availableReplicas"] += 1
            elif left is not None:
                wait = left if wait is None else min(wait, left)
    return {**counts, "observedGeneration": obj.generation_of(owner)}, wait


class ReplicaController:
    """The controller of one owner kind (ReplicaSet or ReplicationController)."""

    def __init__(self, kind: OwnerKind = REPLICA_SET, rng: random.Random | None = None) -> None:
        self.kind = kind
        self.name = kind.resource
        # the source of its events, as kube-controller-manager names them
        self.component = {"replicaset": "replicaset-controller"}.get(kind.resource, "replication-controller")
        self.prefixes = (kind.prefix, keys.PODS)
        self._rng = rng or random.Random()
        self._owners = obj.OwnerIndex(self.kind.kind, lambda ns, name: keys.namespaced(self.kind.prefix, ns, name))

    # --- what is dirty ------------------------------------------------------------------

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        if event.key.startswith(self.kind.prefix):
            return [event.key]
        if not event.key.startswith(keys.PODS):
            return []
        try:
            namespace, pod_name = keys.split_namespaced(event.key, keys.PODS)
        except keys.KeyFormatError:
            return []
        found = self._owners.owners(namespace, event.key, event.kind, event.value)
        if event.kind == "delete" and not found:  # not seen since we started: `<owner>-<5 chars>`
            found.add(keys.namespaced(self.kind.prefix, namespace, pod_name.rsplit("-", 1)[0]))
        return sorted(found)

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        return sorted(store.list_versioned(self.kind.prefix)[0])

    # --- reconcile ---------------------------------------------------------------------------

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        return obj.in_passes(lambda: self._pass(store, key, now))

    def _pass(self, store: Datastore, key: str, now: float) -> tuple[bool, float | None]:
        """One read-decide-write; (True, requeue) when nothing is left to do."""
        current = store.get_versioned(key)
        if current is None:
            return True, None  # its pods are the garbage collector's
        owner = current.value
        uid = obj.uid_of(owner)
        try:
            namespace, owner_name = keys.split_namespaced(key, self.kind.prefix)
        except keys.KeyFormatError:
            return True, None  # not an object of ours (a stray key under the prefix)
        if uid is None:
            LOG.info("%s %s/%s has no metadata.uid (written past the CLI): giving it one", self.name, namespace, owner_name)
            obj.stamp_server_fields(store, key, current, now)
            return True, None
        pods, _ = store.list_versioned(keys.pods_in(namespace))
        owned = {k: v for k, v in pods.items() if obj.owned_by(v.value, uid)}
        active = {k: v for k, v in owned.items() if obj.is_active_pod(v.value)}
        replicas = obj.int_field(obj.spec(owner), "replicas", 1)
        deleting = obj.is_terminating(owner)
        where = f"{self.name} {namespace}/{owner_name}"

        orphans = {
            k: v for k, v in pods.items()
            if not deleting and obj.controller_of(v.value) is None and obj.is_active_pod(v.value)
            and self.kind.selects(owner, obj.labels_of(v.value))
        }  # fmt: skip
        if orphans:
            ref = obj.owner_reference(owner, self.kind.kind, self.kind.api_version)
            chosen = dict(sorted(orphans.items())[: obj.BATCH])
            puts = {k: obj.adopted(v.value, ref) for k, v in chosen.items()}
            expect = {**{k: v.revision for k, v in chosen.items()}, key: current.revision}
            after = [*(v.value for v in active.values()), *puts.values()]
            if store.commit({**puts, key: self._with_status(owner, after, now)}, expect=expect):
                for pod_key in puts:
                    LOG.info("adopted pod %s/%s for %s", namespace, keys.name_of(pod_key), where)
            return False, None

        missing = replicas - len(active)
        if missing > 0 and not deleting:
            ns = store.get_versioned(keys.k8s_namespace(namespace))
            if not obj.namespace_accepts(ns):
                LOG.debug("not creating pods for %s: namespace %s is missing or Terminating", where, namespace)
            else:
                assert ns is not None
                return self._create(store, key, current, ns, pods, active, min(missing, obj.BATCH), now)
        elif missing < 0:
            return self._delete(store, key, current, active, min(-missing, obj.BATCH), now)

        new_status, wait = replica_status(owner, (v.value for v in active.values()), now)
        if obj.status(owner) != new_status:
            if not store.commit({key: obj.with_status(owner, new_status)}, expect={key: current.revision}):
                return False, None
        return True, wait

    def _with_status(self, owner: Value, pods: Iterable[Mapping[str, Any]], now: float) -> Value:
        return obj.with_status(owner, replica_status(owner, pods, now)[0])

    def _create(
        self,
        store: Datastore,
        key: str,
        current: Versioned,
        ns: Versioned,
        pods: Mapping[str, Versioned],
        active: Mapping[str, Versioned],
        count: int,
        now: float,
    ) -> tuple[bool, float | None]:
        owner = current.value
        namespace, owner_name = keys.split_namespaced(key, self.kind.prefix)
        ref = obj.owner_reference(owner, self.kind.kind, self.kind.api_version)
        taken = {keys.name_of(k) for k in pods}
        created: dict[str, Value] = {}
        for _ in range(count):
            name = obj.generated_name(owner_name, taken, self._rng)
            taken.add(name)
            created[keys.pod(namespace, name)] = obj.new_pod(owner, ref, name, now)
        after = [*(v.value for v in active.values()), *created.values()]
        puts = {**created, key: self._with_status(owner, after, now)}
        expect = {**{k: 0 for k in created}, key: current.revision, keys.k8s_namespace(namespace): ns.revision}
        if store.commit(puts, expect=expect):
            for pod_key in created:
                LOG.info("created pod %s/%s for %s %s/%s", namespace, keys.name_of(pod_key), self.name, namespace, owner_name)
                events.emit(events.involved(owner, self.kind.kind, self.kind.api_version), "SuccessfulCreate",
                            f"Created pod: {keys.name_of(pod_key)}", component=self.component)  # fmt: skip
        return False, None

    def _delete(
        self, store: Datastore, key: str, current: Versioned, active: Mapping[str, Versioned], count: int, now: float
    ) -> tuple[bool, float | None]:
        owner = current.value
        namespace, owner_name = keys.split_namespaced(key, self.kind.prefix)
        victims = sorted(active, key=lambda k: obj.deletion_rank(active[k].value))[:count]
        puts: dict[str, Value] = {}
        deletes: list[str] = []
        for pod_key in victims:
            marked = obj.pod_deletion(active[pod_key].value, now)
            if marked is None:
                deletes.append(pod_key)
            else:
                puts[pod_key] = marked
        after = [v.value for k, v in active.items() if k not in victims]
        puts[key] = self._with_status(owner, after, now)
        expect = {**{k: active[k].revision for k in victims}, key: current.revision}
        if store.commit(puts, deletes, expect=expect):
            for pod_key in victims:
                how = "deleted" if pod_key in deletes else "deleting"
                LOG.info("%s pod %s/%s of %s %s/%s", how, namespace, keys.name_of(pod_key), self.name, namespace, owner_name)
                events.emit(events.involved(owner, self.kind.kind, self.kind.api_version), "SuccessfulDelete",
                            f"Deleted pod: {keys.name_of(pod_key)}", component=self.component)  # fmt: skip
        return False, None


def replica_set_controller(rng: random.Random | None = None) -> ReplicaController:
    return ReplicaController(REPLICA_SET, rng)


def replication_controller_controller(rng: random.Random | None = None) -> ReplicaController:
    return ReplicaController(REPLICATION_CONTROLLER, rng)


def build_replica_sets(**options: Any) -> ReplicaController:
    """For the manager. Option ``rng`` (a random.Random, for pod names); others ignored."""
    rng = options.get("rng")
    return replica_set_controller(rng if isinstance(rng, random.Random) else None)


def build_replication_controllers(**options: Any) -> ReplicaController:
    rng = options.get("rng")
    return replication_controller_controller(rng if isinstance(rng, random.Random) else None)
