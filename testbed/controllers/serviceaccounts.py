"""Every namespace has a ServiceAccount ``default``, as kube-controller-manager's
serviceaccount controller keeps it [k8s pkg/controller/serviceaccount/serviceaccounts_controller.go]:
made when the namespace appears, made again when deleted, never in a namespace being
deleted. The lab issues no tokens: the account is an object pods and clients can name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from testbed.datastore import keys
from testbed.datastore.base import Datastore, WatchEvent, put_if
from testbed.datastore.records import timestamp
from testbed.kube import registry

KIND = registry.BY_KIND["ServiceAccount"]
DEFAULT = "default"


def default_account(namespace: str, now: float) -> dict[str, Any]:
    """The ``default`` ServiceAccount of ``namespace`` (pure but for its uid)."""
    return {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT, "namespace": namespace, "uid": str(uuid.uuid4()),
                     "creationTimestamp": timestamp(now)},
    }  # fmt: skip


class DefaultServiceAccounts:
    name = "serviceaccount"
    prefixes: Sequence[str] = (keys.K8S_NAMESPACES, KIND.prefix)

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        if event.key.startswith(keys.K8S_NAMESPACES):
            name = event.key[len(keys.K8S_NAMESPACES) :]
            return [name] if event.kind == "put" and name and "/" not in name else []
        parts = event.key[len(KIND.prefix) :].split("/")
        return [parts[0]] if event.kind == "delete" and len(parts) == 2 and parts[1] == DEFAULT else []

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        return [keys.name_of(k) for k in store.list(keys.K8S_NAMESPACES)]

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        namespace = store.get(keys.k8s_namespace(key))
        if namespace is None or (namespace.get("metadata") or {}).get("deletionTimestamp"):
            return None
        account = KIND.key(key, DEFAULT)
        if store.get_versioned(account) is None:
            put_if(store, account, default_account(key, now), 0)  # lost to another writer: it exists
        return None


def build(**_options: Any) -> DefaultServiceAccounts:
    return DefaultServiceAccounts()
