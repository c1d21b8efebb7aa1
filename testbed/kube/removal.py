"""kubectl delete: objects of any kind, and everything that depends on them.

A namespace takes its workloads (first, so nothing recreates pods), pods (netns, veth,
address), services, policies and stored objects; a Deployment takes its ReplicaSets and
their pods; a pod of a workload is replaced by its controller, as in a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

from testbed.datastore import keys
from testbed.datastore.base import Datastore
from testbed.kube import controller, registry
from testbed.kube.errors import ManifestError
from testbed.kube.objects import Change

_WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "ReplicationController")


def _not_found(plural: str, name: str) -> str:
    return f'Error from server (NotFound): {registry.resolve(plural).resource} "{name}" not found'


def _key(plural: str, namespace: str | None, name: str) -> str:
    return registry.resolve(plural).key(namespace, name)


def deletion(plural: str, name: str) -> Change:
    """The result line of deleting one object (kubectl's `pod "x" deleted`)."""
    entry = registry.resolve(plural)
    return Change(entry.singular, name, "deleted", slash=entry.stored_only)


def delete(
    lab: str, store: Datastore, targets: Iterable[tuple[str, str | None, str]], *, dry_run: bool = False
) -> list[Change]:
    """Delete each (plural, namespace, name); all must exist, or nothing is deleted.
    ``dry_run`` (``--dry-run=server``): the same check and lines, nothing deleted."""
    targets = list(targets)
    missing = [_not_found(p, n) for p, ns, n in targets if store.get(_key(p, ns, n)) is None]
    if missing:
        raise ManifestError(missing)
    if dry_run:
        return [deletion(plural, name) for plural, _namespace, name in targets]
    changes: list[Change] = []
    for plural, namespace, name in targets:
        if plural == "namespaces":
            delete_namespace(lab, store, name)
        elif registry.resolve(plural).kind in _WORKLOAD_KINDS:
            controller.delete_workload(lab, store, registry.resolve(plural).kind, namespace or "default", name)
        elif plural == "pods":
            from testbed.runtime import pods  # noqa: PLC0415

            pods.delete_pod(lab, namespace or "default", name, store)
            controller.reconcile(lab, store, [namespace or "default"])
        else:
            store.delete(_key(plural, namespace, name))
        changes.append(deletion(plural, name))
    return changes


def delete_namespace(lab: str, store: Datastore, name: str) -> None:
    from testbed.runtime import pods  # noqa: PLC0415

    for prefix in (keys.DEPLOYMENTS, keys.REPLICASETS, keys.CONTROLLERS, keys.SERVICES):
        store.delete_prefix(f"{prefix}{name}/")
    for pod_key in list(store.list(keys.pods_in(name))):
        pods.delete_pod(lab, name, keys.name_of(pod_key), store)
    for kind in registry.namespaced_kinds():
        if kind.kind != "Pod":
            store.delete_prefix(kind.scope(name))
    for key in (keys.k8s_namespace(name), keys.namespace_profile(name), keys.service_account_profile(name)):
        store.delete(key)


