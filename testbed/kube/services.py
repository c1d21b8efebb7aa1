"""v1 Service: manifest <-> ``Service``, ClusterIP and NodePort allocation, pod selection.

``parse_service`` decodes strictly and validates as the API server does (every problem at
once, one kubectl-like line each); ``allocate`` gives a ClusterIP from the service CIDR and
NodePorts from 30000-32767, lowest free first so that tests can predict them;
``service_to_dict`` is the object as the API server stores it and ``service_from_dict``
reads it back. ``PodInfo``, ``selects`` and ``target_port_of`` are what a Service's
endpoints are made of: the stored Endpoints and EndpointSlices (``testbed.kube.endpoints``,
written by the controller manager's endpoints controller), which kube-proxy reads.

Only ``store_value`` touches a store (it reads the allocations already made); the rest is
pure. kube-proxy's rules are rendered from these in ``agents.kubeproxy``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

from testbed.addressing import CLUSTER_DNS, NODE_PORTS, SERVICE_CIDR
from testbed.datastore import keys
from testbed.datastore.base import Datastore
from testbed.kube.errors import (
    FieldReport,
    ManifestError,
    check_type_meta,
    dns_label_problems,
    port_name_problems,
    show_value,
)
from testbed.kube.policy import METADATA_FIELDS
from testbed.model.policy import Protocol

KIND = "Service"
API_VERSION = "v1"
ServiceType = Literal["ClusterIP", "NodePort"]
TYPES: tuple[ServiceType, ...] = ("ClusterIP", "NodePort")
PROTOCOLS: tuple[Protocol, ...] = ("SCTP", "TCP", "UDP")
HEADLESS = "None"  # spec.clusterIP of a headless service
# The first address is the `kubernetes` service's, 10.96.0.10 the cluster DNS: only a
# service that asks for one of them by name gets it.
RESERVED_CLUSTER_IPS = frozenset({SERVICE_CIDR.network_address + 1, CLUSTER_DNS})

SPEC_FIELDS = (
    "type", "selector", "ports", "clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy",
    "sessionAffinity", "internalTrafficPolicy", "externalTrafficPolicy",
)  # fmt: skip
# Service fields Kubernetes knows and this lab does not implement: refused when set.
UNSUPPORTED_SPEC_FIELDS = (
    "externalIPs", "externalName", "loadBalancerIP", "loadBalancerSourceRanges",
    "loadBalancerClass", "allocateLoadBalancerNodePorts", "healthCheckNodePort",
    "publishNotReadyAddresses", "sessionAffinityConfig", "trafficDistribution",
)  # fmt: skip
PORT_FIELDS = ("name", "protocol", "appProtocol", "port", "targetPort", "nodePort")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)


@dataclass(frozen=True)
class ServicePort:
    name: str  # "" only when it is the service's single port
    protocol: Protocol
    port: int
    target_port: int | str  # a number, or the name of a container port
    node_port: int | None = None  # NodePort services, once allocated


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: ServiceType = "ClusterIP"
    selector: tuple[tuple[str, str], ...] = ()  # sorted; () = endpoints are not managed
    ports: tuple[ServicePort, ...] = ()
    cluster_ip: str | None = None  # None: not allocated yet; HEADLESS: no virtual IP
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def headless(self) -> bool:
        return self.cluster_ip == HEADLESS

    def port_name(self, port: ServicePort) -> str:
        """kube-proxy's ServicePortName: ``ns/svc:port``, or ``ns/svc`` for an unnamed port."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{port.name}" if port.name else base


class Endpoint(NamedTuple):
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


# --- parsing -------------------------------------------------------------------------


def parse_service(
    obj: Mapping[str, Any], default_namespace: str = "default", *, explicit_namespace: bool = False
) -> Service:
    """The Service a manifest describes, or ManifestError with one line per problem.

    As for NetworkPolicy: ``default_namespace`` when the manifest names none, and with
    ``explicit_namespace`` (kubectl's ``-n``) a manifest naming another one is refused.
    Nothing is allocated here: ``allocate`` does that against what the store holds.
    """
    if not isinstance(obj, Mapping):
        raise ManifestError([f"a {KIND} manifest must be an object, not {json.dumps(obj)}"])
    check_type_meta(obj, API_VERSION, KIND)
    rep = FieldReport(KIND)
    top = rep.mapping(obj, "", ("apiVersion", "kind", "metadata", "spec", "status")) or {}
    name, namespace, labels = _parse_metadata(rep, top.get("metadata"))
    if namespace and explicit_namespace and namespace != default_namespace:
        rep.other(
            f"the namespace from the provided object {json.dumps(namespace)} does not match "
            f"the namespace {json.dumps(default_namespace)}. "
            f"You must pass '--namespace={namespace}' to perform this operation."
        )
    spec = rep.mapping(top.get("spec"), "spec", SPEC_FIELDS + UNSUPPORTED_SPEC_FIELDS) or {}
    for field in UNSUPPORTED_SPEC_FIELDS:
        if spec.get(field) not in (None, False, "", [], {}):
            rep.forbidden(f"spec.{field}", "not supported by this lab")
    kind = _parse_type(rep, spec.get("type"))
    cluster_ip = _parse_cluster_ip(rep, spec.get("clusterIP"), spec.get("clusterIPs"), kind)
    _parse_fixed_choices(rep, spec)
    selector = _parse_selector(rep, spec.get("selector"))
    ports = _parse_ports(rep, spec.get("ports"), kind, headless=cluster_ip == HEADLESS)
    rep.raise_if_any()
    return Service(
        namespace=namespace or default_namespace,
        name=name,
        type=kind or "ClusterIP",
        selector=selector,
        ports=ports,
        cluster_ip=cluster_ip,
        labels=labels,
    )


def dns1035_label_problems(text: str) -> list[str]:
    """Service names are DNS-1035 labels: they become DNS names and must start with a letter."""
    problems = []
    if len(text) > 63:
        problems.append("must be no more than 63 characters")
    if not _DNS1035_LABEL.fullmatch(text):
        problems.append(_DNS1035)
    return problems


def _parse_metadata(rep: FieldReport, raw: object) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    meta = rep.mapping(raw, "metadata", METADATA_FIELDS) or {}
    name = rep.string(meta.get("name"), "metadata.name") or ""
    namespace = rep.string(meta.get("namespace"), "metadata.namespace") or ""
    rep.name = name
    if not name:
        rep.required("metadata.name", "name or generateName is required")
    for problem in dns1035_label_problems(name) if name else []:
        rep.invalid("metadata.name", name, problem)
    for problem in dns_label_problems(namespace) if namespace else []:
        rep.invalid("metadata.namespace", namespace, problem)
    labels = rep.labels(meta.get("labels"), "metadata.labels")
    rep.string_map(meta.get("annotations"), "metadata.annotations")
    return name, namespace, tuple(sorted(labels.items()))


def _parse_type(rep: FieldReport, raw: object) -> ServiceType | None:
    """The type; None when it is one the lab does not implement (reported)."""
    text = rep.string(raw, "spec.type")
    if text is None or text == "":
        return "ClusterIP"
    for kind in TYPES:
        if text == kind:
            return kind
    rep.unsupported("spec.type", text, TYPES)
    return None


def _parse_cluster_ip(rep: FieldReport, raw: object, raw_list: object, kind: ServiceType | None) -> str | None:
    ip = rep.string(raw, "spec.clusterIP") or None
    items = rep.sequence(raw_list, "spec.clusterIPs")
    listed = [rep.string(item, f"spec.clusterIPs[{i}]") for i, item in enumerate(items)]
    if len(listed) > 1:
        rep.invalid("spec.clusterIPs", listed, "may hold only one address: the lab's services are IPv4 single-stack")
    first = listed[0] if listed else None
    if ip and first and first != ip:
        rep.invalid("spec.clusterIPs[0]", first, "must match `clusterIP` when both are set")
    ip = ip or first
    if ip is None or ip == HEADLESS:
        if ip == HEADLESS and kind == "NodePort":
            rep.invalid("spec.clusterIPs[0]", ip, "may not be 'None' for NodePort services")
        return ip
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        rep.invalid("spec.clusterIPs[0]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
        return None
    return ip


def _parse_fixed_choices(rep: FieldReport, spec: Mapping[str, Any]) -> None:
    """Fields `get -o yaml` shows that the lab has one meaning for (single-stack IPv4,
    no session affinity, cluster-wide traffic policies): accepted when they say so."""
    for field, supported in (
        ("sessionAffinity", ("None",)),
        ("internalTrafficPolicy", ("Cluster",)),
        ("externalTrafficPolicy", ("Cluster",)),
    ):
        value = rep.string(spec.get(field), f"spec.{field}")
        if value and value not in supported:
            rep.unsupported(f"spec.{field}", value, supported)
    policy = rep.string(spec.get("ipFamilyPolicy"), "spec.ipFamilyPolicy")
    if policy == "RequireDualStack":
        rep.invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services")
    elif policy and policy not in ("SingleStack", "PreferDualStack"):
        rep.unsupported("spec.ipFamilyPolicy", policy, ("PreferDualStack", "RequireDualStack", "SingleStack"))
    for i, family in enumerate(rep.sequence(spec.get("ipFamilies"), "spec.ipFamilies")):
        text = rep.string(family, f"spec.ipFamilies[{i}]")
        if text is not None and text != "IPv4":
            rep.unsupported(f"spec.ipFamilies[{i}]", text, ("IPv4",))


def _parse_selector(rep: FieldReport, raw: object) -> tuple[tuple[str, str], ...]:
    selector = rep.labels(raw, "spec.selector")
    return tuple(sorted(selector.items()))


def _parse_ports(rep: FieldReport, raw: object, kind: ServiceType | None, *, headless: bool) -> tuple[ServicePort, ...]:
    items = rep.sequence(raw, "spec.ports")
    if not items and not headless:
        rep.required("spec.ports")
    ports: list[ServicePort] = []
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, item in enumerate(items):
        path = f"spec.ports[{i}]"
        port = _parse_port(rep, item, path, kind, need_name=len(items) > 1)
        if port is None:
            continue
        if port.name:
            if port.name in names:
                _duplicate(rep, f"{path}.name", port.name)
            names.add(port.name)
        if (port.port, port.protocol) in seen:
            _duplicate(rep, path, {"port": port.port, "protocol": port.protocol})
        seen.add((port.port, port.protocol))
        if port.node_port is not None:
            if (port.node_port, port.protocol) in node_ports:
                _duplicate(rep, f"{path}.nodePort", port.node_port)
            node_ports.add((port.node_port, port.protocol))
        ports.append(port)
    return tuple(ports)


def _duplicate(rep: FieldReport, path: str, value: object) -> None:
    rep.other(f"The {KIND} {json.dumps(rep.name)} is invalid: {path}: Duplicate value: {show_value(value)}")


def _int_field(rep: FieldReport, fields: Mapping[str, Any], key: str, path: str) -> int | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        rep.wrong_type(f"{path}.{key}", value, "int32")
        return None
    return value


def _parse_port(
    rep: FieldReport, raw: object, path: str, kind: ServiceType | None, *, need_name: bool
) -> ServicePort | None:
    fields = rep.mapping(raw, path, PORT_FIELDS)
    if fields is None:
        return None
    name = rep.string(fields.get("name"), f"{path}.name") or ""
    if not name and need_name:
        rep.required(f"{path}.name")
    for problem in dns_label_problems(name) if name else []:
        rep.invalid(f"{path}.name", name, problem)
    protocol = rep.string(fields.get("protocol"), f"{path}.protocol") or "TCP"
    if protocol not in PROTOCOLS:
        rep.unsupported(f"{path}.protocol", protocol, PROTOCOLS)
        protocol = "TCP"
    rep.string(fields.get("appProtocol"), f"{path}.appProtocol")
    number = _int_field(rep, fields, "port", path)
    if number is None and "port" not in fields:
        number = 0
    if number is not None and not 1 <= number <= 65535:
        rep.invalid(f"{path}.port", number, "must be between 1 and 65535, inclusive")
    target = _parse_target_port(rep, fields.get("targetPort"), f"{path}.targetPort")
    node_port = _int_field(rep, fields, "nodePort", path)
    if node_port == 0:
        node_port = None
    if node_port is not None and kind == "ClusterIP":
        rep.forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'")
    if number is None:
        return None
    proto: Protocol = protocol  # type: ignore[assignment]  # checked against PROTOCOLS above
    return ServicePort(
        name=name, protocol=proto, port=number, target_port=target if target else number, node_port=node_port
    )


def _parse_target_port(rep: FieldReport, value: object, path: str) -> int | str | None:
    """A port number or a container port's name; 0, "" and absent mean "the same as port"."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        rep.wrong_type(path, value, "intstr.IntOrString")
        return None
    if isinstance(value, int):
        if value != 0 and not 1 <= value <= 65535:
            rep.invalid(path, value, "must be between 1 and 65535, inclusive")
        return value or None
    for problem in port_name_problems(value) if value else []:
        rep.invalid(path, value, problem)
    return value or None


# --- allocation ------------------------------------------------------------------------


def used_allocations(
    services: Iterable[Service], *, skip: tuple[str, str] | None = None
) -> tuple[set[str], set[int]]:
    """The ClusterIPs and NodePorts ``services`` hold, but those of ``skip`` (namespace,
    name): a service being re-applied must not collide with itself."""
    ips: set[str] = set()
    node_ports: set[int] = set()
    for service in services:
        if skip == (service.namespace, service.name):
            continue
        if service.cluster_ip and not service.headless:
            ips.add(service.cluster_ip)
        node_ports.update(p.node_port for p in service.ports if p.node_port is not None)
    return ips, node_ports


def allocate(service: Service, used_cluster_ips: Iterable[str], used_node_ports: Iterable[int]) -> Service:
    """``service`` with its ClusterIP and NodePorts: requested ones checked, the rest the
    lowest free (deterministic). ManifestError with the API server's lines when a requested
    value is out of range or taken, or a range is full."""
    used_ips = set(used_cluster_ips)
    taken_ports = set(used_node_ports)
    head = f"The {KIND} {json.dumps(service.name)} is invalid: "
    problems: list[str] = []
    ip = service.cluster_ip
    if ip is None:
        ip = _lowest_free_ip(used_ips)
        if ip is None:
            problems.append("Internal error occurred: failed to allocate a serviceIP: range is full")
    elif ip != HEADLESS:
        shown = "[]string{" + json.dumps(ip) + "}"
        address = ipaddress.ip_address(ip)
        usable = address in SERVICE_CIDR and address not in (
            SERVICE_CIDR.network_address, SERVICE_CIDR.broadcast_address
        )
        if not usable:
            problems.append(
                f"{head}spec.clusterIPs: Invalid value: {shown}: failed to allocate IP {ip}: the provided IP "
                f"({ip}) is not in the valid range. The range of valid IPs is {SERVICE_CIDR}"
            )
        elif ip in used_ips:
            problems.append(
                f"{head}spec.clusterIPs: Invalid value: {shown}: failed to allocate IP {ip}: "
                "provided IP is already allocated"
            )
    ports = list(service.ports)
    if service.type == "NodePort":
        low, high = NODE_PORTS.start, NODE_PORTS.stop - 1
        for i, port in enumerate(ports):
            wanted = port.node_port
            if wanted is None:
                continue
            if wanted not in NODE_PORTS:
                problems.append(
                    f"{head}spec.ports[{i}].nodePort: Invalid value: {wanted}: provided port is not in "
                    f"the valid range. The range of valid ports is {low}-{high}"
                )
            elif wanted in taken_ports:
                problems.append(
                    f"{head}spec.ports[{i}].nodePort: Invalid value: {wanted}: provided port is already allocated"
                )
            taken_ports.add(wanted)
        for i, port in enumerate(ports):
            if port.node_port is None:
                free = next((p for p in NODE_PORTS if p not in taken_ports), None)
                if free is None:
                    problems.append("Internal error occurred: failed to allocate a nodePort: range is full")
                    break
                taken_ports.add(free)
                ports[i] = replace(port, node_port=free)
    else:
        ports = [replace(p, node_port=None) for p in ports]
    if problems:
        raise ManifestError(problems)
    return replace(service, cluster_ip=ip, ports=tuple(ports))


def _lowest_free_ip(used: set[str]) -> str | None:
    for address in SERVICE_CIDR.hosts():
        if address not in RESERVED_CLUSTER_IPS and str(address) not in used:
            return str(address)
    return None


def keep_allocations(service: Service, current: Service | None) -> Service:
    """What an update keeps, as the API server does: the ClusterIP and, for ports that name
    no NodePort, the one the same port (name, or number and protocol) already had."""
    if current is None:
        return service
    cluster_ip = service.cluster_ip if service.cluster_ip is not None else current.cluster_ip
    ports = service.ports
    if service.type == "NodePort":
        before = {(p.name, p.port, p.protocol): p.node_port for p in current.ports}
        by_name = {p.name: p.node_port for p in current.ports if p.name}
        ports = tuple(
            p if p.node_port is not None else replace(
                p, node_port=before.get((p.name, p.port, p.protocol), by_name.get(p.name))
            )
            for p in service.ports
        )
    return replace(service, cluster_ip=cluster_ip, ports=ports)


def immutable_problems(service: Service, current: Service | None) -> list[str]:
    """A ClusterIP cannot change once set (the API server's rule)."""
    if current is None or service.cluster_ip is None or current.cluster_ip is None:
        return []
    if service.cluster_ip == current.cluster_ip:
        return []
    return [
        f"The {KIND} {json.dumps(service.name)} is invalid: spec.clusterIPs[0]: Invalid value: "
        f"{json.dumps(service.cluster_ip)}: may not change once set"
    ]


# --- the stored object -------------------------------------------------------------------


def service_to_dict(service: Service) -> dict[str, Any]:
    """The v1 object as the API server stores it (defaults written out)."""
    metadata: dict[str, Any] = {"name": service.name, "namespace": service.namespace}
    if service.labels:
        metadata["labels"] = dict(service.labels)
    ports = []
    for port in service.ports:
        item: dict[str, Any] = {}
        if port.name:
            item["name"] = port.name
        if port.node_port is not None:
            item["nodePort"] = port.node_port
        item.update({"port": port.port, "protocol": port.protocol, "targetPort": port.target_port})
        ports.append(item)
    spec: dict[str, Any] = {}
    if service.cluster_ip is not None:
        spec["clusterIP"] = service.cluster_ip
        spec["clusterIPs"] = [service.cluster_ip]
    if service.type == "NodePort":
        spec["externalTrafficPolicy"] = "Cluster"
    spec.update({
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": ports,
    })  # fmt: skip
    if service.selector:
        spec["selector"] = dict(service.selector)
    spec["sessionAffinity"] = "None"
    spec["type"] = service.type
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def service_from_dict(obj: Mapping[str, Any]) -> Service:
    """A stored Service back as a ``Service`` (ManifestError if it is not a valid one)."""
    namespace = (obj.get("metadata") or {}).get("namespace") or "default"
    return parse_service(obj, namespace)


def store_value(
    store: Datastore, service: Service, current: Mapping[str, Any] | None, created: float,
    *, pending: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The value to store for ``service`` (create or update): allocations kept from
    ``current``, new ones made against every other Service in ``store`` and in ``pending``
    (writes of the same command not stored yet). ``store`` needs only ``list(prefix)``."""
    from testbed.datastore import records  # noqa: PLC0415 - only this adapter needs it

    stored: dict[str, Mapping[str, Any]] = dict(store.list(keys.SERVICES))
    stored.update({k: v for k, v in (pending or {}).items() if k.startswith(keys.SERVICES)})
    others = [service_from_dict(v) for k, v in stored.items() if k != keys.service(service.namespace, service.name)]
    before = service_from_dict(current) if current is not None else None
    problems = immutable_problems(service, before)
    if problems:
        raise ManifestError(problems)
    ips, node_ports = used_allocations(others)
    value = service_to_dict(allocate(keep_allocations(service, before), ips, node_ports))
    stamp = (current or {}).get("metadata", {}).get("creationTimestamp") or records.timestamp(created)
    value["metadata"]["creationTimestamp"] = stamp
    return value


# --- endpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerPort:
    name: str
    port: int
    protocol: Protocol = "TCP"


@dataclass(frozen=True)
class PodInfo:
    """What the endpoints controller needs of a pod."""

    namespace: str
    name: str
    ip: str | None
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    ready: bool = True  # condition Ready is "True"
    terminating: bool = False  # metadata.deletionTimestamp is set
    finished: bool = False  # phase Succeeded or Failed: never an endpoint again
    node: str = ""  # spec.nodeName
    uid: str = ""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PodInfo:
        """A Pod as stored under /registry/pods/<ns>/<name>."""
        metadata = record.get("metadata") or {}
        status = record.get("status") or {}
        ports = []
        for container in (record.get("spec") or {}).get("containers") or []:
            for item in container.get("ports") or []:
                if isinstance(item.get("containerPort"), int):
                    ports.append(ContainerPort(
                        name=item.get("name") or "",
                        port=item["containerPort"],
                        protocol=item.get("protocol") or "TCP",
                    ))  # fmt: skip
        conditions = status.get("conditions") or []
        return cls(
            namespace=metadata.get("namespace") or "default",
            name=metadata.get("name") or "",
            ip=status.get("podIP") or None,
            labels=tuple(sorted((metadata.get("labels") or {}).items())),
            ports=tuple(ports),
            ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
            terminating=bool(metadata.get("deletionTimestamp")),
            finished=status.get("phase") in ("Succeeded", "Failed"),
            node=(record.get("spec") or {}).get("nodeName") or "",
            uid=metadata.get("uid") or "",
        )


def selects(service: Service, pod: PodInfo) -> bool:
    """A Service selects the pods of its namespace carrying every label of its selector;
    a selector-less one selects none (its endpoints would be managed by hand)."""
    if not service.selector or pod.namespace != service.namespace:
        return False
    labels = dict(pod.labels)
    return all(labels.get(key) == value for key, value in service.selector)


def target_port_of(port: ServicePort, pod: PodInfo) -> int | None:
    """A number as is; a name through the pod's container ports of the same protocol
    (None when the pod has no such port, and Kubernetes leaves the pod out)."""
    if isinstance(port.target_port, int):
        return port.target_port
    for container_port in pod.ports:
        if container_port.name == port.target_port and container_port.protocol == port.protocol:
            return container_port.port
    return None
