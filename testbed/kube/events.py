"""Events, as the controllers and kubelets of a cluster record them: `kubectl get events`,
the Events of `kubectl describe`.

A core/v1 Event names its object (``involvedObject``: kind, namespace, name, uid), a
``reason`` (Scheduled, SuccessfulCreate, ScalingReplicaSet, Started, Killing, BackOff,
Unhealthy, ...), a message, Normal or Warning, and who said it (``source.component`` and
host) [k8s.io/api core/v1 types.go Event; client-go tools/record]. As client-go's
recorder does, the same event again (same object, reason and message) is one Event whose
``count`` grows and whose ``lastTimestamp`` moves [tools/record/events_cache.go].

Recording never slows the one who records: ``emit`` queues, and one thread per process
writes what queued in one transaction per batch (``put_many``), with a store client of
its own. A process that configured no recorder (unit tests, the CLI) records nothing.
Events live with their namespace (deleting it removes them); the API server's one-hour
TTL is not kept (a lab lives minutes or days).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from testbed.datastore import records
from testbed.kube import registry

LOG = logging.getLogger("testbed.events")
Value = dict[str, Any]
KIND = registry.BY_KIND["Event"]
FLUSH_SECONDS = 0.2
REMEMBERED = 4096  # events whose count this process keeps growing (the oldest are forgotten)


def event_name(involved_name: str, uid: str, reason: str, message: str) -> str:
    """``<object>.<16 hex>``: the same for the same event again (pure)."""
    digest = hashlib.sha256(f"{uid}\0{reason}\0{message}".encode()).hexdigest()[:16]
    return f"{involved_name}.{digest}"


def involved(obj: Mapping[str, Any], kind: str, api_version: str) -> Value:
    """The ``involvedObject`` of an event about ``obj`` (a stored object) (pure)."""
    meta = obj.get("metadata", {})
    ref: Value = {"kind": kind, "apiVersion": api_version, "name": meta.get("name", "")}
    for field, value in (("namespace", meta.get("namespace")), ("uid", meta.get("uid"))):
        if value:
            ref[field] = value
    return ref


def event_value(ref: Mapping[str, Any], reason: str, message: str, kind: str, component: str, host: str | None,
                first: float, last: float, count: int) -> Value:  # fmt: skip
    """One Event (pure)."""
    namespace = ref.get("namespace") or "default"
    name = event_name(str(ref.get("name")), str(ref.get("uid", "")), reason, message)
    source: Value = {"component": component}
    if host:
        source["host"] = host
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": records.timestamp(first)},
        "involvedObject": dict(ref), "reason": reason, "message": message, "type": kind,
        "source": source, "reportingComponent": component, "reportingInstance": host or component,
        "firstTimestamp": records.timestamp(first), "lastTimestamp": records.timestamp(last), "count": count,
    }  # fmt: skip


class Recorder:
    """Queues events; a thread writes them in batches with ``write`` (a batch of key -> value)."""

    def __init__(self, write: Callable[[dict[str, Value]], None], component: str, host: str | None = None) -> None:
        self._write, self.component, self.host = write, component, host
        self._queue: queue.SimpleQueue[tuple[Value, str, str, str, str, float]] = queue.SimpleQueue()
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (first, count)
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def emit(self, ref: Mapping[str, Any], reason: str, message: str, kind: str = "Normal",
             component: str | None = None, now: float | None = None) -> None:  # fmt: skip
        self._queue.put((dict(ref), reason, message, kind, component or self.component,
                         time.time() if now is None else now))  # fmt: skip

    def batch(self, items: list[tuple[Value, str, str, str, str, float]]) -> dict[str, Value]:
        """What to write for queued events: one value per distinct event, its count grown."""
        out: dict[str, Value] = {}
        for ref, reason, message, kind, component, now in items:
            name = event_name(str(ref.get("name")), str(ref.get("uid", "")), reason, message)
            key = KIND.key(ref.get("namespace") or "default", name)
            first, count = self._seen.pop(key, (now, 0))
            self._seen[key] = (first, count + 1)
            if len(self._seen) > REMEMBERED:
                self._seen.popitem(last=False)
            out[key] = event_value(ref, reason, message, kind, component, self.host, first, now, count + 1)
        return out

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            time.sleep(FLUSH_SECONDS)  # let a burst gather into one transaction
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(self.batch(items))
            except Exception as exc:  # noqa: BLE001 - events are best effort, as in a cluster
                LOG.warning("could not record %d events: %s", len(items), exc)


_recorder: Recorder | None = None


def configure(write: Callable[[dict[str, Value]], None], component: str, host: str | None = None) -> Recorder:
    """This process records events from now on (once per process)."""
    global _recorder  # noqa: PLW0603 - one recorder per process, set at start-up
    _recorder = Recorder(write, component, host)
    return _recorder


def emit(ref: Mapping[str, Any], reason: str, message: str, kind: str = "Normal", component: str | None = None) -> None:
    """Record an event, if this process records any."""
    if _recorder is not None:
        _recorder.emit(ref, reason, message, kind, component)
