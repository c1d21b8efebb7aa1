"""The garbage collector: dependents follow their owners, by ownerReference uid.

- Background: a dependent whose owners (every ownerReference with a uid) are gone, or
  replaced by a namesake with another uid, is deleted (a pod gracefully, or outright when
  never scheduled); references to some gone owners are dropped from the ones that remain.
- Foreground: an owner with ``deletionTimestamp`` and finalizer ``foregroundDeletion``
  has its dependents deleted first (each in the foreground too, so the cascade goes all
  the way down); once none with ``blockOwnerDeletion`` is left, the finalizer goes and,
  the last one gone, the owner's key.
- Orphan: finalizer ``orphan``: the references to the owner are removed from its
  dependents, then the owner goes.

Every stored kind under ``/registry/`` takes part (pods, replicasets, endpointslices,
stored-only kinds...). An owner is looked up by its key (kind -> key prefix); an
ownerReference without a uid, or to a kind this lab does not store, is never taken for
a gone owner (nothing is deleted on a guess). To find what a deleted owner owned without
a read, the collector keeps a small index (uid -> key, owner uid -> dependents) from the
events it sees and the listing of every resync.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from testbed.controllers import objects as obj
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore, Value, Versioned, WatchEvent, delete_if, put_if
from testbed.kube import registry

LOG = logging.getLogger("testbed.controllers.gc")
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

# Owner kinds the registry (``testbed.kube.registry``: kubectl's kinds) does not hold
# yet, and Node: the registry's Node is Calico's (what `kubectl get nodes` lists today);
# an ownerReference to a Node means the kubelet's Kubernetes Node. kind -> (prefix, namespaced)
EXTRA_KINDS: dict[str, tuple[str, bool]] = {
    "DaemonSet": (keys.DAEMONSETS, True),
    "Endpoints": (keys.ENDPOINTS, True),
    "EndpointSlice": (keys.ENDPOINT_SLICES, True),
    "Lease": (keys.LEASES, True),
    "Node": (keys.K8S_NODES, False),
}


def owner_key(ref: Mapping[str, Any], namespace: str | None) -> str | None:
    """Where the owner an ownerReference names is stored (owners share their dependent's
    namespace unless cluster-scoped), or None for a kind this lab does not store."""
    kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
    if not name:
        return None
    if kind in EXTRA_KINDS:
        prefix, namespaced = EXTRA_KINDS[kind]
        if not namespaced:
            return prefix + name
        return keys.namespaced(prefix, namespace, name) if namespace else None
    found = registry.of_kind(kind)
    if found is None or (found.namespaced and not namespace):
        return None
    return found.key(namespace, name)


def _owner_uids(value: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(str(r["uid"]) for r in obj.owner_references(value) if r.get("uid")))


def _finalizers(value: Mapping[str, Any]) -> list[str]:
    found = obj.metadata(value).get("finalizers")
    return [f for f in found if isinstance(f, str)] if isinstance(found, list) else []


def _pending_deletion(key: str, value: Mapping[str, Any]) -> bool:
    """Is there deletion work here for the collector (rather than for a kubelet or the
    namespace controller)?"""
    if not obj.is_terminating(value):
        return False
    finalizers = _finalizers(value)
    if FOREGROUND in finalizers or ORPHAN in finalizers:
        return True
    if finalizers or key.startswith(keys.K8S_NAMESPACES):
        return False
    return not key.startswith(keys.PODS) or not obj.spec(value).get("nodeName")


class GarbageCollector:
    name = "garbagecollector"
    prefixes = (keys.REGISTRY,)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uid_of: dict[str, str] = {}  # key -> uid
        self._key_of: dict[str, str] = {}  # uid -> key
        self._owners_of: dict[str, tuple[str, ...]] = {}  # key -> owner uids
        self._dependents: dict[str, set[str]] = {}  # owner uid -> dependent keys

    # --- the index ---------------------------------------------------------------------------

    def _forget(self, key: str) -> tuple[str | None, tuple[str, ...]]:
        uid = self._uid_of.pop(key, None)
        if uid is not None and self._key_of.get(uid) == key:
            del self._key_of[uid]
        owners = self._owners_of.pop(key, ())
        for owner in owners:
            dependents = self._dependents.get(owner)
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self._dependents[owner]
        return uid, owners

    def _remember(self, key: str, value: Mapping[str, Any]) -> None:
        uid, owners = obj.uid_of(value), _owner_uids(value)
        if uid is not None:
            self._uid_of[key] = uid
            self._key_of[uid] = key
        if owners:
            self._owners_of[key] = owners
            for owner in owners:
                self._dependents.setdefault(owner, set()).add(key)

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        with self._lock:
            before_uid, before_owners = self._forget(event.key)
            if event.kind == "delete" or event.value is None:
                # A dependent of the gone object may be garbage; an owner deleting in the
                # foreground may have been waiting for it.
                found = set(self._dependents.get(before_uid, ())) if before_uid else set()
                found.update(self._key_of[o] for o in before_owners if o in self._key_of)
                return sorted(found)
            self._remember(event.key, event.value)
        found = set()
        owners = _owner_uids(event.value)
        if owners and owners != before_owners:
            found.add(event.key)  # new references: are those owners there?
        if _pending_deletion(event.key, event.value):
            found.add(event.key)
        return sorted(found)

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        listed, _ = store.list_versioned(keys.REGISTRY)
        with self._lock:
            self._uid_of, self._key_of, self._owners_of, self._dependents = {}, {}, {}, {}
            for key, v in listed.items():
                self._remember(key, v.value)
            present = set(self._key_of)
            return sorted(
                key for key, v in listed.items()
                if any(o not in present for o in self._owners_of.get(key, ())) or _pending_deletion(key, v.value)
            )  # fmt: skip

    # --- reconcile -------------------------------------------------------------------------

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        return obj.in_passes(lambda: self._pass(store, key, now))

    def _pass(self, store: Datastore, key: str, now: float) -> tuple[bool, float | None]:
        current = store.get_versioned(key)
        if current is None:
            return True, None
        value = current.value
        if obj.is_terminating(value):
            finalizers = _finalizers(value)
            if ORPHAN in finalizers:
                return self._orphan(store, key, current)
            if FOREGROUND in finalizers:
                return self._foreground(store, key, current, now)
            if _pending_deletion(key, value):  # nothing holds it: removed, as the API server would
                if delete_if(store, key, current.revision):
                    LOG.info("deleted %s (deletionTimestamp, no finalizers left)", _named(key, value))
                return True, None
            return True, None
        refs = [r for r in obj.owner_references(value) if r.get("uid")]
        if not refs:
            return True, None
        namespace = obj.metadata(value).get("namespace")
        gone = [r for r in refs if self._owner_gone(store, r, namespace)]
        if not gone:
            return True, None
        if len(gone) == len(refs):
            owner = gone[0]
            why = f"its owner {str(owner.get('kind', '')).lower()} {owner.get('name')} is gone"
            return _delete_dependent(store, key, current, now, why), None
        kept = copy.deepcopy(value)
        gone_uids = {r.get("uid") for r in gone}
        kept["metadata"]["ownerReferences"] = [r for r in obj.owner_references(value) if r.get("uid") not in gone_uids]
        if put_if(store, key, kept, current.revision):
            LOG.info("removed references to gone owners from %s", _named(key, value))
            return True, None
        return False, None

    def _owner_gone(self, store: Datastore, ref: Mapping[str, Any], namespace: object) -> bool:
        where = owner_key(ref, namespace if isinstance(namespace, str) else None)
        if where is None:
            return False  # a kind we do not store: never guess
        owner = store.get(where)
        return owner is None or obj.uid_of(owner) != ref.get("uid")

    def _dependents_of(self, store: Datastore, uid: str) -> dict[str, Versioned]:
        listed, _ = store.list_versioned(keys.REGISTRY)
        return {k: v for k, v in listed.items() if any(r.get("uid") == uid for r in obj.owner_references(v.value))}

    def _foreground(self, store: Datastore, key: str, current: Versioned, now: float) -> tuple[bool, float | None]:
        uid = obj.uid_of(current.value)
        dependents = self._dependents_of(store, uid) if uid else {}
        for dep_key, dep in sorted(dependents.items()):
            if obj.is_terminating(dep.value):
                continue
            if dep_key.startswith(keys.PODS):
                _delete_dependent(store, dep_key, dep, now, f"{_named(key, current.value)} is being deleted")
                continue
            marked = copy.deepcopy(dep.value)
            meta = marked["metadata"]
            meta["deletionTimestamp"] = records.timestamp(now)
            meta["finalizers"] = [*_finalizers(dep.value), FOREGROUND]
            if put_if(store, dep_key, marked, dep.revision):
                LOG.info("deleting %s in the foreground: %s is being deleted", _named(dep_key, dep.value), _named(key, current.value))
        blocking = [
            k for k, v in dependents.items()
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in obj.owner_references(v.value))
        ]  # fmt: skip
        if blocking:
            return True, None  # their deletes wake us (keys_for: a gone dependent's owners)
        return self._drop_finalizer(store, key, current, FOREGROUND), None

    def _orphan(self, store: Datastore, key: str, current: Versioned) -> tuple[bool, float | None]:
        uid = obj.uid_of(current.value)
        for dep_key, dep in sorted((self._dependents_of(store, uid) if uid else {}).items()):
            freed = copy.deepcopy(dep.value)
            freed["metadata"]["ownerReferences"] = [r for r in obj.owner_references(dep.value) if r.get("uid") != uid]
            if not freed["metadata"]["ownerReferences"]:
                del freed["metadata"]["ownerReferences"]
            if not put_if(store, dep_key, freed, dep.revision):
                return False, None
            LOG.info("orphaned %s: %s is being deleted with propagation Orphan", _named(dep_key, dep.value), _named(key, current.value))
        return self._drop_finalizer(store, key, current, ORPHAN), None

    def _drop_finalizer(self, store: Datastore, key: str, current: Versioned, finalizer: str) -> bool:
        left = [f for f in _finalizers(current.value) if f != finalizer]
        if not left:
            if delete_if(store, key, current.revision):
                LOG.info("deleted %s (%s done)", _named(key, current.value), finalizer)
                return True
            return False
        value = copy.deepcopy(current.value)
        value["metadata"]["finalizers"] = left
        return put_if(store, key, value, current.revision)


def build(**options: Any) -> GarbageCollector:
    """For the manager (no options of its own; others' are ignored)."""
    return GarbageCollector()


def _named(key: str, value: Mapping[str, Any]) -> str:
    """``replicaset default/web-abc``: kind and namespace/name, for logs."""
    kind = str(value.get("kind") or key[len(keys.REGISTRY):].split("/", 1)[0]).lower()
    meta = obj.metadata(value)
    name = meta.get("name") or keys.name_of(key)
    return f"{kind} {meta['namespace']}/{name}" if meta.get("namespace") else f"{kind} {name}"


def _delete_dependent(store: Datastore, key: str, current: Versioned, now: float, why: str) -> bool:
    """Delete as the API server would: pods gracefully when a kubelet has them, the rest
    outright (their own dependents follow through their own references)."""
    value: Value = current.value
    if obj.is_terminating(value):
        return True
    marked = obj.pod_deletion(value, now) if key.startswith(keys.PODS) else None
    done = put_if(store, key, marked, current.revision) if marked is not None else delete_if(store, key, current.revision)
    if done:
        LOG.info("%s %s: %s", "deleting" if marked is not None else "deleted", _named(key, value), why)
    return done
