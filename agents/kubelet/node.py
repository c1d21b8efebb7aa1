"""The kubelet's heartbeat: its Kubernetes Node object and the node Lease.

The Node (``/registry/minions/<host>``) is created when missing and its status
(Ready True, lastHeartbeatTime, the host's InternalIP from its Calico node, nodeInfo)
refreshed every NODE_STATUS_SECONDS, and at once after a gap in the heartbeat (the
process was stopped or restarted: the node lifecycle controller may have marked the Node
NotReady meanwhile); the Lease (``/registry/leases/kube-node-lease/<host>``) is
renewed every LEASE_RENEW_SECONDS. Every write is conditional on the revision read last;
a lost race re-reads. The builders are pure; ``Heartbeat.beat`` is one round of writes.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from agents.kubelet.lifecycle import timestamp
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore, DatastoreError, Versioned, put_if

LOG = logging.getLogger("agents.kubelet.node")
LEASE_RENEW_SECONDS = 1.0
LEASE_DURATION_SECONDS = 40
NODE_STATUS_SECONDS = 10.0
STALE_AFTER_SECONDS = 4.0  # the controller manager's NODE_MONITOR_GRACE: after such a gap, rewrite the Node at once
KUBELET_VERSION = "testbed"
LEASE_NAMESPACE = "kube-node-lease"


def micro_time(t: float) -> str:
    """RFC 3339 with microseconds (a Lease's renewTime, Kubernetes' MicroTime)."""
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float | None:
    """RFC 3339 (seconds or microseconds, UTC ``Z``) -> epoch seconds; None if not one."""
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
        except (TypeError, ValueError):
            continue
    return None


def ready_condition(node: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    for condition in ((node or {}).get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return None


def node_object(host: str, ip: str | None, now: float, existing: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Node as this kubelet reports it; metadata and spec of ``existing`` are kept
    (labels merged), and Ready's lastTransitionTime while it stays True."""
    node: dict[str, Any] = {k: v for k, v in (existing or {}).items()}
    meta = dict(node.get("metadata") or {})
    meta.setdefault("name", host)
    meta.setdefault("uid", str(uuid.uuid4()))
    meta.setdefault("creationTimestamp", timestamp(now))
    meta["labels"] = {
        **dict(meta.get("labels") or {}),
        "kubernetes.io/hostname": host,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": _arch(),
    }
    old_ready = ready_condition(existing)
    since = old_ready.get("lastTransitionTime") if old_ready and old_ready.get("status") == "True" else None
    status = dict(node.get("status") or {})
    status["conditions"] = [
        *(c for c in status.get("conditions") or [] if isinstance(c, Mapping) and c.get("type") != "Ready"),
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": timestamp(now),
            "lastTransitionTime": since or timestamp(now),
        },
    ]
    status["addresses"] = [*([{"type": "InternalIP", "address": ip}] if ip else []), {"type": "Hostname", "address": host}]
    status["nodeInfo"] = {
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "containerRuntimeVersion": "testbed://1",
        "operatingSystem": "linux",
        "architecture": _arch(),
        "kernelVersion": platform.release(),
        "osImage": "testbed",
    }
    return {**node, "apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": node.get("spec") or {}, "status": status}


def lease_object(host: str, now: float, existing: Mapping[str, Any] | None, node_uid: str | None) -> dict[str, Any]:
    lease: dict[str, Any] = {k: v for k, v in (existing or {}).items()}
    meta = dict(lease.get("metadata") or {})
    meta.setdefault("name", host)
    meta.setdefault("namespace", LEASE_NAMESPACE)
    meta.setdefault("uid", str(uuid.uuid4()))
    meta.setdefault("creationTimestamp", timestamp(now))
    if node_uid and not meta.get("ownerReferences"):
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": host, "uid": node_uid}]
    spec = {
        **dict(lease.get("spec") or {}),
        "holderIdentity": host,
        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
        "renewTime": micro_time(now),
    }
    return {**lease, "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


def lease_fresh(lease: Mapping[str, Any] | None, now: float, grace: float) -> bool | None:
    """Was the lease renewed within ``grace`` seconds? None when there is no lease."""
    if not lease:
        return None
    renewed = parse_time(str((lease.get("spec") or {}).get("renewTime") or ""))
    return renewed is not None and now - renewed <= grace


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class Heartbeat:
    """One host's Node and Lease; ``beat`` once a second (``run`` does, in its thread).

    ``store`` should be a client of its own: the revision of a write is taken from its
    ``last_write_revision`` (another thread's writes on the same client would make it
    too high; a conditional write then fails once and re-reads, no harm done)."""

    def __init__(self, store: Datastore, host: str) -> None:
        self.store, self.host = store, host
        self._node: Versioned | None = None  # as last read or written
        self._lease: Versioned | None = None
        self._node_written = float("-inf")
        self._ip: str | None = None
        self._last_beat = float("-inf")

    def beat(self, now: float) -> None:
        if now - self._last_beat > STALE_AFTER_SECONDS:
            self._node = None  # we were away (stopped, frozen): the node may read NotReady now
        if self._ip is None:
            calico = self.store.get(keys.node(self.host))
            if calico is None:
                return  # the lab's records are not written yet (`up` writes them after the agents start)
            self._ip = str(records.node_summary(calico).ip)
        self._refresh_node(now)
        self._renew_lease(now)
        self._last_beat = now

    def _refresh_node(self, now: float) -> None:
        key = keys.k8s_node(self.host)
        if self._node is not None and now - self._node_written < NODE_STATUS_SECONDS:
            return
        for _ in range(3):
            current = self._node if self._node is not None else self.store.get_versioned(key)
            value = node_object(self.host, self._ip, now, current.value if current else None)
            if put_if(self.store, key, value, current.revision if current else 0):
                self._node, self._node_written = Versioned(value, self.store.last_write_revision), now
                return
            self._node = None  # lost a race: read again
        LOG.warning("node %s: status kept changing under us; retrying", self.host)

    def _renew_lease(self, now: float) -> None:
        key = keys.node_lease(self.host)
        node_uid = str(((self._node.value if self._node else {}).get("metadata") or {}).get("uid") or "") or None
        for _ in range(3):
            current = self._lease if self._lease is not None else self.store.get_versioned(key)
            value = lease_object(self.host, now, current.value if current else None, node_uid)
            if put_if(self.store, key, value, current.revision if current else 0):
                self._lease = Versioned(value, self.store.last_write_revision)
                return
            self._lease = None
        LOG.warning("lease %s: kept changing under us; retrying", self.host)

    def run(self, stop: threading.Event, clock: Any = time.time) -> None:
        while not stop.is_set():
            try:
                self.beat(clock())
            except DatastoreError as exc:
                LOG.warning("heartbeat: %s", exc)
                self._node = self._lease = None
            except Exception:  # noqa: BLE001 - the heartbeat must outlive any one bad round
                LOG.exception("heartbeat failed")
                self._node = self._lease = None
            stop.wait(LEASE_RENEW_SECONDS)
