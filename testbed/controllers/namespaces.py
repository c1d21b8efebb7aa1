"""Namespace lifecycle: a namespace being deleted is emptied, then removed.

``mark_terminating`` (for the CLI's ``kubectl delete namespace``) starts it: one
conditional write of ``metadata.deletionTimestamp`` and ``status.phase: Terminating``.
The controller then, for a namespace with a deletionTimestamp:

1. deletes every namespaced object under it: the workloads first (Deployments,
   ReplicaSets, ReplicationControllers, DaemonSets: nothing recreates pods then), then
   Services, Endpoints, EndpointSlices, NetworkPolicies, Leases, any other namespaced kind
   of ``testbed.kube.registry`` and the stored-only kinds
   (``/registry/other/<resource>/<ns>/<name>``), all outright; pods gracefully
   (``deletionTimestamp`` + ``deletionGracePeriodSeconds`` from the pod's
   ``terminationGracePeriodSeconds``, 30 by default) unless no node holds them yet (those
   outright; ``testbed.controllers.objects.pod_deletion``, as the other controllers
   delete pods). The kubelets remove the pod keys once their containers are stopped; the
   WorkloadEndpoints, addresses and sandboxes are theirs too.
2. waits, re-listing (a pod or object created meanwhile by a racing writer is deleted in
   turn); status condition ``NamespaceContentRemaining`` says what is left, as
   Kubernetes words it.
3. when nothing is left: removes the ``kubernetes`` finalizer from ``spec.finalizers``,
   then, once no finalizer is left (``metadata.finalizers`` included), deletes the
   namespace key with Calico's profiles ``kns.<ns>`` and ``ksa.<ns>.*`` in one
   transaction conditional on the namespace's revision.

Every write is conditional on the revision read; ``reconcile`` returns a short re-check
delay while pods are terminating. As in Kubernetes, a pod whose node is gone for good
keeps its namespace Terminating (the node lifecycle controller only evicts pods that have
a controller owner).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from testbed.controllers import objects
from testbed.datastore import keys
from testbed.datastore.records import timestamp
from testbed.datastore.base import Datastore, DatastoreError, Versioned, WatchEvent, delete_if, put_if
from testbed.kube import registry

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
TERMINATING = "Terminating"
RECHECK_SECONDS = 1.0  # while pods terminate (their deletions also wake it up)
RETRIES = 3
# Removed outright, in this order: workloads first, so that nothing recreates pods; then
# the rest, including any namespaced kind the registry knows that is not listed here.
WORKLOADS = (keys.DEPLOYMENTS, keys.REPLICASETS, keys.CONTROLLERS, keys.DAEMONSETS)
SERVICE_OBJECTS = (keys.SERVICES, keys.ENDPOINTS, keys.ENDPOINT_SLICES, keys.NETWORK_POLICIES)
REGISTERED = tuple(
    k.prefix for k in registry.KINDS if k.namespaced and k.prefix and not k.stored_only and k.prefix != keys.PODS
)
OTHERS = tuple(p for p in dict.fromkeys((*SERVICE_OBJECTS, *REGISTERED, keys.LEASES)) if p not in WORKLOADS)
CLUSTER_SCOPED = "_cluster"  # the namespace segment of stored-only cluster-scoped objects
# Watched for events that concern a namespace's content. Leases are left out: the
# kubelets renew theirs every second (in kube-node-lease); one created in a namespace
# being deleted is found by the re-check all the same.
WATCHED = (keys.K8S_NAMESPACES, *WORKLOADS, keys.PODS, *(p for p in OTHERS if p != keys.LEASES), keys.OTHER_OBJECTS)


def _stored_only_namespace(key: str) -> str | None:
    """``/registry/other/<resource>/<ns>/<name>`` -> ns (None for cluster-scoped ones)."""
    parts = key[len(keys.OTHER_OBJECTS) :].split("/") if key.startswith(keys.OTHER_OBJECTS) else []
    if len(parts) != 3 or not all(parts) or parts[1] == CLUSTER_SCOPED:
        return None
    return parts[1]


def mark_terminating(store: Datastore, name: str, now: float | None = None) -> bool:
    """Start deleting namespace ``name``: its deletionTimestamp (kept if already set) and
    phase Terminating, in one conditional write (re-read and retried when it loses a
    race). False when there is no such namespace; DatastoreError if it keeps losing."""
    stamp = timestamp(time.time() if now is None else now)
    for _ in range(RETRIES):
        current = store.get_versioned(keys.k8s_namespace(name))
        if current is None:
            return False
        value = copy.deepcopy(current.value)
        value.setdefault("metadata", {}).setdefault("deletionTimestamp", stamp)
        value.setdefault("status", {})["phase"] = TERMINATING
        if value == current.value or put_if(store, keys.k8s_namespace(name), value, current.revision):
            return True
    raise DatastoreError(f"namespace {name}: changed by another writer {RETRIES} times in a row, not marked for deletion")


def is_terminating(namespace: Mapping[str, Any] | None) -> bool:
    """A namespace being deleted (objects must not be created in it)."""
    if namespace is None:
        return False
    return bool((namespace.get("metadata") or {}).get("deletionTimestamp")) or (
        (namespace.get("status") or {}).get("phase") == TERMINATING
    )


def remaining_condition(pods: int, now: float) -> dict[str, Any]:
    return {
        "type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
        "message": f"Some resources are remaining: pods. has {pods} resource instances",
        "lastTransitionTime": timestamp(now),
    }  # fmt: skip


class NamespaceLifecycle:
    name = "namespace"
    prefixes: Sequence[str] = WATCHED

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        if event.key.startswith(keys.K8S_NAMESPACES):
            name = event.key[len(keys.K8S_NAMESPACES) :]
            return [name] if name and "/" not in name else []
        if event.key.startswith(keys.OTHER_OBJECTS):
            namespace = _stored_only_namespace(event.key)
            return [namespace] if namespace else []
        for prefix in self.prefixes:
            if (namespace := keys.namespace_of(event.key, prefix)) is not None:
                return [namespace]
        return []

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        return [keys.name_of(k) for k, v in store.list(keys.K8S_NAMESPACES).items() if is_terminating(v)]

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        for _ in range(RETRIES):
            current = store.get_versioned(keys.k8s_namespace(key))
            if current is None or not (current.value.get("metadata") or {}).get("deletionTimestamp"):
                return None
            if (current.value.get("status") or {}).get("phase") != TERMINATING:
                value = copy.deepcopy(current.value)
                value.setdefault("status", {})["phase"] = TERMINATING
                put_if(store, keys.k8s_namespace(key), value, current.revision)
                continue
            terminating, changed = self._remove_content(store, key, now)
            if terminating:
                self._note_remaining(store, key, terminating, now)
                return RECHECK_SECONDS
            if changed:
                continue  # deleted something: list again (a racing writer may have added more)
            if self._finalize(store, key):
                return None
        return RECHECK_SECONDS

    # --- emptying ------------------------------------------------------------------------

    def _remove_content(self, store: Datastore, namespace: str, now: float) -> tuple[int, bool]:
        """Delete what is in the namespace; (pods still terminating, whether anything was
        written or a write lost a race)."""
        changed = False
        for prefix in WORKLOADS:
            changed = self._delete_all(store, f"{prefix}{namespace}/") or changed
        terminating = 0
        pods, _ = store.list_versioned(keys.pods_in(namespace))
        for key, item in pods.items():
            if (item.value.get("metadata") or {}).get("deletionTimestamp"):
                terminating += 1
            elif (deleting := objects.pod_deletion(item.value, now)) is None:
                delete_if(store, key, item.revision)  # no kubelet holds it: nothing to stop
                changed = True
            elif put_if(store, key, deleting, item.revision):
                terminating += 1
                log.info("namespace %s: deleting pod %s gracefully", namespace, keys.name_of(key))
            else:
                changed = True
        for prefix in OTHERS:
            changed = self._delete_all(store, f"{prefix}{namespace}/") or changed
        stored, _ = store.list_versioned(keys.OTHER_OBJECTS)
        for key, item in stored.items():
            if _stored_only_namespace(key) == namespace:
                delete_if(store, key, item.revision)
                changed = True
        return terminating, changed

    @staticmethod
    def _delete_all(store: Datastore, prefix: str) -> bool:
        listed, _ = store.list_versioned(prefix)
        for key, item in listed.items():
            delete_if(store, key, item.revision)
        if listed:
            log.info("namespace: deleted %d objects under %s", len(listed), prefix)
        return bool(listed)

    @staticmethod
    def _note_remaining(store: Datastore, namespace: str, pods: int, now: float) -> None:
        """Condition NamespaceContentRemaining, written only when its message changes."""
        current = store.get_versioned(keys.k8s_namespace(namespace))
        if current is None:
            return
        value = copy.deepcopy(current.value)
        status = value.setdefault("status", {})
        others = [c for c in status.get("conditions") or [] if c.get("type") != "NamespaceContentRemaining"]
        old = next((c for c in status.get("conditions") or [] if c.get("type") == "NamespaceContentRemaining"), None)
        condition = remaining_condition(pods, now)
        if old is not None and old.get("message") == condition["message"]:
            return
        status["conditions"] = [*others, condition]
        put_if(store, keys.k8s_namespace(namespace), value, current.revision)  # lost: next time

    # --- removing it ---------------------------------------------------------------------

    @staticmethod
    def _finalize(store: Datastore, namespace: str) -> bool:
        """Drop the ``kubernetes`` finalizer, then delete the namespace and its profiles;
        False when a write lost a race or another finalizer is still there."""
        key = keys.k8s_namespace(namespace)
        current: Versioned | None = store.get_versioned(key)
        if current is None:
            return True
        finalizers = (current.value.get("spec") or {}).get("finalizers") or []
        if FINALIZER in finalizers:
            value = copy.deepcopy(current.value)
            value["spec"]["finalizers"] = [f for f in finalizers if f != FINALIZER]
            if not put_if(store, key, value, current.revision):
                return False
            current = store.get_versioned(key)
            if current is None:
                return True
        if (current.value.get("spec") or {}).get("finalizers") or (current.value.get("metadata") or {}).get(
            "finalizers"
        ):
            return False  # someone else's finalizer: theirs to remove
        profiles = [keys.namespace_profile(namespace)]
        profiles += list(store.list(keys.profile(f"{keys.SERVICE_ACCOUNT_PROFILE_PREFIX}{namespace}.")))
        if store.commit({}, [key, *profiles], expect={key: current.revision}):
            log.info("namespace %s: deleted", namespace)
            return True
        return False


def build(**options: Any) -> NamespaceLifecycle:
    """The controller, for the manager (it takes no options; others' are ignored)."""
    return NamespaceLifecycle()
