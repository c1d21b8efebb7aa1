"""Live migration of one pod to another host, keeping its address and its processes.

A real migration moves the workload and re-plugs its interface on the destination; the
address then follows it as a borrowed /32. Here the pod's netns (and so every process in
it, its eth0, address and open sockets) is kept: only the host end of its veth moves from
the old host netns to the new one, where it gets what the CNI plugin and Felix give a
workload interface (sysctls, link up, the /32 route, the permanent neighbour).

The IPAM block stays affine to the old host (Calico does not move blocks), which keeps its
blackhole for it; the new host announces the pod as a /32 outside its own blocks (see
agents.bgp.rib.desired_announcements) and, being more specific, that wins everywhere,
the old host included. Moving back to the block's host needs no /32: its block covers it.

The pod's kubelets hand it over first (``agents.kubelet.handoff``): a testbed extension,
since in Kubernetes ``spec.nodeName`` is immutable and a pod never changes node. migrate
asks with the annotation ``testbed.io/migrate-to``; the old node's kubelet lets the pod go
without stopping anything and records what it held (``testbed.io/handoff``); after the
move the new node's kubelet adopts the running containers. Until the old kubelet lets
go nothing moves: a migrate that gives up there withdraws its request, and the old node
keeps (adopts back) the pod.

Order matters for the outage: the interface moves first (the old host's route and
neighbour go with it), then one etcd transaction re-homes the records; every host's BGP
glue and Felix react to that through their watches. ``migrate`` returns once every host
routes the pod's address towards its new host, every Felix enforces the change, and the
new node's kubelet holds the pod. The outage figure is from the interface move to routed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import Any

from pyroute2 import IPRoute

from testbed import naming
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore, put_if
from testbed.netns import namespaces
from testbed.netns.links import NetnsLinks, Route
from testbed.netns.workload import plug_workload
from testbed.runtime import policy_agents
from agents.kubelet import handoff
from agents.kubelet.cni import ipam_lock


class PodError(RuntimeError):
    """A migration that cannot be made: no such pod or host, already there. One line."""

ROUTE_TIMEOUT = 10.0  # seconds for every host to route the address to its new home
HANDOFF_TIMEOUT = 10.0  # seconds for the old node's kubelet to let the pod go (and the new one's to adopt it)
WRITE_RETRIES = 8  # conditional writes lost to another writer before giving up


@dataclass(frozen=True)
class Migration:
    """What moved where; ``seconds`` from the interface move to every host routing it."""

    namespace: str
    name: str
    ip: str
    interface: str
    source: str
    target: str
    borrowed: bool  # the address is now outside the new host's blocks (announced as a /32)
    seconds: float


# -- pure parts ----------------------------------------------------------------------------


def moved_endpoint(endpoint: Mapping[str, Any], target: str) -> dict[str, Any]:
    """The WorkloadEndpoint as it reads on ``target``: its name and node change, nothing else
    (uid, labels, interface, MAC and ports stay: the workload is the same)."""
    new = copy.deepcopy(dict(endpoint))
    namespace = str(new["metadata"].get("namespace", ""))
    pod = str(new["spec"]["pod"])
    new["metadata"]["name"] = naming.workload_endpoint_name(target, namespace, pod)
    new["spec"]["node"] = target
    return new


def moved_pod(pod: Mapping[str, Any], target: str, target_ip: IPv4Address) -> dict[str, Any]:
    """The Kubernetes Pod with its new node and host IP; its podIP is unchanged."""
    new = copy.deepcopy(dict(pod))
    new.setdefault("spec", {})["nodeName"] = target
    new.setdefault("status", {})["hostIP"] = str(target_ip)
    return new


def reattributed_block(block: Mapping[str, Any], handle_id: str, target: str) -> dict[str, Any] | None:
    """The block with the node recorded for ``handle_id``'s addresses set to ``target``
    (as Calico's IPAM attributes name the node using an address); None if unchanged."""
    new = copy.deepcopy(dict(block))
    changed = False
    for attribute in new.get("attributes", []):
        secondary = attribute.get("secondary") or {}
        if attribute.get("handle_id") == handle_id and secondary.get("node") != target:
            secondary["node"] = target
            attribute["secondary"] = secondary
            changed = True
    return new if changed else None


def is_borrowed(ip: IPv4Address, target_blocks: Iterable[IPv4Network]) -> bool:
    return not any(ip in block for block in target_blocks)


def best_route(table: Iterable[Route], ip: IPv4Address) -> Route | None:
    """The route the kernel picks for ``ip`` in one main table: longest prefix first."""
    best: Route | None = None
    best_len = -1
    for route in table:
        network = ip_network(route.dst, strict=False)
        if ip in network and network.prefixlen > best_len:
            best, best_len = route, network.prefixlen
    return best


def routes_to_target(route: Route | None, *, on_target: bool, interface: str, target_ip: str) -> bool:
    """True when the chosen route delivers to the pod at its new home: on the new host via
    its cali interface, elsewhere via the new host (never into a blackhole)."""
    if route is None or route.kind != "unicast":
        return False
    if on_target:
        return route.dev == interface
    return route.gateway == target_ip


# -- the applier ----------------------------------------------------------------------------


def migrate(lab: str, namespace: str, name: str, target: str, store: Datastore) -> Migration:
    """Move pod ``namespace/name`` to host ``target``; PodError on bad input (nothing changed).

    The kubelets hand the pod over (``agents.kubelet.handoff``, a testbed extension:
    Kubernetes never changes a pod's ``spec.nodeName``): ask (annotation), wait for the old
    node's kubelet to let it go, move the veth, re-home the records in one transaction,
    wait until every host routes and enforces it and the new node's kubelet holds it."""
    key, ref = keys.pod(namespace, name), f"{namespace}/{name}"
    pod_value = store.get(key)
    if pod_value is None:
        raise PodError(f"pod {ref} not found in lab {lab!r}")
    nodes = {n.name: n.ip for n in map(records.node_summary, store.list(keys.NODES).values())}
    if target not in nodes:
        raise PodError(f"host {target!r} not found in lab {lab!r} (hosts: {', '.join(sorted(nodes))})")
    source = str(pod_value.get("spec", {}).get("nodeName", ""))
    if source == target:
        raise PodError(f"pod {ref} is already on {target}")
    if (pod_value.get("metadata") or {}).get("deletionTimestamp"):
        raise PodError(f"pod {ref} is being deleted")
    if (pending := handoff.annotation_of(pod_value, handoff.MIGRATE_TO)) is not None:
        raise PodError(f"pod {ref}: metadata.annotations[{handoff.MIGRATE_TO}]: already being moved to {pending}")
    if (given := handoff.handoff_in(pod_value)) is not None:
        raise PodError(
            f"pod {ref}: metadata.annotations[{handoff.HANDOFF}]: node {given.target} has not adopted it yet"
        )
    endpoint = store.get(keys.workload_endpoint_of(source, namespace, name))
    if endpoint is None:
        raise PodError(f"pod {ref} has no WorkloadEndpoint on {source!r} in lab {lab!r}")
    summary = records.endpoint_summary(endpoint)
    ip = IPv4Address(str(summary.ip))
    interface = summary.interface
    pod_netns = naming.pod_netns(lab, namespace, name)
    if not namespaces.exists(pod_netns):
        raise PodError(f"pod {ref} has no network namespace ({pod_netns})")
    target_blocks = [keys.parse_block_affinity(k)[1] for k in store.list(keys.affinities_of(target))]

    _rewrite(store, key, ref, lambda v: handoff.annotated(v, {handoff.MIGRATE_TO: target}))
    try:
        wait_handed_off(store, key, ref, source, target)
    except PodError:
        _rewrite(store, key, ref, lambda v: handoff.annotated(v, {handoff.MIGRATE_TO: None}))
        raise  # the old node adopts its handoff back, if it wrote one

    started = time.monotonic()
    with ipam_lock(lab):
        _move_interface(naming.host_netns(lab, source), naming.host_netns(lab, target), interface, pod_netns, ip)
        revision = _rehome(store, namespace, name, source, target, nodes[target])
    wait_routed(lab, sorted(nodes), target, str(nodes[target]), interface, ip)
    seconds = time.monotonic() - started
    policy_agents.wait_enforced(store, sorted(nodes), revision)
    wait_adopted(store, key, ref, target)
    return Migration(namespace, name, str(ip), interface, source, target, is_borrowed(ip, target_blocks), seconds)


def _rewrite(store: Datastore, key: str, ref: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """A conditional read-modify-write of the Pod, read again after a lost race (bounded)."""
    for _ in range(WRITE_RETRIES):
        got = store.get_versioned(key)
        if got is None:
            raise PodError(f"pod {ref} was deleted meanwhile")
        if put_if(store, key, change(got.value), got.revision):
            return
    raise PodError(f"pod {ref} kept changing; gave up after {WRITE_RETRIES} tries")


def wait_handed_off(
    store: Datastore, key: str, ref: str, source: str, target: str, timeout: float = HANDOFF_TIMEOUT
) -> None:
    """Until ``source``'s kubelet has let the pod go to ``target`` (its handoff on the Pod)."""
    deadline = time.monotonic() + timeout
    while True:
        got = store.get(key)
        if got is None:
            raise PodError(f"pod {ref} was deleted meanwhile; not moved")
        if (got.get("metadata") or {}).get("deletionTimestamp"):
            raise PodError(f"pod {ref} is being deleted; not moved")
        given = handoff.handoff_in(got)
        if given is not None and (given.source, given.target) == (source, target):
            return
        if time.monotonic() > deadline:
            raise PodError(f"node {source}'s kubelet did not hand pod {ref} over within {timeout:g} s; not moved")
        time.sleep(0.005)


def _rehome(store: Datastore, namespace: str, name: str, source: str, target: str, target_ip: IPv4Address) -> int:
    """One transaction: the endpoint renamed to ``target``, the Pod bound there (its request
    removed, its handoff kept for the new kubelet), the IPAM attributes naming ``target``;
    conditional on what was read. The revision written."""
    key, old_key = keys.pod(namespace, name), keys.workload_endpoint_of(source, namespace, name)
    handle_id = naming.ipam_handle(namespace, name)
    for _ in range(WRITE_RETRIES):
        pod = store.get_versioned(key)
        endpoint = store.get_versioned(old_key)
        if pod is None or endpoint is None:
            raise PodError(f"pod {namespace}/{name}: its Pod or WorkloadEndpoint vanished during the move")
        moved = handoff.annotated(moved_pod(pod.value, target, target_ip), {handoff.MIGRATE_TO: None})
        puts: dict[str, dict[str, Any]] = {
            keys.workload_endpoint_of(target, namespace, name): moved_endpoint(endpoint.value, target),
            key: moved,
        }
        expect = {key: pod.revision, old_key: endpoint.revision}
        block_values, _revision = store.list_versioned(keys.BLOCKS)
        for block_key, block in block_values.items():
            if (changed := reattributed_block(block.value, handle_id, target)) is not None:
                puts[block_key], expect[block_key] = changed, block.revision
        if store.commit(puts, [old_key], expect=expect):
            return store.last_write_revision
    raise PodError(f"pod {namespace}/{name}: its records kept changing; gave up after {WRITE_RETRIES} tries")


def wait_adopted(store: Datastore, key: str, ref: str, target: str, timeout: float = HANDOFF_TIMEOUT) -> None:
    """Until ``target``'s kubelet holds the pod (it removes the handoff from the Pod)."""
    deadline = time.monotonic() + timeout
    while (got := store.get(key)) is not None and handoff.handoff_in(got) is not None:
        if time.monotonic() > deadline:
            raise PodError(f"pod {ref} moved to {target}, but its kubelet did not adopt it within {timeout:g} s")
        time.sleep(0.01)


def _move_interface(source_netns: str, target_netns: str, interface: str, pod_netns: str, ip: IPv4Address) -> None:
    """The host end of the pod's veth into the target host, plumbed as a workload's."""
    with IPRoute(netns=source_netns) as ipr:
        found = ipr.link_lookup(ifname=interface)
        if not found:
            raise PodError(f"interface {interface} not found on the pod's host ({source_netns})")
        # pyroute2 resolves a netns name to /var/run/netns/NAME itself.
        ipr.link("set", index=found[0], net_ns_fd=target_netns)
    with NetnsLinks(pod_netns) as pod:
        pod_mac = pod.mac(naming.POD_INTERFACE)
    with NetnsLinks(target_netns) as host:
        plug_workload(host, interface, str(ip), pod_mac, replace=True)


def wait_routed(
    lab: str, hosts: list[str], target: str, target_ip: str, interface: str, ip: IPv4Address,
    timeout: float = ROUTE_TIMEOUT,
) -> None:
    """Until every host's kernel sends ``ip`` to its new home; TimeoutError names the others."""
    deadline = time.monotonic() + timeout
    handles = {h: NetnsLinks(naming.host_netns(lab, h)) for h in hosts}
    try:
        while True:
            late = [
                h for h, links in handles.items()
                if not routes_to_target(
                    best_route(links.routes(), ip), on_target=h == target, interface=interface, target_ip=target_ip
                )
            ]  # fmt: skip
            if not late:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ip} is not routed to {target} within {timeout:g} s on {', '.join(late)}")
            time.sleep(0.005)
    finally:
        for links in handles.values():
            links.close()

