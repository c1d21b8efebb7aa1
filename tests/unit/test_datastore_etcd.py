"""The etcd side without etcd: the server's argv, and the client's UNIX-socket transport
tested against a tiny fake of etcd's JSON gateway.
"""

from __future__ import annotations

import base64
import json
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from testbed.datastore import Datastore, DatastoreError
from testbed.datastore.etcd import EtcdDatastore
from testbed.runtime import etcd_server


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_etcd_command_for_a_lab() -> None:
    argv = etcd_server.etcd_command(Path("/run/testbed/l/etcd-data"), "172.18.203.1")
    assert argv[0] == "/usr/bin/etcd"
    assert flag(argv, "--name") == "testbed"
    assert flag(argv, "--data-dir") == "/run/testbed/l/etcd-data"
    assert flag(argv, "--listen-client-urls").split(",") == [
        "http://172.18.203.1:2379",
        "http://127.0.0.1:2379",
        "unix://etcd.sock:2379",
    ]
    assert flag(argv, "--advertise-client-urls") == "http://172.18.203.1:2379"
    assert flag(argv, "--listen-peer-urls") == "http://127.0.0.1:2380"
    assert flag(argv, "--initial-cluster") == "testbed=http://127.0.0.1:2380"
    election, heartbeat = int(flag(argv, "--election-timeout")), int(flag(argv, "--heartbeat-interval"))
    assert election >= 5 * heartbeat
    assert flag(argv, "--log-level") == "warn"


def test_etcd_command_socket_only_with_other_ports() -> None:
    argv = etcd_server.etcd_command(Path("/tmp/d"), None, client_port=41000, peer_port=41001, loopback=False)
    assert flag(argv, "--listen-client-urls") == "unix://etcd.sock:2379"
    assert flag(argv, "--listen-peer-urls") == "http://127.0.0.1:41001"


def test_files_of_a_lab() -> None:
    state = Path("/run/testbed/l")
    assert etcd_server.socket_path(state) == Path("/run/testbed/l/etcd.sock:2379")
    assert etcd_server.data_dir(state) == state / "etcd-data"


class FakeGateway(BaseHTTPRequestHandler):
    store: dict[str, str] = {"/a": '{"x":1}'}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.reply({"health": "true"} if self.path == "/health" else {})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        header = {"revision": "7"}
        if self.path == "/v3/kv/range":
            key = base64.b64decode(request["key"]).decode()
            kvs = [{"key": b64(key), "value": b64(self.store[key])}] if key in self.store else []
            self.reply({"header": header, **({"kvs": kvs, "count": "1"} if kvs else {})})
        else:
            self.reply({"header": header})


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tb-ds-") as name:
        yield Path(name)


@contextmanager
def serving(path: Path, handler: type[BaseHTTPRequestHandler]) -> Iterator[Path]:
    """``handler`` answering on the unix socket ``path`` for the duration."""
    server = UnixHTTPServer(str(path), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def gateway(short_dir: Path) -> Iterator[Path]:
    with serving(short_dir / "etcd.sock:2379", FakeGateway) as path:
        yield path


def test_requests_go_through_the_unix_socket(gateway: Path) -> None:
    with EtcdDatastore.over_unix_socket(gateway) as ds:
        assert isinstance(ds, Datastore)
        assert ds.healthy()
        assert ds.get("/a") == {"x": 1}
        assert ds.get("/b") is None
        assert ds.revision() == 7
        assert etcd_server.wait_healthy(ds, 1.0) < 1.0


def test_a_missing_socket_is_one_line_naming_it(short_dir: Path) -> None:
    path = short_dir / "etcd.sock:2379"
    with EtcdDatastore.over_unix_socket(path, timeout=1.0) as ds:
        assert not ds.healthy()
        with pytest.raises(DatastoreError) as info:
            ds.put("/k", {})
    assert str(info.value) == f"etcd at unix:{path}: put /k: cannot connect (No such file or directory)"


def test_a_silent_server_times_out(short_dir: Path) -> None:
    path = short_dir / "etcd.sock:2379"
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(str(path))
        silent.listen(4)  # accepts connections into its backlog, never answers
        with EtcdDatastore.over_unix_socket(path, timeout=0.3) as ds:
            start = time.monotonic()
            with pytest.raises(DatastoreError, match="get /k: timed out"):
                ds.get("/k")
            assert time.monotonic() - start < 2.0


def test_wait_healthy_gives_up_with_the_log(short_dir: Path) -> None:
    log = short_dir / "etcd.log"
    log.write_text("first\n\nsomething went wrong\n")
    with pytest.raises(etcd_server.EtcdStartError) as info:
        etcd_server.wait_healthy(short_dir / "etcd.sock:2379", 0.2, log=log)
    message = str(info.value)
    assert message.splitlines()[0].endswith(f"not healthy after 0.2 s; last lines of {log}:")
    assert message.splitlines()[1:] == ["  first", "  something went wrong"]


# --- the HTTP/1.1 transport: keep-alive, a dropped connection, errors, threads ------------


class KeepAliveGateway(FakeGateway):
    """HTTP/1.1 with keep-alive, counting connections; ``/v3/kv/put`` answers 400 as etcd's
    gateway does, and a POST to ``/v3/hangup`` closes the connection after replying."""

    protocol_version = "HTTP/1.1"
    connections: list[int] = []

    def setup(self) -> None:
        super().setup()
        KeepAliveGateway.connections.append(1)

    def do_POST(self) -> None:
        if self.path == "/v3/kv/put":
            self.rfile.read(int(self.headers["Content-Length"]))
            data = json.dumps({"error": "etcdserver: request is too large", "code": 3,
                               "message": "etcdserver: request is too large"}).encode()  # fmt: skip
            self.send_response(400)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_POST()
        if self.path == "/v3/hangup":
            self.close_connection = True  # no "Connection: close": the client cannot know


@pytest.fixture
def keepalive(short_dir: Path) -> Iterator[Path]:
    KeepAliveGateway.connections = []
    with serving(short_dir / "etcd.sock:2379", KeepAliveGateway) as path:
        yield path


def test_one_connection_serves_many_requests(keepalive: Path) -> None:
    with EtcdDatastore.over_unix_socket(keepalive) as ds:
        for _ in range(20):
            assert ds.get("/a") == {"x": 1}
    assert len(KeepAliveGateway.connections) == 1


def test_a_connection_the_server_closed_is_not_reused(keepalive: Path) -> None:
    with EtcdDatastore.over_unix_socket(keepalive) as ds:
        ds._post("hang up", "/hangup", {})
        time.sleep(0.05)  # the server's close reaches the idle connection
        assert ds.get("/a") == {"x": 1}
    assert len(KeepAliveGateway.connections) == 2


def test_a_refused_request_says_what_etcd_said(keepalive: Path) -> None:
    with EtcdDatastore.over_unix_socket(keepalive) as ds:
        with pytest.raises(DatastoreError) as info:
            ds.put("/k", {})
        assert ds.get("/a") == {"x": 1}  # the connection is still good
    assert str(info.value) == f"etcd at unix:{keepalive}: put /k: HTTP 400: etcdserver: request is too large"


def test_threads_share_one_store(keepalive: Path) -> None:
    results: list[object] = []
    with EtcdDatastore.over_unix_socket(keepalive) as ds:

        def reader() -> None:
            for _ in range(25):
                results.append(ds.get("/a"))

        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert results == [{"x": 1}] * 200
    assert len(KeepAliveGateway.connections) <= 8
