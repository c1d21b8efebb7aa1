"""Calico's CNI plugin for one pod: IPAM, the pod's netns and veth (ADD), and back (DEL).

Used by each host's kubelet (the one way a pod is made) and by `testbed migrate`.

IPAM is Calico's: an address from the host's affine blocks in order, a new block claimed
(its affinity written) when they are full, or the address a pod asks for (annotation
``cni.projectcalico.org/ipAddrs``; its block claimed if nobody holds it, else borrowed).
Every block and affinity update is a conditional write against the revisions just
read, retried on a lost race; the lab's IPAM lock file (``ipam.lock`` in its state
folder) also serialises whole ADDs and DELs between processes (kubelets, CLI), so a
retry is rare. A pod's addresses are found by its IPAM handle
(``k8s-pod-network.<ns>.<pod>``): an ADD whose handle already holds an address reuses
it (a kubelet restarted half-way, or `testbed up`, which writes topology pods' IPAM).
"""

from __future__ import annotations

import fcntl
import json
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from agents.kubelet.podspec import PodView
from testbed import addressing, naming
from testbed.datastore import blocks, keys, records
from testbed.datastore.base import Datastore, Versioned
from testbed.model.policy import NamedPort
from testbed.netns import namespaces, processes
from testbed.netns.rtnetlink import PROTO_BIRD, RtnlLinks
from testbed.netns.workload import Links, PodNetwork, build_pod, remove_pod
from testbed.runtime import programs, state
from testbed.runtime.plan import PodPlan

IPAM_LOCK = "ipam.lock"
IPAM_RETRIES = 8  # conditional writes lost to another writer before giving up
ANNOTATION_IP_ADDRS = "cni.projectcalico.org/ipAddrs"


class CniError(RuntimeError):
    """An ADD that cannot be met (address taken, pool full, IPAM kept changing). One line."""


@contextmanager
def ipam_lock(lab: str) -> Iterator[None]:
    """The lab's IPAM lock (one flock; not re-entrant: take it once per ADD or DEL)."""
    with open(state.folder(lab) / IPAM_LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def requested_address(owner: str, annotations: Mapping[str, Any]) -> IPv4Address | None:
    """The address ``cni.projectcalico.org/ipAddrs`` asks for (a JSON list of one IPv4), or
    None; CniError naming the pod and the annotation when it is not one."""
    raw = annotations.get(ANNOTATION_IP_ADDRS)
    if raw is None:
        return None
    try:
        value = json.loads(str(raw))
    except ValueError:
        value = None
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], str):
        raise CniError(f"{owner}: annotation {ANNOTATION_IP_ADDRS}: expected a JSON list of one IPv4 address, got {raw!r}")
    try:
        return addressing.parse_ipv4(value[0])
    except addressing.AddressError as exc:
        raise CniError(f"{owner}: annotation {ANNOTATION_IP_ADDRS}: {exc}") from None


# --- IPAM ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """A pod's address: its block, whether the block is another host's, whether it was
    already the handle's (nothing written)."""

    ip: IPv4Address
    block: IPv4Network
    borrowed: bool
    reused: bool


def handle_addresses(block_values: Mapping[str, Versioned], handle_id: str) -> dict[IPv4Address, IPv4Network]:
    """Every address ``handle_id`` holds -> its block."""
    found: dict[IPv4Address, IPv4Network] = {}
    for versioned in block_values.values():
        for ip, holder in blocks.block_addresses(versioned.value).items():
            if holder == handle_id:
                found[ip] = blocks.block_cidr(versioned.value)
    return found


def plan_assignment(
    block_values: Mapping[str, Versioned], host: str, handle_id: str, requested: IPv4Address | None, owner: str
) -> tuple[addressing.Allocation, bool]:
    """Which address (pure): the handle's own (True: reused), else a new one from the
    pure allocator over the blocks as read. CniError when none fits."""
    held = handle_addresses(block_values, handle_id)
    by_cidr = {blocks.block_cidr(v.value): v.value for v in block_values.values()}
    affinity = {cidr: node for cidr, v in by_cidr.items() if (node := blocks.block_node(v))}
    if held:
        ip = requested if requested is not None else min(held)
        if ip not in held:
            raise CniError(f"{owner}: asks for {ip} but its IPAM handle {handle_id} holds {', '.join(map(str, sorted(held)))}")
        block = held[ip]
        return addressing.Allocation(ip, block, host, borrowed=affinity.get(block) != host), True
    used = {ip for v in by_cidr.values() for ip in blocks.block_addresses(v)}
    ipam = addressing.BlockAllocator(affinity=dict(affinity), used=used)
    try:
        if requested is not None:
            return ipam.assign_pinned(host, requested, owner=owner), False
        return ipam.assign(host), False
    except addressing.AddressError as exc:
        raise CniError(str(exc)) from None


def assign_address(
    store: Datastore,
    host: str,
    handle_id: str,
    attributes: Mapping[str, str],
    requested: IPv4Address | None = None,
    owner: str = "pod",
) -> Assignment:
    """Allocate (or find again) the pod's address: one transaction writes the block (and,
    for a new block, its affinity) and the handle, only if none changed since read."""
    handle_key = keys.handle(handle_id)
    for _ in range(IPAM_RETRIES):
        block_values, _revision = store.list_versioned(keys.BLOCKS)
        allocation, reused = plan_assignment(block_values, host, handle_id, requested, owner)
        handle = store.get_versioned(handle_key)
        result = Assignment(allocation.ip, allocation.block, allocation.borrowed, reused=reused)
        handle_value = blocks.handle_record(handle_id, {allocation.block: 1})
        if reused:  # the block holds it already; write the handle if it went missing
            if handle is not None or store.commit({handle_key: handle_value}, expect={handle_key: 0}):
                return result
            continue
        block_key = keys.block(allocation.block)
        current = block_values.get(block_key)
        base = current.value if current else blocks.empty_block(allocation.block, host)
        puts = {block_key: blocks.block_allocate(base, allocation.ip, handle_id, attributes), handle_key: handle_value}
        expect = {block_key: current.revision if current else 0, handle_key: handle.revision if handle else 0}
        if current is None:  # a new block: claim it, as Calico writes the block's affinity
            affinity_key = keys.block_affinity(host, allocation.block)
            puts[affinity_key] = blocks.affinity_record()
            expect[affinity_key] = 0
        if store.commit(puts, expect=expect):
            return result
    raise CniError(f"{owner}: IPAM blocks kept changing; gave up after {IPAM_RETRIES} tries")


def release_address(store: Datastore, handle_id: str) -> int:
    """Free every address of ``handle_id`` and delete the handle, in one conditional
    transaction; how many addresses were freed (0: nothing held, no error)."""
    for _ in range(IPAM_RETRIES):
        block_values, _revision = store.list_versioned(keys.BLOCKS)
        puts: dict[str, dict[str, Any]] = {}
        expect: dict[str, int] = {}
        freed = 0
        for key, versioned in block_values.items():
            released, count = blocks.block_release(versioned.value, handle_id)
            if count:
                puts[key], expect[key] = released, versioned.revision
                freed += count
        if store.commit(puts, [keys.handle(handle_id)], expect=expect):
            return freed
    raise CniError(f"IPAM handle {handle_id}: blocks kept changing; gave up after {IPAM_RETRIES} tries")


# --- plumbing -----------------------------------------------------------------------------


def plumb(pod: PodNetwork, host: Links, block: IPv4Network, borrowed: bool) -> str:
    """The pod's netns and veth (idempotent), and the blackhole of its block on the host
    when the block is the host's own; returns the pod's MAC."""
    if not borrowed:
        host.add_route(str(block), blackhole=True, proto=PROTO_BIRD, replace=True)
    return build_pod(pod, host)


def unplumb(netns: str) -> None:
    """Stop whatever still lives in the pod's netns, then remove it and its files."""
    pids = namespaces.pids_by_netns([netns]).get(netns, [])
    if pids:
        processes.stop(pids)
    remove_pod(netns)


def delete(lab: str, store: Datastore, namespace: str, pod: str, node: str) -> int:
    """CNI DEL, the caller holding ``ipam_lock``: the pod's netns (and what runs there), its
    addresses, IPAM handle and WorkloadEndpoint. Idempotent; addresses freed."""
    netns = naming.pod_netns(lab, namespace, pod)
    unplumb(netns)
    programs.sandbox_record(lab, netns).unlink(missing_ok=True)
    freed = release_address(store, naming.ipam_handle(namespace, pod))
    store.delete(keys.workload_endpoint_of(node, namespace, pod))
    return freed


# --- the kubelet's CNI plugin -----------------------------------------------------------


@dataclass(frozen=True)
class Networked:
    """What CNI ADD gave a pod."""

    ip: IPv4Address
    block: IPv4Network
    borrowed: bool
    mac: str


def pod_plan(lab: str, host: str, pod: PodView, ip: IPv4Address, block: IPv4Network, borrowed: bool) -> PodPlan:
    """The pod as the records' builders know pods (named container ports included: Calico
    copies them onto the endpoint for named-port policy rules)."""
    ports = tuple(
        NamedPort(p.name, p.protocol, p.port)  # type: ignore[arg-type]
        for c in pod.containers for p in c.ports if p.name
    )  # fmt: skip
    return PodPlan(
        name=pod.name,
        namespace=pod.namespace,
        host=host,
        ip=ip,
        block=block,
        borrowed=borrowed,
        netns=naming.pod_netns(lab, pod.namespace, pod.name),
        interface=naming.workload_interface(pod.namespace, pod.name),
        labels=pod.labels,
        image=pod.containers[0].image,
        command=pod.containers[0].command,
        ports=ports,
    )


def endpoint_record(lab: str, host: str, pod: PodView, net: Networked, created: float) -> dict[str, Any]:
    """The pod's WorkloadEndpoint, as Calico's CNI plugin writes it."""
    plan = pod_plan(lab, host, pod, net.ip, net.block, net.borrowed)
    return records.workload_endpoint_record(lab, plan, created, net.mac)


class CniNetwork:
    """CNI ADD and DEL for the pods of one host, under the lab's IPAM lock."""

    def __init__(self, lab: str, store: Datastore, host: str) -> None:
        self.lab, self.store, self.host = lab, store, host
        self._host_links: RtnlLinks | None = None  # one handle on the host's netns for all its pods

    def _links(self) -> RtnlLinks:
        """The host netns handle, opened once and kept for all its pods."""
        if self._host_links is None:
            self._host_links = RtnlLinks(naming.host_netns(self.lab, self.host))
        self._host_links.forget()
        return self._host_links

    def _drop_links(self) -> None:
        if self._host_links is not None:
            self._host_links.close()
            self._host_links = None

    def add(self, pod: PodView, now: float) -> Networked:
        """IPAM (the annotated address, or the one its handle holds, or a new one), then
        the netns and veth; idempotent. CniError, or OSError/LookupError from netlink."""
        requested = requested_address(pod.ref, dict(pod.annotations))
        handle_id = naming.ipam_handle(pod.namespace, pod.name)
        attributes = records.ipam_attributes(pod.namespace, pod.name, self.host, now)
        with ipam_lock(self.lab):  # the lab's IPAM only: the plumbing is this host's own
            assigned = assign_address(self.store, self.host, handle_id, attributes, requested, owner=pod.ref)
        plan = pod_plan(self.lab, self.host, pod, assigned.ip, assigned.block, assigned.borrowed)
        try:
            mac = plumb(plan, self._links(), assigned.block, assigned.borrowed)
        except BaseException:
            self._drop_links()  # a handle in doubt is not reused
            raise
        return Networked(assigned.ip, assigned.block, assigned.borrowed, mac)

    def delete(self, namespace: str, name: str) -> None:
        with ipam_lock(self.lab):
            delete(self.lab, self.store, namespace, name, self.host)

    def held_elsewhere(self, pod: PodView, hosts: list[str]) -> str | None:
        """Another node whose pod of this name still has its netns (netns names do not
        name the host): an ADD here waits until that node's DEL is done. Only looked up
        when the netns exists and this host has no veth into it (the process runs in
        its host's netns, so ``if_nametoindex`` looks there)."""
        if not namespaces.exists(naming.pod_netns(self.lab, pod.namespace, pod.name)):
            return None
        try:
            socket.if_nametoindex(naming.workload_interface(pod.namespace, pod.name))
            return None  # ours: this host holds its veth
        except OSError:
            pass
        for other in hosts:
            if other != self.host and self.store.get(keys.workload_endpoint_of(other, pod.namespace, pod.name)):
                return other
        return None


def cni_add(lab: str, store: Datastore, pod: PodView, host: str, now: float) -> Networked:
    """CNI ADD of ``pod`` on ``host`` (what the kubelet calls; see CniNetwork.add)."""
    return CniNetwork(lab, store, host).add(pod, now)


def cni_del(lab: str, store: Datastore, namespace: str, pod: str, host: str) -> None:
    """CNI DEL of a pod of ``host``: netns, address, handle, WorkloadEndpoint; idempotent."""
    CniNetwork(lab, store, host).delete(namespace, pod)
