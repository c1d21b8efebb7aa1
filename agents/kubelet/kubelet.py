"""The kubelet of one host: the loop that makes the Pods bound to it real.

Watch pods (re-list on a lost watch, and every RESYNC_SECONDS); on each pass, for every
pod key this node has or holds, ``desired.decide`` says what to do and appliers do it:
the ``network`` (CNI ADD / DEL), the ``ContainerManager`` (containers, probes), the store
(endpoint, status, deletion). A pass never waits: a pod whose endpoint not every Felix
enforces yet, a container in back-off, a probe in flight, a grace period running out
are looked at again on a later pass (every LOOP_SECONDS while the node holds pods).
Status writes are conditional read-modify-writes of ``status`` only, made only when it
changed, the pass's writes in one transaction when they can be.

One thread runs ``run``; the watch and the probes only queue events for it, so all state
here is that thread's. Give it an etcd client of its own: the revision of its endpoint
write is read from the client's ``last_write_revision``.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Protocol

from agents.kubelet import desired, handoff, lifecycle, local as localfile
from agents.kubelet.cni import CniError, Networked, endpoint_record
from agents.kubelet.containers import Runtime
from agents.kubelet.desired import Action
from agents.kubelet.local import ContainerRun, LocalPod
from agents.kubelet.manager import ContainerManager
from agents.kubelet.node import lease_fresh
from agents.kubelet.podcache import PodCache
from agents.kubelet.podspec import PodView, SpecError, parse_pod
from agents.kubelet.prober import Prober
from agents.kubelet.status import pod_status, rejected_status
from testbed.datastore import keys, records
from testbed.datastore.base import MAX_TXN_OPS, Datastore, DatastoreError, WatchEvent, delete_if

LOG = logging.getLogger("agents.kubelet")
LOOP_SECONDS = 0.2  # exits, timers and probes are looked at this often while pods are here
ADD_BATCH = 24  # pods networked in one pass (their endpoints written in one transaction: 48 puts, 48 compares)
RESYNC_SECONDS = 10.0
NETWORK_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # after a failed CNI ADD (a taken address, ...)
NODE_MONITOR_GRACE = 4.0  # a host whose Lease is older is down: its Felix is not waited for
FELIX_STALE_SECONDS = 30.0  # no Lease: a Felix status older than this is a dead agent's

Statuses = dict[str, dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Plugged:
    """A pod this pass networked, and the writes that record it (committed at the pass's end)."""

    key: str
    ref: str
    ip: str
    held: LocalPod
    value: dict[str, Any]
    puts: dict[str, dict[str, Any]]
    expect: dict[str, int]


class Network(Protocol):
    def add(self, pod: PodView, now: float) -> Networked: ...
    def delete(self, namespace: str, name: str) -> None: ...
    def held_elsewhere(self, pod: PodView, hosts: list[str]) -> str | None: ...


class Kubelet:
    def __init__(
        self,
        store: Datastore,
        lab: str,
        host: str,
        runtime: Runtime,
        network: Network,
        prober: Prober | None = None,
        file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.lab, self.host, self.network = store, lab, host, network
        self.file, self.clock = file, clock
        self.containers = ContainerManager(lab, runtime, prober)
        self.pods = PodCache(store, host)
        self.local: dict[str, LocalPod] = localfile.load(file) if file else {}
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._held_events: list[tuple[str, Any]] = []  # taken off the queue while waiting
        self._saved = dict(self.local)
        self._views: dict[str, tuple[dict[str, Any], PodView | SpecError]] = {}  # key -> (the value, parsed)
        self._good: dict[str, PodView] = {}  # the last view of each key that parsed
        self._needs_list, self._listed_at = True, float("-inf")
        self._hosts: list[str] = []
        self._host_ip: str | None = None
        self._adopted = False
        self._retry: dict[str, tuple[float, int]] = {}  # key -> (next CNI ADD try, failures so far)
        self._networked: list[Plugged] = []  # pods networked this pass, their writes not yet committed
        self.more = False  # this pass left pods to network: the next one comes at once
        self._status_inputs: dict[str, tuple[dict[str, Any], LocalPod]] = {}  # the stored status was last found right for

    @property
    def prober(self) -> Prober | None:
        return self.containers.prober

    @prober.setter
    def prober(self, prober: Prober | None) -> None:
        self.containers.prober = prober

    # --- events (from any thread) ---------------------------------------------------------
    def on_pod_event(self, event: WatchEvent) -> None:
        self.events.put(("pod", event))

    def on_lost(self, _error: object = None) -> None:
        self.events.put(("lost", None))

    def on_probe(self, token: Hashable, ok: bool) -> None:
        self.events.put(("probe", (token, ok)))

    # --- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        cancel: Callable[[], None] | None = None
        while not stop.is_set():
            # Pods here: their processes and timers need looking at. Before the lab's records
            # exist (`up` writes them after starting the agents): look for them twice a second.
            wait = LOOP_SECONDS if self.local else 0.5 if self._host_ip is None else RESYNC_SECONDS
            try:
                if cancel is None:
                    cancel = self._watch()
                    self._needs_list = True
                if self.step(self.clock()):
                    cancel()
                    cancel = None
                    continue
            except DatastoreError as exc:
                LOG.warning("%s; retrying", exc)
                self._needs_list, wait = True, 0.5
            except Exception:  # noqa: BLE001 - one bad pass must not end the kubelet
                LOG.exception("pass failed; retrying")
                self._needs_list, wait = True, 0.5
            if not self.more:
                self._wait(stop, wait)
        if cancel is not None:
            cancel()

    def _watch(self) -> Callable[[], None]:
        """The pods, and every host's Felix status: a container waiting for every Felix to
        enforce its endpoint starts on the status write that says so, not on the next tick."""
        pods = self.store.watch_prefix(keys.PODS, self.on_pod_event, on_error=self.on_lost)
        try:
            felix = self.store.watch_prefix(keys.FELIX_STATUS, self.on_felix_status, on_error=self.on_lost)
        except BaseException:
            pods()
            raise

        def cancel() -> None:
            pods()
            felix()

        return cancel

    def on_felix_status(self, _event: WatchEvent) -> None:
        if any(not held.enforced and held.networked for held in list(self.local.values())):
            self.events.put(("wake", None))

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        """Until an event arrives (kept for the next pass), ``seconds`` pass, or ``stop``."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            try:
                self._held_events.append(self.events.get(timeout=min(left, 0.5)))
                return
            except queue.Empty:
                continue

    def step(self, now: float) -> bool:
        """One pass; True when the watch was lost: then nothing else happens, the caller
        watches again and the next pass lists (watch, then list: nothing is missed)."""
        self.more = False
        if self._drain(now):
            self._needs_list = True
            return True
        if not self._ready():
            return False
        if self._needs_list or now - self._listed_at >= RESYNC_SECONDS:
            self._relist(now)
        if not self._adopted:
            for held in self.local.values():
                self.containers.adopt(held, now)
            if adopted := sum(lifecycle.alive(c) for h in self.local.values() for c in h.containers):
                LOG.info("adopted %d running containers of %d pods from an earlier kubelet", adopted, len(self.local))
            self._adopted = True
        self._check_enforced(now)
        statuses: Statuses = {}
        todo: list[tuple[str, PodView | None, Action]] = []
        for key in sorted(self.pods.keys() | set(self.local)):
            pod = self._view(key, statuses)
            action = desired.decide(self.host, pod, self.local.get(key))
            if action is Action.ADD and pod is not None:
                self.local[key] = _new_local(pod, now)
                LOG.info("%s is bound here: taking it on", pod.ref)
                action = Action.SYNC
            todo.append((key, pod, action))
        self._save()  # the pods taken on, before their CNI ADDs: a restart half-way finds them ours
        for key, pod, action in todo:
            if action is Action.ADOPT and pod is not None:
                self._adopt(key, pod, now)
                action = Action.SYNC if key in self.local else Action.IGNORE
            if action is Action.SYNC and pod is not None:
                self._sync(key, pod, now, statuses)
            elif action in (Action.TERMINATE, Action.TEARDOWN):
                self._terminate(key, pod, now, delete_object=action is Action.TERMINATE)
            elif action is Action.DELETE:
                self._delete_object(key)
            elif action is Action.HANDOFF and pod is not None:
                self._hand_off(key, pod)
        self._commit_networked()
        self.pods.write_statuses(statuses)
        self._save()
        self._forget_gone()
        return False

    def _forget_gone(self) -> None:
        """Drop what is remembered of keys that are neither bound here nor held any more."""
        live = self.pods.keys() | set(self.local)
        for memo in (self._views, self._good, self._status_inputs, self._retry):
            for key in [k for k in memo if k not in live]:
                del memo[key]

    # --- reading ----------------------------------------------------------------------------
    def _ready(self) -> bool:
        """Nothing before the lab's records exist (`up` writes them after the agents start)."""
        if self._host_ip is None:
            if self.store.get(keys.LAB) is None or (node := self.store.get(keys.node(self.host))) is None:
                return False
            self._host_ip = str(records.node_summary(node).ip)
        return True

    def _drain(self, now: float) -> bool:
        lost = False
        while True:
            if self._held_events:
                kind, item = self._held_events.pop(0)
            else:
                try:
                    kind, item = self.events.get_nowait()
                except queue.Empty:
                    return lost
            if kind == "pod":
                self.pods.apply(item, self.local)
            elif kind == "lost":
                lost = True
            elif kind == "probe":
                token, ok = item
                key = token[0]
                self.containers.probe_result(token, ok, self._good.get(key), self.local.get(key), now)

    def _relist(self, now: float) -> None:
        """Pods (ours kept), hosts, and endpoints of this node whose pod is gone: orphans
        (a kubelet that died before its CNI DEL, `testbed heal`), taken on to be torn down."""
        values = self.pods.relist(self.local)
        self._hosts = sorted(records.node_summary(v).name for v in self.store.list(keys.NODES).values())
        endpoints = []
        for value in self.store.list(keys.WORKLOAD_ENDPOINTS).values():
            try:
                info = records.endpoint_summary(value)
            except records.RecordError:
                continue
            endpoints.append((info.node, info.namespace, info.pod))
        bound = {k: (v.value.get("spec") or {}).get("nodeName") for k, v in values.items()}
        for namespace, name in desired.orphan_endpoints(self.host, endpoints, bound, self.local):
            key = keys.pod(namespace, name)
            LOG.info("pod %s/%s has an endpoint here but no Pod bound here: tearing it down", namespace, name)
            self.local[key] = LocalPod(key, "", namespace, name, seen_at=now, orphan=True)
        self._needs_list, self._listed_at = False, now

    def _view(self, key: str, statuses: Statuses) -> PodView | None:
        """The stored Pod, parsed once per value. One bound here that does not parse is
        reported Failed, with why (once), and not run."""
        entry = self.pods.get(key)
        if entry is None:
            self._views.pop(key, None)
            return None
        seen = self._views.get(key)
        if seen is None or seen[0] is not entry.value:
            try:
                parsed: PodView | SpecError = parse_pod(key, entry.value)
            except SpecError as exc:
                parsed = exc
            seen = self._views[key] = (entry.value, parsed)
        if isinstance(seen[1], PodView):
            self._good[key] = seen[1]
            return seen[1]
        error, good = seen[1], self._good.get(key)
        if good is not None and good.uid != str((entry.value.get("metadata") or {}).get("uid") or ""):
            good = None  # a new pod under the same name: the old one's view is not its
        status = entry.value.get("status") or {}
        bound_here = (entry.value.get("spec") or {}).get("nodeName") == self.host
        if good is None and bound_here and key not in self.local and status.get("message") != str(error):
            LOG.warning("%s", error)
            statuses[key] = rejected_status(status, "InvalidPodSpec", str(error))
        return good

    # --- one pod ----------------------------------------------------------------------------
    def _sync(self, key: str, pod: PodView, now: float, statuses: Statuses) -> None:
        if handoff.of(pod) is not None:
            self._settle_handoff(key)
        if not self.local[key].networked:
            if len(self._networked) < ADD_BATCH:
                self._network(key, pod, now)
            else:
                self.more = True  # the rest in the next pass, right after this one
            return
        if self.local[key].enforced:
            self.local[key] = self.containers.sync(pod, self.local[key], now)
        self._status(key, pod, now, statuses)

    def _status(self, key: str, pod: PodView, now: float, statuses: Statuses) -> None:
        """The pod's status, when what it is made of changed since the last look (the stored
        Pod, or what the kubelet holds): written if it differs from the stored one."""
        entry = self.pods.get(key)
        if entry is None:
            return
        seen = self._status_inputs.get(key)
        if seen is not None and seen[0] is entry.value and seen[1] == self.local[key]:
            return
        previous = entry.value.get("status") or {}
        new = pod_status(pod, self.local[key], self._host_ip, previous, now)
        if new != previous:
            statuses[key] = new
        else:
            self._status_inputs[key] = (entry.value, self.local[key])

    def _network(self, key: str, pod: PodView, now: float) -> None:
        """CNI ADD, then the endpoint and the pod's first status in one transaction,
        conditional on the Pod's revision."""
        retry_at, failures = self._retry.get(key, (float("-inf"), 0))
        if now < retry_at:
            return
        try:
            if (other := self.network.held_elsewhere(pod, self._hosts)) is not None:
                raise CniError(f"{pod.ref}: waiting for node {other} to remove its netns of this pod")
            net = self.network.add(pod, now)
        except (CniError, OSError, LookupError) as exc:
            delay = NETWORK_RETRY_SECONDS[min(failures, len(NETWORK_RETRY_SECONDS) - 1)]
            self._retry[key] = (now + delay, failures + 1)
            if failures == 0:
                LOG.warning("CNI ADD of %s failed: %s", pod.ref, exc)
            self._waiting_because(key, pod, str(exc), now)
            return
        self._retry.pop(key, None)
        entry = self.pods.exact(key)
        if entry is None:
            return  # deleted meanwhile: the next pass tears it down
        endpoint_key = keys.workload_endpoint_of(self.host, pod.namespace, pod.name)
        endpoint = self.store.get_versioned(endpoint_key)
        runs = tuple(dataclasses.replace(c, message="") for c in self.local[key].containers)
        held = dataclasses.replace(self.local[key], ip=str(net.ip), containers=runs)
        value = {**entry.value, "status": pod_status(pod, held, self._host_ip, entry.value.get("status") or {}, now)}
        puts = {key: value, endpoint_key: endpoint_record(self.lab, self.host, pod, net, now)}
        expect = {key: entry.revision, endpoint_key: endpoint.revision if endpoint else 0}
        self._networked.append(Plugged(key, pod.ref, str(net.ip), held, value, puts, expect))

    def _commit_networked(self) -> None:
        """The endpoints and first statuses of the pods networked this pass, in as few
        transactions as fit (every WorkloadEndpoint write makes every host's Felix render
        again: one write for many pods, not one each); a batch that lost a race is written
        pod by pod, and a pod that lost its own is taken up again next pass."""
        batch, self._networked = self._networked, []
        if not batch:
            return
        puts = {k: v for item in batch for k, v in item.puts.items()}
        expect = {k: v for item in batch for k, v in item.expect.items()}
        if len(puts) + len(expect) <= MAX_TXN_OPS and self.store.commit(puts, expect=expect):
            done = batch
        else:
            done = []
            for item in batch:
                if self.store.commit(item.puts, expect=item.expect):
                    done.append(item)
                else:
                    self.pods.refetch(item.key)  # changed under us: again next pass (the ADD is idempotent)
        revision = self.store.last_write_revision
        for item in done:
            self.pods.wrote(item.key, item.value, revision)
            self.local[item.key] = dataclasses.replace(item.held, endpoint_revision=revision)
            LOG.info("%s networked: %s (endpoint at revision %d)", item.ref, item.ip, revision)

    def _waiting_because(self, key: str, pod: PodView, message: str, now: float) -> None:
        """A failed ADD shows in the pod's status: its containers wait, saying why."""
        runs = tuple(dataclasses.replace(c, message=message) for c in self.local[key].containers)
        self.local[key] = dataclasses.replace(self.local[key], containers=runs)
        statuses: Statuses = {}
        self._status(key, pod, now, statuses)
        self.pods.write_statuses(statuses)

    def _check_enforced(self, now: float) -> None:
        """Pods whose endpoint every host's Felix enforces may start their containers: one
        list of the Felix statuses per pass, whatever the number of pods waiting (and of
        the Leases, only when a host lags: a host that is down is not waited for)."""
        waiting = [k for k, p in self.local.items() if p.networked and not p.enforced and p.endpoint_revision]
        if not waiting:
            return
        reported = {keys.name_of(k): v for k, v in self.store.list(keys.FELIX_STATUS).items()}
        leases: dict[str, Any] | None = None
        for key in waiting:
            held = self.local[key]
            late = [h for h in self._hosts if int((reported.get(h) or {}).get("revision", 0)) < (held.endpoint_revision or 0)]
            if late and leases is None:
                leases = self.store.list(keys.LEASES)
            down = [
                h for h in late
                if desired.host_down(lease_fresh((leases or {}).get(keys.node_lease(h)), now, NODE_MONITOR_GRACE),
                                     reported.get(h), now, FELIX_STALE_SECONDS)
            ]  # fmt: skip
            if len(down) == len(late):
                self.local[key] = dataclasses.replace(held, enforced=True)
                if down:
                    LOG.warning("pod %s/%s: not waiting for hosts that are down: %s", held.namespace, held.name, ", ".join(down))

    # --- migration (see agents.kubelet.handoff) -------------------------------------------------
    def _hand_off(self, key: str, pod: PodView) -> None:
        """Let the pod go to the node migrate names, stopping nothing: the handoff written
        on the Pod (conditional on its revision; unless the Pod shows it already), then the
        pod forgotten here (state, file, processes' watch, probes)."""
        held = self.local[key]
        given = handoff.of(pod)
        if given is None or given.source != self.host:
            entry = self.pods.exact(key)
            target = handoff.moving_to(pod, self.host)
            if entry is None or target is None:
                return
            value = handoff.annotated(entry.value, {handoff.HANDOFF: handoff.encode(self.host, target, held)})
            if not self.store.commit({key: value}, expect={key: entry.revision}):
                self.pods.refetch(key)
                return  # changed under us: decided again next pass
            self.pods.wrote(key, value, self.store.last_write_revision)
            LOG.info("%s handed off to node %s (its containers keep running)", pod.ref, target)
        self.local.pop(key, None)
        self._save()  # at once: a restart must not find it ours (it would be torn down)
        self.containers.forget(key)
        self._status_inputs.pop(key, None)
        self._retry.pop(key, None)

    def _adopt(self, key: str, pod: PodView, now: float) -> None:
        """Hold a pod another node handed off (or this one, when migrate gave up): its
        running containers watched, never started again; the file saved before the handoff
        is removed from the Pod (by ``_settle_handoff``)."""
        entry = self.pods.get(key)
        given = handoff.of(pod)
        if entry is None or given is None:
            return
        self.local[key] = handoff.adopted(given, entry.revision)
        self._save()
        self.containers.adopt(self.local[key], now)
        alive = sum(lifecycle.alive(c) for c in self.local[key].containers)
        LOG.info("%s adopted from node %s: %d running containers", pod.ref, given.source, alive)

    def _settle_handoff(self, key: str) -> None:
        """The handoff annotation removed once the pod is held here (conditional write)."""
        entry = self.pods.exact(key)
        if entry is None or handoff.annotation_of(entry.value, handoff.HANDOFF) is None:
            return
        value = handoff.annotated(entry.value, {handoff.HANDOFF: None})
        if self.store.commit({key: value}, expect={key: entry.revision}):
            self.pods.wrote(key, value, self.store.last_write_revision)
        else:
            self.pods.refetch(key)  # again next pass

    # --- deletion -----------------------------------------------------------------------------
    def _terminate(self, key: str, pod: PodView | None, now: float, delete_object: bool) -> None:
        """Stop every container (SIGTERM, SIGKILL after the grace period), then CNI DEL, then
        (a Pod being deleted) delete the Pod, conditional on the revision just read. A pod
        whose Pod is gone or replaced gets the minimum grace period."""
        held = self.local[key]
        grace = float(pod.termination_grace) if pod is not None and delete_object else 0.0
        if not held.terminating:
            LOG.info("stopping pod %s/%s (grace %g s)%s", held.namespace, held.name, max(grace, lifecycle.MIN_GRACE_SECONDS),
                     "" if delete_object else ": no Pod is bound here for it")  # fmt: skip
            held = dataclasses.replace(held, terminating=True)
        self.local[key] = held = self.containers.stop(key, pod, held, now, grace)
        if any(lifecycle.alive(c) for c in held.containers):
            return
        self.network.delete(held.namespace, held.name)
        if delete_object and not self._delete_object(key):
            return  # the Pod changed under us: again next pass (the network is gone already)
        self.local.pop(key, None)
        self._status_inputs.pop(key, None)
        self.containers.forget(key)
        self._retry.pop(key, None)
        LOG.info("pod %s/%s torn down", held.namespace, held.name)

    def _delete_object(self, key: str) -> bool:
        entry = self.pods.exact(key)
        if entry is None:
            return True  # gone already
        if not delete_if(self.store, key, entry.revision):
            self.pods.refetch(key)
            return False
        return True

    def _save(self) -> None:
        if self.file is not None and self.local != self._saved:
            localfile.save(self.file, self.local)
            self._saved = dict(self.local)


def _new_local(pod: PodView, now: float) -> LocalPod:
    runs = tuple(ContainerRun(c.name) for c in pod.containers)
    return LocalPod(key=pod.key, uid=pod.uid, namespace=pod.namespace, name=pod.name, seen_at=now, containers=runs)
