"""An in-memory Datastore for unit tests: etcd's semantics (revisions, prefixes,
transaction chunks) without a process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType

from testbed.datastore.base import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    DatastoreError,
    Value,
    check_prefix,
    decode_value,
    encode_value,
    transactions,
)


class MemoryDatastore:
    """Values are kept encoded, as etcd keeps bytes: every get returns a fresh copy.

    The revision starts at 1 (an empty etcd) and grows by one per write that changed
    something: a put, a put_many transaction, a delete or delete_prefix that removed keys.
    """

    def __init__(self, max_txn_ops: int = MAX_TXN_OPS, max_txn_bytes: int = MAX_TXN_BYTES) -> None:
        self._data: dict[str, str] = {}
        self._revision = 1
        self._closed = False
        self._lock = threading.Lock()
        self.max_txn_ops = max_txn_ops
        self.max_txn_bytes = max_txn_bytes
        self.transactions = 0  # how many put_many transactions ran (for tests)

    @property
    def endpoint(self) -> str:
        return "memory"

    def _check_open(self) -> None:
        if self._closed:
            raise DatastoreError("datastore memory: closed")

    def get(self, key: str) -> Value | None:
        with self._lock:
            self._check_open()
            raw = self._data.get(key)
        return None if raw is None else decode_value(key, raw)

    def list(self, prefix: str) -> dict[str, Value]:
        with self._lock:
            self._check_open()
            items = sorted((k, v) for k, v in self._data.items() if k.startswith(prefix))
        return {k: decode_value(k, v) for k, v in items}

    def put(self, key: str, value: Value) -> None:
        encoded = encode_value(value)
        with self._lock:
            self._check_open()
            self._data[key] = encoded
            self._revision += 1

    def put_many(self, items: Mapping[str, Value]) -> None:
        encoded = {k: encode_value(v) for k, v in items.items()}
        with self._lock:
            self._check_open()
            for group in transactions(encoded, self.max_txn_ops, self.max_txn_bytes):
                self._data.update(group)
                self._revision += 1
                self.transactions += 1

    def delete(self, key: str) -> bool:
        with self._lock:
            self._check_open()
            if key not in self._data:
                return False
            del self._data[key]
            self._revision += 1
            return True

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        with self._lock:
            self._check_open()
            doomed = [k for k in self._data if k.startswith(prefix)]
            for key in doomed:
                del self._data[key]
            if doomed:
                self._revision += 1
            return len(doomed)

    def revision(self) -> int:
        with self._lock:
            self._check_open()
            return self._revision

    def healthy(self) -> bool:
        return not self._closed

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> MemoryDatastore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
