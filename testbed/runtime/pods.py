"""Pods that come and go after `up`: what the CNI plugin and kubelet do for one pod.

Adding a pod reads the lab's IPAM state from etcd, assigns an address as Calico's IPAM
would (own block, a new block, or a pinned/borrowed address), plumbs the pod, and writes
its records and the updated block in one transaction; the host's BGP speaker sees the
change through its etcd watch. Deleting reverses it. A lock file in the lab's state
folder serialises IPAM changes between concurrent commands.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from testbed import addressing, images, naming
from testbed.datastore import blocks, keys, records
from testbed.datastore.base import Datastore
from testbed.model.topology import PodSpec
from testbed.netns import etc_files, namespaces, sandbox
from testbed.netns.links import PROTO_BIRD, NetnsLinks
from testbed.runtime import build, state
from testbed.runtime.plan import NamespacePlan, PodPlan

IPAM_LOCK = "ipam.lock"


class PodError(RuntimeError):
    """A pod request that cannot be met: exists already, no such host, address taken."""


@contextmanager
def ipam_lock(lab: str) -> Iterator[None]:
    with open(state.folder(lab) / IPAM_LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _allocator(store: Datastore) -> tuple[addressing.BlockAllocator, dict[IPv4Network, dict[str, Any]]]:
    """Calico's IPAM state, read back from etcd into the pure allocator."""
    block_values = {blocks.block_cidr(v): v for v in store.list(keys.BLOCKS).values()}
    affinity = {cidr: node for cidr, v in block_values.items() if (node := blocks.block_node(v))}
    used = {ip for v in block_values.values() for ip in blocks.block_addresses(v)}
    return addressing.BlockAllocator(affinity=affinity, used=used), block_values


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
    except images.UnknownImage as exc:
        raise PodError(f"pod {spec.key}: {exc}") from None
    with ipam_lock(lab):
        if store.get(keys.pod(spec.namespace, spec.name)) is not None:
            raise PodError(f"pod {spec.key} already exists in lab {lab!r}")
        hosts = {n.name: n.ip for n in map(records.node_summary, store.list(keys.NODES).values())}
        host = _choose_host(store, spec, hosts, owner)
        ipam, block_values = _allocator(store)
        before = dict(ipam.affinity)
        try:
            if spec.ip is not None:
                allocation = ipam.assign_pinned(host, addressing.parse_ipv4(spec.ip), owner=f"pod {spec.key}")
            else:
                allocation = ipam.assign(host)
        except addressing.AddressError as exc:
            raise PodError(str(exc)) from None
        pod = PodPlan(
            name=spec.name,
            namespace=spec.namespace,
            host=host,
            ip=allocation.ip,
            block=allocation.block,
            borrowed=allocation.borrowed,
            netns=naming.pod_netns(lab, spec.namespace, spec.name),
            interface=naming.workload_interface(spec.namespace, spec.name),
            labels=spec.labels,
            image=spec.image,
            command=spec.command,
            ports=spec.ports,
        )
        new_blocks = {b: h for b, h in ipam.affinity.items() if b not in before}
        host_netns = naming.host_netns(lab, host)
        with NetnsLinks(host_netns) as links:
            for block in new_blocks:
                links.add_route(str(block), blackhole=True, proto=PROTO_BIRD)
            build.build_pod(pod, links)
        values = _pod_values(lab, pod, hosts[host], created, store, block_values, new_blocks)
        if owner is not None:
            values[keys.pod(pod.namespace, pod.name)]["metadata"]["ownerReferences"] = [owner]
        store.put_many(values)
    if start:
        start_program(lab, pod)
    return pod


def start_program(lab: str, pod: PodPlan) -> None:
    """Start the pod's program (its command, else its image's), as the kubelet would."""
    lab_state = state.load(lab)
    if lab_state is not None:
        build.start_pod_program(lab, pod, lab_state)


def _pod_values(
    lab: str,
    pod: PodPlan,
    host_ip: IPv4Address,
    created: float,
    store: Datastore,
    block_values: dict[IPv4Network, dict[str, Any]],
    new_blocks: dict[IPv4Network, str],
) -> dict[str, dict[str, Any]]:
    handle_id = naming.ipam_handle(pod.namespace, pod.name)
    values: dict[str, dict[str, Any]] = {}
    for block, host in new_blocks.items():
        block_values[block] = blocks.empty_block(block, host)
        values[keys.block_affinity(host, block)] = blocks.affinity_record()
    values[keys.block(pod.block)] = blocks.block_allocate(
        block_values[pod.block], pod.ip, handle_id, records.ipam_secondary(pod, created)
    )
    if store.get(keys.k8s_namespace(pod.namespace)) is None:
        values.update(records.namespace_records(lab, NamespacePlan(pod.namespace, ()), created))
    values[keys.workload_endpoint_of(pod.host, pod.namespace, pod.name)] = records.workload_endpoint_record(
        lab, pod, created
    )
    values[keys.pod(pod.namespace, pod.name)] = records.k8s_pod_record(lab, pod, host_ip, created)
    values[keys.handle(handle_id)] = blocks.handle_record(handle_id, {pod.block: 1})
    return values


def delete_pod(lab: str, namespace: str, name: str, store: Datastore) -> None:
    """Remove one pod: its processes, netns (and so its veth and route), address and records."""
    with ipam_lock(lab):
        pod_value = store.get(keys.pod(namespace, name))
        if pod_value is None:
            raise PodError(f"pod {namespace}/{name} not found in lab {lab!r}")
        node = str(pod_value.get("spec", {}).get("nodeName", ""))
        netns = naming.pod_netns(lab, namespace, name)
        sandbox.stop(netns)  # its containers (SIGTERM, then SIGKILL), then its pause
        namespaces.remove(netns)
        etc_files.remove(netns)
        handle_id = naming.ipam_handle(namespace, name)
        updates: dict[str, dict[str, Any]] = {}
        for key, value in store.list(keys.BLOCKS).items():
            released, count = blocks.block_release(value, handle_id)
            if count:
                updates[key] = released
        if updates:
            store.put_many(updates)
        for key in (keys.workload_endpoint_of(node, namespace, name), keys.pod(namespace, name), keys.handle(handle_id)):
            store.delete(key)
