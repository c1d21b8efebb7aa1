"""Desired against actual for the pods of one node (pure): what the kubelet does with
each pod key, and which endpoints of this node nobody owns any more.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from agents.kubelet import handoff
from agents.kubelet.local import LocalPod
from agents.kubelet.podspec import PodView
from testbed.datastore import keys


class Action(enum.Enum):
    IGNORE = "ignore"  # not this node's, or networked by another path (`testbed up`, the CLI)
    ADD = "add"  # bound here, new: CNI ADD, then its containers
    SYNC = "sync"  # ours and wanted: containers, probes, restarts, status
    TERMINATE = "terminate"  # ours, deletionTimestamp set: stop containers, CNI DEL, delete the Pod
    DELETE = "delete"  # bound here with a deletionTimestamp, nothing of it here: delete the Pod
    TEARDOWN = "teardown"  # ours, but its Pod is gone (or was replaced, or moved): stop, CNI DEL
    HANDOFF = "handoff"  # ours, `testbed migrate` moves it away: record a handoff, forget it, stop nothing
    ADOPT = "adopt"  # bound here, handed off by a node (migrate): hold its running containers


def decide(host: str, pod: PodView | None, local: LocalPod | None) -> Action:
    """What to do with one pod key, from its stored Pod (None: no key) and what the
    kubelet holds for it (None: nothing). A pod being moved (``handoff``) is let go, never
    torn down, by the node it leaves, and adopted, never made again, by the one it joins."""
    if local is not None and pod is not None and handoff.handing_off(host, pod, local):
        return Action.HANDOFF
    if local is not None and (local.orphan or pod is None or pod.node != host or pod.uid != local.uid):
        return Action.TEARDOWN
    if pod is None or pod.node != host:
        return Action.IGNORE
    if local is None and handoff.moving_to(pod, host) is not None:
        return Action.IGNORE  # handed off already, the move under way: the Pod is nobody's for now
    if local is None and handoff.adoptable(host, pod):
        return Action.ADOPT
    if local is None:
        if pod.deleting:
            return Action.IGNORE if pod.networked_elsewhere else Action.DELETE
        return Action.IGNORE if pod.networked_elsewhere else Action.ADD
    return Action.TERMINATE if pod.deleting else Action.SYNC


def orphan_endpoints(
    host: str,
    endpoints: Iterable[tuple[str, str, str]],
    pods: Mapping[str, str | None],
    local: Mapping[str, LocalPod],
) -> list[tuple[str, str]]:
    """(namespace, pod) of every WorkloadEndpoint of this node whose Pod is gone or bound
    elsewhere and that the kubelet does not already hold: left by a kubelet that died
    before its CNI DEL, or by `testbed heal`. ``endpoints``: (node, namespace, pod) of each
    stored endpoint; ``pods``: pod key -> its spec.nodeName."""
    found = []
    for node, namespace, name in endpoints:
        key = keys.pod(namespace, name)
        if node == host and key not in local and pods.get(key) != host:
            found.append((namespace, name))
    return sorted(found)


def host_down(lease_fresh: bool | None, felix: Mapping[str, object] | None, now: float, stale_after: float) -> bool:
    """A host not to wait for: its Lease (renewed by the kubelet in the same process as its
    Felix) is stale; without a Lease, its Felix has not reported for ``stale_after`` s."""
    if lease_fresh is not None:
        return not lease_fresh
    if felix is None:
        return False  # never reported: starting up, wait for it
    updated = felix.get("updated")
    return isinstance(updated, (int, float)) and now - updated > stale_after
