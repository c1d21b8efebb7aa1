"""Server-side ``kubectl get`` output: meta.k8s.io/v1 Table responses. Pure.

kubectl's human output (``get``, ``get -o wide``) asks for ``Accept:
application/json;as=Table;v=v1;g=meta.k8s.io,...`` and, given a plain list, prints only NAME
and AGE: the columns are the server's [kube-api.md §3.1; kubectl pkg/cmd/get]. So each kind
has its upstream columns here, in order, with their types and priorities [k/k
pkg/printers/internalversion/printers.go ``AddHandlers``]; the server always fills every
cell, wide ones (priority 1) included, and kubectl drops priority>0 columns unless ``-o wide``
[k/k pkg/printers/storage/storage.go ``GenerateOptions{Wide: true}``]. A kind without a
printer gets Name and Created At [as pkg/registry/rest/table.go ``defaultTableConvertor``].

Each row's ``object`` is a PartialObjectMetadata by default, the whole object with
``includeObject=Object`` (kubectl's ``--sort-by``), nothing with ``None`` [as
pkg/endpoints/handlers/response.go ``asTable``]; kubectl takes NAMESPACE and LABELS from it.
A watch that asked for Tables gets a one-row Table per event, with column definitions only
in the first [as handlers/response.go ``watchEmbeddedEncoder``].

The cells are `testbed.kube.tables`'s, which `testbed kubectl get` prints too. Adding a kind
is one entry in ``COLUMNS``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testbed.apiserver import status
from testbed.kube import registry
from testbed.kube import tables as cells

Value = dict[str, Any]
Cell = Callable[[Value, "float | None"], object]
META_GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
INCLUDE = ("Metadata", "Object", "None")
NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow "
    "a client to request the generation of an appropriate name automatically. Name is primarily intended for creation "
    "idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATED_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is "
    "represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


@dataclass(frozen=True)
class Column:
    """One column: its definition and how a stored object gives its cell (``now`` for ages)."""

    name: str
    cell: Cell
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format, "description": self.description,
                "priority": self.priority}  # fmt: skip


def _at(*path: str, missing: object = "") -> Cell:
    """The value at ``path`` (``missing`` when absent)."""

    def cell(value: Value, _now: float | None) -> object:
        found: object = value
        for part in path:
            found = found.get(part) if isinstance(found, dict) else None
        return missing if found is None else found

    return cell


def _name(value: Value, _now: float | None) -> object:
    return value.get("metadata", {}).get("name", "")


NAME = Column("Name", _name, format="name", description=NAME_DOC)
AGE = Column("Age", cells.age, description=CREATED_DOC)
CONTAINERS = Column("Containers", lambda v, _now: cells.container_names(v), priority=1,
                    description="Names of each container in the template.")  # fmt: skip
IMAGES = Column("Images", lambda v, _now: cells.container_images(v), priority=1,
                description="Images referenced by each container in the template.")  # fmt: skip


def _integer(name: str, *path: str, description: str = "") -> Column:
    value = _at(*path, missing=0)
    return Column(name, lambda v, _now: int(value(v, None) or 0), type="integer", description=description)


def _text(name: str, *path: str, missing: str = "", description: str = "") -> Column:
    return Column(name, _at(*path, missing=missing), description=description)


def _of(name: str, function: Callable[[Value], object], description: str = "", priority: int = 0) -> Column:
    return Column(name, lambda v, _now: function(v), priority=priority, description=description)


def _wide(name: str, function: Callable[[Value], object], description: str = "") -> Column:
    return _of(name, function, description, priority=1)


def _selector(plural: str) -> Column:
    return _wide("Selector", lambda v: cells.workload_selector(plural, v), "A label query over the pods it manages.")


def _subjects(title: str, kind: str) -> Column:
    return _wide(title, lambda v: cells.subjects(v, kind), f"{title} in the binding")


def _counts(field: str) -> Callable[[Value], object]:
    return lambda v: cells.status_counts(v)[field]


def _node_info(name: str, field: str) -> Column:
    return _wide(name, lambda v: cells.node_info(v, field), f"{field} reported by the node.")


REPLICA_COLUMNS = (  # ReplicaSets and ReplicationControllers [printReplicaSet]
    NAME,
    Column("Desired", lambda v, _now: cells.status_counts(v)["replicas"], type="integer",
           description="The number of desired replicas."),
    _integer("Current", "status", "replicas", description="The most recently observed number of replicas."),
    _integer("Ready", "status", "readyReplicas", description="The number of ready replicas."),
    AGE, CONTAINERS, IMAGES,
)  # fmt: skip
POD_COLUMNS = (
    NAME,
    _of("Ready", cells.pod_ready, "The aggregate readiness state of this pod for accepting traffic."),
    _of("Status", cells.pod_status, "The aggregate status of the containers in this pod."),
    Column("Restarts", cells.pod_restarts, description=(
        "The number of times the containers in this pod have been restarted and when the last container in this pod "
        "has restarted.")),
    AGE,
    _wide("IP", cells.pod_ip, "IP address allocated to the pod."),
    _wide("Node", lambda v: v.get("spec", {}).get("nodeName") or cells.NONE, "The node the pod is scheduled onto."),
    _wide("Nominated Node", lambda v: v.get("status", {}).get("nominatedNodeName") or cells.NONE,
          "The node a preempting pod is nominated to run on."),
    _wide("Readiness Gates", cells.pod_readiness_gates, "Conditions evaluated for pod readiness."),
)  # fmt: skip
EVENT_COLUMNS = (
    Column("Last Seen", cells.event_last_seen, description="The time of the most recent occurrence."),
    _text("Type", "type", description="Type of this event (Normal, Warning)."),
    _text("Reason", "reason", description="A short, machine understandable string for the transition."),
    _of("Object", cells.event_object, "The object that this event is about."),
    _wide("Subobject", lambda v: v.get("involvedObject", {}).get("fieldPath", ""), "The field of the object."),
    _wide("Source", cells.event_source, "The component reporting this event."),
    _of("Message", lambda v: str(v.get("message", "")).strip(), "A human-readable description of the status."),
    Column("First Seen", cells.event_first_seen, priority=1, description="The time the event was first recorded."),
    _wide("Count", cells.event_count, "The number of times this event has occurred."),
    Column("Name", _name, format="name", priority=1, description=NAME_DOC),
)  # fmt: skip
BINDING_COLUMNS = (
    NAME, _of("Role", cells.role_ref, "RoleRef can reference a Role or a ClusterRole."), AGE,
    _subjects("Users", "User"), _subjects("Groups", "Group"), _subjects("ServiceAccounts", "ServiceAccount"),
)  # fmt: skip

COLUMNS: Mapping[str, tuple[Column, ...]] = {
    "pods": POD_COLUMNS,
    "services": (
        NAME,
        _text("Type", "spec", "type", missing="ClusterIP", description="How the service is exposed."),
        _of("Cluster-IP", cells.service_cluster_ip, "The IP address of the service."),
        _of("External-IP", cells.service_external_ip, "The external IPs of the service."),
        _of("Port(s)", cells.service_ports, "The ports exposed by this service."),
        AGE,
        _wide("Selector", lambda v: cells.labels_text(v.get("spec", {}).get("selector")), "The pods it routes to."),
    ),
    "endpoints": (NAME, _of("Endpoints", cells.endpoints_text, "The set of all endpoints."), AGE),
    "endpointslices": (
        NAME,
        _text("AddressType", "addressType", description="The type of address carried by this EndpointSlice."),
        _of("Ports", cells.endpoint_slice_ports, "The network ports exposed by each endpoint."),
        _of("Endpoints", cells.endpoint_slice_endpoints, "The endpoints in this slice."),
        AGE,
    ),
    "deployments": (
        NAME,
        _of("Ready", lambda v: f"{_counts('readyReplicas')(v)}/{_counts('replicas')(v)}",
            "Number of the pod with ready state"),
        _of("Up-to-date", _counts("updatedReplicas"), "The number of pods with the desired template spec."),
        _of("Available", _counts("availableReplicas"), "The number of available pods."),
        AGE, CONTAINERS, IMAGES, _selector("deployments"),
    ),
    "replicasets": (*REPLICA_COLUMNS, _selector("replicasets")),
    "replicationcontrollers": (*REPLICA_COLUMNS, _selector("replicationcontrollers")),
    "daemonsets": (
        NAME,
        _integer("Desired", "status", "desiredNumberScheduled", description="The nodes that should run the pod."),
        _integer("Current", "status", "currentNumberScheduled", description="The nodes running the pod."),
        _integer("Ready", "status", "numberReady", description="The nodes whose pod is ready."),
        _integer("Up-to-date", "status", "updatedNumberScheduled", description="The nodes running the updated pod."),
        _integer("Available", "status", "numberAvailable", description="The nodes whose pod is available."),
        _of("Node Selector", lambda v: cells.labels_text(cells.pod_template_spec(v).get("nodeSelector")),
            "The labels a node must have to run the pod."),
        AGE, CONTAINERS, IMAGES, _selector("daemonsets"),
    ),
    "nodes": (
        NAME,
        _of("Status", cells.node_status, "The status of the node"),
        _of("Roles", cells.node_roles, "The roles of the node"),
        AGE,
        _of("Version", lambda v: cells.node_info(v, "kubeletVersion", ""), "Kubelet Version reported by the node."),
        _wide("Internal-IP", cells.node_address, "List of addresses reachable to the node."),
        _wide("External-IP", cells.node_external_ip, "List of addresses reachable to the node."),
        _node_info("OS-Image", "osImage"),
        _node_info("Kernel-Version", "kernelVersion"),
        _node_info("Container-Runtime", "containerRuntimeVersion"),
    ),
    "namespaces": (NAME, _text("Status", "status", "phase", missing="Active", description="The namespace's phase"),
                   AGE),
    "networkpolicies": (NAME, _of("Pod-Selector", cells.policy_selector, "The pods the policy applies to."), AGE),
    "configmaps": (NAME, _of("Data", cells.data_count, "The number of data and binaryData keys."), AGE),
    "secrets": (NAME, _text("Type", "type", description="Used to facilitate programmatic handling of secret data."),
                _of("Data", lambda v: len(v.get("data") or {}), "The number of data keys."), AGE),
    "serviceaccounts": (NAME, _of("Secrets", lambda v: len(v.get("secrets") or []), "The number of secrets."), AGE),
    "events": EVENT_COLUMNS,
    "leases": (NAME, _text("Holder", "spec", "holderIdentity", description="The holder of the lease."), AGE),
    "rolebindings": BINDING_COLUMNS,
    "clusterrolebindings": BINDING_COLUMNS,
}  # fmt: skip
DEFAULT_COLUMNS = (
    NAME,
    Column("Created At", lambda v, _now: v.get("metadata", {}).get("creationTimestamp", ""), type="date",
           description=CREATED_DOC),
)  # fmt: skip


def columns(plural: str) -> tuple[Column, ...]:
    """The kind's columns, or Name and Created At for a kind without a printer."""
    return COLUMNS.get(plural, DEFAULT_COLUMNS)


# -- negotiation --


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str], float]]:
    """``Accept``'s media ranges (type, parameters, q), best first (stable for equal q)."""
    ranges = []
    for clause in accept.split(","):
        parts = [p.strip() for p in clause.split(";")]
        if not parts[0]:
            continue
        params = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in parts[1:] if p)}
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            ranges.append((parts[0].lower(), params, q))
    return sorted(ranges, key=lambda r: -r[2])


def table_version(accept: str) -> str | None:
    """The Table version (``meta.k8s.io/v1`` or ``v1beta1``) the client's first servable media
    range asks for; None when that range is plain JSON (or nothing is servable as JSON). A
    range asking for another conversion is skipped, as the server does [as
    handlers/negotiation/negotiate.go, endpoints/handlers/rest.go ``AllowsMediaTypeTransform``]."""
    for media, params, _q in _media_ranges(accept):
        if media not in ("application/json", "application/*", "*/*"):
            continue
        target = params.get("as")
        if target is None:
            return None
        if target == "Table" and media == "application/json" and params.get("g") == META_GROUP \
                and params.get("v") in TABLE_VERSIONS:
            return f"{META_GROUP}/{params['v']}"
    return None


def wants_table(accept: str) -> bool:
    return table_version(accept) is not None


def include_object(value: str | None) -> str:
    """``includeObject``: Metadata (also when unset), Object or None; anything else is the
    server's 400 [am pkg/apis/meta/v1/validation ``ValidateTableOptions``]."""
    if not value:
        return "Metadata"
    if value not in INCLUDE:
        raise status.bad_request(
            f"Unable to convert to Table as requested: includeObject: Invalid value: \"{value}\": "
            "must be 'Metadata', 'Object', 'None', or empty"
        )
    return value


_include = include_object  # ``table``'s keyword of the same name hides the function


# -- tables --


def _type_meta(plural: str, value: Value) -> Value:
    """The object with its kind and apiVersion (list items may lack them)."""
    if value.get("kind") and value.get("apiVersion"):
        return value
    try:
        kind = registry.resolve(plural)
    except registry.UnknownKind:
        return value
    return {"apiVersion": kind.api_version, "kind": kind.kind, **value}


def _row_object(plural: str, value: Value, include: str, group_version: str) -> Value | None:
    if include == "None":
        return None
    if include == "Object":
        return _type_meta(plural, value)
    return {"kind": "PartialObjectMetadata", "apiVersion": group_version,
            "metadata": copy.deepcopy(value.get("metadata", {}))}  # fmt: skip


def _completed(reason: str, message: str) -> Value:
    return {"type": "Completed", "status": "True", "reason": reason, "message": message}


def _conditions(plural: str, value: Value) -> list[Value]:
    """A finished pod's row carries the Completed condition [printers.go ``podSuccessConditions``,
    ``podFailedConditions``]."""
    phase = value.get("status", {}).get("phase") if plural == "pods" else None
    if phase == "Succeeded":
        return [_completed("Succeeded", "The pod has completed successfully.")]
    return [_completed("Failed", "The pod failed.")] if phase == "Failed" else []


def row(plural: str, value: Value, *, include_object: str = "Metadata", now: float | None = None,
        group_version: str = f"{META_GROUP}/v1") -> Value:  # fmt: skip
    """One object's row: every column's cell, its conditions, its object as asked."""
    out: Value = {"cells": [column.cell(value, now) for column in columns(plural)]}
    conditions = _conditions(plural, value)
    if conditions:
        out["conditions"] = conditions
    obj = _row_object(plural, value, include_object, group_version)
    if obj is not None:
        out["object"] = obj
    return out


def table(plural: str, values: Sequence[Value], *, resource_version: str, include_object: str = "Metadata",
          now: float | None = None, group_version: str = f"{META_GROUP}/v1", headers: bool = True,
          continue_token: str = "") -> Value:  # fmt: skip
    """The Table of ``values`` (a list, or one object's ``[value]``) at ``resource_version``."""
    include = _include(include_object)
    metadata: Value = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": group_version,
        "metadata": metadata,
        "columnDefinitions": [c.definition() for c in columns(plural)] if headers else None,
        "rows": [row(plural, v, include_object=include, now=now, group_version=group_version) for v in values],
    }


def watch_event_table(plural: str, value: Value, *, first: bool, include_object: str = "Metadata",
                      now: float | None = None, group_version: str = f"{META_GROUP}/v1") -> Value:  # fmt: skip
    """The one-row Table a watch event carries for a client that asked for Tables; only the
    first event's has column definitions (later ones: null, as the real server's)."""
    resource_version = str(value.get("metadata", {}).get("resourceVersion", ""))
    return table(plural, [value], resource_version=resource_version, include_object=include_object, now=now,
                 group_version=group_version, headers=first)  # fmt: skip
