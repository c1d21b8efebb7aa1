"""Node lifecycle over the in-memory store, with simulated time: a stale Lease makes the
Node Ready Unknown after the grace period, its controller-owned pods are evicted after
the timeout, and a renewed Lease stops all of it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from testbed.controllers.base import settle
from testbed.controllers.nodes import NodeLifecycle, build
from testbed.datastore import keys
from testbed.datastore.base import WatchEvent
from testbed.datastore.memory import MemoryDatastore
from testbed.datastore.records import timestamp

T0 = 1_700_000_000.0


def micro_timestamp(t: float) -> str:
    """A Lease's renewTime: RFC 3339 with microseconds, as the kubelet writes it."""
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def renew(store: MemoryDatastore, host: str, at: float) -> None:
    store.put(keys.node_lease(host), {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": host, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": host, "leaseDurationSeconds": 40, "renewTime": micro_timestamp(at)},
    })  # fmt: skip


def kubelet_ready(store: MemoryDatastore, host: str, at: float, status: str = "True") -> None:
    store.put(keys.k8s_node(host), {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": host, "creationTimestamp": timestamp(T0 - 100)},
        "status": {"conditions": [
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "lastHeartbeatTime": timestamp(at), "lastTransitionTime": timestamp(T0 - 100)},
            {"type": "Ready", "status": status, "reason": "KubeletReady", "message": "kubelet is posting ready status",
             "lastHeartbeatTime": timestamp(at), "lastTransitionTime": timestamp(at)},
        ]},
    })  # fmt: skip


def pod(store: MemoryDatastore, name: str, host: str, owner_kind: str | None) -> None:
    metadata: dict[str, Any] = {"name": name, "namespace": "demo", "uid": f"uid-{name}"}
    if owner_kind:
        metadata["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner_kind, "name": "owner",
                                        "uid": "uid-owner", "controller": True}]  # fmt: skip
    store.put(keys.pod("demo", name), {
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"nodeName": host},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    })  # fmt: skip


@pytest.fixture
def store() -> MemoryDatastore:
    s = MemoryDatastore()
    for host in ("host1", "host2"):
        kubelet_ready(s, host, T0)
        renew(s, host, T0)
    pod(s, "web-1", "host1", "ReplicaSet")
    pod(s, "rc-1", "host1", "ReplicationController")
    pod(s, "ds-1", "host1", "DaemonSet")
    pod(s, "bare", "host1", None)
    pod(s, "web-2", "host2", "ReplicaSet")
    return s


def ready_of(store: MemoryDatastore, host: str) -> dict[str, Any]:
    node = store.get(keys.k8s_node(host))
    assert node is not None
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


def pods(store: MemoryDatastore) -> dict[str, dict[str, Any]]:
    return {keys.name_of(k): v for k, v in store.list(keys.PODS).items()}


def pod_ready(value: dict[str, Any]) -> str:
    return next(c["status"] for c in value["status"]["conditions"] if c["type"] == "Ready")


def test_stale_lease_unknown_after_grace_then_controller_pods_evicted(store: MemoryDatastore) -> None:
    controller = NodeLifecycle()
    renew(store, "host2", T0 + 4)  # host2's kubelet keeps renewing; host1's stopped at T0
    settle(store, [controller], T0 + 3.9)
    assert ready_of(store, "host1")["status"] == "True"
    assert controller.reconcile(store, "host1", T0 + 4.1) == pytest.approx(5.91)  # until the eviction
    ready = ready_of(store, "host1")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."
    )
    assert ready["lastHeartbeatTime"] == timestamp(T0) and ready["lastTransitionTime"] == timestamp(T0 + 4.1)
    memory = next(c for c in store.get(keys.k8s_node("host1"))["status"]["conditions"] if c["type"] == "MemoryPressure")  # type: ignore[index]
    assert memory["status"] == "Unknown"
    assert ready_of(store, "host2")["status"] == "True"
    # Its pods are not Ready any more (out of their Services' Endpoints), but still there.
    assert {n: pod_ready(v) for n, v in pods(store).items()} == {
        "web-1": "False", "rc-1": "False", "ds-1": "False", "bare": "False", "web-2": "True"
    }
    renew(store, "host2", T0 + 9)
    settle(store, [controller], T0 + 9.9)
    assert len(pods(store)) == 5
    # The timeout runs out: the controllers' pods go (but the DaemonSet's); the bare pod
    # and the DaemonSet's are marked NodeLost; host2's pod is not touched.
    revision_before = store.revision()
    settle(store, [controller], T0 + 10.1)
    assert sorted(pods(store)) == ["bare", "ds-1", "web-2"]
    for name in ("bare", "ds-1"):
        status = pods(store)[name]["status"]
        assert status["reason"] == "NodeLost"
        assert status["message"] == f"Node host1 which was running pod {name} is unresponsive"
    assert "reason" not in pods(store)["web-2"]["status"]
    # Nothing more to do: settling again writes nothing.
    written = store.revision()
    assert written > revision_before
    settle(store, [controller], T0 + 12)
    assert store.revision() == written


def test_a_renewed_lease_means_no_eviction_and_ready_left_to_the_kubelet(store: MemoryDatastore) -> None:
    controller = NodeLifecycle()
    settle(store, [controller], T0 + 5)
    assert ready_of(store, "host1")["status"] == "Unknown"
    renew(store, "host1", T0 + 8)  # the kubelets are back before the timeout
    renew(store, "host2", T0 + 8)
    written = store.revision()
    settle(store, [controller], T0 + 11)
    assert store.revision() == written  # Ready untouched: the kubelet writes it
    assert ready_of(store, "host1")["status"] == "Unknown"
    assert len(pods(store)) == 5
    for host in ("host1", "host2"):
        kubelet_ready(store, host, T0 + 11)
        renew(store, host, T0 + 11)
    settle(store, [controller], T0 + 30)  # the renewals stop again at T0 + 11
    assert ready_of(store, "host1")["status"] == "Unknown"
    assert sorted(pods(store)) == ["bare", "ds-1"]  # host2 went silent too


def test_eviction_timeout_is_an_option(store: MemoryDatastore) -> None:
    controller = build(pod_eviction_timeout=30, node_monitor_grace=2, unrelated="x")
    settle(store, [controller], T0 + 2.5)
    assert ready_of(store, "host1")["status"] == "Unknown"
    settle(store, [controller], T0 + 29)
    assert len(pods(store)) == 5
    settle(store, [controller], T0 + 31)
    assert sorted(pods(store)) == ["bare", "ds-1"]
    with pytest.raises(ValueError, match="pod_eviction_timeout"):
        build(pod_eviction_timeout=0)


def test_a_kubelet_reporting_not_ready_is_evicted_after_the_timeout(store: MemoryDatastore) -> None:
    kubelet_ready(store, "host2", T0, status="False")
    renew(store, "host2", T0 + 9)
    controller = NodeLifecycle()
    assert controller.reconcile(store, "host2", T0 + 9.5) == pytest.approx(0.51)
    assert "web-2" in pods(store)
    controller.reconcile(store, "host2", T0 + 10.1)
    assert "web-2" not in pods(store)
    assert ready_of(store, "host2")["status"] == "False"  # the kubelet's word, kept


def test_a_node_without_lease_falls_back_to_its_ready_heartbeat() -> None:
    store = MemoryDatastore()
    kubelet_ready(store, "host1", T0)
    controller = NodeLifecycle()
    assert controller.reconcile(store, "host1", T0 + 1) == pytest.approx(3.01)
    controller.reconcile(store, "host1", T0 + 4.5)
    assert ready_of(store, "host1")["status"] == "Unknown"


def test_keys_for_nodes_and_their_leases() -> None:
    controller = NodeLifecycle()
    assert list(controller.keys_for(WatchEvent("put", keys.node_lease("host1"), {}, 2))) == ["host1"]
    assert list(controller.keys_for(WatchEvent("delete", keys.k8s_node("host2"), None, 2))) == ["host2"]
    assert list(controller.keys_for(WatchEvent("put", keys.LEASES + "demo/x", {}, 2))) == []
