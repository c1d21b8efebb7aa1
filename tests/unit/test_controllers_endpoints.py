"""The endpoints and EndpointSlice controllers over the in-memory store: what Services
with a selector get from the pods they select, written only when it changes, gone with
the Service; and kube-proxy's rules rendered from the Endpoints they write."""

from __future__ import annotations

import random

import pytest
from typing import Any

from agents.kubeproxy import desired_rules
from testbed.controllers.base import settle
from testbed.controllers.endpoints import EndpointsController, build, reconcile_all
from testbed.datastore import keys
from testbed.datastore.memory import MemoryDatastore
from testbed.kube.endpoints import MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL

NOW = 1_700_000_000.0
HTTP = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def service(name: str = "web", ports: list[dict[str, Any]] | None = None, selector: dict[str, str] | None = None,
            namespace: str = "demo", uid: str = "svc-uid-1") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "ClusterIP", "clusterIP": "10.96.0.2", "clusterIPs": ["10.96.0.2"],
        "ports": ports if ports is not None else [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
    }  # fmt: skip
    if selector != {}:
        spec["selector"] = selector or {"app": "web"}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "labels": {"tier": "front"}},
            "spec": spec}  # fmt: skip


def pod(name: str, ip: str | None, ready: bool = True, ports: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None, namespace: str = "demo", terminating: bool = False,
        phase: str = "Running", node: str = "host1") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                                "labels": labels or {"app": "web"}}
    if terminating:
        metadata["deletionTimestamp"] = "2023-11-14T22:13:20Z"
        metadata["deletionGracePeriodSeconds"] = 30
    status: dict[str, Any] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2023-11-14T22:13:20Z"}]}
    if ip:
        status["podIP"] = ip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "agnhost", "ports": ports or []}]},
            "status": status}  # fmt: skip


def store_with(*objects: dict[str, Any]) -> MemoryDatastore:
    store = MemoryDatastore()
    for obj in objects:
        put(store, obj)
    return store


def put(store: MemoryDatastore, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    key = (keys.service if obj["kind"] == "Service" else keys.pod)(meta["namespace"], meta["name"])
    store.put(key, obj)


def controller() -> EndpointsController:
    return EndpointsController(random.Random(7))


def slices(store: MemoryDatastore, namespace: str = "demo") -> dict[str, dict[str, Any]]:
    return store.list(keys.endpoint_slices_in(namespace))


def addresses(store: MemoryDatastore, name: str = "web") -> tuple[list[str], list[str]]:
    eps = store.get(keys.endpoints("demo", name))
    assert eps is not None
    subsets = eps.get("subsets") or []
    return ([a["ip"] for s in subsets for a in s.get("addresses", [])],
            [a["ip"] for s in subsets for a in s.get("notReadyAddresses", [])])  # fmt: skip


def test_ready_not_ready_and_terminating_pods() -> None:
    store = store_with(
        service(),
        pod("a", "10.65.0.10"),
        pod("b", "10.65.0.2", ready=False),
        pod("c", "10.65.0.3", terminating=True),
        pod("d", None, ready=False),  # no address yet: in neither
        pod("e", "10.65.0.5", phase="Succeeded", ready=False),  # done: in neither
        pod("f", "10.65.0.6", labels={"app": "db"}),  # not selected
        pod("g", "10.65.0.7", namespace="other"),  # another namespace
    )
    settle(store, [controller()], NOW)
    eps = store.get(keys.endpoints("demo", "web"))
    assert eps is not None
    assert eps["subsets"] == [{
        "addresses": [{"ip": "10.65.0.10", "nodeName": "host1",
                       "targetRef": {"kind": "Pod", "namespace": "demo", "name": "a", "uid": "uid-a"}}],
        "notReadyAddresses": [{"ip": "10.65.0.2", "nodeName": "host1",
                               "targetRef": {"kind": "Pod", "namespace": "demo", "name": "b", "uid": "uid-b"}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }]  # fmt: skip
    assert eps["metadata"]["labels"] == {"tier": "front"} and eps["metadata"]["uid"]
    assert eps["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    [(key, slice_)] = slices(store).items()
    assert key.startswith(keys.ENDPOINT_SLICES + "demo/web-") and len(key.rsplit("-", 1)[1]) == 5
    assert slice_["metadata"]["labels"] == {"tier": "front", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: MANAGED_BY}
    assert slice_["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                      "uid": "svc-uid-1", "controller": True,
                                                      "blockOwnerDeletion": True}]  # fmt: skip
    assert slice_["addressType"] == "IPv4" and slice_["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
    conditions = {e["addresses"][0]: e["conditions"] for e in slice_["endpoints"]}
    assert conditions == {
        "10.65.0.2": {"ready": False, "serving": False, "terminating": False},
        "10.65.0.3": {"ready": False, "serving": True, "terminating": True},
        "10.65.0.10": {"ready": True, "serving": True, "terminating": False},
    }
    assert [e["addresses"][0] for e in slice_["endpoints"]] == ["10.65.0.2", "10.65.0.3", "10.65.0.10"]


def test_named_target_ports_resolve_per_pod_into_subsets_and_slices() -> None:
    store = store_with(
        service(ports=[{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"},
                       {"name": "admin", "port": 81, "targetPort": 9000, "protocol": "TCP"}]),
        pod("a", "10.65.0.2", ports=HTTP),
        pod("b", "10.65.0.3", ports=[{"name": "http", "containerPort": 9090, "protocol": "TCP"}]),
        pod("c", "10.65.0.4"),  # no port named http: serves only the numbered one
    )  # fmt: skip
    settle(store, [controller()], NOW)
    eps = store.get(keys.endpoints("demo", "web"))
    assert eps is not None
    found = [([a["ip"] for a in s["addresses"]], s["ports"]) for s in eps["subsets"]]
    assert sorted(found) == sorted([
        (["10.65.0.2"], [{"name": "web", "port": 8080, "protocol": "TCP"}, {"name": "admin", "port": 9000, "protocol": "TCP"}]),
        (["10.65.0.3"], [{"name": "web", "port": 9090, "protocol": "TCP"}, {"name": "admin", "port": 9000, "protocol": "TCP"}]),
        (["10.65.0.4"], [{"name": "admin", "port": 9000, "protocol": "TCP"}]),
    ])  # fmt: skip
    by_ports = {tuple(p["port"] for p in s["ports"]): [e["addresses"][0] for e in s["endpoints"]]
                for s in slices(store).values()}  # fmt: skip
    assert by_ports == {(8080, 9000): ["10.65.0.2"], (9090, 9000): ["10.65.0.3"], (9000,): ["10.65.0.4"]}
    # kube-proxy spreads each service port over the pods that serve it, at their own port.
    nat, _ = desired_rules([store.get(keys.service("demo", "web"))], store.list(keys.ENDPOINTS).values())
    dnat = sorted(line.rsplit(" ", 1)[1] for line in nat.splitlines() if "DNAT" in line)
    assert dnat == ["10.65.0.2:8080", "10.65.0.2:9000", "10.65.0.3:9000", "10.65.0.3:9090", "10.65.0.4:9000"]


def test_writes_only_what_changed() -> None:
    store = store_with(service(), pod("a", "10.65.0.2"), pod("b", "10.65.0.3", ready=False))
    settle(store, [controller()], NOW)
    written = store.revision()
    # A pod status write that changes nothing the endpoints show: nothing written.
    changed = pod("a", "10.65.0.2")
    changed["status"]["startTime"] = "2023-11-14T22:13:21Z"
    put(store, changed)
    after_pod = store.revision()
    assert settle(store, [controller()], NOW + 5) >= 1
    assert store.revision() == after_pod > written
    # b becomes ready: the Endpoints and the slice are rewritten, and only they.
    put(store, pod("b", "10.65.0.3"))
    before = store.revision()
    events: list[str] = []
    cancel = store.watch_prefix("/", lambda e: events.append(e.key))
    settle(store, [controller()], NOW + 10)
    cancel()
    assert sorted(events) == sorted([keys.endpoints("demo", "web"), *slices(store)])
    assert store.revision() == before + 1  # one transaction
    assert addresses(store) == (["10.65.0.2", "10.65.0.3"], [])


def test_service_deleted_takes_its_endpoints_and_slices() -> None:
    store = store_with(service(), service("other"), pod("a", "10.65.0.2"))
    settle(store, [controller()], NOW)
    assert len(slices(store)) == 2
    store.delete(keys.service("demo", "web"))
    settle(store, [controller()], NOW)
    assert store.get(keys.endpoints("demo", "web")) is None
    assert [s["metadata"]["labels"][SERVICE_NAME_LABEL] for s in slices(store).values()] == ["other"]
    assert store.get(keys.endpoints("demo", "other")) is not None


def test_no_pods_means_empty_endpoints_and_a_placeholder_slice() -> None:
    store = store_with(service())
    settle(store, [controller()], NOW)
    eps = store.get(keys.endpoints("demo", "web"))
    assert eps is not None and "subsets" not in eps
    [slice_] = slices(store).values()
    assert slice_["endpoints"] == [] and "ports" not in slice_
    # The first pod fills the placeholder rather than adding a slice.
    put(store, pod("a", "10.65.0.2"))
    settle(store, [controller()], NOW)
    assert [[e["addresses"] for e in s["endpoints"]] for s in slices(store).values()] == [[["10.65.0.2"]]]


def test_selector_less_services_and_unmanaged_slices_are_left_alone() -> None:
    store = store_with(service(selector={}), pod("a", "10.65.0.2"))
    mine = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "demo"},
            "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 8080, "protocol": "TCP"}]}]}
    foreign = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-manual", "namespace": "demo",
                            "labels": {SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: "someone"}},
               "addressType": "IPv4", "endpoints": []}  # fmt: skip
    store.put(keys.endpoints("demo", "web"), mine)
    store.put(keys.endpoint_slice("demo", "web-manual"), foreign)
    settle(store, [controller()], NOW)
    assert store.get(keys.endpoints("demo", "web")) == mine
    assert slices(store) == {keys.endpoint_slice("demo", "web-manual"): foreign}


def test_a_hand_edit_is_put_back_and_a_recreated_service_gets_new_slices() -> None:
    store = store_with(service(), pod("a", "10.65.0.2"))
    settle(store, [controller()], NOW)
    eps = store.get(keys.endpoints("demo", "web"))
    assert eps is not None
    eps["subsets"] = []
    store.put(keys.endpoints("demo", "web"), eps)
    settle(store, [controller()], NOW)
    assert addresses(store) == (["10.65.0.2"], [])
    [old] = slices(store)
    put(store, service(uid="svc-uid-2"))
    settle(store, [controller()], NOW)
    [(new, value)] = slices(store).items()
    assert new != old and value["metadata"]["ownerReferences"][0]["uid"] == "svc-uid-2"


def test_a_lost_race_is_read_again() -> None:
    store = store_with(service(), pod("a", "10.65.0.2"))
    real_commit = store.commit
    raced = []

    def racing_commit(puts: Any, deletes: Any = (), expect: Any = None) -> bool:
        if not raced and keys.endpoints("demo", "web") in puts:
            raced.append(True)  # another writer gets there first, with a stale object
            store.put(keys.endpoints("demo", "web"), {"kind": "Endpoints", "metadata": {"name": "web"}})
        return real_commit(puts, deletes, expect)

    store.commit = racing_commit  # type: ignore[method-assign]
    assert controller().reconcile(store, keys.service("demo", "web"), NOW) is None
    assert raced and addresses(store) == (["10.65.0.2"], [])


def test_keys_for_maps_pods_to_their_namespace_and_objects_to_their_service() -> None:
    from testbed.datastore.base import WatchEvent

    c = build(unknown_option=1)
    assert list(c.keys_for(WatchEvent("put", keys.pod("demo", "a"), {}, 2))) == ["ns:demo"]
    assert list(c.keys_for(WatchEvent("delete", keys.endpoints("demo", "web"), None, 2))) == [keys.service("demo", "web")]
    assert list(c.keys_for(WatchEvent("delete", keys.endpoint_slice("demo", "web-abcde"), None, 2))) == ["ns:demo"]
    assert list(c.keys_for(WatchEvent("put", keys.service("demo", "web"), {}, 2))) == [keys.service("demo", "web")]


def test_reconcile_all_is_one_pass_for_callers_without_a_manager() -> None:
    store = store_with(service(), service("db", namespace="other", selector={"app": "db"}),
                       pod("a", "10.65.0.2"), pod("b", "10.65.0.9", labels={"app": "db"}, namespace="other"))
    assert reconcile_all(store, NOW) == 2
    assert addresses(store) == (["10.65.0.2"], [])
    other = store.get(keys.endpoints("other", "db"))
    assert other is not None and other["subsets"][0]["addresses"][0]["ip"] == "10.65.0.9"


def test_a_large_service_is_cut_into_slices_of_100_and_written_key_by_key_past_etcds_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import testbed.controllers.endpoints as module

    monkeypatch.setattr(module, "MAX_TXN_OPS", 4)  # 3 puts + 3 expects do not fit: one commit per key
    store = store_with(service(), *(pod(f"p{i}", f"10.65.{i // 250}.{i % 250 + 1}") for i in range(150)))
    settle(store, [controller()], NOW)
    sizes = sorted(len(s["endpoints"]) for s in slices(store).values())
    assert sizes == [50, 100]
    assert len(addresses(store)[0]) == 150
    # Nothing left to write.
    revision = store.revision()
    settle(store, [controller()], NOW)
    assert store.revision() == revision


def test_a_service_stored_without_uid_gets_slices_with_no_owner_uid() -> None:
    """An empty uid would be no reference at all; the garbage collector skips a reference
    without one rather than taking the Service for gone."""
    no_uid = service()
    del no_uid["metadata"]["uid"]
    store = store_with(no_uid, pod("a", "10.65.0.2"))
    settle(store, [controller()], NOW)
    [slice_] = slices(store).values()
    assert slice_["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Service", "name": "web", "controller": True, "blockOwnerDeletion": True}
    ]
    revision = store.revision()
    settle(store, [controller()], NOW)  # and it stays: the slice is the Service's all the same
    assert store.revision() == revision
