"""The kubelet's loop over the in-memory store, with a fake runtime, network and prober
and a clock the test moves: what a user sees in the Pod's status and in the store."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from agents.kubelet import local
from agents.kubelet.cni import Networked
from agents.kubelet.kubelet import Kubelet
from agents.kubelet.node import micro_time
from agents.kubelet.podspec import Container, PodView, Probe
from testbed.datastore import keys
from testbed.datastore.base import put_if
from testbed.datastore.memory import MemoryDatastore

HOST = "host1"
KEY = keys.pod("demo", "web")
T0 = 1_800_000_000.0


@dataclass
class FakeProcess:
    pid: int
    start_ticks: int | None = 1000
    code: int | None = None
    exit_on: dict[int, int] = field(default_factory=lambda: {signal.SIGTERM: 143, signal.SIGKILL: 137})
    signals: list[int] = field(default_factory=list)
    unknown_exit: bool = False

    def poll(self) -> int | None:
        return self.code

    def signal(self, sig: int) -> None:
        self.signals.append(sig)
        if self.code is None and sig in self.exit_on:
            self.code = self.exit_on[sig]


class FakeRuntime:
    def __init__(self) -> None:
        self.started: list[FakeProcess] = []
        self.adopted: list[FakeProcess] = []
        self.next_pid = 100

    def start(self, pod: PodView, container: Container, ip: str | None = None) -> FakeProcess:
        self.next_pid += 1
        proc = FakeProcess(self.next_pid)
        self.started.append(proc)
        return proc

    def adopt(self, pid: int, start_ticks: int | None) -> FakeProcess:
        proc = FakeProcess(pid, start_ticks)
        self.adopted.append(proc)
        return proc


class FakeNetwork:
    def __init__(self) -> None:
        self.added: list[str] = []
        self.deleted: list[str] = []

    def add(self, pod: PodView, now: float) -> Networked:
        self.added.append(pod.key)
        return Networked(IPv4Address("10.65.0.5"), IPv4Network("10.65.0.0/26"), False, "ee:ee:ee:ee:ee:01")

    def delete(self, namespace: str, name: str) -> None:
        self.deleted.append(f"{namespace}/{name}")

    def held_elsewhere(self, pod: PodView, hosts: list[str]) -> str | None:
        return None


class FakeProber:
    def __init__(self) -> None:
        self.submitted: list[tuple[object, Probe, int | None]] = []

    def submit(self, token: object, netns: str, pod_ip: str, image: str, probe: Probe, port: int | None) -> None:
        self.submitted.append((token, probe, port))


class Lab:
    """A store with the lab's records, one kubelet on host1, and a clock."""

    def __init__(self, tmp: Path) -> None:
        self.store = MemoryDatastore()
        self.store.put(keys.LAB, {"name": "lab"})
        for host, ip in ((HOST, "172.18.203.11"), ("host2", "172.18.203.12")):
            self.store.put(keys.node(host), {"metadata": {"name": host}, "spec": {"bgp": {"ipv4Address": f"{ip}/24"}}})
        self.runtime, self.network, self.prober = FakeRuntime(), FakeNetwork(), FakeProber()
        self.file = local.path(tmp, HOST)
        self.now = T0
        self.kubelet = self.new_kubelet()

    def new_kubelet(self) -> Kubelet:
        kubelet = Kubelet(self.store, "lab", HOST, self.runtime, self.network, self.prober, self.file, clock=lambda: self.now)
        self.store.watch_prefix(keys.PODS, kubelet.on_pod_event)
        return kubelet

    def step(self, seconds: float = 0.2) -> None:
        self.now += seconds
        self.kubelet.step(self.now)

    def felix(self, revision: int, hosts: tuple[str, ...] = (HOST, "host2")) -> None:
        for host in hosts:
            self.store.put(keys.felix_status(host), {"host": host, "revision": revision, "updated": self.now})

    def enforce(self) -> None:
        self.felix(self.store.revision())
        self.step()

    def pod(self) -> dict:
        value = self.store.get(KEY)
        assert value is not None
        return value

    def status(self) -> dict:
        return self.pod()["status"]

    def container(self) -> dict:
        return self.status()["containerStatuses"][0]

    def ready(self) -> str:
        return next(c["status"] for c in self.status()["conditions"] if c["type"] == "Ready")

    def create(self, **container: object) -> None:
        spec = {"name": "web", "image": "nginx", "ports": [{"name": "http", "containerPort": 80}], **container}
        value = {"metadata": {"name": "web", "namespace": "demo", "uid": "u1"},
                 "spec": {"nodeName": HOST, "terminationGracePeriodSeconds": 10, "containers": [spec]},
                 "status": {"phase": "Pending"}}  # fmt: skip
        assert put_if(self.store, KEY, value, 0)

    def delete(self, grace: int | None = None) -> None:
        got = self.store.get_versioned(KEY)
        assert got is not None
        meta = {**got.value["metadata"], "deletionTimestamp": "2027-01-15T08:00:00Z"}
        if grace is not None:
            meta["deletionGracePeriodSeconds"] = grace
        assert put_if(self.store, KEY, {**got.value, "metadata": meta}, got.revision)

    def running_pod(self) -> FakeProcess:
        self.create()
        self.step()
        self.enforce()
        return self.runtime.started[-1]


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def test_a_bound_pod_gets_its_network_then_waits_for_every_felix(lab: Lab) -> None:
    lab.create()
    lab.step()
    assert lab.network.added == [KEY]
    endpoint = lab.store.get_versioned(keys.workload_endpoint_of(HOST, "demo", "web"))
    assert endpoint is not None and endpoint.value["spec"]["ipNetworks"] == ["10.65.0.5/32"]
    assert endpoint.value["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 80}]
    status = lab.status()
    assert (status["phase"], status["podIP"], status["hostIP"]) == ("Pending", "10.65.0.5", "172.18.203.11")
    assert lab.container()["state"] == {"waiting": {"reason": "ContainerCreating"}}
    lab.felix(endpoint.revision, hosts=(HOST,))  # host2's Felix is behind: nothing starts
    lab.step()
    assert lab.runtime.started == []
    lab.felix(endpoint.revision)
    lab.step()
    assert len(lab.runtime.started) == 1
    assert (lab.status()["phase"], lab.ready()) == ("Running", "True")
    assert lab.container()["containerID"] == f"testbed://{lab.runtime.started[0].pid}"


def test_a_host_whose_lease_is_stale_is_not_waited_for(lab: Lab) -> None:
    lab.create()
    lab.step()
    lab.felix(lab.store.revision(), hosts=(HOST,))
    lab.store.put(keys.node_lease("host2"), {"spec": {"renewTime": micro_time(lab.now - 60)}})
    lab.step()
    assert len(lab.runtime.started) == 1


def test_status_is_written_only_when_it_changes(lab: Lab) -> None:
    lab.running_pod()
    revision = lab.store.get_versioned(KEY)
    for _ in range(20):
        lab.step()
    assert lab.store.get_versioned(KEY) == revision


def test_an_exited_container_backs_off_unready_then_restarts_counted(lab: Lab) -> None:
    first = lab.running_pod()
    first.code = 137
    lab.step()
    assert lab.ready() == "False"
    assert lab.container()["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert lab.container()["lastState"]["terminated"]["exitCode"] == 137
    lab.step(0.5)
    assert len(lab.runtime.started) == 1  # back-off: 1 s
    lab.step(0.6)
    assert len(lab.runtime.started) == 2
    assert (lab.container()["restartCount"], lab.ready()) == (1, "True")
    lab.runtime.started[-1].code = 1
    lab.step()
    assert "back-off 2s" in lab.container()["state"]["waiting"]["message"]


def test_restart_policy_never_leaves_it_terminated_and_the_pod_failed(lab: Lab) -> None:
    lab.create()
    lab.store.put(KEY, {**lab.pod(), "spec": {**lab.pod()["spec"], "restartPolicy": "Never"}})
    lab.step()
    lab.enforce()
    lab.runtime.started[0].code = 2
    lab.step()
    lab.step(5)
    assert len(lab.runtime.started) == 1
    assert lab.status()["phase"] == "Failed"
    assert lab.container()["state"]["terminated"]["exitCode"] == 2


def test_deletion_terms_then_kills_then_cni_del_then_removes_the_pod(lab: Lab) -> None:
    proc = lab.running_pod()
    proc.exit_on = {signal.SIGKILL: 137}  # ignores SIGTERM
    lab.delete(grace=5)
    lab.step()
    assert proc.signals == [signal.SIGTERM]
    lab.step(4)
    assert lab.store.get(KEY) is not None and lab.network.deleted == []
    lab.step(1.1)
    assert proc.signals == [signal.SIGTERM, signal.SIGKILL]
    lab.step()
    assert lab.network.deleted == ["demo/web"]
    assert lab.store.get(KEY) is None
    assert lab.kubelet.local == {} and local.load(lab.file) == {}
    lab.step(5)
    assert len(lab.runtime.started) == 1  # nothing restarted meanwhile


def test_a_vanished_pod_is_torn_down_without_a_restart(lab: Lab) -> None:
    proc = lab.running_pod()
    lab.store.delete(KEY)
    lab.step()
    assert proc.signals == [signal.SIGTERM]
    lab.step()
    assert lab.network.deleted == ["demo/web"] and lab.kubelet.local == {}
    assert len(lab.runtime.started) == 1


def test_a_restarted_kubelet_adopts_the_running_container(lab: Lab) -> None:
    proc = lab.running_pod()
    status = lab.status()
    lab.kubelet = lab.new_kubelet()  # the agent process restarted: a new kubelet, same file
    lab.step()
    lab.step()
    assert len(lab.runtime.started) == 1
    assert [(p.pid, p.start_ticks) for p in lab.runtime.adopted] == [(proc.pid, proc.start_ticks)]
    assert lab.status() == status
    lab.runtime.adopted[0].code = 137
    lab.step()
    lab.step(1.1)
    assert len(lab.runtime.started) == 2 and lab.container()["restartCount"] == 1


def test_readiness_gates_ready_and_liveness_kills(lab: Lab) -> None:
    lab.create(
        readinessProbe={"httpGet": {"port": "http"}, "periodSeconds": 1},
        livenessProbe={"tcpSocket": {"port": 80}, "periodSeconds": 1, "failureThreshold": 1},
    )
    lab.step()
    lab.enforce()
    assert lab.ready() == "False"
    tokens = {t[1].kind: t for t in lab.prober.submitted}
    assert tokens["httpGet"][2] == 80  # the named port, resolved
    lab.kubelet.on_probe(tokens["httpGet"][0], True)
    lab.kubelet.on_probe(tokens["tcpSocket"][0], True)
    lab.step()
    assert lab.ready() == "True"
    lab.step(1)
    live = [t for t in lab.prober.submitted if t[1].kind == "tcpSocket"][-1]
    lab.kubelet.on_probe(live[0], False)
    lab.step()
    assert lab.runtime.started[0].signals == [signal.SIGTERM]
    lab.step()
    assert lab.ready() == "False"
    lab.step(1.1)
    assert len(lab.runtime.started) == 2 and lab.container()["restartCount"] == 1


def test_a_pod_networked_by_another_path_is_left_alone(lab: Lab) -> None:
    lab.create()
    lab.store.put(KEY, {**lab.pod(), "status": {"phase": "Running", "podIP": "10.65.0.1"}})
    lab.step()
    assert lab.network.added == [] and lab.runtime.started == [] and lab.kubelet.local == {}


def test_an_endpoint_of_this_node_without_its_pod_is_torn_down(lab: Lab) -> None:
    endpoint = {"metadata": {"name": "x", "namespace": "demo", "labels": {}},
                "spec": {"node": HOST, "pod": "gone", "ipNetworks": ["10.65.0.9/32"], "interfaceName": "calix"}}  # fmt: skip
    lab.store.put(keys.workload_endpoint_of(HOST, "demo", "gone"), endpoint)
    lab.store.put(keys.workload_endpoint_of("host2", "demo", "theirs"), {**endpoint, "spec": {**endpoint["spec"], "node": "host2"}})
    lab.step()
    lab.step()
    assert lab.network.deleted == ["demo/gone"]


def test_a_pod_that_does_not_parse_is_failed_with_why(lab: Lab) -> None:
    lab.create(readinessProbe={"httpGet": {"port": "nope"}})
    lab.step()
    status = lab.status()
    assert status["phase"] == "Failed" and status["reason"] == "InvalidPodSpec"
    assert "spec.containers[0].readinessProbe.httpGet.port" in status["message"]
    assert lab.network.added == []


def test_nothing_is_remembered_of_a_pod_once_it_is_gone(lab: Lab) -> None:
    lab.running_pod()
    lab.delete(grace=0)
    for _ in range(3):
        lab.step()
    assert lab.store.get(KEY) is None
    kubelet = lab.kubelet
    memos = (kubelet._views, kubelet._good, kubelet._status_inputs, kubelet._retry, kubelet.containers.procs,
             kubelet.containers.probe_states, kubelet.local)  # fmt: skip
    assert all(not memo for memo in memos)


def test_run_follows_the_watch_and_sets_it_up_again_when_lost(tmp_path: Path) -> None:
    import threading
    import time

    lab = Lab(tmp_path)
    kubelet = Kubelet(lab.store, "lab", HOST, lab.runtime, lab.network, lab.prober, lab.file)
    stop = threading.Event()
    thread = threading.Thread(target=kubelet.run, args=(stop,), daemon=True)
    thread.start()
    try:
        lab.create()

        def until(check: object, timeout: float = 5.0) -> None:
            deadline = time.monotonic() + timeout
            while not check():  # type: ignore[operator]
                assert time.monotonic() < deadline, "not in time"
                time.sleep(0.02)

        until(lambda: lab.network.added)
        lab.felix(lab.store.revision())
        until(lambda: lab.runtime.started)
        kubelet.on_lost()  # the watch ended: the loop watches again and re-lists
        lab.runtime.started[0].code = 1
        until(lambda: len(lab.runtime.started) == 2)  # the restart, 1 s after the exit
        until(lambda: lab.container()["restartCount"] == 1)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
