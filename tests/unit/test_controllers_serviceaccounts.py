"""Every namespace's default ServiceAccount, on the memory store."""

from __future__ import annotations

from testbed.controllers.serviceaccounts import DefaultServiceAccounts
from testbed.datastore import keys
from testbed.datastore.base import WatchEvent
from testbed.datastore.memory import MemoryDatastore
from testbed.kube import registry

SA = registry.BY_KIND["ServiceAccount"]


def test_a_namespace_gets_its_default_account_again_after_a_delete_but_not_while_terminating() -> None:
    store = MemoryDatastore()
    controller = DefaultServiceAccounts()
    store.put(keys.k8s_namespace("demo"), {"metadata": {"name": "demo"}})
    assert list(controller.resync_keys(store)) == ["demo"]
    controller.reconcile(store, "demo", 0.0)
    made = store.get(SA.key("demo", "default"))
    assert made is not None and made["metadata"]["namespace"] == "demo" and made["metadata"]["uid"]
    store.delete(SA.key("demo", "default"))
    assert list(controller.keys_for(WatchEvent("delete", SA.key("demo", "default"), None, 9))) == ["demo"]
    controller.reconcile(store, "demo", 1.0)
    assert store.get(SA.key("demo", "default")) is not None
    store.delete(SA.key("demo", "default"))
    store.put(keys.k8s_namespace("demo"), {"metadata": {"name": "demo", "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    controller.reconcile(store, "demo", 2.0)
    assert store.get(SA.key("demo", "default")) is None  # the namespace is going: nothing new in it
