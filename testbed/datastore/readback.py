"""Reading stored values back: the few facts the CLI needs of an endpoint or a node,
with one clear line naming the object and the field when a value lacks one.
"""

from __future__ import annotations

from testbed.model.policy import NamedPort

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from testbed import addressing


class RecordError(ValueError):
    """A stored value without a field the reader needs (message names object and field)."""


@dataclass(frozen=True)
class EndpointInfo:
    namespace: str
    pod: str
    node: str
    ip: IPv4Address
    interface: str
    labels: tuple[tuple[str, str], ...]  # sorted by key
    ports: tuple[NamedPort, ...] = ()  # named ports copied from the pod

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ip: IPv4Address


def _field(value: Mapping[str, Any], what: str, path: str) -> Any:
    current: Any = value
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            raise RecordError(f"{what}: missing field {path}")
        current = current[part]
    return current


def _address(text: Any, what: str, path: str) -> IPv4Address:
    try:
        return addressing.parse_ipv4(str(text).split("/", 1)[0])
    except addressing.AddressError as exc:
        raise RecordError(f"{what}: field {path} is not an IPv4 address ({text!r})") from exc


def endpoint_summary(wep: Mapping[str, Any]) -> EndpointInfo:
    """What the CLI needs of a WorkloadEndpoint; RecordError naming the missing field."""
    what = f"WorkloadEndpoint {wep.get('metadata', {}).get('name', '?')}"
    networks = _field(wep, what, "spec.ipNetworks")
    if not isinstance(networks, list) or not networks:
        raise RecordError(f"{what}: field spec.ipNetworks is empty")
    labels = _field(wep, what, "metadata.labels")
    return EndpointInfo(
        namespace=str(_field(wep, what, "metadata.namespace")),
        pod=str(_field(wep, what, "spec.pod")),
        node=str(_field(wep, what, "spec.node")),
        ip=_address(networks[0], what, "spec.ipNetworks"),
        interface=str(_field(wep, what, "spec.interfaceName")),
        labels=tuple(sorted((str(k), str(v)) for k, v in dict(labels).items())),
        ports=tuple(
            NamedPort(name=str(p["name"]), protocol=str(p.get("protocol", "TCP")), port=int(p["port"]))  # type: ignore[arg-type]
            for p in wep.get("spec", {}).get("ports", [])
        ),
    )


def node_summary(node: Mapping[str, Any]) -> NodeInfo:
    what = f"Node {node.get('metadata', {}).get('name', '?')}"
    name = str(_field(node, what, "metadata.name"))
    return NodeInfo(
        name=name, ip=_address(_field(node, what, "spec.bgp.ipv4Address"), what, "spec.bgp.ipv4Address")
    )


@dataclass(frozen=True)
class LabInfo:
    name: str
    topology: str
    source: str
    created: float


def lab_summary(lab: Mapping[str, Any]) -> LabInfo:
    """The lab record (``/testbed/lab``) read back."""
    what = f"lab record {lab.get('name', '?')}"
    created = _field(lab, what, "created")
    if not isinstance(created, (int, float)):
        raise RecordError(f"{what}: field created is not a number ({created!r})")
    return LabInfo(
        name=str(_field(lab, what, "name")),
        topology=str(_field(lab, what, "topology")),
        source=str(lab.get("source", "")),
        created=float(created),
    )
