"""EtcdDatastore against a real etcd (Debian's etcd-server), reached over its UNIX socket.

No root and no namespaces: etcd runs in a temporary folder with its client listener on
the socket plus a random localhost port (2379/2380 may belong to a running lab), and is
stopped by its PID at the end.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.datastore import etcd as etcd_module
from testbed.datastore import keys, records
from testbed.datastore.base import DatastoreError
from testbed.datastore.etcd import EtcdDatastore
from testbed.model.topology import HostSpec, NamespaceSpec, PodSpec, Topology
from testbed.runtime import etcd_server
from testbed.runtime.plan import plan_lab
from tests import datastore_contract as contract

pytestmark = pytest.mark.skipif(
    not Path(etcd_server.ETCD_BINARY).exists(), reason=f"{etcd_server.ETCD_BINARY} is not installed"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EtcdUnderTest:
    def __init__(self, state: Path, client_port: int, started_in: float) -> None:
        self.state = state
        self.socket = etcd_server.socket_path(state)
        self.client_port = client_port
        self.started_in = started_in


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdUnderTest]:
    # mkdtemp, not tmp_path: a short path keeps the socket within AF_UNIX's 108 bytes.
    state = Path(tempfile.mkdtemp(prefix="testbed-etcd-"))
    client_port = free_port()
    command = etcd_server.etcd_command(
        etcd_server.data_dir(state), None, client_port=client_port, peer_port=free_port()
    )
    log_path = etcd_server.log_path(state)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=state, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    try:
        waited = etcd_server.wait_healthy(etcd_server.socket_path(state), 10.0, log=log_path, process=process)
        yield EtcdUnderTest(state, client_port, waited)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def store(etcd: EtcdUnderTest) -> Iterator[EtcdDatastore]:
    with EtcdDatastore.over_unix_socket(etcd.socket) as ds:
        ds.delete_prefix("/")
        yield ds


def test_starts_fast_and_is_healthy(etcd: EtcdUnderTest, store: EtcdDatastore) -> None:
    assert etcd.started_in < 5.0
    assert store.healthy()
    assert store.endpoint == f"unix:{etcd.socket}"


def test_put_get_and_missing_keys(store: EtcdDatastore) -> None:
    assert store.get("/x/missing") is None
    store.put("/x/a", {"b": [1, None, "ü"], "a": {"c": True}})
    assert store.get("/x/a") == {"a": {"c": True}, "b": [1, None, "ü"]}


def test_every_write_bumps_the_revision(store: EtcdDatastore) -> None:
    before = store.revision()
    store.put("/x/a", {"v": 1})
    assert store.revision() == before + 1
    assert store.delete("/x/a") is True
    assert store.revision() == before + 2
    assert store.delete("/x/a") is False
    assert store.revision() == before + 2


def test_list_is_sorted_and_respects_prefix_boundaries(store: EtcdDatastore) -> None:
    store.put(keys.pod("ab", "p"), {"n": 3})
    store.put(keys.pod("a", "q"), {"n": 2})
    store.put(keys.pod("a", "p"), {"n": 1})
    assert list(store.list(keys.pods_in("a"))) == [keys.pod("a", "p"), keys.pod("a", "q")]
    assert list(store.list(keys.PODS)) == [keys.pod("a", "p"), keys.pod("a", "q"), keys.pod("ab", "p")]
    assert store.list("/nothing/") == {}


def test_list_pages_through_many_keys(store: EtcdDatastore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_module, "LIST_PAGE", 7)
    store.put_many({f"/many/{i:03d}": {"i": i} for i in range(50)})
    listed = store.list("/many/")
    assert list(listed) == [f"/many/{i:03d}" for i in range(50)]
    assert listed["/many/049"] == {"i": 49}


def test_put_many_beyond_one_transaction(store: EtcdDatastore) -> None:
    items = {f"/bulk/{i:04d}": {"i": i} for i in range(300)}
    before = store.revision()
    store.put_many(items)
    assert store.revision() == before + 3  # 128 + 128 + 44: one revision per transaction
    assert store.list("/bulk/") == items


def test_delete_prefix_counts_and_refuses_everything(store: EtcdDatastore) -> None:
    store.put_many({"/d/a/1": {}, "/d/a/2": {}, "/d/ab/1": {}})
    assert store.delete_prefix("/d/a/") == 2
    assert store.delete_prefix("/d/a/") == 0
    assert list(store.list("/d/")) == ["/d/ab/1"]
    with pytest.raises(ValueError):
        store.delete_prefix("")


def test_a_whole_lab_round_trips(store: EtcdDatastore) -> None:
    topology = Topology(
        name="t",
        hosts=(HostSpec("node-1"), HostSpec("node-2")),
        namespaces=(NamespaceSpec("stars", (("role", "demo"),)),),
        pods=tuple(PodSpec(f"p{i}", "stars", (("app", f"a{i}"),)) for i in range(70)),
    )
    plan = plan_lab(topology, "lab")
    values = records.lab_records(plan, created=1_700_000_000.0)
    assert len(values) > 128
    store.put_many(values)
    assert store.list("/") == values
    # Each pod asks its kubelet for the address the plan gave it (Calico's annotation).
    asked = [json.loads(v["metadata"]["annotations"][records.ANNOTATION_IP_ADDRS])[0]
             for v in store.list(keys.pods_in("stars")).values()]  # fmt: skip
    assert sorted(asked) == sorted(str(p.ip) for p in plan.pods)


def test_tcp_clients_see_the_same_data(etcd: EtcdUnderTest, store: EtcdDatastore) -> None:
    store.put("/tcp/a", {"v": 1})
    with EtcdDatastore.over_tcp("127.0.0.1", etcd.client_port) as tcp:
        assert tcp.healthy()
        assert tcp.get("/tcp/a") == {"v": 1}
        assert tcp.revision() == store.revision()


def test_an_absent_etcd_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "etcd.sock:2379"
    with EtcdDatastore.over_unix_socket(path, timeout=1.0) as ds:
        assert ds.healthy() is False
        with pytest.raises(DatastoreError) as info:
            ds.get("/x")
    message = str(info.value)
    assert "\n" not in message
    assert f"unix:{path}" in message and "/x" in message


def test_a_stale_socket_stops_etcd_until_cleared() -> None:
    """A socket file left by a killed etcd: the next etcd exits at once, and says why."""
    state = Path(tempfile.mkdtemp(prefix="testbed-etcd-"))
    socket_file = etcd_server.socket_path(state)
    log_path = etcd_server.log_path(state)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(socket_file))
    stale.close()  # closing does not unlink: the file stays, as after kill -9
    command = etcd_server.etcd_command(
        etcd_server.data_dir(state), None, peer_port=free_port(), loopback=False
    )
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with log_path.open("wb") as log:
            processes.append(subprocess.Popen(command, cwd=state, stdout=log, stderr=log))
        return processes[-1]

    try:
        began = time.monotonic()
        with pytest.raises(etcd_server.EtcdStartError) as info:
            etcd_server.wait_healthy(socket_file, 10.0, log=log_path, process=start())
        assert time.monotonic() - began < 5.0
        assert "exited with status" in str(info.value)
        assert "address already in use" in str(info.value)  # from the log's last lines
        assert etcd_server.clear_stale_socket(state) is True
        etcd_server.wait_healthy(socket_file, 10.0, log=log_path, process=start())
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda c: c.__name__)
def test_conditional_writes(store: EtcdDatastore, check) -> None:
    check(store)
