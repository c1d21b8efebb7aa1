"""The lab's controller manager: every controller's reconcile loop over the lab's etcd.

    python -m testbed.controllers.manager --lab L --etcd 172.18.203.1:2379 [--resync 10]
                                          [--pod-eviction-timeout 10]

Runs in the lab's fabric netns (it refuses to run elsewhere), one process per lab,
restarted by the lab's supervisor. Watch, then list: one etcd watch per distinct prefix
the controllers need (a prefix inside another is covered by it), every event turned into
work-queue keys by the controllers it concerns; then each controller's resync keys are
queued (again every ``--resync`` seconds, and at once after a lost watch, which is set up
again first). Workers take one (controller, key) at a time; a reconcile's "look again in
N seconds" and a failed reconcile's back-off are delayed re-adds. Each controller logs one
line per action. SIGTERM: finish the reconciles under way, leave a clean-exit note for
the supervisor, exit 0.

Conditional writes make a second manager (an old one not yet gone) harmless: the two
never act on one read. Light on purpose: no netlink, no scapy (its RSS is measured).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testbed import naming
from testbed.controllers.base import Controller
from testbed.controllers.queue import WorkQueue
from testbed.datastore import keys
from testbed.datastore.base import Cancel, Datastore, DatastoreError, WatchEvent

LOG = logging.getLogger("testbed.controllers.manager")
NAME = "controller-manager"  # in the lab's state and the supervisor's clean-exit notes
RESYNC_SECONDS = 10.0
WORKERS = 2
RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # back-off of a failing reconcile, doubling
RECONNECT_SECONDS = 1.0


POD_EVICTION_TIMEOUT = 10.0
NODE_MONITOR_GRACE = 4.0
LAB_RECORD_WAIT = 10.0  # seconds to wait for etcd at start, for the lab's options


@dataclass(frozen=True)
class Options:
    lab: str
    resync: float = RESYNC_SECONDS
    pod_eviction_timeout: float = POD_EVICTION_TIMEOUT
    node_monitor_grace: float = NODE_MONITOR_GRACE


def options_from(
    lab: str, record: Mapping[str, Any] | None, resync: float, eviction: float | None, grace: float | None
) -> Options:
    """Flags win; else the lab's record (``/testbed/lab`` options ``pod_eviction_timeout``,
    ``node_monitor_grace``), so that a restart by the supervisor needs only the lab's name;
    else the defaults."""
    stored = (record or {}).get("options") or {}

    def pick(flag: float | None, name: str, default: float) -> float:
        if flag is not None:
            return flag
        value = stored.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else default

    return Options(
        lab, resync, pick(eviction, "pod_eviction_timeout", POD_EVICTION_TIMEOUT),
        pick(grace, "node_monitor_grace", NODE_MONITOR_GRACE),
    )  # fmt: skip


def read_lab_record(store: Datastore, stopping: threading.Event, wait: float = LAB_RECORD_WAIT) -> dict[str, Any] | None:
    """The lab's record, waiting a little for etcd (the supervisor may start us first)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return store.get(keys.LAB)
        except DatastoreError as exc:
            if time.monotonic() >= deadline or stopping.is_set():
                LOG.warning("cannot read %s: %s; using the defaults", keys.LAB, exc)
                return None
            stopping.wait(0.5)


@dataclass(frozen=True)
class Factory:
    """One row of the table: a module and its function that builds a controller from the
    options (``function(**options)``: each takes the options it knows, ignores the rest)."""

    module: str
    function: str = "build"
    optional: bool = False  # written elsewhere: skipped (with a log line) until it exists


# Every controller the manager runs, in one table: a new controller is one more row.
FACTORIES: tuple[Factory, ...] = (
    Factory("testbed.controllers.namespaces", optional=True),
    Factory("testbed.controllers.endpoints", optional=True),
    Factory("testbed.controllers.scheduler", optional=True),
    Factory("testbed.controllers.nodes", optional=True),
    Factory("testbed.controllers.replicasets", "build_replica_sets"),
    Factory("testbed.controllers.replicasets", "build_replication_controllers"),
    Factory("testbed.controllers.deployments"),
    Factory("testbed.controllers.daemonsets"),
    Factory("testbed.controllers.gc"),
    Factory("testbed.controllers.serviceaccounts"),
)


def build_controllers(options: Options, factories: Sequence[Factory] = FACTORIES) -> list[Controller]:
    built: list[Controller] = []
    for factory in factories:
        try:
            module = importlib.import_module(factory.module)
        except ModuleNotFoundError as exc:
            if factory.optional and exc.name == factory.module:
                LOG.info("%s is not there yet: not running it", factory.module)
                continue
            raise
        built.append(getattr(module, factory.function)(**dataclasses.asdict(options)))
    names = [c.name for c in built]
    if len(set(names)) != len(names):
        raise ValueError(f"two controllers share a name: {sorted(names)}")
    return built


def covering(prefixes: Iterable[str]) -> list[str]:
    """The fewest prefixes whose watches see every key of ``prefixes``."""
    kept: list[str] = []
    for prefix in sorted(set(prefixes)):
        if not any(prefix.startswith(k) for k in kept):
            kept.append(prefix)
    return kept


Item = tuple[str, str]  # (controller name, key)


class Manager:
    def __init__(
        self,
        store: Datastore,
        controllers: Sequence[Controller],
        resync: float = RESYNC_SECONDS,
        workers: int = WORKERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.controllers = {c.name: c for c in controllers}
        self.resync_seconds = resync
        self.workers = workers
        self.clock = clock
        self.queue: WorkQueue[Item] = WorkQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lost = threading.Event()
        self._failures: dict[Item, int] = {}
        self.reconciles = 0  # how many ran (for tests and the status line)

    # --- inputs ---------------------------------------------------------------------------

    def dispatch(self, event: WatchEvent) -> None:
        """A watch callback: never raises (a raising callback would end the watch)."""
        for controller in self.controllers.values():
            if not any(event.key.startswith(p) for p in controller.prefixes):
                continue
            try:
                for key in controller.keys_for(event):
                    self.queue.add((controller.name, key))
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the watch
                LOG.error("%s: event %s %s: %s", controller.name, event.kind, event.key, exc)

    def _on_lost(self, error: DatastoreError) -> None:
        LOG.warning("watch lost (%s): watching again, then re-listing", error)
        self._lost.set()
        self._wake.set()

    def resync(self) -> bool:
        """Queue every controller's resync keys; False if the store did not answer."""
        for controller in self.controllers.values():
            try:
                for key in controller.resync_keys(self.store):
                    self.queue.add((controller.name, key))
            except DatastoreError as exc:
                LOG.warning("%s: resync failed: %s", controller.name, exc)
                return False
            except Exception as exc:  # noqa: BLE001 - one broken controller must not stop the others
                LOG.error("%s: resync failed: %s", controller.name, exc)
        return True

    # --- workers ---------------------------------------------------------------------------

    def work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            self.run_one(item)

    def run_one(self, item: Item) -> None:
        name, key = item
        after: float | None
        try:
            after = self.controllers[name].reconcile(self.store, key, self.clock())
            self._failures.pop(item, None)
        except Exception as exc:  # noqa: BLE001 - a failing key is retried with back-off
            failures = self._failures.get(item, 0) + 1
            self._failures[item] = failures
            after = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX)
            LOG.warning("%s %s: %s; again in %.1f s", name, key, exc, after)
        finally:
            self.reconciles += 1
            self.queue.done(item)
        if after is not None:
            self.queue.add_after(item, after)

    # --- the loop -------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        """Until ``stop``: watch, list, resync on the timer, start over on a lost watch."""
        threads = [threading.Thread(target=self.work, name=f"worker-{i}", daemon=True) for i in range(self.workers)]
        for thread in threads:
            thread.start()
        prefixes = covering(p for c in self.controllers.values() for p in c.prefixes)
        cancels: list[Cancel] = []
        next_resync = 0.0
        try:
            while not self._stopping.is_set():
                if not cancels:
                    self._lost.clear()
                    cancels = self._watch(prefixes)
                    if not cancels or not self.resync():
                        cancels = _cancel_all(cancels)
                        self._stopping.wait(RECONNECT_SECONDS)
                        continue
                    next_resync = time.monotonic() + self.resync_seconds
                self._wake.wait(max(0.0, next_resync - time.monotonic()))
                self._wake.clear()
                if self._lost.is_set():
                    cancels = _cancel_all(cancels)
                elif time.monotonic() >= next_resync:
                    if self.resync():
                        next_resync = time.monotonic() + self.resync_seconds
                    else:
                        cancels = _cancel_all(cancels)
        finally:
            _cancel_all(cancels)
            self.queue.close()
            for thread in threads:
                thread.join(timeout=30)

    def _watch(self, prefixes: Sequence[str]) -> list[Cancel]:
        cancels: list[Cancel] = []
        try:
            for prefix in prefixes:
                cancels.append(self.store.watch_prefix(prefix, self.dispatch, on_error=self._on_lost))
        except DatastoreError as exc:
            LOG.warning("cannot watch %s: %s; again in %.0f s", self.store.endpoint, exc, RECONNECT_SECONDS)
            return _cancel_all(cancels)
        return cancels


def _cancel_all(cancels: Sequence[Cancel]) -> list[Cancel]:
    for cancel in cancels:
        cancel()
    return []


def _status(controllers: Iterable[Controller], started: float) -> dict[str, Any]:
    return {"pid": os.getpid(), "started": started, "controllers": sorted(c.name for c in controllers)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="controller-manager", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", required=True)
    parser.add_argument("--etcd", required=True, help="HOST:PORT of the lab's etcd")
    parser.add_argument("--resync", type=float, default=RESYNC_SECONDS, help="seconds between full resyncs")
    parser.add_argument(
        "--pod-eviction-timeout", type=float, default=None,
        help=f"seconds a node may be NotReady before its pods are deleted (default: the lab's option, else {POD_EVICTION_TIMEOUT:g})",
    )
    parser.add_argument(
        "--node-monitor-grace", type=float, default=None,
        help=f"seconds without a lease renewal before a node is NotReady (default: the lab's option, else {NODE_MONITOR_GRACE:g})",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--outside-netns", action="store_true", help=argparse.SUPPRESS)  # tests only
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format=f"%(asctime)s {NAME} lab={args.lab} %(levelname)s %(message)s",
    )  # fmt: skip
    host, sep, port = args.etcd.rpartition(":")
    if not sep or not host or not port.isdigit():
        LOG.error("--etcd %s: expected HOST:PORT", args.etcd)
        return 2
    if not args.outside_netns:
        from testbed.netns import namespaces  # noqa: PLC0415 - ctypes only

        if not namespaces.is_current(naming.fabric_netns(args.lab)):
            LOG.error("refusing to run outside netns %s", naming.fabric_netns(args.lab))
            return 2
    from testbed.datastore.etcd import EtcdDatastore  # noqa: PLC0415

    stopping = threading.Event()
    running: list[Manager] = []

    def on_signal(*_: object) -> None:
        stopping.set()
        for manager in running:
            manager.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    from testbed.kube import events  # noqa: PLC0415

    recording = EtcdDatastore.over_tcp(host, int(port))  # the events' own client: their thread writes with it
    events.configure(recording.put_many, "kube-controller-manager")
    with EtcdDatastore.over_tcp(host, int(port)) as store:
        record = read_lab_record(store, stopping)
        options = options_from(args.lab, record, args.resync, args.pod_eviction_timeout, args.node_monitor_grace)
        controllers = build_controllers(options)
        manager = Manager(store, controllers, resync=args.resync, workers=args.workers)
        running.append(manager)
        if stopping.is_set():
            manager.stop()
        try:
            store.put(keys.CONTROLLER_MANAGER, _status(controllers, time.time()))
        except DatastoreError as exc:
            LOG.warning("cannot write %s: %s", keys.CONTROLLER_MANAGER, exc)
        LOG.info("running %s against %s", ", ".join(sorted(manager.controllers)), store.endpoint)
        manager.run()
    from testbed.runtime.supervisor import note_clean_exit  # noqa: PLC0415 - stopped on request: stay down

    note_clean_exit(args.lab, NAME, os.getpid())
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
