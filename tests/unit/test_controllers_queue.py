"""The controller manager's work queue and loop (over the in-memory store)."""

from __future__ import annotations

import threading
import time
from typing import Any

from testbed.controllers import manager as manager_module
from testbed.controllers.manager import Factory, Manager, Options, build_controllers, covering, options_from
from testbed.controllers.queue import WorkQueue
from testbed.datastore import keys
from testbed.datastore.base import DatastoreError
from testbed.datastore.memory import MemoryDatastore
from tests.unit.controller_fixtures import active_pods, add_namespace, key_of, workload


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_item_waits_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for item in ("a", "b", "a", "a"):
        queue.add(item)
    assert len(queue) == 2
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a", "b", None]


def test_an_item_added_while_processed_comes_back_after_done_only() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add("a")
    queue.add("a")
    assert queue.get(0) is None, "never handed out twice at once"
    queue.done("a")
    assert queue.get(0) == "a"
    queue.done("a")
    assert queue.get(0) is None, "one re-add for any number of adds"


def test_delayed_adds() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add_after("a", 5)
    queue.add_after("b", 10)
    queue.add_after("b", 2)  # the earliest wins
    assert queue.get(0) is None and queue.delayed() == 2
    clock.now += 2
    assert queue.get(0) == "b"
    queue.done("b")
    clock.now += 3
    assert queue.get(0) == "a"
    queue.done("a")
    clock.now += 10
    assert queue.get(0) is None, "b's later delay was superseded"
    queue.add_after("c", 0)
    assert queue.get(0) == "c"


def test_a_delayed_add_wakes_a_waiting_worker() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0.05)
    started = time.monotonic()
    assert queue.get(2) == "a"
    assert 0.04 <= time.monotonic() - started < 1


def test_close_releases_waiting_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(queue.get()))
    waiter.start()
    time.sleep(0.05)
    queue.close()
    waiter.join(2)
    assert got == [None]
    queue.add("a")
    assert queue.get(0) is None


def test_one_key_at_a_time_with_many_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    busy: dict[str, int] = {}
    worst = [0]
    lock = threading.Lock()
    runs = [0]

    def work() -> None:
        while (item := queue.get(1)) is not None:
            with lock:
                busy[item] = busy.get(item, 0) + 1
                worst[0] = max(worst[0], busy[item])
            time.sleep(0.001)
            queue.add(item)  # dirty again while processed
            with lock:
                busy[item] -= 1
                runs[0] += 1
            queue.done(item)
            if runs[0] > 300:
                queue.close()

    for item in ("a", "b", "c"):
        queue.add(item)
    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    assert runs[0] > 300 and worst[0] == 1


# --- the manager -----------------------------------------------------------------------------


def test_covering_prefixes() -> None:
    assert covering(["/registry/pods/", "/registry/", "/calico/x/", "/registry/pods/"]) == ["/calico/x/", "/registry/"]


def test_the_table_runs_what_is_there_and_skips_what_is_not_yet() -> None:
    built = build_controllers(Options("lab"))
    names = {c.name for c in built}
    assert {"replicaset", "replicationcontroller", "deployment", "daemonset", "garbagecollector"} <= names
    missing = Factory("testbed.controllers.not_written_yet", optional=True)
    assert build_controllers(Options("lab"), [missing]) == []


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_the_loop_reconciles_on_events_resyncs_and_relists_after_a_lost_watch() -> None:
    store = MemoryDatastore()
    add_namespace(store)
    loop = Manager(store, build_controllers(Options("lab")), resync=0.3)
    resyncs = [0]
    real_resync = loop.resync

    def counting() -> bool:
        resyncs[0] += 1
        return real_resync()

    loop.resync = counting  # type: ignore[method-assign]
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:
        rs = workload("ReplicaSet", "web", 3, {"app": "web"})
        store.put(key_of(rs), rs)
        wait_for(lambda: len(active_pods(store)) == 3)
        store.delete(next(iter(store.list(keys.PODS))))
        wait_for(lambda: len(active_pods(store)) == 3)
        before = resyncs[0]
        wait_for(lambda: resyncs[0] > before)  # the resync timer
        loop.resync_seconds = 60.0
        before = resyncs[0]
        time.sleep(0.35)  # the timer's next round (0.3 s) is on the old interval
        before = resyncs[0]
        loop._on_lost(DatastoreError("test: gone"))
        wait_for(lambda: resyncs[0] > before, timeout=2)  # at once, not after 60 s
        store.put(key_of(rs), {**rs, "spec": {**rs["spec"], "replicas": 1}})
        wait_for(lambda: len(active_pods(store)) == 1)
    finally:
        loop.stop()
        runner.join(5)
    assert not runner.is_alive()


def test_a_failing_reconcile_backs_off() -> None:
    store = MemoryDatastore()
    calls: list[float] = []

    class Failing:
        name = "failing"
        prefixes = ("/x/",)

        def keys_for(self, event: Any) -> list[str]:
            return [event.key]

        def resync_keys(self, _store: Any) -> list[str]:
            return []

        def reconcile(self, _store: Any, _key: str, _now: float) -> None:
            calls.append(time.monotonic())
            raise DatastoreError("nope")

    loop = Manager(store, [Failing()], resync=60)
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:
        time.sleep(0.05)  # the watch is up
        store.put("/x/a", {})
        wait_for(lambda: len(calls) >= 3, timeout=5)
    finally:
        loop.stop()
        runner.join(5)
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[0] >= manager_module.RETRY_FIRST * 0.9 and gaps[1] >= 2 * manager_module.RETRY_FIRST * 0.9


def test_options_come_from_flags_then_the_lab_record_then_defaults() -> None:
    record = {"name": "lab", "options": {"pod_eviction_timeout": 30, "node_monitor_grace": True}}
    assert options_from("lab", record, 10.0, None, None) == Options("lab", 10.0, 30.0, 4.0)
    assert options_from("lab", record, 10.0, 5.0, 2.0) == Options("lab", 10.0, 5.0, 2.0)
    assert options_from("lab", None, 3.0, None, None) == Options("lab", 3.0, 10.0, 4.0)
