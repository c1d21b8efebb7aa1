"""The scheduler, endpoints, node lifecycle and namespace controllers in the real
controller manager over a real etcd (no namespaces), with a stand-in for the kubelets
(a thread renewing Leases, starting bound pods and removing deleted ones, with the
conditional writes the contract gives the kubelet). Time is the wall clock here."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from testbed.controllers import objects as obj
from testbed.controllers.namespaces import mark_terminating
from testbed.datastore import keys, records
from testbed.datastore.base import delete_if, put_if
from testbed.datastore.etcd import EtcdDatastore
from tests.integration.test_controller_manager import Etcd, Running, eventually, etcd, store  # noqa: F401 - fixtures

HOSTS = ("h1", "h2")


class Kubelets:
    """Every 0.2 s, for each host still alive: renew its Lease; start its bound pods
    (an address, Running, Ready); remove its pods being deleted."""

    def __init__(self, port: int) -> None:
        self.store = EtcdDatastore.over_tcp("127.0.0.1", port)
        self.alive = set(HOSTS)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="kubelets")

    def run(self) -> None:
        import time

        while not self.stopping.wait(0.2):
            now = time.time()
            for host in sorted(self.alive):
                node = self.store.get_versioned(keys.k8s_node(host))
                if node is not None and (obj.condition(node.value, "Ready") or {}).get("status") != "True":
                    # as a kubelet does: it reports its Node Ready again (the node controller
                    # may have marked it Unknown before this stand-in's first Lease)
                    value = {**node.value, "status": {"conditions": [{"type": "Ready", "status": "True",
                             "lastHeartbeatTime": records.timestamp(now)}]}}  # fmt: skip
                    put_if(self.store, keys.k8s_node(host), value, node.revision)
                self.store.put(keys.node_lease(host), {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": host, "namespace": keys.NODE_LEASE_NAMESPACE},
                    "spec": {"holderIdentity": host, "renewTime": records.timestamp(now)},
                })  # fmt: skip
            for key, item in self.store.list_versioned(keys.PODS)[0].items():
                value = item.value
                host = value["spec"].get("nodeName")
                if host not in self.alive:
                    continue
                if obj.is_terminating(value):
                    delete_if(self.store, key, item.revision)
                elif (value.get("status") or {}).get("phase") != "Running" or (obj.condition(value, "Ready") or {}).get("status") != "True":
                    # as a kubelet does: its own report wins over the node controller's
                    # "not Ready" written while its Lease was stale
                    value["status"] = {"phase": "Running", "podIP": f"10.65.{HOSTS.index(host)}.{sum(map(ord, key)) % 200 + 2}",
                                       "conditions": [{"type": "Ready", "status": "True",
                                                       "lastTransitionTime": records.timestamp(now)}]}  # fmt: skip
                    put_if(self.store, key, value, item.revision)

    def __enter__(self) -> Kubelets:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.store.close()


@pytest.fixture
def lab(store: EtcdDatastore, etcd: Etcd) -> Iterator[EtcdDatastore]:  # noqa: F811 - the fixtures above
    store.put(keys.k8s_namespace("demo"), {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "uid": "ns-demo"},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
    })  # fmt: skip
    store.put(keys.namespace_profile("demo"), {"kind": "Profile", "metadata": {"name": "kns.demo"}})
    for host in HOSTS:
        store.put(keys.k8s_node(host), {"apiVersion": "v1", "kind": "Node", "metadata": {"name": host},
                                        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})  # fmt: skip
    yield store


def addresses(store: EtcdDatastore) -> tuple[list[str], list[str]]:
    eps = store.get(keys.endpoints("demo", "web")) or {}
    subsets = eps.get("subsets") or []
    return (sorted(a["nodeName"] for s in subsets for a in s.get("addresses", [])),
            sorted(a["nodeName"] for s in subsets for a in s.get("notReadyAddresses", [])))  # fmt: skip


def test_pods_bound_put_in_endpoints_dropped_with_their_node_and_deleted_with_their_namespace(
    lab: EtcdDatastore, etcd: Etcd,  # noqa: F811
) -> None:
    store = lab
    running: Running | None = None
    try:
        with Kubelets(etcd.port) as kubelets:
            # The nodes' kubelets are up (their Leases fresh) before the controllers look, as
            # in a lab: a manager that looked first could race the first heartbeats.
            eventually(lambda: all(store.get(keys.node_lease(h)) for h in HOSTS), what="the stand-ins' Leases")
            running = Running(etcd.port)
            store.put(keys.service("demo", "web"), {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "demo", "uid": "s1"},
                "spec": {"clusterIP": "10.96.0.5", "selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]},
            })  # fmt: skip
            for name in ("a", "b", "c", "d"):
                store.put(keys.pod("demo", name), {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "demo", "uid": f"p-{name}", "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "agnhost"}]}, "status": {"phase": "Pending"},
                })  # fmt: skip
            took = eventually(lambda: addresses(store) == (["h1", "h1", "h2", "h2"], []), within=10.0, what="4 pods in Endpoints")
            print(f"bound, started and in the Endpoints after {took:.2f} s")
            kubelets.alive.discard("h2")  # h2's kubelet stops: NotReady after the 4 s grace
            took = eventually(lambda: addresses(store) == (["h1", "h1"], ["h2", "h2"]), within=12.0,
                              what="h2's pods out of the ready addresses")  # fmt: skip
            print(f"h2's pods not ready after {took:.2f} s")
            node = store.get(keys.k8s_node("h2"))
            assert node is not None and obj.condition(node, "Ready")["status"] == "Unknown"  # type: ignore[index]
            kubelets.alive.add("h2")  # back before the 10 s eviction: its pods stay
            assert mark_terminating(store, "demo")
            eventually(lambda: store.get(keys.k8s_namespace("demo")) is None, within=15.0, what="the namespace gone")
            assert [k for k in store.list("/registry/") if "/demo/" in k] == []
            assert store.get(keys.namespace_profile("demo")) is None
    finally:
        if running is not None:
            running.stop()
