"""The checks a topology must pass beyond its schema: names, uniqueness, addresses, labels.

Pure: a dict in (as read from YAML, JSON or a Python topology), problems out. Every check
looks only at parts of the right type, so that a file with broken parts still gets every
other problem reported; the schema reports the broken parts themselves.
"""

from __future__ import annotations

import re
import shlex
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from testbed import addressing, naming
from testbed.topology.errors import FieldPath, Problem, show
from testbed.labels import label_key_problem, label_value_problem
from testbed.topology.schema import kind_of, schema_problems

MAX_HOST_NAME = 63  # a DNS label
DEFAULT_NAMESPACE = "default"

_DNS_LABEL_RULE = "lowercase letters, digits and '-', starting and ending with a letter or digit"
_DNS_SUBDOMAIN_RULE = (
    "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
)

_RESERVED_USES = {
    addressing.FABRIC.network_address: "the network address",
    addressing.FABRIC.broadcast_address: "the broadcast address",
    addressing.FABRIC_GATEWAY: "the fabric gateway and etcd",
    addressing.ROUTE_REFLECTOR: "the route reflector",
}


def check_topology(data: object) -> list[Problem]:
    """Every problem of a topology dict: schema first, then the semantic checks."""
    if data is None:
        return [Problem((), "the topology is empty; it needs at least 'hosts'")]
    problems = schema_problems(data)
    if not isinstance(data, dict):
        return problems
    problems += semantic_problems(data)
    if not problems:
        problems += _fabric_capacity_problems(data["hosts"])
    return problems


def semantic_problems(data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    hosts = data.get("hosts")
    host_names = _check_hosts(hosts, problems) if isinstance(hosts, list) else None
    _check_namespaces(data.get("namespaces"), problems)
    pods = data.get("pods")
    if isinstance(pods, list):
        check_pods(pods, host_names or None, problems)
    _check_manifests(data.get("manifests"), problems)
    return problems


MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def _check_manifests(manifests: object, problems: list[Problem]) -> None:
    """Manifest paths: each a .yaml/.yml/.json file, listed once (whether they exist is the
    loader's check: it knows the folder of the topology file)."""
    if not isinstance(manifests, list):
        return
    seen: set[str] = set()
    for i, entry in enumerate(manifests):
        if not isinstance(entry, str) or not entry:
            continue  # the schema says so
        if not entry.endswith(MANIFEST_SUFFIXES):
            problems.append(Problem(("manifests", i), f"{show(entry)} is not a .yaml, .yml or .json file"))
        elif entry in seen:
            problems.append(Problem(("manifests", i), f"{show(entry)} is listed twice"))
        seen.add(entry)


def _check_name(
    value: object, kind: str, pattern: re.Pattern[str], limit: int, rule: str
) -> str | None:
    if not isinstance(value, str):
        return None  # the schema says so
    if len(value) > limit:
        return f"{kind} {show(value)} is {len(value)} characters long; the limit is {limit}"
    if not pattern.fullmatch(value):
        return f"{show(value)} is not a valid {kind} ({rule})"
    return None


def host_name_problem(value: object) -> str | None:
    problem = _check_name(value, "host name", naming.HOST_NAME, MAX_HOST_NAME, _DNS_LABEL_RULE)
    if problem is None and value in naming.RESERVED_HOST_NAMES:
        reserved = ", ".join(sorted(naming.RESERVED_HOST_NAMES))
        return f"{value!r} is reserved for the lab's own nodes (reserved: {reserved})"
    return problem


def namespace_name_problem(value: object) -> str | None:
    return _check_name(
        value, "namespace name", naming.K8S_NAMESPACE, naming.MAX_K8S_NAMESPACE, _DNS_LABEL_RULE
    )


def pod_name_problem(value: object) -> str | None:
    return _check_name(value, "pod name", naming.K8S_NAME, naming.MAX_K8S_NAME, _DNS_SUBDOMAIN_RULE)


def _parse_ip(
    value: object, network: IPv4Network, what: str
) -> tuple[IPv4Address | None, str | None]:
    """(address, None) when ``value`` is an address inside ``network``, else (None, why not)."""
    if not isinstance(value, str):
        return None, None  # the schema says so
    try:
        ip = addressing.parse_ipv4(value)
    except addressing.AddressError as exc:
        return None, str(exc)
    if ip not in network:
        return None, f"{ip} is outside the {what} {network}"
    return ip, None


def _check_hosts(hosts: list[Any], problems: list[Problem]) -> list[str]:
    """Check every host; return the names of the hosts (as written) for pod references."""
    names: list[str] = []
    pinned: dict[IPv4Address, str] = {}
    for i, entry in enumerate(hosts):
        if isinstance(entry, str):
            name: object = entry
            name_path: FieldPath = ("hosts", i)
            ip_value: object = None
        elif isinstance(entry, dict):
            name = entry.get("name")
            name_path = ("hosts", i, "name")
            ip_value = entry.get("ip")
        else:
            continue
        if isinstance(name, str):
            problem = host_name_problem(name)
            if problem:
                problems.append(Problem(name_path, problem))
            if name in names:
                problems.append(Problem(name_path, f"duplicate host name {name!r}"))
            names.append(name)
        ip, problem = _parse_ip(ip_value, addressing.FABRIC, "host fabric")
        if problem:
            problems.append(Problem(("hosts", i, "ip"), problem))
        if ip is None:
            continue
        if ip in addressing.RESERVED_FABRIC:
            use = _RESERVED_USES.get(ip, "the lab")
            problems.append(Problem(("hosts", i, "ip"), f"{ip} is reserved for {use}"))
        elif ip in pinned:
            problems.append(
                Problem(("hosts", i, "ip"), f"{ip} is already pinned by host {pinned[ip]}")
            )
        else:
            pinned[ip] = name if isinstance(name, str) else f"hosts[{i}]"
    return list(dict.fromkeys(names))


def _check_labels(labels: object, path: FieldPath, problems: list[Problem]) -> None:
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        if not isinstance(key, str):
            problems.append(
                Problem(
                    path, f"label key {show(key)} must be a string, got {kind_of(key)} (quote it)"
                )
            )
            continue
        problem = label_key_problem(key)
        if problem is None and isinstance(value, str):
            problem = label_value_problem(key, value)
        if problem:
            problems.append(Problem(path, problem))


def _check_namespaces(namespaces: object, problems: list[Problem]) -> None:
    if isinstance(namespaces, dict):
        for name, body in namespaces.items():
            path: FieldPath = ("namespaces", name if isinstance(name, str) else show(name))
            if not isinstance(name, str):
                problems.append(
                    Problem(path, f"namespace names must be strings, got {kind_of(name)}")
                )
            else:
                problem = namespace_name_problem(name)
                if problem:
                    problems.append(Problem(path, problem))
            if isinstance(body, dict):
                _check_labels(body.get("labels"), (*path, "labels"), problems)
    elif isinstance(namespaces, list):
        seen: set[str] = set()
        for i, entry in enumerate(namespaces):
            if not isinstance(entry, dict):
                continue
            name = entry.get("name")
            problem = namespace_name_problem(name)
            if problem:
                problems.append(Problem(("namespaces", i, "name"), problem))
            if isinstance(name, str):
                if name in seen:
                    problems.append(
                        Problem(("namespaces", i, "name"), f"duplicate namespace {name!r}")
                    )
                seen.add(name)
            _check_labels(entry.get("labels"), ("namespaces", i, "labels"), problems)


def check_pods(pods: list[Any], host_names: list[str] | None, problems: list[Problem]) -> None:
    seen: set[tuple[str, str]] = set()
    pinned: dict[IPv4Address, str] = {}
    for i, pod in enumerate(pods):
        if not isinstance(pod, dict):
            continue
        name = pod.get("name")
        namespace = pod.get("namespace", DEFAULT_NAMESPACE)
        for field, problem in (
            ("name", pod_name_problem(name)),
            ("namespace", namespace_name_problem(namespace)),
        ):
            if problem:
                problems.append(Problem(("pods", i, field), problem))
        key = f"{namespace}/{name}"
        if isinstance(name, str) and isinstance(namespace, str):
            if (namespace, name) in seen:
                problems.append(Problem(("pods", i, "name"), f"duplicate pod {key}"))
            seen.add((namespace, name))
        host = pod.get("host")
        if isinstance(host, str) and host_names is not None and host not in host_names:
            known = ", ".join(host_names)
            problems.append(
                Problem(
                    ("pods", i, "host"), f"{host!r} is not a host of this topology (hosts: {known})"
                )
            )
        _check_labels(pod.get("labels"), ("pods", i, "labels"), problems)
        command = pod.get("command")
        if isinstance(command, str):
            try:
                shlex.split(command)
            except ValueError as exc:
                problems.append(
                    Problem(("pods", i, "command"), f"cannot split {show(command)}: {exc}")
                )
        _check_ports(pod.get("ports"), ("pods", i, "ports"), problems)
        ip, problem = _parse_ip(pod.get("ip"), addressing.POOL, "pod pool")
        if problem:
            problems.append(Problem(("pods", i, "ip"), problem))
        if ip is not None:
            if ip in pinned:
                problems.append(
                    Problem(("pods", i, "ip"), f"{ip} is already pinned by pod {pinned[ip]}")
                )
            else:
                pinned[ip] = key


def _check_ports(ports: object, path: FieldPath, problems: list[Problem]) -> None:
    """Port names unique within the pod, and each (protocol, port) listed once."""
    if not isinstance(ports, list):
        return
    names: set[str] = set()
    numbers: set[tuple[str, int]] = set()
    for j, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        name = port.get("name")
        if isinstance(name, str):
            if name in names:
                problems.append(Problem((*path, j, "name"), f"duplicate port name {name!r}"))
            names.add(name)
        number, protocol = port.get("containerPort"), port.get("protocol", "TCP")
        if isinstance(number, int) and isinstance(protocol, str):
            if (protocol, number) in numbers:
                problems.append(Problem((*path, j, "containerPort"), f"duplicate port {number}/{protocol}"))
            numbers.add((protocol, number))


def _fabric_capacity_problems(hosts: list[Any]) -> list[Problem]:
    """The hosts must fit in the fabric, pinned and automatic addresses together."""
    entries = [(h, None) if isinstance(h, str) else (h["name"], h.get("ip")) for h in hosts]
    try:
        addressing.assign_host_ips(entries)
    except addressing.AddressError as exc:
        return [Problem(("hosts",), str(exc))]
    return []
