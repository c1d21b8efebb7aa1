"""Every controller of the manager at once, over the in-memory store, with stand-ins for
the kubelets: a Deployment behind a Service is scheduled, spread and put in Endpoints; a
node that goes silent loses its pod to another node; the namespace's deletion takes
everything. Checks that the controllers written apart agree on what they share (keys,
ownerReferences, pod deletion) and that none undoes another's work."""

from __future__ import annotations

from collections import Counter
from typing import Any

from testbed.controllers import objects as obj
from testbed.controllers.base import settle
from testbed.controllers.manager import Options, build_controllers
from testbed.controllers.namespaces import mark_terminating
from testbed.datastore import keys, records
from testbed.datastore.base import delete_if, put_if
from testbed.datastore.memory import MemoryDatastore
from tests.unit.controller_fixtures import NOW, add_namespace, add_node, workload

HOSTS = ("h1", "h2", "h3")


def renew(store: MemoryDatastore, host: str, at: float) -> None:
    store.put(keys.node_lease(host), {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                      "metadata": {"name": host, "namespace": keys.NODE_LEASE_NAMESPACE},
                                      "spec": {"holderIdentity": host, "renewTime": records.timestamp(at)}})  # fmt: skip


def kubelets(store: MemoryDatastore, alive: tuple[str, ...], now: float) -> None:
    """The kubelets of ``alive``: renew their Lease, remove their pods being deleted,
    start their bound pods (an address, Running, Ready)."""
    for host in alive:
        renew(store, host, now)
    for key, current in sorted(store.list_versioned(keys.PODS)[0].items()):
        value = current.value
        if value["spec"].get("nodeName") not in alive:
            continue
        if obj.is_terminating(value):
            delete_if(store, key, current.revision)
        elif not obj.is_ready_pod(value):
            ip = f"10.65.{HOSTS.index(value['spec']['nodeName'])}.{sum(map(ord, key)) % 200 + 2}"
            value["status"] = {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": records.timestamp(now)}]}  # fmt: skip
            put_if(store, key, value, current.revision)


def service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "demo", "uid": "svc-uid"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                     "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}  # fmt: skip


def endpoint_nodes(store: MemoryDatastore) -> list[str]:
    eps = store.get(keys.endpoints("demo", "web"))
    assert eps is not None
    return sorted(a["nodeName"] for s in eps.get("subsets", []) for a in s.get("addresses", []))


def test_a_deployment_behind_a_service_through_a_node_failure_and_its_namespaces_deletion() -> None:
    store = MemoryDatastore()
    controllers = build_controllers(Options("t", pod_eviction_timeout=10.0, node_monitor_grace=4.0))
    assert {"endpoints", "scheduler", "node-lifecycle", "namespace"} <= {c.name for c in controllers}
    add_namespace(store, "demo")
    for host in HOSTS:
        add_node(store, host)
    deployment = workload("Deployment", "web", 3, {"app": "web"}, namespace="demo")
    store.put(keys.namespaced(keys.DEPLOYMENTS, "demo", "web"), deployment)
    store.put(keys.service("demo", "web"), service())

    now = NOW
    for _ in range(3):  # the kubelets start what the controllers made, which react
        kubelets(store, HOSTS, now)
        settle(store, controllers, now)
    assert endpoint_nodes(store) == ["h1", "h2", "h3"]  # spread, Ready, in the Endpoints
    [slice_] = store.list(keys.endpoint_slices_in("demo")).values()
    assert [e["conditions"]["ready"] for e in slice_["endpoints"]] == [True, True, True]

    # h1 goes silent: NotReady after the grace, its pod replaced elsewhere after the timeout.
    for step in range(1, 16):
        now = NOW + step
        kubelets(store, ("h2", "h3"), now)
        settle(store, controllers, now)
    pods = store.list(keys.pods_in("demo")).values()
    assert Counter(p["spec"]["nodeName"] for p in pods) in (Counter({"h2": 2, "h3": 1}), Counter({"h2": 1, "h3": 2}))
    assert sorted(set(endpoint_nodes(store))) == ["h2", "h3"] and len(endpoint_nodes(store)) == 3
    node = store.get(keys.k8s_node("h1"))
    assert node is not None and obj.condition(node, "Ready")["status"] == "Unknown"  # type: ignore[index]

    # Deleting the namespace: pods gracefully, the rest outright, then the namespace.
    assert mark_terminating(store, "demo", now)
    for step in range(3):
        now += 1
        settle(store, controllers, now)
        kubelets(store, ("h2", "h3"), now)
    settle(store, controllers, now)
    assert store.get(keys.k8s_namespace("demo")) is None
    assert [k for k in store.list("/registry/") if "/demo/" in k] == []
