"""The Datastore protocol every lab store implements (etcd, or in-memory for unit tests).

Values are JSON objects, stored compactly with sorted keys so that equal values are
equal bytes (diffs and golden files stay stable). Keys are the paths of ``keys.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Value = dict[str, Any]

# etcd's default --max-txn-ops: a transaction may hold at most this many operations.
MAX_TXN_OPS = 128
# etcd's default --max-request-bytes is 1.5 MiB; stay well below it per transaction.
MAX_TXN_BYTES = 768 * 1024  # base64 in the JSON gateway adds a third


class DatastoreError(Exception):
    """The store is unreachable or refused an operation. One line, naming the endpoint."""


@dataclass(frozen=True)
class WatchEvent:
    """One change under a watched prefix.

    ``value`` is the new value of a ``put`` (None if it is not a JSON object) and always
    None for a ``delete``; ``revision`` is the store revision of the change (several
    events share one when a transaction or delete_prefix changed several keys). With a
    watch made ``with_previous``, ``previous`` is the key's value before the change and
    ``existed`` says whether it had one (a put with ``existed`` False created the key):
    the API server's ADDED / MODIFIED, and the last state a DELETED event shows.
    """

    kind: Literal["put", "delete"]
    key: str
    value: Value | None
    revision: int
    previous: Value | None = field(default=None, compare=False)
    existed: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Versioned:
    """A value with the revision that last changed it (etcd's ``mod_revision``)."""

    value: Value
    revision: int


WatchCallback = Callable[[WatchEvent], None]
WatchErrorCallback = Callable[[DatastoreError], None]
Cancel = Callable[[], None]


@runtime_checkable
class Datastore(Protocol):
    """A key-value store of JSON objects with a global revision, as etcd v3 is.

    Every call either succeeds or raises DatastoreError; none waits longer than the
    implementation's timeout (a few seconds).
    """

    @property
    def endpoint(self) -> str:
        """Where the store is, for messages (``unix:/run/testbed/x/etcd.sock:2379``)."""
        ...

    def get(self, key: str) -> Value | None:
        """The value under ``key``, or None."""
        ...

    def list(self, prefix: str) -> dict[str, Value]:
        """Every key starting with ``prefix`` -> its value, sorted by key (``""``: all)."""
        ...

    def put(self, key: str, value: Value) -> None: ...

    last_write_revision: int  # the revision of this client's latest write (0: none yet)

    def put_many(self, items: Mapping[str, Value]) -> None:
        """Write many keys, in transactions of at most MAX_TXN_OPS puts (etcd's default
        limit, 128) and MAX_TXN_BYTES: atomic per transaction, so atomic as a whole
        only up to 128 keys. Each transaction is one revision."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        ...

    def get_versioned(self, key: str) -> Versioned | None:
        """The value under ``key`` and the revision that last changed it, or None."""
        ...

    def list_versioned(self, prefix: str) -> tuple[dict[str, Versioned], int]:
        """Every key under ``prefix`` with its value and revision, and the store revision
        the listing was read at (watch from it + 1 to miss nothing)."""
        ...

    def commit(
        self,
        puts: Mapping[str, Value],
        deletes: Sequence[str] = (),
        expect: Mapping[str, int] | None = None,
    ) -> bool:
        """One atomic transaction: the puts and deletes happen only if every key in
        ``expect`` still has that revision (0: the key must not exist). False (and nothing
        written) otherwise. This is how two writers can never both create or both update
        from the same read (optimistic concurrency, as the API server's
        GuaranteedUpdate). At most MAX_TXN_OPS operations."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (not empty); how many there were."""
        ...

    def revision(self) -> int:
        """The store's current revision (bumped by every write that changed something)."""
        ...

    def healthy(self) -> bool:
        """True if the store answers and is healthy; never raises."""
        ...

    def close(self) -> None: ...

    def watch_prefix(
        self,
        prefix: str,
        callback: WatchCallback,
        *,
        start_revision: int | None = None,
        on_error: WatchErrorCallback | None = None,
        with_previous: bool = False,
    ) -> Cancel:
        """Call ``callback`` with every change to a key starting with ``prefix``, in order.
        ``with_previous``: each event also carries the key's value before it (etcd's prev_kv).

        The watch is in place when this returns: every later write is delivered (so
        "watch, then list" misses nothing). With ``start_revision``, changes from that
        revision on are replayed first (list at R, watch from R + 1). Where callbacks run
        is the implementation's: etcd calls them from one thread of its own per watch,
        the memory store from the writer's thread, right after the write.

        The watch can end by itself (the store went away, etcd compacted the revision
        asked for, the callback raised): ``on_error`` is then called once, from the
        watch's thread, and no event follows. Raises DatastoreError if the watch cannot
        be set up. Returns ``cancel``: idempotent, never raises; once it returns, no
        callback is running or will run (unless cancel was called from the callback).
        """
        ...


def encode_value(value: Mapping[str, Any]) -> str:
    """A value as stored: compact JSON, keys sorted. TypeError unless it is an object."""
    if not isinstance(value, Mapping):
        raise TypeError(f"datastore values are JSON objects, not {type(value).__name__}")
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def decode_value(key: str, raw: bytes | str) -> Value:
    """A stored value back as a dict; DatastoreError when it is not a JSON object."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatastoreError(f"{key}: stored value is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise DatastoreError(f"{key}: stored value is not a JSON object")
    return value


def put_if(store: Datastore, key: str, value: Value, revision: int) -> bool:
    """Write ``key`` only if its revision is still ``revision`` (0: only if absent)."""
    return store.commit({key: value}, expect={key: revision})


def delete_if(store: Datastore, key: str, revision: int) -> bool:
    """Remove ``key`` only if its revision is still ``revision``."""
    return store.commit({}, [key], expect={key: revision})


def check_commit(puts: Mapping[str, Any], deletes: Sequence[str], expect: Mapping[str, int] | None) -> None:
    """A transaction etcd would take: within its size, no key both written and deleted."""
    if len(puts) + len(deletes) + len(expect or {}) > MAX_TXN_OPS:
        raise ValueError(f"a transaction holds at most {MAX_TXN_OPS} operations")
    both = set(puts) & set(deletes)
    if both:
        raise ValueError(f"a transaction cannot both write and delete {sorted(both)[0]}")


def check_prefix(prefix: str) -> None:
    """delete_prefix refuses ``""`` (it would wipe the whole store)."""
    if not prefix:
        raise ValueError("refusing to delete with an empty prefix (that is every key)")


def transactions(
    items: Mapping[str, str], max_ops: int = MAX_TXN_OPS, max_bytes: int = MAX_TXN_BYTES
) -> Iterator[list[tuple[str, str]]]:
    """Encoded (key, value) pairs in key order, cut into groups that fit one transaction."""
    group: list[tuple[str, str]] = []
    size = 0
    for key, encoded in sorted(items.items()):
        item_size = len(key) + len(encoded)
        if group and (len(group) >= max_ops or size + item_size > max_bytes):
            yield group
            group, size = [], 0
        group.append((key, encoded))
        size += item_size
    if group:
        yield group
