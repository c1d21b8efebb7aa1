"""The controller manager against a real etcd (Debian's etcd-server, as the lab runs it).

No namespaces: etcd runs in a temporary folder on a random localhost port; the manager's
loop runs in a thread (``Manager.run``) or as its own process with ``--outside-netns``
(its netns check is tested on its own). Every process is stopped by its PID.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.controllers import objects as obj
from testbed.controllers.manager import Manager, Options, build_controllers
from testbed.datastore import keys, records
from testbed.datastore.base import put_if
from testbed.datastore.etcd import EtcdDatastore
from testbed.runtime import etcd_server
from tests.integration.test_etcd_datastore import free_port
from tests.unit.controller_fixtures import NOW, workload

pytestmark = pytest.mark.skipif(
    not Path(etcd_server.ETCD_BINARY).exists(), reason=f"{etcd_server.ETCD_BINARY} is not installed"
)
WITHIN = 5.0  # seconds: what "a few seconds" means here
LAB = "workloads-it"


class Etcd:
    """One etcd that can be stopped and started again on the same data and port."""

    def __init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="testbed-cm-"))
        self.port, self.peer = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = etcd_server.etcd_command(etcd_server.data_dir(self.state), None, client_port=self.port, peer_port=self.peer)
        with etcd_server.log_path(self.state).open("ab") as log:
            self.process = subprocess.Popen(command, cwd=self.state, stdout=log, stderr=log, start_new_session=True)
        etcd_server.wait_healthy(etcd_server.socket_path(self.state), 10.0, log=etcd_server.log_path(self.state), process=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="module")
def etcd() -> Iterator[Etcd]:
    server = Etcd()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.state, ignore_errors=True)


@pytest.fixture
def store(etcd: Etcd) -> Iterator[EtcdDatastore]:
    with EtcdDatastore.over_tcp("127.0.0.1", etcd.port) as ds:
        ds.delete_prefix("/")
        _namespace(ds)
        yield ds


def _namespace(store: EtcdDatastore) -> None:
    store.put(keys.k8s_namespace("default"), {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "default", "uid": "ns-default", "creationTimestamp": records.timestamp(NOW)},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
    })  # fmt: skip


class Running:
    """Manager.run in a thread, with its own client (as its own process would have)."""

    def __init__(self, port: int, resync: float = 10.0) -> None:
        self.store = EtcdDatastore.over_tcp("127.0.0.1", port)
        self.manager = Manager(self.store, build_controllers(Options(LAB)), resync=resync)
        self.thread = threading.Thread(target=self.manager.run, name="manager-under-test")
        self.thread.start()

    def stop(self) -> None:
        self.manager.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the manager did not stop"
        self.store.close()


def eventually(check: Callable[[], bool], within: float = WITHIN, what: str = "") -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {within} s: {what}")


def active(store: EtcdDatastore) -> dict[str, dict[str, Any]]:
    return {keys.name_of(k): v for k, v in store.list(keys.PODS).items() if obj.is_active_pod(v)}


def stays(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(0.05)
    return True


def test_a_deployment_written_into_etcd_gets_its_pods_and_keeps_them(store: EtcdDatastore, etcd: Etcd) -> None:
    running = Running(etcd.port)
    try:
        d = workload("Deployment", "web", 3, {"app": "web"})
        store.put(keys.namespaced(keys.DEPLOYMENTS, "default", "web"), d)
        took = eventually(lambda: len(active(store)) == 3, what="3 pods")
        print(f"3 pods after {took:.2f} s")
        victim = sorted(active(store))[0]
        store.delete(keys.pod("default", victim))
        eventually(lambda: len(active(store)) == 3 and victim not in active(store), what="the deleted pod replaced")
    finally:
        running.stop()
    store.delete(keys.pod("default", sorted(active(store))[0]))  # while no manager runs
    running = Running(etcd.port)
    try:
        eventually(lambda: len(active(store)) == 3, what="3 pods again after a restart")
        assert stays(lambda: len(active(store)) == 3 and len(store.list(keys.REPLICASETS)) == 1, 1.5)
        status = store.get(keys.namespaced(keys.DEPLOYMENTS, "default", "web"))["status"]  # type: ignore[index]
        assert status["replicas"] == 3 and status["observedGeneration"] == 1
    finally:
        running.stop()


def test_two_managers_and_five_applies_at_once_end_with_replicas_pods(store: EtcdDatastore, etcd: Etcd) -> None:
    manifest = workload("Deployment", "web", 4, {"app": "web"})
    key = keys.namespaced(keys.DEPLOYMENTS, "default", "web")
    managers = [Running(etcd.port), Running(etcd.port)]

    def apply() -> None:
        with EtcdDatastore.over_tcp("127.0.0.1", etcd.port) as client:
            for _ in range(50):
                current = client.get_versioned(key)
                if current is None and put_if(client, key, manifest, 0):
                    return
                if current is not None and current.value["spec"] == manifest["spec"]:
                    return

    try:
        appliers = [threading.Thread(target=apply) for _ in range(5)]
        for t in appliers:
            t.start()
        for t in appliers:
            t.join()
        eventually(lambda: len(active(store)) == 4, what="4 pods")
        assert stays(lambda: len(store.list(keys.PODS)) == 4, 2.0), "never more than replicas"
        assert len(store.list(keys.REPLICASETS)) == 1
    finally:
        for running in managers:
            running.stop()


def test_a_lost_watch_is_set_up_again_and_the_state_relisted(store: EtcdDatastore, etcd: Etcd) -> None:
    running = Running(etcd.port)
    try:
        rs = workload("ReplicaSet", "web", 2, {"app": "web"})
        store.put(keys.namespaced(keys.REPLICASETS, "default", "web"), rs)
        eventually(lambda: len(active(store)) == 2, what="2 pods")
        etcd.stop()  # every watch ends
        time.sleep(0.5)
        etcd.start()
        with EtcdDatastore.over_tcp("127.0.0.1", etcd.port) as client:
            client.delete(keys.pod("default", sorted(active(client))[0]))
            eventually(lambda: len(active(client)) == 2, within=WITHIN + 2, what="replaced after etcd came back")
    finally:
        running.stop()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_the_process_runs_reports_its_rss_and_exits_cleanly_on_sigterm(store: EtcdDatastore, etcd: Etcd) -> None:
    command = [sys.executable, "-m", "testbed.controllers.manager", "--lab", LAB, "--etcd", f"127.0.0.1:{etcd.port}", "--outside-netns"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        store.put(keys.namespaced(keys.DEPLOYMENTS, "default", "web"), workload("Deployment", "web", 5, {"app": "web"}))
        eventually(lambda: len(active(store)) == 5, what="5 pods from the process")
        assert store.get(keys.CONTROLLER_MANAGER)["pid"] == process.pid  # type: ignore[index]
        rss = _rss_kib(process.pid)
        print(f"controller manager VmRSS {rss} KiB")
        assert rss < 60 * 1024
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = process.stderr.read() if process.stderr else ""
    assert "created replicaset default/web-" in log and "created pod default/web-" in log
    assert log.rstrip().endswith("stopped"), log[-500:]


def test_it_refuses_to_run_outside_the_labs_fabric_netns() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "testbed.controllers.manager", "--lab", LAB, "--etcd", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"refusing to run outside netns {LAB}.fabric" in done.stderr
