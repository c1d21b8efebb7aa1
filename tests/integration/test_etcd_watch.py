"""EtcdDatastore.watch_prefix against a real etcd (Debian's etcd-server).

No root: etcd runs in a temporary folder, listening on its UNIX socket and a random
localhost port, and is stopped by its PID. Every watch runs in its own thread; the tests
check that cancel ends it (no thread named ``etcd-watch ...`` is left).
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.datastore.base import DatastoreError, WatchEvent
from testbed.datastore.etcd import EtcdDatastore
from testbed.runtime import etcd_server
from tests.integration.test_etcd_datastore import free_port

pytestmark = pytest.mark.skipif(
    not Path(etcd_server.ETCD_BINARY).exists(), reason=f"{etcd_server.ETCD_BINARY} is not installed"
)
WITHIN = 1.0  # seconds from a write to its event


class Etcd:
    def __init__(self, state: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.socket = etcd_server.socket_path(state)
        self.port = port
        self.process = process

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running_etcd() -> Iterator[Etcd]:
    state = Path(tempfile.mkdtemp(prefix="testbed-etcdw-"))  # short: AF_UNIX paths are small
    port = free_port()
    command = etcd_server.etcd_command(etcd_server.data_dir(state), None, client_port=port, peer_port=free_port())
    log_path = etcd_server.log_path(state)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=state, stdout=log, stderr=log, start_new_session=True)
    etcd = Etcd(state, port, process)
    try:
        etcd_server.wait_healthy(etcd.socket, 10.0, log=log_path, process=process)
        yield etcd
    finally:
        etcd.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def etcd() -> Iterator[Etcd]:
    with running_etcd() as server:
        yield server


@pytest.fixture(params=["unix", "tcp"])
def store(request: pytest.FixtureRequest, etcd: Etcd) -> Iterator[EtcdDatastore]:
    if request.param == "unix":
        ds = EtcdDatastore.over_unix_socket(etcd.socket)
    else:
        ds = EtcdDatastore.over_tcp("127.0.0.1", etcd.port)
    with ds:
        ds.delete_prefix("/")
        yield ds
    assert watch_threads() == [], "a watch thread outlived its test"


def watch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("etcd-watch")]


class Inbox:
    def __init__(self) -> None:
        self.events: queue.Queue[WatchEvent] = queue.Queue()
        self.errors: queue.Queue[DatastoreError] = queue.Queue()

    def __call__(self, event: WatchEvent) -> None:
        self.events.put(event)

    def on_error(self, error: DatastoreError) -> None:
        self.errors.put(error)

    def next(self, timeout: float = WITHIN) -> WatchEvent:
        return self.events.get(timeout=timeout)

    def nothing_for(self, seconds: float) -> bool:
        try:
            self.events.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


def test_puts_and_deletes_arrive_within_a_second(store: EtcdDatastore) -> None:
    inbox = Inbox()
    cancel = store.watch_prefix("/w/", inbox, on_error=inbox.on_error)
    try:
        began = time.monotonic()
        store.put("/w/a", {"v": 1})
        put = inbox.next()
        took = time.monotonic() - began
        store.put("/other/a", {"v": 2})
        store.delete("/w/a")
        delete = inbox.next()
    finally:
        cancel()
    assert put.kind == "put" and put.key == "/w/a" and put.value == {"v": 1}
    assert delete.kind == "delete" and delete.key == "/w/a" and delete.value is None
    assert delete.revision == put.revision + 2  # the /other/ put in between was not seen
    assert took < WITHIN
    assert inbox.errors.empty()


def test_cancel_stops_events_and_leaves_no_thread(store: EtcdDatastore) -> None:
    inbox = Inbox()
    cancel = store.watch_prefix("/c/", inbox, on_error=inbox.on_error)
    assert len(watch_threads()) == 1
    began = time.monotonic()
    cancel()
    assert time.monotonic() - began < 1.0
    assert watch_threads() == []
    cancel()  # idempotent
    store.put("/c/a", {})
    assert inbox.nothing_for(0.3)
    assert inbox.errors.empty()  # a cancel is not an error


def test_many_watches_come_and_go(store: EtcdDatastore) -> None:
    inbox = Inbox()
    cancels = [store.watch_prefix(f"/m/{i}/", inbox) for i in range(10)]
    store.put("/m/3/x", {})
    assert inbox.next().key == "/m/3/x"
    for cancel in cancels:
        cancel()
    assert watch_threads() == []
    assert store.get("/m/3/x") == {}  # the store's own session still works


def test_replay_from_a_start_revision(store: EtcdDatastore) -> None:
    store.put("/r/a", {"n": 1})
    after = store.revision() + 1
    store.put("/r/b", {"n": 2})
    inbox = Inbox()
    cancel = store.watch_prefix("/r/", inbox, start_revision=after)
    try:
        assert inbox.next().key == "/r/b"
        assert inbox.nothing_for(0.2)
    finally:
        cancel()


def test_a_compacted_start_revision_ends_the_watch_with_a_reason(store: EtcdDatastore) -> None:
    store.put("/k/a", {})
    store.put("/k/a", {"again": True})
    store._post("compact", "/kv/compaction", {"revision": store.revision()})
    inbox = Inbox()
    cancel = store.watch_prefix("/k/", inbox, start_revision=1, on_error=inbox.on_error)
    try:
        error = inbox.errors.get(timeout=WITHIN)
    finally:
        cancel()
    assert "compacted" in str(error) and "/k/" in str(error)


def test_a_callback_that_raises_ends_the_watch(store: EtcdDatastore) -> None:
    errors: queue.Queue[DatastoreError] = queue.Queue()

    def boom(event: WatchEvent) -> None:
        raise RuntimeError("boom")

    cancel = store.watch_prefix("/b/", boom, on_error=errors.put)
    try:
        store.put("/b/a", {})
        assert "callback failed: boom" in str(errors.get(timeout=WITHIN))
    finally:
        cancel()


def test_etcd_going_away_is_reported_once() -> None:
    with running_etcd() as server:
        ds = EtcdDatastore.over_tcp("127.0.0.1", server.port)
        inbox = Inbox()
        cancel = ds.watch_prefix("/g/", inbox, on_error=inbox.on_error)
        server.stop()
        error = inbox.errors.get(timeout=5.0)
        assert f"127.0.0.1:{server.port}" in str(error) and "/g/" in str(error)
        assert inbox.errors.empty()
        cancel()
        ds.close()
    assert watch_threads() == []


def test_no_etcd_is_one_clear_error_at_once() -> None:
    ds = EtcdDatastore.over_tcp("127.0.0.1", free_port(), timeout=1.0)
    began = time.monotonic()
    with pytest.raises(DatastoreError) as info:
        ds.watch_prefix("/x/", Inbox())
    assert time.monotonic() - began < 2.0
    assert "\n" not in str(info.value) and "watch /x/" in str(info.value)
    assert watch_threads() == []
