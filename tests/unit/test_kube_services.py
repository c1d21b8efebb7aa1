"""v1 Service manifests: defaults, API-server errors, allocation, stored form, endpoints (as stored, and as kube-proxy reads them)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from testbed.datastore import keys
from testbed.datastore.memory import MemoryDatastore
from testbed.kube.endpoints import desired_endpoints, endpoints_by_service, ready_endpoints
from testbed.kube.errors import ManifestError
from testbed.kube.services import (
    ContainerPort,
    Endpoint,
    PodInfo,
    Service,
    ServicePort,
    allocate,
    keep_allocations,
    parse_service,
    service_from_dict,
    service_to_dict,
    store_value,
    used_allocations,
)

INVALID = 'The Service "web" is invalid: '
DECODING = 'Service in version "v1" cannot be handled as a Service: '


def manifest(spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", **metadata},
        "spec": spec if spec is not None else {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }


def problems(obj: dict[str, Any], namespace: str = "default") -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_service(obj, namespace)
    return info.value.lines


# --- parsing ----------------------------------------------------------------------------


def test_defaults_are_resolved_as_the_api_server_stores_them() -> None:
    service = parse_service(manifest(), "demo")
    assert service == Service(
        namespace="demo",
        name="web",
        type="ClusterIP",
        selector=(("app", "web"),),
        ports=(ServicePort(name="", protocol="TCP", port=80, target_port=80),),
    )
    assert service.port_name(service.ports[0]) == "demo/web"


def test_named_ports_target_ports_and_node_ports() -> None:
    spec = {
        "type": "NodePort",
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": "serve-80", "nodePort": 30080},
            {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353},
            {"name": "assoc", "protocol": "SCTP", "port": 9, "targetPort": 0},
        ],
    }
    service = parse_service(manifest(spec, namespace="x", labels={"tier": "front"}), "default")
    assert service.namespace == "x" and service.labels == (("tier", "front"),)
    assert service.ports == (
        ServicePort("http", "TCP", 80, "serve-80", 30080),
        ServicePort("dns", "UDP", 53, 5353),
        ServicePort("assoc", "SCTP", 9, 9),
    )
    assert service.port_name(service.ports[1]) == "x/web:dns"


def test_a_bad_port_is_worded_as_kubectl_shows_it() -> None:
    obj = manifest({"ports": [{"port": 0}]})
    assert problems(obj) == [f"{INVALID}spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"]


def test_every_problem_is_reported_at_once() -> None:
    obj = manifest({
        "type": "LoadBalancer",
        "selector": {"app": "a b"},
        "ports": [
            {"port": 80, "protocol": "ICMP", "nodePort": 30001},
            {"name": "http", "port": 70000, "targetPort": "Not_A_Name"},
            {"name": "http", "port": "81"},
        ],
        "fancy": True,
    })  # fmt: skip
    lines = problems(obj)
    assert f'{DECODING}strict decoding error: unknown field "spec.fancy"' in lines
    assert (
        f"{DECODING}json: cannot unmarshal string into Go struct field spec.ports[2].port of type int32" in lines
    )
    assert f'{INVALID}spec.type: Unsupported value: "LoadBalancer": supported values: "ClusterIP", "NodePort"' in lines
    assert f"{INVALID}spec.ports[0].name: Required value" in lines
    assert (
        f'{INVALID}spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"' in lines
    )
    assert f"{INVALID}spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'" not in lines
    assert f"{INVALID}spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive" in lines
    assert any(line.startswith(f'{INVALID}spec.ports[1].targetPort: Invalid value: "Not_A_Name": ') for line in lines)
    assert any(line.startswith(f'{INVALID}spec.selector: Invalid value: "a b": ') for line in lines)


def test_node_port_on_a_cluster_ip_service_and_duplicates() -> None:
    obj = manifest({"ports": [{"name": "a", "port": 80, "nodePort": 30001}, {"name": "a", "port": 80}]})
    lines = problems(obj)
    assert f"{INVALID}spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'" in lines
    assert f'{INVALID}spec.ports[1].name: Duplicate value: "a"' in lines
    assert f'{INVALID}spec.ports[1]: Duplicate value: {{"port": 80, "protocol": "TCP"}}' in lines


def test_names_are_dns_1035_labels_and_ports_are_required() -> None:
    lines = problems(manifest({"selector": {"app": "web"}}, name="1web"))
    assert lines[0].startswith('The Service "1web" is invalid: metadata.name: Invalid value: "1web": a DNS-1035 label')
    assert 'The Service "1web" is invalid: spec.ports: Required value' in lines
    # A headless service may have no ports.
    headless = parse_service(manifest({"clusterIP": "None", "selector": {"app": "web"}}), "default")
    assert headless.headless and headless.ports == ()


def test_type_meta_and_namespace_flag() -> None:
    assert problems({**manifest(), "apiVersion": "apps/v1"}) == ['no matches for kind "Service" in version "apps/v1"']
    with pytest.raises(ManifestError, match="You must pass '--namespace=x'"):
        parse_service(manifest(namespace="x"), "y", explicit_namespace=True)


def test_cluster_ip_fields() -> None:
    assert parse_service(manifest({"clusterIP": "10.96.0.10", "ports": [{"port": 53}]})).cluster_ip == "10.96.0.10"
    lines = problems(manifest({"clusterIP": "ten", "ports": [{"port": 53}]}))
    assert lines == [
        f'{INVALID}spec.clusterIPs[0]: Invalid value: "ten": must be a valid IP address, '
        "(e.g. 10.9.8.7 or 2001:db8::ffff)"
    ]
    lines = problems(manifest({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 53}]}))
    assert lines == [f"{INVALID}spec.clusterIPs[0]: Invalid value: \"None\": may not be 'None' for NodePort services"]
    assert problems(manifest({"externalIPs": ["1.2.3.4"], "ports": [{"port": 1}]})) == [
        f"{INVALID}spec.externalIPs: Forbidden: not supported by this lab"
    ]


# --- allocation ---------------------------------------------------------------------------


def test_lowest_free_cluster_ip_skips_the_reserved_ones() -> None:
    service = parse_service(manifest())
    assert allocate(service, set(), set()).cluster_ip == "10.96.0.2"  # .0 network, .1 kubernetes
    used = {f"10.96.0.{i}" for i in range(2, 10)}
    assert allocate(service, used, set()).cluster_ip == "10.96.0.11"  # .10 is the cluster DNS
    dns = parse_service(manifest({"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}))
    assert allocate(dns, used, set()).cluster_ip == "10.96.0.10"  # asked for by name


def test_requested_cluster_ip_out_of_range_or_taken() -> None:
    out = parse_service(manifest({"clusterIP": "10.0.0.1", "ports": [{"port": 1}]}))
    with pytest.raises(ManifestError) as info:
        allocate(out, set(), set())
    assert info.value.lines == [
        f'{INVALID}spec.clusterIPs: Invalid value: []string{{"10.0.0.1"}}: failed to allocate IP 10.0.0.1: '
        "the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16"
    ]
    taken = parse_service(manifest({"clusterIP": "10.96.0.7", "ports": [{"port": 1}]}))
    with pytest.raises(ManifestError, match="provided IP is already allocated"):
        allocate(taken, {"10.96.0.7"}, set())


def test_node_ports_lowest_free_and_requested_ones_checked() -> None:
    spec = {"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30000}]}
    service = allocate(parse_service(manifest(spec)), set(), {30001})
    assert [p.node_port for p in service.ports] == [30002, 30000]
    bad = {"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 80}, {"name": "b", "port": 1, "nodePort": 30005}]}
    with pytest.raises(ManifestError) as info:
        allocate(parse_service(manifest(bad)), set(), {30005})
    assert info.value.lines == [
        f"{INVALID}spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767",
        f"{INVALID}spec.ports[1].nodePort: Invalid value: 30005: provided port is already allocated",
    ]
    full = parse_service(manifest({"type": "NodePort", "ports": [{"port": 80}]}))
    with pytest.raises(ManifestError, match="failed to allocate a nodePort: range is full"):
        allocate(full, set(), set(range(30000, 32768)))


def test_an_update_keeps_its_allocations() -> None:
    spec = {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    first = allocate(parse_service(manifest(spec)), {"10.96.0.2"}, set())
    assert (first.cluster_ip, first.ports[0].node_port) == ("10.96.0.3", 30000)
    again = keep_allocations(parse_service(manifest(spec)), first)
    ips, ports = used_allocations([first], skip=("default", "web"))
    assert allocate(again, ips | {"10.96.0.2"}, ports) == first


# --- the stored object ------------------------------------------------------------------------


def test_stored_form_and_round_trip() -> None:
    spec = {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}
    service = allocate(parse_service(manifest(spec), "demo"), set(), set())
    stored = service_to_dict(service)
    assert stored == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {
            "clusterIP": "10.96.0.2",
            "clusterIPs": ["10.96.0.2"],
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"nodePort": 30000, "port": 80, "protocol": "TCP", "targetPort": "http"}],
            "selector": {"app": "web"},
            "sessionAffinity": "None",
            "type": "NodePort",
        },
        "status": {"loadBalancer": {}},
    }
    assert service_from_dict(copy.deepcopy(stored)) == service


def test_store_value_allocates_against_stored_and_pending_services() -> None:
    store = MemoryDatastore()
    other = allocate(parse_service(manifest(name="other"), "demo"), set(), set())
    store.put(keys.service("demo", "other"), service_to_dict(other))
    pending = {keys.service("demo", "third"): service_to_dict(
        allocate(parse_service(manifest(name="third"), "demo"), {"10.96.0.2"}, set()))}
    value = store_value(store, parse_service(manifest(), "demo"), None, 0.0, pending=pending)
    assert value["spec"]["clusterIP"] == "10.96.0.4"
    assert value["metadata"]["creationTimestamp"] == "1970-01-01T00:00:00Z"
    # Re-applying keeps the address; asking for another one is refused.
    assert store_value(store, parse_service(manifest(), "demo"), value, 5.0)["spec"]["clusterIP"] == "10.96.0.4"
    moved = parse_service(manifest({"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}), "demo")
    with pytest.raises(ManifestError, match="may not change once set"):
        store_value(store, moved, value, 5.0)


# --- endpoints: what the controller writes, and kube-proxy's reading of it ----------------------


def pod_record(name: str, ip: str, labels: dict[str, str], ports: list[dict[str, Any]] | None = None,
               namespace: str = "demo", phase: str = "Running", ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "uid": f"uid-{name}"},
        "spec": {"nodeName": "host1", "containers": [{"name": "c", "image": "agnhost", "ports": ports or []}]},
        "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


HTTP = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def through_endpoints(service: Service, pods: list[Any]) -> dict[str, tuple[Endpoint, ...]]:
    """What kube-proxy gets for ``service``: the Endpoints the controller would store for
    these pods, read back as kube-proxy reads them."""
    return ready_endpoints(service, desired_endpoints(service, pods))


def test_endpoints_follow_the_selector_in_kube_proxys_order() -> None:
    service = parse_service(manifest({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}), "demo")
    pods = [
        pod_record("a", "10.65.0.2", {"app": "web", "extra": "x"}),
        pod_record("b", "10.65.0.10", {"app": "web"}),
        pod_record("c", "10.65.0.3", {"app": "db"}),
        pod_record("d", "10.65.0.4", {"app": "web"}, namespace="other"),
        pod_record("e", "10.65.0.5", {"app": "web"}, phase="Pending", ready=False),
    ]
    assert through_endpoints(service, pods) == {"": (Endpoint("10.65.0.10", 8080), Endpoint("10.65.0.2", 8080))}
    subsets = desired_endpoints(service, pods)["subsets"]
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.65.0.5"]
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.65.0.2", "10.65.0.10"]  # by address


def test_named_target_ports_resolve_per_pod_and_skip_pods_without_them() -> None:
    spec = {"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": "http"},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "http"},
    ]}  # fmt: skip
    service = parse_service(manifest(spec), "demo")
    other_port = [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]
    pods: list[PodInfo | dict[str, Any]] = [
        pod_record("a", "10.65.0.2", {"app": "web"}, HTTP),
        PodInfo("demo", "b", "10.65.0.3", (("app", "web"),), (ContainerPort("http", 9090),)),
        pod_record("c", "10.65.0.4", {"app": "web"}),  # no such named port: left out
        pod_record("d", "10.65.0.5", {"app": "web"}, other_port),
    ]
    assert through_endpoints(service, pods) == {
        "http": (Endpoint("10.65.0.2", 8080), Endpoint("10.65.0.3", 9090), Endpoint("10.65.0.5", 9090)),
        "dns": (),  # the named port is TCP; a UDP service port does not match it
    }


def test_kube_proxy_reads_ports_by_name_and_protocol_and_only_ready_addresses() -> None:
    service = parse_service(manifest({"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}), "demo")
    stored = {"subsets": [
        {"addresses": [{"ip": "10.65.0.2"}], "notReadyAddresses": [{"ip": "10.65.0.3"}],
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "TCP"}]},
        {"addresses": [{"ip": "10.65.0.4"}], "ports": [{"name": "http", "port": 8081, "protocol": "TCP"}]},
    ]}  # fmt: skip
    assert ready_endpoints(service, stored) == {
        "http": (Endpoint("10.65.0.2", 8080), Endpoint("10.65.0.4", 8081)),
        "dns": (),  # a TCP port named dns is not the UDP service port
    }
    assert ready_endpoints(service, None) == {"http": (), "dns": ()}


def test_a_service_without_selector_has_no_endpoints() -> None:
    service = parse_service(manifest({"ports": [{"port": 80}]}), "demo")
    assert through_endpoints(service, [pod_record("a", "10.65.0.2", {"app": "web"})]) == {"": ()}
    assert PodInfo.from_record(pod_record("a", "10.65.0.2", {"app": "web"}, HTTP)) == PodInfo(
        "demo", "a", "10.65.0.2", (("app", "web"),), (ContainerPort("http", 8080, "TCP"),),
        ready=True, node="host1", uid="uid-a",
    )
    assert not PodInfo.from_record(pod_record("a", "10.65.0.2", {}, ready=False)).ready


def test_endpoints_by_service_matches_each_services_own_endpoints() -> None:
    services = [
        parse_service(manifest({"selector": {"app": "web", "tier": "a"}, "ports": [{"port": 80}]}, name="two"), "demo"),
        parse_service(manifest({"selector": {"app": "web"}, "ports": [{"port": 80}]}, name="one"), "demo"),
        parse_service(manifest({"ports": [{"port": 80}]}, name="none"), "demo"),
        parse_service(manifest({"selector": {"app": "web"}, "ports": [{"port": 80}]}, name="elsewhere"), "other"),
    ]
    pods = [
        pod_record("a", "10.65.0.2", {"app": "web", "tier": "a"}),
        pod_record("b", "10.65.0.3", {"app": "web", "tier": "b"}),
        pod_record("c", "10.65.0.4", {"app": "web"}, namespace="other"),
        pod_record("d", "10.65.0.5", {"tier": "a"}),
    ]
    stored = [desired_endpoints(s, pods) for s in services if s.selector]
    found = endpoints_by_service(services, stored)
    assert found == {(s.namespace, s.name): through_endpoints(s, pods) for s in services}
    assert found[("demo", "two")] == {"": (Endpoint("10.65.0.2", 80),)}
    assert found[("demo", "none")] == {"": ()}
    assert len(found[("demo", "one")][""]) == 2 and found[("other", "elsewhere")] == {"": (Endpoint("10.65.0.4", 80),)}
