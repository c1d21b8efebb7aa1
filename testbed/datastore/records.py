"""Pure builders of the values a lab keeps in etcd, shaped like Calico's and Kubernetes'
own objects (apiVersion / kind / metadata / spec), and the read-back helpers the CLI uses.

``lab_records(plan, created)`` is every key and value of a freshly built lab;
``pod_records`` and ``namespace_records`` are the parts that come and go later. A pod
also occupies an address in its IPAM block: callers that add or remove one pod read the
block, apply ``blocks.block_allocate``/``block_release`` and write it with the pod's keys.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from testbed import addressing, naming
from testbed.datastore import blocks, keys

# Read-back helpers live in readback.py and are importable from here too.
from testbed.datastore.readback import (
    EndpointInfo as EndpointInfo,
    LabInfo as LabInfo,
    NodeInfo as NodeInfo,
    RecordError as RecordError,
    endpoint_summary as endpoint_summary,
    lab_summary as lab_summary,
    node_summary as node_summary,
)
from testbed.model.policy import NamedPort
from testbed.runtime.plan import HostPlan, LabPlan, NamespacePlan, PodPlan

Record = dict[str, Any]

CALICO_API = "projectcalico.org/v3"
K8S_API = "v1"
# Kubernetes labels every namespace with its own name (since 1.21).
LABEL_K8S_NAMESPACE_NAME = "kubernetes.io/metadata.name"
# Profile labels Calico applies to endpoints: pcns.<namespace label>, pcsa.<account label>.
NAMESPACE_LABEL_PREFIX = "pcns."
SERVICE_ACCOUNT_LABEL_PREFIX = "pcsa."
LABEL_NAME = "projectcalico.org/name"
_UID_NAMESPACE = uuid.UUID("5f0c6f7e-2b1d-4c3a-9a57-7465737462ed")


def timestamp(created: float) -> str:
    """Kubernetes' creationTimestamp format (RFC 3339, seconds, UTC)."""
    return datetime.fromtimestamp(created, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_uid(lab: str, kind: str, name: str, created: float) -> str:
    """A stable uid: the same object built at the same time always gets the same one."""
    return str(uuid.uuid5(_UID_NAMESPACE, f"{lab}/{kind}/{name}/{created!r}"))


def _metadata(lab: str, kind: str, name: str, created: float, namespace: str | None = None) -> Record:
    meta: Record = {"name": name, "creationTimestamp": timestamp(created)}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["uid"] = object_uid(lab, kind, f"{namespace}/{name}" if namespace else name, created)
    return meta


# --- Calico ---------------------------------------------------------------------------


def node_record(lab: str, host: HostPlan, created: float) -> Record:
    return {
        "apiVersion": CALICO_API,
        "kind": "Node",
        "metadata": _metadata(lab, "Node", host.name, created),
        "spec": {
            "bgp": {
                "ipv4Address": f"{host.ip}/{addressing.FABRIC.prefixlen}",
                "asNumber": addressing.AS_NUMBER,
            },
            "orchRefs": [{"nodeName": host.name, "orchestrator": naming.ORCHESTRATOR}],
        },
    }


def ip_pool_record(lab: str, created: float) -> Record:
    return {
        "apiVersion": CALICO_API,
        "kind": "IPPool",
        "metadata": _metadata(lab, "IPPool", addressing.POOL_NAME, created),
        "spec": {
            "cidr": str(addressing.POOL),
            "blockSize": addressing.BLOCK_PREFIX,
            "ipipMode": "Never",
            "vxlanMode": "Never",
            "natOutgoing": True,
            "nodeSelector": "all()",
        },
    }


def k8s_namespace_labels(namespace: NamespacePlan) -> dict[str, str]:
    return {**dict(namespace.labels), LABEL_K8S_NAMESPACE_NAME: namespace.name}


def namespace_profile_record(lab: str, namespace: NamespacePlan, created: float) -> Record:
    """``kns.<ns>``: allow all both ways; applies the namespace's labels as ``pcns.*``."""
    labels = {NAMESPACE_LABEL_PREFIX + k: v for k, v in k8s_namespace_labels(namespace).items()}
    labels[NAMESPACE_LABEL_PREFIX + LABEL_NAME] = namespace.name
    name = keys.namespace_profile_name(namespace.name)
    return {
        "apiVersion": CALICO_API,
        "kind": "Profile",
        "metadata": _metadata(lab, "Profile", name, created),
        "spec": {
            "ingress": [{"action": "Allow"}],
            "egress": [{"action": "Allow"}],
            "labelsToApply": labels,
        },
    }


def service_account_profile_record(lab: str, namespace: str, created: float) -> Record:
    """``ksa.<ns>.default``: no rules; applies ``pcsa.projectcalico.org/name``."""
    account = keys.DEFAULT_SERVICE_ACCOUNT
    name = keys.service_account_profile_name(namespace, account)
    return {
        "apiVersion": CALICO_API,
        "kind": "Profile",
        "metadata": _metadata(lab, "Profile", name, created),
        "spec": {"labelsToApply": {SERVICE_ACCOUNT_LABEL_PREFIX + LABEL_NAME: account}},
    }


def endpoint_labels(pod: PodPlan) -> dict[str, str]:
    return {
        **dict(pod.labels),
        naming.LABEL_NAMESPACE: pod.namespace,
        naming.LABEL_ORCHESTRATOR: naming.ORCHESTRATOR,
        naming.LABEL_SERVICE_ACCOUNT: keys.DEFAULT_SERVICE_ACCOUNT,
    }


def workload_endpoint_record(lab: str, pod: PodPlan, created: float, mac: str | None = None) -> Record:
    """The pod's WorkloadEndpoint; ``mac`` (the pod's eth0) is only known once it exists."""
    name = naming.workload_endpoint_name(pod.host, pod.namespace, pod.name)
    spec: Record = {
        "orchestrator": naming.ORCHESTRATOR,
        "node": pod.host,
        "pod": pod.name,
        "endpoint": naming.POD_INTERFACE,
        "serviceAccountName": keys.DEFAULT_SERVICE_ACCOUNT,
        "ipNetworks": [f"{pod.ip}/32"],
        "profiles": [
            keys.namespace_profile_name(pod.namespace),
            keys.service_account_profile_name(pod.namespace),
        ],
        "interfaceName": pod.interface,
    }
    if mac is not None:
        spec["mac"] = mac
    named = [p for p in pod.ports if p.name]
    if named:  # Calico copies named container ports onto the endpoint (for named-port rules)
        spec["ports"] = [{"name": p.name, "protocol": p.protocol, "port": p.port} for p in named]
    metadata = _metadata(lab, "WorkloadEndpoint", name, created, namespace=pod.namespace)
    metadata["labels"] = endpoint_labels(pod)
    return {"apiVersion": CALICO_API, "kind": "WorkloadEndpoint", "metadata": metadata, "spec": spec}


def ipam_attributes(namespace: str, pod: str, node: str, created: float) -> dict[str, str]:
    """The attributes Calico's CNI plugin records with a pod's address."""
    return {"namespace": namespace, "node": node, "pod": pod, "timestamp": timestamp(created)}


def ipam_secondary(pod: PodPlan, created: float) -> dict[str, str]:
    return ipam_attributes(pod.namespace, pod.name, pod.host, created)


# --- Kubernetes -----------------------------------------------------------------------


def k8s_namespace_record(lab: str, namespace: NamespacePlan, created: float) -> Record:
    metadata = _metadata(lab, "Namespace", namespace.name, created)
    metadata["labels"] = k8s_namespace_labels(namespace)
    return {
        "apiVersion": K8S_API,
        "kind": "Namespace",
        "metadata": metadata,
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def container_name(image: str) -> str:
    """``calico/star-probe:v0.1`` -> ``star-probe``."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0] or "main"


def container_record(image: str, command: Iterable[str], ports: Iterable[NamedPort]) -> Record:
    """A pod's one container as a manifest has it: named after its image, its command and
    its (named) ports."""
    container: Record = {"name": container_name(image), "image": image}
    if command := list(command):
        container["command"] = command
    if ports := [
        {**({"name": p.name} if p.name else {}), "containerPort": p.port, "protocol": p.protocol} for p in ports
    ]:
        container["ports"] = ports
    return container


def k8s_pod_record(lab: str, pod: PodPlan, host_ip: IPv4Address, created: float) -> Record:
    container = container_record(pod.image, pod.command, pod.ports)
    metadata = _metadata(lab, "Pod", pod.name, created, namespace=pod.namespace)
    if pod.labels:
        metadata["labels"] = dict(pod.labels)
    return {
        "apiVersion": K8S_API,
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": pod.host,
            "serviceAccountName": keys.DEFAULT_SERVICE_ACCOUNT,
            "containers": [container],
        },
        "status": {
            "phase": "Running",
            # Started with its pod, no readiness probe: ready, as a kubelet would report it
            # (the endpoints controller puts Ready pods in their Services' Endpoints).
            "conditions": [
                {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": timestamp(created)}
                for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "podIP": str(pod.ip),
            "podIPs": [{"ip": str(pod.ip)}],
            "hostIP": str(host_ip),
            "startTime": timestamp(created),
        },
    }


# --- whole objects of a lab -----------------------------------------------------------


def lab_record(plan: LabPlan, created: float) -> Record:
    return {
        "name": plan.lab,
        "topology": plan.topology,
        "source": plan.source,
        "options": dataclasses.asdict(plan.options),
        "created": created,
    }


def namespace_records(lab: str, namespace: NamespacePlan, created: float) -> dict[str, Record]:
    """A namespace: its Kubernetes object and the two profiles Calico derives from it."""
    return {
        keys.k8s_namespace(namespace.name): k8s_namespace_record(lab, namespace, created),
        keys.namespace_profile(namespace.name): namespace_profile_record(lab, namespace, created),
        keys.service_account_profile(namespace.name): service_account_profile_record(
            lab, namespace.name, created
        ),
    }


ANNOTATION_IP_ADDRS = "cni.projectcalico.org/ipAddrs"  # Calico's: the address a pod asks for


def pod_object(lab: str, pod: PodPlan, created: float) -> Record:
    """A topology pod as `up` writes it: bound to its host, asking (Calico's annotation) for
    the address the plan gave it, Pending until its host's kubelet has made it."""
    value = k8s_pod_record(lab, pod, IPv4Address("0.0.0.0"), created)
    value["metadata"]["annotations"] = {ANNOTATION_IP_ADDRS: json.dumps([str(pod.ip)])}
    value["spec"].update({"restartPolicy": "Always", "terminationGracePeriodSeconds": 30})
    value["status"] = {"phase": "Pending"}
    return value


def block_records(plan: LabPlan, pods: Iterable[PodPlan], created: float) -> dict[str, Record]:
    """Every claimed block (with the given pods' addresses allocated) and its affinity."""
    values: dict[IPv4Network, Record] = {cidr: blocks.empty_block(cidr, host) for cidr, host in plan.affinity}
    for pod in pods:
        handle_id = naming.ipam_handle(pod.namespace, pod.name)
        values[pod.block] = blocks.block_allocate(
            values[pod.block], pod.ip, handle_id, ipam_secondary(pod, created)
        )
    result: dict[str, Record] = {}
    for cidr, host in plan.affinity:
        result[keys.block(cidr)] = values[cidr]
        result[keys.block_affinity(host, cidr)] = blocks.affinity_record()
    return result


def lab_records(plan: LabPlan, created: float) -> dict[str, Record]:
    """Every key -> value of a freshly built lab, sorted by key."""
    result: dict[str, Record] = {keys.LAB: lab_record(plan, created)}
    result[keys.ip_pool(addressing.POOL_NAME)] = ip_pool_record(plan.lab, created)
    for host in plan.hosts:
        result[keys.node(host.name)] = node_record(plan.lab, host, created)
    for namespace in plan.namespaces:
        result.update(namespace_records(plan.lab, namespace, created))
    result.update(block_records(plan, plan.pods, created))
    for pod in plan.pods:
        handle_id = naming.ipam_handle(pod.namespace, pod.name)
        result[keys.pod(pod.namespace, pod.name)] = pod_object(plan.lab, pod, created)
        result[keys.handle(handle_id)] = blocks.handle_record(handle_id, {pod.block: 1})
    return dict(sorted(result.items()))
