"""Node lifecycle: a Node whose kubelet stopped renewing its Lease is marked not Ready,
and after a while its controllers' pods are taken off it so that they are recreated on
Ready nodes.

The heartbeat is the Lease ``/registry/leases/kube-node-lease/<host>`` (``spec.renewTime``,
renewed by the kubelet every second; without a Lease, the Ready condition's
``lastHeartbeatTime``). As kube-controller-manager's node lifecycle controller does:

- heartbeat older than ``node_monitor_grace`` (4 s): the Node's Ready condition (and the
  MemoryPressure / DiskPressure / PIDPressure ones it has) becomes ``Unknown``, reason
  ``NodeStatusUnknown``, "Kubelet stopped posting node status." (``NodeStatusNeverUpdated``
  for a Node that never reported Ready); kubectl shows ``NotReady``. The pods bound to it
  get condition Ready False (MarkPodsNotReady), so that the endpoints controller takes
  them out of their Services' Endpoints.
- ``pod_eviction_timeout`` (10 s) after the last heartbeat (after the Ready condition's
  transition when the kubelet itself reports Ready False), its pods are evicted. Every
  pod on it gets ``status.reason: NodeLost`` and "Node <host> which was running pod <pod>
  is unresponsive" (Kubernetes' SetPodTerminationReason). Kubernetes then deletes every
  pod but DaemonSet ones gracefully and leaves them Terminating until the node comes back
  or is deleted. Here a pod with a controller owner (ReplicaSet, ReplicationController,
  ...) but not a DaemonSet is deleted outright (its key removed: the kubelet is not there
  to finish a graceful deletion) so that its controller creates a replacement; a bare pod
  is left, marked NodeLost: nothing would recreate it, and its kubelet may come back; a
  DaemonSet's pod stays too (its node is the point of it), as in Kubernetes.
- a fresh heartbeat again: nothing is written; the kubelet writes Ready True itself (a
  Ready Unknown Node with a fresh Lease is never evicted).

Times come from ``now`` (seconds since the epoch), never the wall clock.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from testbed.controllers.objects import parse_time as parse_timestamp
from testbed.datastore import keys
from testbed.datastore.records import timestamp
from testbed.datastore.base import Datastore, Value, Versioned, WatchEvent, delete_if, put_if

log = logging.getLogger(__name__)

NODE_MONITOR_GRACE = 4.0  # seconds without a heartbeat before a node is not Ready
POD_EVICTION_TIMEOUT = 10.0  # seconds without a heartbeat before its pods are evicted
RETRIES = 3
RETRY_AFTER = 0.5
EPSILON = 0.01  # past the moment a deadline runs out, so that the re-check sees it run out
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")
NODE_LOST = "NodeLost"


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def heartbeat(node: Mapping[str, Any], lease: Mapping[str, Any] | None) -> float | None:
    """When the kubelet last said it was alive: the Lease's renewTime, else the Ready
    condition's lastHeartbeatTime, else the Node's creation."""
    if lease is not None and (renewed := parse_timestamp((lease.get("spec") or {}).get("renewTime"))) is not None:
        return renewed
    ready = _condition(node, "Ready")
    if ready is not None and (beat := parse_timestamp(ready.get("lastHeartbeatTime"))) is not None:
        return beat
    return parse_timestamp((node.get("metadata") or {}).get("creationTimestamp"))


def marked_unknown(node: Value, now: float) -> Value:
    """The Node with Ready (and its pressure conditions) Unknown, as the node lifecycle
    controller writes it; the heartbeat times are kept."""
    status = node.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    ready = _condition(node, "Ready")
    if ready is None:
        conditions.append({
            "type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
            "message": "Kubelet never posted node status.",
            "lastHeartbeatTime": (node.get("metadata") or {}).get("creationTimestamp"),
            "lastTransitionTime": timestamp(now),
        })  # fmt: skip
    for condition in conditions:
        if condition.get("type") in ("Ready", *PRESSURE_CONDITIONS) and condition.get("status") != "Unknown":
            condition.update({
                "status": "Unknown", "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.", "lastTransitionTime": timestamp(now),
            })  # fmt: skip
    return node


def _controller_kind(pod: Mapping[str, Any]) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("kind") or "")
    return None


def pod_not_ready(pod: Value, now: float) -> Value:
    """The pod with condition Ready False (MarkPodsNotReady: the transition time now)."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") != "False":
            condition.update({"status": "False", "lastTransitionTime": timestamp(now)})
    return pod


def pod_lost(pod: Value, host: str, now: float) -> Value:
    """The pod with ``status.reason`` NodeLost (and Ready False)."""
    pod = pod_not_ready(pod, now)
    status = pod.setdefault("status", {})
    name = (pod.get("metadata") or {}).get("name")
    status.update({"reason": NODE_LOST, "message": f"Node {host} which was running pod {name} is unresponsive"})
    return pod


class NodeLifecycle:
    name = "node-lifecycle"
    prefixes: Sequence[str] = (keys.K8S_NODES, keys.NODE_LEASES)

    def __init__(self, node_monitor_grace: float = NODE_MONITOR_GRACE,
                 pod_eviction_timeout: float = POD_EVICTION_TIMEOUT) -> None:  # fmt: skip
        if node_monitor_grace <= 0 or pod_eviction_timeout <= 0:
            raise ValueError("node-lifecycle: node_monitor_grace and pod_eviction_timeout must be positive")
        self.grace = node_monitor_grace
        self.eviction = pod_eviction_timeout

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        for prefix in self.prefixes:
            if event.key.startswith(prefix) and "/" not in event.key[len(prefix) :]:
                return [event.key[len(prefix) :]]
        return []

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        return [keys.name_of(k) for k in store.list(keys.K8S_NODES)]

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        for _ in range(RETRIES):
            node = store.get_versioned(keys.k8s_node(key))
            if node is None:
                return None
            beat = heartbeat(node.value, store.get(keys.node_lease(key)))
            ready = _condition(node.value, "Ready")
            if beat is not None and now - beat <= self.grace:
                if ready is None or ready.get("status") != "False":
                    return self.grace - (now - beat) + EPSILON  # when it would go stale
                # The kubelet itself says not Ready: evicted as long after it said so.
                since = parse_timestamp(ready.get("lastTransitionTime"))
                if since is None or now - since < self.eviction:
                    return None if since is None else self.eviction - (now - since) + EPSILON
                return self._evict(store, key, now)
            if ready is None or ready.get("status") != "Unknown":
                updated = marked_unknown(copy.deepcopy(node.value), now)
                if not put_if(store, keys.k8s_node(key), updated, node.revision):
                    continue  # the kubelet or another writer was first: read again
                log.info("node %s: no heartbeat for %s, Ready Unknown", key,
                         "ever" if beat is None else f"{now - beat:.1f} s")  # fmt: skip
                ready = _condition(updated, "Ready")
            # Without any heartbeat time, the eviction counts from the Ready transition.
            since = beat if beat is not None else parse_timestamp((ready or {}).get("lastTransitionTime"))
            if since is None or now - since < self.eviction:
                lost = self._mark_pods(store, key, now, evict=False)
                return RETRY_AFTER if lost else self.eviction - (now - (since or now)) + EPSILON
            return self._evict(store, key, now)
        return RETRY_AFTER

    def _evict(self, store: Datastore, host: str, now: float) -> float:
        """Evict the node's pods; look again in a while (pods bound later, lost races)."""
        lost = self._mark_pods(store, host, now, evict=True)
        return RETRY_AFTER if lost else self.grace

    def _mark_pods(self, store: Datastore, host: str, now: float, *, evict: bool) -> bool:
        """Ready False on every pod of ``host``; with ``evict``, NodeLost too, and the
        controllers' pods (but DaemonSets') deleted. True if a write lost a race."""
        listed, _ = store.list_versioned(keys.PODS)
        lost = False
        for key, item in listed.items():
            if (item.value.get("spec") or {}).get("nodeName") != host:
                continue
            kind = _controller_kind(item.value)
            if evict and kind is not None and kind != "DaemonSet":
                if delete_if(store, key, item.revision):
                    log.info("node %s: evicted pod %s (owned by a %s)", host, key[len(keys.PODS) :], kind)
                else:
                    lost = True
                continue
            lost = not self._write_pod(store, key, item, host, now, evict) or lost
        return lost

    @staticmethod
    def _write_pod(store: Datastore, key: str, item: Versioned, host: str, now: float, evict: bool) -> bool:
        updated = copy.deepcopy(item.value)
        updated = pod_lost(updated, host, now) if evict else pod_not_ready(updated, now)
        if updated == item.value:
            return True
        return put_if(store, key, updated, item.revision)


def build(**options: Any) -> NodeLifecycle:
    """The controller, for the manager. Options ``node_monitor_grace`` and
    ``pod_eviction_timeout`` (seconds); options meant for other controllers are ignored."""
    return NodeLifecycle(
        float(options.get("node_monitor_grace", NODE_MONITOR_GRACE)),
        float(options.get("pod_eviction_timeout", POD_EVICTION_TIMEOUT)),
    )
