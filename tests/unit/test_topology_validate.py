"""Each rule of topology validation, with its exact one-line message."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.topology import TopologyError, topology_from_dict

SOURCE = "topologies/x.yaml"


def problems(data: Any) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        topology_from_dict(data, SOURCE)
    return caught.value.problems


def only_problem(data: Any) -> str:
    lines = problems(data)
    assert len(lines) == 1, lines
    return lines[0]


def with_pods(*pods: dict[str, Any], hosts: list[Any] | None = None) -> dict[str, Any]:
    return {"hosts": hosts or ["host1", "host2"], "pods": list(pods)}


def test_error_is_a_value_error_joined_by_lines() -> None:
    error = TopologyError(["a: b: c", "d: e: f"])
    assert isinstance(error, ValueError)
    assert str(error) == "a: b: c\nd: e: f"
    assert error.problems == ["a: b: c", "d: e: f"]


def test_minimal_topology() -> None:
    topology = topology_from_dict({"hosts": ["host1"]}, SOURCE)
    assert topology.name == "x"
    assert topology.source == SOURCE
    assert topology.host_names() == ["host1"]
    assert topology.pods == ()


def test_pod_defaults_and_command_string() -> None:
    data = with_pods({"name": "p", "command": "sh -c 'sleep 1; echo done'"})
    pod = topology_from_dict(data, SOURCE).pods[0]
    assert (pod.namespace, pod.image, pod.host, pod.ip) == ("default", "busybox", None, None)
    assert pod.command == ("sh", "-c", "sleep 1; echo done")


# --- shape (JSON Schema) ---------------------------------------------------------------


def test_empty_file() -> None:
    assert (
        only_problem(None)
        == f"{SOURCE}: (top level): the topology is empty; it needs at least 'hosts'"
    )


def test_top_level_must_be_a_mapping() -> None:
    assert only_problem(["host1"]) == f"{SOURCE}: (top level): expected a mapping, got a list"


def test_hosts_required() -> None:
    assert only_problem({"name": "x"}) == f"{SOURCE}: (top level): missing required field 'hosts'"


def test_hosts_not_empty() -> None:
    assert only_problem({"hosts": []}) == f"{SOURCE}: hosts: must have at least 1 entry"


def test_unknown_top_level_field() -> None:
    assert only_problem({"hosts": ["h"], "pod": []}) == (
        f"{SOURCE}: (top level): unknown field 'pod' "
        "(allowed: name, options, hosts, namespaces, pods, manifests)"
    )


def test_unknown_host_field() -> None:
    assert only_problem({"hosts": [{"name": "h", "addr": "x"}]}) == (
        f"{SOURCE}: hosts[0]: unknown field 'addr' (allowed: name, ip)"
    )


def test_unknown_pod_field() -> None:
    assert only_problem(with_pods({"name": "p", "node": "host1"})) == (
        f"{SOURCE}: pods[0]: unknown field 'node' "
        "(allowed: name, namespace, labels, host, image, command, ip, ports)"
    )


def test_unknown_namespace_field() -> None:
    data = {"hosts": ["h"], "namespaces": {"demo": {"label": {}}}}
    assert (
        only_problem(data) == f"{SOURCE}: namespaces.demo: unknown field 'label' (allowed: labels)"
    )


def test_unknown_option() -> None:
    assert only_problem({"hosts": ["h"], "options": {"rr": True}}) == (
        f"{SOURCE}: options: unknown field 'rr' (allowed: route_reflector, bgp_hold_time, pod_eviction_timeout)"
    )


def test_option_type() -> None:
    assert only_problem({"hosts": ["h"], "options": {"route_reflector": "yes"}}) == (
        f"{SOURCE}: options.route_reflector: expected true or false, got a string 'yes'"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2, "2 is less than the minimum 3"),
        (65536, "65536 is more than the maximum 65535"),
        (True, "expected an integer, got a boolean True"),
    ],
)
def test_bgp_hold_time_bounds(value: object, message: str) -> None:
    data = {"hosts": ["h"], "options": {"bgp_hold_time": value}}
    assert only_problem(data) == f"{SOURCE}: options.bgp_hold_time: {message}"


def test_pod_name_required() -> None:
    assert (
        only_problem(with_pods({"namespace": "demo"}))
        == f"{SOURCE}: pods[0]: missing required field 'name'"
    )


def test_label_value_must_be_a_string() -> None:
    assert only_problem(with_pods({"name": "p", "labels": {"version": 2}})) == (
        f"{SOURCE}: pods[0].labels.version: expected a string, got an integer 2 (quote it)"
    )


def test_command_items_are_strings() -> None:
    assert only_problem(with_pods({"name": "p", "command": ["sleep", 5]})) == (
        f"{SOURCE}: pods[0].command[1]: expected a string, got an integer 5 (quote it)"
    )


def test_command_string_must_split() -> None:
    assert only_problem(with_pods({"name": "p", "command": "echo 'oops"})) == (
        f'{SOURCE}: pods[0].command: cannot split "echo \'oops": No closing quotation'
    )


def test_image_not_empty() -> None:
    assert (
        only_problem(with_pods({"name": "p", "image": ""}))
        == f"{SOURCE}: pods[0].image: must not be empty"
    )


# --- hosts ------------------------------------------------------------------------------


def test_duplicate_host_names() -> None:
    assert only_problem({"hosts": ["host1", {"name": "host1"}]}) == (
        f"{SOURCE}: hosts[1].name: duplicate host name 'host1'"
    )


def test_host_name_syntax() -> None:
    assert only_problem({"hosts": ["Host_1"]}) == (
        f"{SOURCE}: hosts[0]: 'Host_1' is not a valid host name "
        "(lowercase letters, digits and '-', starting and ending with a letter or digit)"
    )


def test_host_name_length() -> None:
    name = "h" * 64
    assert only_problem({"hosts": [{"name": name}]}) == (
        f"{SOURCE}: hosts[0].name: host name '{'h' * 56}... is 64 characters long; the limit is 63"
    )


@pytest.mark.parametrize("name", ["fabric", "rr"])
def test_reserved_host_names(name: str) -> None:
    assert only_problem({"hosts": [name]}) == (
        f"{SOURCE}: hosts[0]: '{name}' is reserved for the lab's own nodes (reserved: fabric, rr)"
    )


def test_host_ip_outside_fabric() -> None:
    assert only_problem({"hosts": [{"name": "h", "ip": "172.18.204.5"}]}) == (
        f"{SOURCE}: hosts[0].ip: 172.18.204.5 is outside the host fabric 172.18.203.0/24"
    )


@pytest.mark.parametrize(
    ("ip", "use"),
    [
        ("172.18.203.0", "the network address"),
        ("172.18.203.1", "the fabric gateway and etcd"),
        ("172.18.203.254", "the route reflector"),
        ("172.18.203.255", "the broadcast address"),
    ],
)
def test_host_ip_reserved(ip: str, use: str) -> None:
    assert (
        only_problem({"hosts": [{"name": "h", "ip": ip}]})
        == f"{SOURCE}: hosts[0].ip: {ip} is reserved for {use}"
    )


def test_host_ip_not_an_address() -> None:
    assert only_problem({"hosts": [{"name": "h", "ip": "172.18.203"}]}) == (
        f"{SOURCE}: hosts[0].ip: '172.18.203' is not an IPv4 address"
    )


def test_host_ip_unique() -> None:
    hosts = [{"name": "a", "ip": "172.18.203.20"}, {"name": "b", "ip": "172.18.203.20"}]
    assert (
        only_problem({"hosts": hosts})
        == f"{SOURCE}: hosts[1].ip: 172.18.203.20 is already pinned by host a"
    )


def test_pinned_host_ip_is_normalised() -> None:
    topology = topology_from_dict({"hosts": [{"name": "a", "ip": "172.18.203.126"}]}, SOURCE)
    assert topology.hosts[0].ip == "172.18.203.126"


def test_hosts_must_fit_in_the_fabric() -> None:
    hosts = [f"h{i}" for i in range(244)]
    assert (
        only_problem({"hosts": hosts})
        == f"{SOURCE}: hosts: host h243: no free address left in 172.18.203.0/24"
    )


# --- namespaces and pods -------------------------------------------------------------------


def test_namespace_name_in_mapping() -> None:
    assert only_problem({"hosts": ["h"], "namespaces": {"Demo": {}}}) == (
        f"{SOURCE}: namespaces.Demo: 'Demo' is not a valid namespace name "
        "(lowercase letters, digits and '-', starting and ending with a letter or digit)"
    )


def test_namespace_list_form_and_duplicates() -> None:
    data = {"hosts": ["h"], "namespaces": [{"name": "a"}, {"name": "a", "labels": {"x": "y"}}]}
    assert only_problem(data) == f"{SOURCE}: namespaces[1].name: duplicate namespace 'a'"


def test_namespace_name_length() -> None:
    assert only_problem(with_pods({"name": "p", "namespace": "n" * 64})) == (
        f"{SOURCE}: pods[0].namespace: namespace name '{'n' * 56}... "
        "is 64 characters long; the limit is 63"
    )


def test_pod_name_syntax() -> None:
    assert only_problem(with_pods({"name": "pod_a"})) == (
        f"{SOURCE}: pods[0].name: 'pod_a' is not a valid pod name "
        "(lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
    )


def test_pod_name_may_have_dots_and_be_long() -> None:
    name = "a." * 126 + "a"  # 253 characters
    assert topology_from_dict(with_pods({"name": name}), SOURCE).pods[0].name == name
    assert only_problem(with_pods({"name": name + "a"})).endswith(
        "is 254 characters long; the limit is 253"
    )


def test_pods_unique_per_namespace() -> None:
    data = with_pods(
        {"name": "p"}, {"name": "p", "namespace": "other"}, {"name": "p", "namespace": "default"}
    )
    assert only_problem(data) == f"{SOURCE}: pods[2].name: duplicate pod default/p"


def test_pod_host_must_be_declared() -> None:
    data = with_pods({"name": "a"}, {"name": "b"}, {"name": "c", "host": "host9"})
    assert only_problem(data) == (
        f"{SOURCE}: pods[2].host: 'host9' is not a host of this topology (hosts: host1, host2)"
    )


def test_undeclared_pod_namespace_is_fine() -> None:
    topology = topology_from_dict(with_pods({"name": "p", "namespace": "elsewhere"}), SOURCE)
    assert topology.namespaces == ()
    assert topology.pods[0].namespace == "elsewhere"


def test_pod_ip_outside_pool() -> None:
    assert only_problem(with_pods({"name": "p", "ip": "10.66.0.1"})) == (
        f"{SOURCE}: pods[0].ip: 10.66.0.1 is outside the pod pool 10.65.0.0/16"
    )


def test_pod_ip_unique() -> None:
    data = with_pods(
        {"name": "a", "ip": "10.65.0.5"}, {"name": "b", "namespace": "n", "ip": "10.65.0.5"}
    )
    assert (
        only_problem(data) == f"{SOURCE}: pods[1].ip: 10.65.0.5 is already pinned by pod default/a"
    )


# --- several problems ------------------------------------------------------------------------


def test_every_problem_is_reported_in_file_order() -> None:
    data = {
        "pods": [{"name": "a", "host": "nowhere"}, {"name": "B"}],
        "hosts": ["h1", "h1"],
        "options": {"bgp_hold_time": 1},
    }
    assert problems(data) == [
        f"{SOURCE}: options.bgp_hold_time: 1 is less than the minimum 3",
        f"{SOURCE}: hosts[1]: duplicate host name 'h1'",
        f"{SOURCE}: pods[0].host: 'nowhere' is not a host of this topology (hosts: h1)",
        f"{SOURCE}: pods[1].name: 'B' is not a valid pod name "
        "(lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
    ]


def test_broken_parts_do_not_hide_other_problems() -> None:
    data = {"hosts": "host1", "pods": [7, {"name": "ok", "ip": "1.2.3.4"}]}
    assert problems(data) == [
        f"{SOURCE}: hosts: expected a list, got a string 'host1'",
        f"{SOURCE}: pods[0]: expected a mapping, got an integer 7",
        f"{SOURCE}: pods[1].ip: 1.2.3.4 is outside the pod pool 10.65.0.0/16",
    ]
