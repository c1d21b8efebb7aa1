"""Pods that come and go after `up`: what the CNI plugin and kubelet do for one pod.

Adding a pod picks its host, has the CNI plugin's code (``agents/kubelet/cni.py``)
assign an address as Calico's IPAM would (own block, a new block, or a pinned/borrowed
address: a conditional write of the block) and plumb the pod, then writes its records in
one transaction; the host's BGP speaker sees the change through its etcd watch.
Deleting reverses it. The lab's IPAM lock serialises this with every other IPAM change
(other commands, the kubelets).
"""

from __future__ import annotations

import time
from ipaddress import IPv4Address
from typing import Any

from agents.kubelet import cni
from agents.kubelet.cni import ipam_lock as ipam_lock
from testbed import addressing, images, naming
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.model.topology import PodSpec
from testbed.netns.links import NetnsLinks
from testbed.runtime import build, state
from testbed.runtime.plan import NamespacePlan, PodPlan


class PodError(RuntimeError):
    """A pod request that cannot be met: exists already, no such host, address taken."""


def _choose_host(store: Datastore, spec: PodSpec, hosts: dict[str, IPv4Address], owner: dict[str, Any] | None) -> str:
    """The pinned host, else the one with fewest pods of the same owner, then fewest pods."""
    if spec.host is not None:
        if spec.host not in hosts:
            raise PodError(f"pod {spec.key}: host {spec.host!r} is not in the lab (hosts: {', '.join(hosts)})")
        return spec.host
    load = {h: 0 for h in hosts}
    for value in store.list(keys.WORKLOAD_ENDPOINTS).values():
        node = records.endpoint_summary(value).node
        if node in load:
            load[node] += 1
    siblings = {h: 0 for h in hosts}
    if owner is not None:
        for value in store.list(keys.pods_in(spec.namespace)).values():
            refs = value.get("metadata", {}).get("ownerReferences") or []
            node = value.get("spec", {}).get("nodeName")
            if node in siblings and any(r.get("name") == owner.get("name") and r.get("kind") == owner.get("kind") for r in refs):
                siblings[node] += 1
    return min(hosts, key=lambda h: (siblings[h], load[h], list(hosts).index(h)))


def add_pod(
    lab: str, spec: PodSpec, store: Datastore, owner: dict[str, Any] | None = None, start: bool = True
) -> PodPlan:
    """Create one pod in a running lab; returns where it went and its address.

    ``owner`` is the ownerReference of the workload that wants the pod (None: a bare pod);
    ``start`` False leaves its program for ``start_program`` (after the network is ready).
    """
    created = time.time()
    try:
        images.lookup(spec.image)
        requested = addressing.parse_ipv4(spec.ip) if spec.ip is not None else None
    except (images.UnknownImage, addressing.AddressError) as exc:
        raise PodError(f"pod {spec.key}: {exc}") from None
    with ipam_lock(lab):
        if store.get(keys.pod(spec.namespace, spec.name)) is not None:
            raise PodError(f"pod {spec.key} already exists in lab {lab!r}")
        hosts = {n.name: n.ip for n in map(records.node_summary, store.list(keys.NODES).values())}
        host = _choose_host(store, spec, hosts, owner)
        handle_id = naming.ipam_handle(spec.namespace, spec.name)
        attributes = records.ipam_attributes(spec.namespace, spec.name, host, created)
        try:
            assigned = cni.assign_address(store, host, handle_id, attributes, requested, owner=f"pod {spec.key}")
        except cni.CniError as exc:
            raise PodError(str(exc)) from None
        pod = PodPlan(
            name=spec.name,
            namespace=spec.namespace,
            host=host,
            ip=assigned.ip,
            block=assigned.block,
            borrowed=assigned.borrowed,
            netns=naming.pod_netns(lab, spec.namespace, spec.name),
            interface=naming.workload_interface(spec.namespace, spec.name),
            labels=spec.labels,
            image=spec.image,
            command=spec.command,
            ports=spec.ports,
        )
        try:
            with NetnsLinks(naming.host_netns(lab, host)) as links:
                cni.plumb(pod, links, pod.block, pod.borrowed)
            values = _pod_values(lab, pod, hosts[host], created, store)
            if owner is not None:
                values[keys.pod(pod.namespace, pod.name)]["metadata"]["ownerReferences"] = [owner]
            store.put_many(values)
        except BaseException:
            cni.delete(lab, store, pod.namespace, pod.name, host)  # no half-made pod, no leaked address
            raise
    if start:
        start_program(lab, pod)
    return pod


def start_program(lab: str, pod: PodPlan) -> None:
    """Start the pod's program (its command, else its image's), as the kubelet would."""
    lab_state = state.load(lab)
    if lab_state is not None:
        build.start_pod_program(lab, pod, lab_state)


def _pod_values(
    lab: str, pod: PodPlan, host_ip: IPv4Address, created: float, store: Datastore
) -> dict[str, dict[str, Any]]:
    """The pod's WorkloadEndpoint and Pod (its namespace's objects too, if new)."""
    values: dict[str, dict[str, Any]] = {}
    if store.get(keys.k8s_namespace(pod.namespace)) is None:
        values.update(records.namespace_records(lab, NamespacePlan(pod.namespace, ()), created))
    values[keys.workload_endpoint_of(pod.host, pod.namespace, pod.name)] = records.workload_endpoint_record(
        lab, pod, created
    )
    values[keys.pod(pod.namespace, pod.name)] = records.k8s_pod_record(lab, pod, host_ip, created)
    return values


def delete_pod(lab: str, namespace: str, name: str, store: Datastore) -> None:
    """Remove one pod: its processes, netns (and so its veth and route), address and records."""
    with ipam_lock(lab):
        pod_value = store.get(keys.pod(namespace, name))
        if pod_value is None:
            raise PodError(f"pod {namespace}/{name} not found in lab {lab!r}")
        node = str(pod_value.get("spec", {}).get("nodeName", ""))
        cni.delete(lab, store, namespace, name, node)
        store.delete(keys.pod(namespace, name))
