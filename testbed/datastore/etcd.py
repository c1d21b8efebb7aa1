"""The lab's etcd, through etcd3gw (etcd's v3 JSON gateway).

Two ways in:

- ``EtcdDatastore.over_unix_socket(path)`` for the CLI, which runs in the root network
  namespace and has no route to the lab: etcd also listens on a UNIX socket in the lab's
  state folder (``testbed.runtime.etcd_server.socket_path``), and requests go there
  through a requests adapter whose connections are UNIX-socket connections.
- ``EtcdDatastore.over_tcp(host, port)`` for processes inside the lab (agents).

Watches (``watch_prefix``) are in ``etcd_watch``: one streamed request, one session and
one thread per watch, made by the same ``session_factory`` as the store's own session.

etcd3gw pitfalls handled here: keys and values come back as bytes (base64 on the wire);
64-bit numbers (revisions, counts) come back as strings; fields equal to their protobuf
default are omitted (no ``kvs`` when nothing matched, no ``deleted`` when 0, and no
``type`` on PUT watch events, only on DELETE ones).
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions
from etcd3gw import exceptions as etcd_exceptions
from etcd3gw.client import Etcd3Client

from testbed.datastore import keys
from testbed.datastore.base import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    Cancel,
    DatastoreError,
    Value,
    WatchCallback,
    WatchErrorCallback,
    check_prefix,
    decode_value,
    encode_value,
    transactions,
)
from testbed.datastore.etcd_watch import EtcdWatch

DEFAULT_TIMEOUT = 5.0  # seconds, for every request
LIST_PAGE = 500  # keys per range request when listing
API_PATH = "/v3/"  # etcd >= 3.4; given so that no discovery request is made

T = TypeVar("T")


# --- HTTP over a UNIX socket ----------------------------------------------------------


class _UnixConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection whose socket is a UNIX socket (host and port are ignored)."""

    def __init__(self, *args: Any, socket_path: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if isinstance(self.timeout, (int, float)):
            sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise urllib3.exceptions.NewConnectionError(
                self, f"{self.socket_path}: {exc.strerror or exc}"
            ) from exc
        return sock


class _UnixConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _UnixConnection


class _UnixAdapter(requests.adapters.HTTPAdapter):
    """Sends every request of the session to one UNIX socket."""

    def __init__(self, socket_path: str) -> None:
        super().__init__()
        self._pool = _UnixConnectionPool("localhost", socket_path=socket_path)

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> urllib3.HTTPConnectionPool:
        return self._pool

    def get_connection(self, url: Any, proxies: Any = None) -> urllib3.HTTPConnectionPool:
        return self._pool

    def close(self) -> None:
        self._pool.close()
        super().close()


def unix_socket_session(path: Path | str) -> requests.Session:
    """A requests session whose every ``http://`` request goes to the socket at ``path``."""
    session = requests.Session()
    session.trust_env = False  # no proxies from the environment
    session.mount("http://", _UnixAdapter(str(path)))
    return session


def _tcp_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies from the environment
    return session


# --- the datastore --------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _os_reason(exc: BaseException) -> str | None:
    """The strerror of the OSError somewhere under a requests/urllib3/etcd3gw error."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    return None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, (etcd_exceptions.ConnectionFailedError, requests.ConnectionError)):
        reason = _os_reason(exc)
        return f"cannot connect ({reason})" if reason else "cannot connect"
    if isinstance(exc, (etcd_exceptions.ConnectionTimeoutError, requests.Timeout)):
        return "timed out"
    text = " ".join(str(exc).split())
    return (text[:200] or type(exc).__name__).rstrip()


class EtcdDatastore:
    """A Datastore backed by a real etcd (v3 API through the JSON gateway)."""

    def __init__(
        self,
        client: Etcd3Client,
        endpoint: str,
        timeout: float = DEFAULT_TIMEOUT,
        max_txn_ops: int = MAX_TXN_OPS,
        max_txn_bytes: int = MAX_TXN_BYTES,
        session_factory: Callable[[], requests.Session] | None = None,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self.timeout = timeout
        self.last_write_revision = 0  # the etcd revision of this client's latest write
        self.max_txn_ops = max_txn_ops
        self.max_txn_bytes = max_txn_bytes
        self._session_factory = session_factory  # one new session per watch (None: share)

    @classmethod
    def over_unix_socket(cls, path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> EtcdDatastore:
        client = Etcd3Client(
            host="localhost", port=2379, session=unix_socket_session(path), api_path=API_PATH, timeout=timeout
        )
        return cls(client, f"unix:{path}", timeout, session_factory=lambda: unix_socket_session(path))

    @classmethod
    def over_tcp(cls, host: str, port: int = 2379, timeout: float = DEFAULT_TIMEOUT) -> EtcdDatastore:
        client = Etcd3Client(host=host, port=port, session=_tcp_session(), api_path=API_PATH, timeout=timeout)
        return cls(client, f"{host}:{port}", timeout, session_factory=_tcp_session)

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (etcd_exceptions.Etcd3Exception, requests.RequestException, ValueError) as exc:
            raise DatastoreError(f"etcd at {self._endpoint}: {what}: {_one_line(exc)}") from exc

    def _post(self, what: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            what, lambda: self._client.post(self._client.get_url(path), json=payload)
        )
        return result

    def get(self, key: str) -> Value | None:
        values = self._call(f"get {key}", lambda: self._client.get(key.encode()))
        return decode_value(key, values[0]) if values else None

    def list(self, prefix: str) -> dict[str, Value]:
        """Pages of LIST_PAGE keys, all at the revision of the first page."""
        end = keys.prefix_end(prefix)
        start = prefix or "\0"
        result: dict[str, Value] = {}
        revision: int | None = None
        while True:
            payload: dict[str, Any] = {"key": _b64(start), "range_end": _b64(end), "limit": LIST_PAGE}
            if revision is not None:
                payload["revision"] = revision
            reply = self._post(f"list {prefix or '(all)'}", "/kv/range", payload)
            revision = int(reply.get("header", {}).get("revision", 0)) or None
            items = reply.get("kvs", [])
            for item in items:
                key = base64.b64decode(item["key"]).decode()
                result[key] = decode_value(key, base64.b64decode(item.get("value", "")))
            if not reply.get("more") or not items:
                return result
            start = base64.b64decode(items[-1]["key"]).decode() + "\0"

    def put(self, key: str, value: Value) -> None:
        reply = self._post(f"put {key}", "/kv/put", {"key": _b64(key), "value": _b64(encode_value(value))})
        self._written(reply)

    def _written(self, reply: Mapping[str, Any]) -> None:
        """Remember the revision of our last write (etcd's response header says it)."""
        revision = int(reply.get("header", {}).get("revision", 0))
        self.last_write_revision = max(self.last_write_revision, revision)

    def put_many(self, items: Mapping[str, Value]) -> None:
        """Transactions of at most ``max_txn_ops`` puts (etcd's --max-txn-ops, 128 by
        default) and ``max_txn_bytes``: each is atomic and one revision; a failure part
        way leaves the earlier transactions written."""
        encoded = {k: encode_value(v) for k, v in items.items()}
        for group in transactions(encoded, self.max_txn_ops, self.max_txn_bytes):
            txn = {
                "compare": [],
                "success": [{"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in group],
                "failure": [],
            }
            what = f"put_many {group[0][0]} .. {group[-1][0]} ({len(group)} keys)"
            self._written(self._post(what, "/kv/txn", txn))

    def delete(self, key: str) -> bool:
        reply = self._post(f"delete {key}", "/kv/deleterange", {"key": _b64(key)})
        if int(reply.get("deleted", 0)):
            self._written(reply)
        return int(reply.get("deleted", 0)) > 0

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        payload = {"key": _b64(prefix), "range_end": _b64(keys.prefix_end(prefix))}
        reply = self._post(f"delete_prefix {prefix}", "/kv/deleterange", payload)
        if int(reply.get("deleted", 0)):
            self._written(reply)
        return int(reply.get("deleted", 0))

    def revision(self) -> int:
        reply = self._post("revision", "/kv/range", {"key": _b64(keys.LAB), "count_only": True})
        return int(reply["header"]["revision"])

    def healthy(self) -> bool:
        try:
            reply = self._client.session.get(self._client.base_url + "/health", timeout=self.timeout)
            return reply.status_code == 200 and reply.json().get("health") == "true"
        except (requests.RequestException, ValueError):
            return False

    def watch_prefix(
        self,
        prefix: str,
        callback: WatchCallback,
        *,
        start_revision: int | None = None,
        on_error: WatchErrorCallback | None = None,
    ) -> Cancel:
        """See Datastore.watch_prefix: callbacks run in the watch's own (daemon) thread."""
        own = self._session_factory is not None
        session = self._session_factory() if self._session_factory else self._client.session
        watch = EtcdWatch(session, self._client.get_url("/watch"), prefix, callback, own_session=own,
                          start_revision=start_revision, on_error=on_error, timeout=self.timeout,
                          endpoint=self._endpoint)  # fmt: skip
        return watch.start()

    def close(self) -> None:
        self._client.session.close()

    def __enter__(self) -> EtcdDatastore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdDatastore({self._endpoint})"
