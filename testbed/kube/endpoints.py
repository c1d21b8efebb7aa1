"""A Service's endpoints as Kubernetes stores them, and back (pure).

``desired_endpoints`` and ``desired_slices`` are what the endpoints and EndpointSlice
controllers of kube-controller-manager make of a Service with a selector and the pods of
its namespace (``testbed.controllers.endpoints`` writes them):

- v1 Endpoints, named as the Service: pods with an address, not terminating and not
  finished; Ready ones in ``subsets[].addresses``, the others in ``notReadyAddresses``;
  pods grouped into subsets by the ports their container ports resolve to (a named
  ``targetPort`` may give each pod another number, or leave a pod out).
- discovery.k8s.io/v1 EndpointSlices ``<service>-<5 chars>``: the same pods plus the
  terminating ones, each with conditions ``ready`` (Ready and not terminating),
  ``serving`` (Ready) and ``terminating``; one slice per port set and at most 100
  endpoints each; a Service that selects nothing keeps one empty (placeholder) slice.

``ready_endpoints`` is kube-proxy's reading of a stored Endpoints: per service port, the
ordered ``ip:port`` list of the ready addresses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from testbed.kube.services import Endpoint, PodInfo, Service, selects, target_port_of

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
MAX_SLICE_ENDPOINTS = 100  # the EndpointSlice controller's --max-endpoints-per-slice default
# A generated name: base cut to 58 characters, then 5 random ones (the API server's rule).
MAX_GENERATED_BASE = 58

PortSet = tuple[tuple[str, int, str], ...]  # (name, port, protocol) per service port that resolved
Object = dict[str, Any]


def _pod(pod: PodInfo | Mapping[str, Any]) -> PodInfo:
    return pod if isinstance(pod, PodInfo) else PodInfo.from_record(pod)


def _ports_of(service: Service, pod: PodInfo) -> PortSet | None:
    """The service ports this pod serves, target ports resolved; None: it serves none (a
    headless Service without ports takes every pod, with no ports)."""
    found = tuple(
        (port.name, number, port.protocol)
        for port in service.ports
        if (number := target_port_of(port, pod)) is not None
    )
    return found if found or not service.ports else None


def _target_ref(pod: PodInfo) -> Object:
    return {"kind": "Pod", "namespace": pod.namespace, "name": pod.name, "uid": pod.uid}


def _labels(service: Service) -> dict[str, str]:
    labels = dict(service.labels)
    if service.headless:
        labels[HEADLESS_LABEL] = ""
    return labels


def _selected(service: Service, pods: Iterable[PodInfo | Mapping[str, Any]]) -> list[tuple[PodInfo, PortSet]]:
    """Pods that may be endpoints at all: selected, with an address, not finished; in
    address order (the order Kubernetes sorts addresses in)."""
    out = []
    for pod in map(_pod, pods):
        if not pod.ip or pod.finished or not selects(service, pod):
            continue
        ports = _ports_of(service, pod)
        if ports is not None:
            out.append((pod, ports))
    return sorted(out, key=lambda item: (_ip_key(str(item[0].ip)), item[0].name))


def _ip_key(ip: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in ip.split("."))
    except ValueError:
        return (1 << 9,)


def _port_list(ports: PortSet, *, always_name: bool) -> list[Object]:
    out = []
    for name, number, protocol in ports:
        item: Object = {"name": name} if name or always_name else {}
        item.update({"port": number, "protocol": protocol})
        out.append(item)
    return out


# --- v1 Endpoints ----------------------------------------------------------------------


def desired_subsets(service: Service, pods: Iterable[PodInfo | Mapping[str, Any]]) -> list[Object]:
    """The ``subsets`` of the Service's Endpoints: one per port set, ready addresses
    apart from not-ready ones; terminating pods are left out."""
    groups: dict[PortSet, tuple[list[Object], list[Object]]] = {}
    for pod, ports in _selected(service, pods):
        if pod.terminating:
            continue
        address: Object = {"ip": pod.ip}
        if pod.node:
            address["nodeName"] = pod.node
        address["targetRef"] = _target_ref(pod)
        ready, not_ready = groups.setdefault(ports, ([], []))
        (ready if pod.ready else not_ready).append(address)
    subsets = []
    for ports, (ready, not_ready) in sorted(groups.items()):
        subset: Object = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if ports:
            subset["ports"] = _port_list(ports, always_name=False)
        subsets.append(subset)
    return subsets


def desired_endpoints(service: Service, pods: Iterable[PodInfo | Mapping[str, Any]]) -> Object:
    """The v1 Endpoints object, without the metadata the store fills in (uid, creation)."""
    metadata: Object = {"name": service.name, "namespace": service.namespace}
    labels = _labels(service)
    if labels:
        metadata["labels"] = labels
    obj: Object = {"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata}
    subsets = desired_subsets(service, pods)
    if subsets:
        obj["subsets"] = subsets
    return obj


def endpoints_differ(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """What the controller owns of an Endpoints: its labels and subsets."""
    return (
        (current.get("metadata") or {}).get("labels") != (desired.get("metadata") or {}).get("labels")
        or (current.get("subsets") or []) != (desired.get("subsets") or [])
    )


def ready_endpoints(service: Service, obj: Mapping[str, Any] | None) -> dict[str, tuple[Endpoint, ...]]:
    """kube-proxy's view of a stored Endpoints: for each port of ``service`` (by name, ""
    for a single unnamed one) the ready ``ip:port``s of the subsets carrying a port of
    that name and protocol, in kube-proxy's order (by ``ip:port`` text)."""
    found: dict[str, set[Endpoint]] = {port.name: set() for port in service.ports}
    protocols = {port.name: port.protocol for port in service.ports}
    for subset in (obj or {}).get("subsets") or []:
        ips = [a.get("ip") for a in subset.get("addresses") or [] if a.get("ip")]
        for port in subset.get("ports") or []:
            name = port.get("name") or ""
            number = port.get("port")
            if name in found and (port.get("protocol") or "TCP") == protocols[name] and isinstance(number, int):
                found[name].update(Endpoint(str(ip), number) for ip in ips)
    return {name: tuple(sorted(eps, key=str)) for name, eps in found.items()}


def endpoints_by_service(
    services: Sequence[Service], objects: Iterable[Mapping[str, Any]]
) -> dict[tuple[str, str], dict[str, tuple[Endpoint, ...]]]:
    """``ready_endpoints`` of every Service, from the stored Endpoints (matched by
    namespace and name), keyed by (namespace, name)."""
    by_name: dict[tuple[str, str], Mapping[str, Any]] = {}
    for obj in objects:
        metadata = obj.get("metadata") or {}
        by_name[(metadata.get("namespace") or "default", metadata.get("name") or "")] = obj
    return {
        (s.namespace, s.name): ready_endpoints(s, by_name.get((s.namespace, s.name))) for s in services
    }


# --- discovery.k8s.io/v1 EndpointSlice -----------------------------------------------------


def slice_base(service_name: str) -> str:
    """``<service>-``, cut as the API server cuts a generateName."""
    return f"{service_name}-"[:MAX_GENERATED_BASE]


def _slice_endpoint(pod: PodInfo) -> Object:
    item: Object = {
        "addresses": [pod.ip],
        "conditions": {
            "ready": pod.ready and not pod.terminating,
            "serving": pod.ready,
            "terminating": pod.terminating,
        },
    }
    if pod.node:
        item["nodeName"] = pod.node
    item["targetRef"] = _target_ref(pod)
    return item


def desired_slice_contents(
    service: Service, pods: Iterable[PodInfo | Mapping[str, Any]]
) -> list[tuple[PortSet, list[Object]]]:
    """(ports, endpoints) of each slice the Service needs: one group per port set, cut
    into slices of MAX_SLICE_ENDPOINTS; ``[((), [])]`` (the placeholder) when it selects
    no pod."""
    groups: dict[PortSet, list[Object]] = {}
    for pod, ports in _selected(service, pods):
        groups.setdefault(ports, []).append(_slice_endpoint(pod))
    out: list[tuple[PortSet, list[Object]]] = []
    for ports, items in sorted(groups.items()):
        out += [(ports, items[i : i + MAX_SLICE_ENDPOINTS]) for i in range(0, len(items), MAX_SLICE_ENDPOINTS)]
    return out or [((), [])]


def slice_object(service: Service, service_uid: str, name: str, ports: PortSet, endpoints: list[Object]) -> Object:
    """An EndpointSlice of ``service`` (without uid and creationTimestamp)."""
    labels = {**_labels(service), SERVICE_NAME_LABEL: service.name, MANAGED_BY_LABEL: MANAGED_BY}
    owner: Object = {"apiVersion": "v1", "kind": "Service", "name": service.name}
    if service_uid:  # a Service stored without one: no uid rather than an empty one
        owner["uid"] = service_uid
    owner.update({"controller": True, "blockOwnerDeletion": True})
    obj: Object = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "generateName": slice_base(service.name),
            "namespace": service.namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
    }
    if ports:
        obj["ports"] = _port_list(ports, always_name=True)
    return obj


def slice_ports(obj: Mapping[str, Any]) -> PortSet:
    return tuple(
        (p.get("name") or "", p.get("port"), p.get("protocol") or "TCP")
        for p in obj.get("ports") or []
    )  # fmt: skip


def slice_differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """What the controller owns of a slice: labels, owner, address type, endpoints, ports."""
    meta, want = current.get("metadata") or {}, desired.get("metadata") or {}
    return (
        meta.get("labels") != want.get("labels")
        or meta.get("ownerReferences") != want.get("ownerReferences")
        or any(current.get(f) != desired.get(f) for f in ("addressType", "endpoints", "ports"))
    )


def managed_slice_of(obj: Mapping[str, Any]) -> str | None:
    """The Service a slice belongs to when this controller manages it, else None."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return None
    return labels.get(SERVICE_NAME_LABEL) or None
