"""An in-memory Datastore for unit tests: etcd's semantics (revisions, prefixes,
transaction chunks, watches) without a process.

Watch callbacks run synchronously in the writer's thread, right after the write and
outside the store's lock (so a callback may read or write the store).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from testbed.datastore.base import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    Cancel,
    DatastoreError,
    Value,
    Versioned,
    WatchCallback,
    WatchErrorCallback,
    WatchEvent,
    check_commit,
    check_prefix,
    decode_value,
    encode_value,
    transactions,
)


@dataclass
class _Watcher:
    prefix: str
    callback: WatchCallback
    on_error: WatchErrorCallback | None
    active: bool = True


class MemoryDatastore:
    """Values are kept encoded, as etcd keeps bytes: every get returns a fresh copy.

    The revision starts at 1 (an empty etcd) and grows by one per write that changed
    something: a put, a put_many transaction, a delete or delete_prefix that removed keys.
    """

    def __init__(self, max_txn_ops: int = MAX_TXN_OPS, max_txn_bytes: int = MAX_TXN_BYTES) -> None:
        self._data: dict[str, str] = {}
        self._mod: dict[str, int] = {}  # key -> the revision that last wrote it
        self._revision = 1
        self.last_write_revision = 0  # the revision of the latest write (as etcd's replies say)
        self._closed = False
        self._lock = threading.Lock()
        self.max_txn_ops = max_txn_ops
        self.max_txn_bytes = max_txn_bytes
        self.transactions = 0  # how many put_many transactions ran (for tests)
        self._watchers: list[_Watcher] = []
        self._history: list[WatchEvent] = []  # every change, for watches with start_revision

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
            previous = self._data.get(key)
            self._data[key] = encoded
            self._revision += 1
            self._mod[key] = self._revision
            self.last_write_revision = self._revision
            events = [self._record("put", key, encoded, previous)]
        self._notify(events)

    def put_many(self, items: Mapping[str, Value]) -> None:
        encoded = {k: encode_value(v) for k, v in items.items()}
        events: list[WatchEvent] = []
        with self._lock:
            self._check_open()
            for group in transactions(encoded, self.max_txn_ops, self.max_txn_bytes):
                previous = {k: self._data.get(k) for k, _ in group}
                self._data.update(group)
                self._revision += 1
                self._mod.update((k, self._revision) for k, _ in group)
                self.last_write_revision = self._revision
                self.transactions += 1
                events += [self._record("put", k, v, previous[k]) for k, v in group]
        self._notify(events)

    def delete(self, key: str) -> bool:
        with self._lock:
            self._check_open()
            if key not in self._data:
                return False
            previous = self._data.pop(key)
            self._mod.pop(key, None)
            self._revision += 1
            self.last_write_revision = self._revision
            events = [self._record("delete", key, None, previous)]
        self._notify(events)
        return True

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        with self._lock:
            self._check_open()
            doomed = {k: self._data[k] for k in self._data if k.startswith(prefix)}
            for key in doomed:
                del self._data[key]
                self._mod.pop(key, None)
            if doomed:
                self._revision += 1
                self.last_write_revision = self._revision
            events = [self._record("delete", key, None, doomed[key]) for key in sorted(doomed)]
        self._notify(events)
        return len(doomed)

    def get_versioned(self, key: str) -> Versioned | None:
        with self._lock:
            self._check_open()
            raw, revision = self._data.get(key), self._mod.get(key, 0)
        return None if raw is None else Versioned(decode_value(key, raw), revision)

    def list_versioned(self, prefix: str) -> tuple[dict[str, Versioned], int]:
        with self._lock:
            self._check_open()
            items = sorted((k, v, self._mod.get(k, 0)) for k, v in self._data.items() if k.startswith(prefix))
            revision = self._revision
        return {k: Versioned(decode_value(k, v), r) for k, v, r in items}, revision

    def commit(
        self,
        puts: Mapping[str, Value],
        deletes: Sequence[str] = (),
        expect: Mapping[str, int] | None = None,
    ) -> bool:
        check_commit(puts, deletes, expect)
        encoded = {k: encode_value(v) for k, v in puts.items()}
        with self._lock:
            self._check_open()
            if any(self._mod.get(k, 0) != r for k, r in (expect or {}).items()):
                return False
            doomed = sorted(k for k in deletes if k in self._data)
            if not encoded and not doomed:
                return True
            self._revision += 1
            self.last_write_revision = self._revision
            events = []
            for key, value in sorted(encoded.items()):
                previous = self._data.get(key)
                self._data[key] = value
                self._mod[key] = self._revision
                events.append(self._record("put", key, value, previous))
            for key in doomed:
                previous = self._data.pop(key)
                self._mod.pop(key, None)
                events.append(self._record("delete", key, None, previous))
        self._notify(events)
        return True

    def revision(self) -> int:
        with self._lock:
            self._check_open()
            return self._revision

    def healthy(self) -> bool:
        return not self._closed

    def watch_prefix(
        self,
        prefix: str,
        callback: WatchCallback,
        *,
        start_revision: int | None = None,
        on_error: WatchErrorCallback | None = None,
        with_previous: bool = False,
    ) -> Cancel:
        """Synchronous callbacks (see the module); replays history from ``start_revision``.
        Events always carry the previous value here (``with_previous`` is for etcd's cost)."""
        watcher = _Watcher(prefix, callback, on_error)
        with self._lock:
            self._check_open()
            backlog = [
                e for e in self._history
                if start_revision is not None and e.revision >= start_revision and e.key.startswith(prefix)
            ]  # fmt: skip
            self._watchers.append(watcher)
        self._deliver(watcher, backlog)

        def cancel() -> None:
            with self._lock:
                watcher.active = False
                if watcher in self._watchers:
                    self._watchers.remove(watcher)

        return cancel

    def _record(self, kind: str, key: str, encoded: str | None, previous: str | None = None) -> WatchEvent:
        """Called with the lock held, right after the revision was bumped; ``previous``: the
        key's value before (None: it did not exist)."""
        value = _decoded(key, encoded)
        event = WatchEvent("put" if kind == "put" else "delete", key, value, self._revision, _decoded(key, previous),
                           previous is not None)  # fmt: skip
        self._history.append(event)
        return event

    def _notify(self, events: Sequence[WatchEvent]) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            self._deliver(watcher, [e for e in events if e.key.startswith(watcher.prefix)])

    def _deliver(self, watcher: _Watcher, events: Sequence[WatchEvent]) -> None:
        """A callback that raises ends its watch; ``on_error`` hears why (as etcd's does)."""
        for event in events:
            if not watcher.active:
                return
            try:
                watcher.callback(event)
            except Exception as exc:  # noqa: BLE001 - reported through on_error
                with self._lock:
                    watcher.active = False
                    if watcher in self._watchers:
                        self._watchers.remove(watcher)
                if watcher.on_error is not None:
                    reason = f"datastore memory: watch {watcher.prefix}: callback failed: {exc}"
                    watcher.on_error(DatastoreError(reason))
                return

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> MemoryDatastore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _decoded(key: str, encoded: str | None) -> Value | None:
    if encoded is None:
        return None
    try:
        return decode_value(key, encoded)
    except DatastoreError:
        return None
