"""The lab's etcd, through its v3 JSON gateway (``etcd_http``: http.client, no etcd3gw).

Two ways in:

- ``EtcdDatastore.over_unix_socket(path)`` for the CLI, which runs in the root network
  namespace and has no route to the lab: etcd also listens on a UNIX socket in the lab's
  state folder (``testbed.runtime.etcd_server.socket_path``).
- ``EtcdDatastore.over_tcp(host, port)`` for processes inside the lab (agents).

Watches (``watch_prefix``) are in ``etcd_watch``: one streamed request on a connection of
its own and one thread per watch.

Gateway details handled here: keys and values are base64 on the wire; 64-bit numbers
(revisions, counts) come as strings; fields equal to their protobuf default are omitted
(no ``kvs`` when nothing matched, no ``deleted`` when 0, and no ``type`` on PUT watch
events, only on DELETE ones).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from testbed.datastore import keys
from testbed.datastore.base import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    Cancel,
    DatastoreError,
    Value,
    Versioned,
    WatchCallback,
    WatchErrorCallback,
    check_commit,
    check_prefix,
    decode_value,
    encode_value,
    transactions,
)
from testbed.datastore.etcd_http import Endpoint, Gateway, GatewayError, b64
from testbed.datastore.etcd_watch import EtcdWatch

DEFAULT_TIMEOUT = 5.0  # seconds, for every request
LIST_PAGE = 500  # keys per range request when listing

T = TypeVar("T")


class EtcdDatastore:
    """A Datastore backed by a real etcd (v3 API through the JSON gateway)."""

    def __init__(
        self,
        gateway: Gateway,
        max_txn_ops: int = MAX_TXN_OPS,
        max_txn_bytes: int = MAX_TXN_BYTES,
    ) -> None:
        self._gateway = gateway
        self._endpoint = str(gateway.endpoint)
        self.timeout = gateway.timeout
        self.last_write_revision = 0  # the etcd revision of this client's latest write
        self.max_txn_ops = max_txn_ops
        self.max_txn_bytes = max_txn_bytes

    @classmethod
    def over_unix_socket(cls, path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> EtcdDatastore:
        return cls(Gateway(Endpoint(socket_path=str(path)), timeout))

    @classmethod
    def over_tcp(cls, host: str, port: int = 2379, timeout: float = DEFAULT_TIMEOUT) -> EtcdDatastore:
        return cls(Gateway(Endpoint(host, port), timeout))

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (GatewayError, ValueError) as exc:
            raise DatastoreError(f"etcd at {self._endpoint}: {what}: {exc}") from exc

    def _post(self, what: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to the gateway's ``/v3<path>`` (``/kv/range``, ``/kv/txn``, ...)."""
        return self._call(what, lambda: self._gateway.post(path, payload))

    def get(self, key: str) -> Value | None:
        reply = self._post(f"get {key}", "/kv/range", {"key": b64(key)})
        items = reply.get("kvs", [])
        return decode_value(key, base64.b64decode(items[0].get("value", ""))) if items else None

    def get_versioned(self, key: str) -> Versioned | None:
        reply = self._post(f"get {key}", "/kv/range", {"key": b64(key)})
        items = reply.get("kvs", [])
        if not items:
            return None
        return Versioned(decode_value(key, base64.b64decode(items[0].get("value", ""))), int(items[0]["mod_revision"]))

    def list(self, prefix: str) -> dict[str, Value]:
        return {k: v.value for k, v in self.list_versioned(prefix)[0].items()}

    def list_versioned(self, prefix: str) -> tuple[dict[str, Versioned], int]:
        """Pages of LIST_PAGE keys, all at the revision of the first page."""
        end = keys.prefix_end(prefix)
        start = prefix or "\0"
        result: dict[str, Versioned] = {}
        revision: int | None = None
        while True:
            payload: dict[str, Any] = {"key": b64(start), "range_end": b64(end), "limit": LIST_PAGE}
            if revision is not None:
                payload["revision"] = revision
            reply = self._post(f"list {prefix or '(all)'}", "/kv/range", payload)
            revision = int(reply.get("header", {}).get("revision", 0)) or None
            items = reply.get("kvs", [])
            for item in items:
                key = base64.b64decode(item["key"]).decode()
                value = decode_value(key, base64.b64decode(item.get("value", "")))
                result[key] = Versioned(value, int(item.get("mod_revision", 0)))
            if not reply.get("more") or not items:
                return result, revision or 0
            start = base64.b64decode(items[-1]["key"]).decode() + "\0"

    def put(self, key: str, value: Value) -> None:
        reply = self._post(f"put {key}", "/kv/put", {"key": b64(key), "value": b64(encode_value(value))})
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
                "success": [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in group],
                "failure": [],
            }
            what = f"put_many {group[0][0]} .. {group[-1][0]} ({len(group)} keys)"
            self._written(self._post(what, "/kv/txn", txn))

    def commit(
        self,
        puts: Mapping[str, Value],
        deletes: Sequence[str] = (),
        expect: Mapping[str, int] | None = None,
    ) -> bool:
        """etcd's Txn: compare each key's mod_revision (0 for a missing key), then the ops."""
        check_commit(puts, deletes, expect)
        txn = {
            "compare": [
                {"key": b64(k), "target": "MOD", "result": "EQUAL", "mod_revision": str(r)}
                for k, r in sorted((expect or {}).items())
            ],
            "success": [
                *({"request_put": {"key": b64(k), "value": b64(encode_value(v))}} for k, v in sorted(puts.items())),
                *({"request_delete_range": {"key": b64(k)}} for k in sorted(deletes)),
            ],
            "failure": [],
        }
        first = next(iter(sorted([*puts, *deletes])), "(nothing)")
        reply = self._post(f"commit {first} ({len(puts)} puts, {len(deletes)} deletes)", "/kv/txn", txn)
        if not reply.get("succeeded"):
            return False
        if puts or any(int(r.get("response_delete_range", {}).get("deleted", 0)) for r in reply.get("responses", [])):
            self._written(reply)
        return True

    def delete(self, key: str) -> bool:
        reply = self._post(f"delete {key}", "/kv/deleterange", {"key": b64(key)})
        if int(reply.get("deleted", 0)):
            self._written(reply)
        return int(reply.get("deleted", 0)) > 0

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        payload = {"key": b64(prefix), "range_end": b64(keys.prefix_end(prefix))}
        reply = self._post(f"delete_prefix {prefix}", "/kv/deleterange", payload)
        if int(reply.get("deleted", 0)):
            self._written(reply)
        return int(reply.get("deleted", 0))

    def revision(self) -> int:
        reply = self._post("revision", "/kv/range", {"key": b64(keys.LAB), "count_only": True})
        return int(reply["header"]["revision"])

    def healthy(self) -> bool:
        try:
            return self._gateway.get("/health").get("health") == "true"
        except GatewayError:
            return False

    def watch_prefix(
        self,
        prefix: str,
        callback: WatchCallback,
        *,
        start_revision: int | None = None,
        on_error: WatchErrorCallback | None = None,
        with_previous: bool = False,
    ) -> Cancel:
        """See Datastore.watch_prefix: callbacks run in the watch's own (daemon) thread."""
        watch = EtcdWatch(self._gateway, prefix, callback, start_revision=start_revision, on_error=on_error,
                          with_previous=with_previous)  # fmt: skip
        return watch.start()

    def close(self) -> None:
        self._gateway.close()

    def __enter__(self) -> EtcdDatastore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdDatastore({self._endpoint})"
