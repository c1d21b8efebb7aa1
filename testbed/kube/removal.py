"""kubectl delete: asks for deletions; the control plane carries them out.

A pod is stopped by its kubelet (SIGTERM, its grace period, SIGKILL) and then removed; a
namespace is emptied by the namespace controller; a workload's dependents are removed by
the garbage collector (before it, with ``--cascade=foreground``); a pod of a workload is
replaced by its controller, as in a cluster. The caller waits on ``Deleted.pending``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from dataclasses import dataclass

from testbed.datastore import keys, records
from testbed.datastore.base import Datastore, Versioned, delete_if, put_if
from testbed.kube import registry
from testbed.kube.errors import ManifestError
from testbed.kube.objects import Change

def _not_found(plural: str, name: str) -> str:
    return f'Error from server (NotFound): {registry.resolve(plural).resource} "{name}" not found'


def _key(plural: str, namespace: str | None, name: str) -> str:
    return registry.resolve(plural).key(namespace, name)


def deletion(plural: str, name: str) -> Change:
    """The result line of deleting one object (kubectl's `pod "x" deleted`)."""
    entry = registry.resolve(plural)
    return Change(entry.singular, name, "deleted", slash=entry.stored_only)


CASCADES = ("background", "foreground", "orphan")
FINALIZERS = {"foreground": "foregroundDeletion", "orphan": "orphan"}


@dataclass(frozen=True)
class Deleted:
    """What a delete did: its result lines, and the keys to wait on until they are gone."""

    changes: list[Change]
    pending: list[str]


def delete(
    lab: str, store: Datastore, targets: Iterable[tuple[str, str | None, str]], *, dry_run: bool = False,
    cascade: str = "background", grace_period: int | None = None, force: bool = False,
) -> list[Change]:
    """Delete each (plural, namespace, name); all must exist, or nothing is deleted.
    ``dry_run`` (``--dry-run=server``): the same check and lines, nothing deleted."""
    return request_deletion(
        store, targets, dry_run=dry_run, cascade=cascade, grace_period=grace_period, force=force
    ).changes


def request_deletion(
    store: Datastore, targets: Iterable[tuple[str, str | None, str]], *, dry_run: bool = False,
    cascade: str = "background", grace_period: int | None = None, force: bool = False, now: float | None = None,
) -> Deleted:
    """Ask for each deletion as the API server takes it, and return at once:

    - a pod scheduled to a node gets ``deletionTimestamp`` (its kubelet stops its
      containers within the grace period, then removes it); ``force`` with grace 0, or a pod
      no node has, is removed outright (a kubelet tears down what it no longer finds);
    - a namespace goes Terminating (the namespace controller empties it, then removes it);
    - ``cascade`` foreground / orphan: the owner gets ``deletionTimestamp`` and the
      finalizer the garbage collector acts on; background: it is removed now and the
      collector removes its dependents after it;
    - anything else is removed. Every write is conditional on the revision read.
    """
    if cascade not in CASCADES:
        raise ManifestError([f'error: invalid cascade value ({cascade}). Must be "background", "foreground", or "orphan".'])
    now = time.time() if now is None else now
    targets = list(targets)
    found = {(p, ns, n): store.get_versioned(_key(p, ns, n)) for p, ns, n in targets}
    missing = [_not_found(p, n) for (p, _ns, n), v in found.items() if v is None]
    if missing:
        raise ManifestError(missing)
    changes = [deletion(plural, name) for plural, _namespace, name in targets]
    if dry_run:
        return Deleted(changes, [])
    pending: list[str] = []
    for target, current in found.items():
        assert current is not None
        key = _key(*target)
        for _attempt in range(5):
            if _ask(store, key, registry.resolve(target[0]), current, cascade, grace_period, force, now):
                break
            current = store.get_versioned(key)
            if current is None:
                break
        pending.append(key)
    return Deleted(changes, pending)


def _ask(
    store: Datastore, key: str, kind: registry.Kind, current: Versioned, cascade: str,
    grace_period: int | None, force: bool, now: float,
) -> bool:
    """One conditional write of one deletion; False if the object changed since read."""
    value = copy.deepcopy(current.value)
    metadata = value.setdefault("metadata", {})
    if kind.kind == "Namespace":
        from testbed.controllers.namespaces import mark_terminating  # noqa: PLC0415

        mark_terminating(store, keys.name_of(key), now)
        return True
    if kind.kind == "Pod":
        grace = grace_period if grace_period is not None else value.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        if (force and grace == 0) or not value.get("spec", {}).get("nodeName"):
            return delete_if(store, key, current.revision)
        if metadata.get("deletionTimestamp"):
            return True
        metadata["deletionTimestamp"] = records.timestamp(now)
        metadata["deletionGracePeriodSeconds"] = int(grace)
        return put_if(store, key, value, current.revision)
    if cascade in FINALIZERS:
        finalizer = FINALIZERS[cascade]
        if metadata.get("deletionTimestamp") and finalizer in metadata.get("finalizers", []):
            return True
        metadata["deletionTimestamp"] = records.timestamp(now)
        metadata["finalizers"] = sorted({*metadata.get("finalizers", []), finalizer})
        return put_if(store, key, value, current.revision)
    return delete_if(store, key, current.revision)
