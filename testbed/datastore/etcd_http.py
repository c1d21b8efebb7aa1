"""HTTP/1.1 to etcd's v3 JSON gateway, on the standard library's ``http.client``.

Why not etcd3gw (the design's first choice) and requests under it: importing them cost
about 84 ms of CPU in every process that talks to etcd, the CLI and, per host, the BGP
glue and the policy agent, and `testbed up` starts all of those at once on a 2-core
machine. This module and http.client cost about 20 ms (``time.process_time`` around the
import, on top of the datastore's own modules, median of 15 runs). etcd3gw gave us little
beyond a URL builder and base64: the gateway's API is plain JSON, spoken here directly.

Two kinds of endpoint, the same requests: TCP ``host:port`` (processes inside the lab)
and the lab's UNIX socket (the CLI in the root netns, which has no route to the lab).

Connections are kept alive and pooled (a few per client, one per concurrent request), so
a busy caller pays one connect, and threads may share one client. An idle connection that
etcd closed (or a restarted etcd) is noticed before reuse: its socket reads as ready.
Watches take a connection of their own (``new_connection``) that is never pooled.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import threading
from dataclasses import dataclass
from typing import Any

API_PREFIX = "/v3"  # etcd >= 3.4; fixed, so that no discovery request is made
POOL_SIZE = 4  # idle connections kept per client
JSON_HEADERS = {"Content-Type": "application/json"}


def b64(text: str) -> str:
    """A key or value as the gateway's JSON carries it."""
    return base64.b64encode(text.encode()).decode()


class GatewayError(Exception):
    """A request failed; the message is one short line (``cannot connect (...)``, ``timed out``,
    ``HTTP 400: <etcd's message>``) for DatastoreError to carry."""


@dataclass(frozen=True)
class Endpoint:
    """Where etcd listens: a UNIX socket path, else TCP ``host:port``."""

    host: str = "localhost"
    port: int = 2379
    socket_path: str | None = None

    def __str__(self) -> str:
        return f"unix:{self.socket_path}" if self.socket_path else f"{self.host}:{self.port}"


class _UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket is a UNIX socket (the Host header says localhost)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def reason(exc: BaseException) -> str:
    """What went wrong, in a few words, from an OSError or http.client error."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def error_message(status: int, body: bytes) -> str:
    """``HTTP <status>: <etcd's message>`` from a gateway error reply (JSON or not)."""
    detail = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        detail = str(data.get("message") or data.get("error") or detail)
    return f"HTTP {status}: {' '.join(detail.split())[:200]}".rstrip(": ")


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection is dead when its socket reads as ready (EOF or junk)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Gateway:
    """A client of one etcd's JSON gateway: ``post`` and ``get`` return the decoded JSON
    object or raise GatewayError. Thread-safe."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def new_connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        """A connected, unpooled connection; GatewayError ``cannot connect (...)``."""
        wait = self.timeout if timeout is None else timeout
        conn: http.client.HTTPConnection
        if self.endpoint.socket_path:
            conn = _UnixHTTPConnection(self.endpoint.socket_path, wait)
        else:
            conn = http.client.HTTPConnection(self.endpoint.host, self.endpoint.port, timeout=wait)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise GatewayError(f"cannot connect ({reason(exc)})") from exc
        return conn

    def _checkout(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self.new_connection()
            if not _dropped(conn):
                return conn
            conn.close()

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """(status, body) of one request; GatewayError when no reply came."""
        body = None if payload is None else json.dumps(payload).encode()
        conn = self._checkout()
        try:
            conn.request(method, path, body=body, headers=JSON_HEADERS if body is not None else {})
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise GatewayError(reason(exc)) from exc
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        return response.status, data

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` to ``/v3<path>``; etcd's JSON reply."""
        return _json_object(*self.request("POST", API_PREFIX + path, payload))

    def get(self, path: str) -> dict[str, Any]:
        """GET ``path`` as is (``/health``, ``/version``); the JSON reply."""
        return _json_object(*self.request("GET", path))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _json_object(status: int, body: bytes) -> dict[str, Any]:
    if status != 200:
        raise GatewayError(error_message(status, body))
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise GatewayError(f"reply is not JSON ({body[:80]!r})") from exc
    if not isinstance(data, dict):
        raise GatewayError(f"reply is not a JSON object ({body[:80]!r})")
    return data
