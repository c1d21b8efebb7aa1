"""The Datastore protocol every lab store implements (etcd, or in-memory for unit tests).

Values are JSON objects, stored compactly with sorted keys so that equal values are
equal bytes (diffs and golden files stay stable). Keys are the paths of ``keys.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

Value = dict[str, Any]

# etcd's default --max-txn-ops: a transaction may hold at most this many operations.
MAX_TXN_OPS = 128
# etcd's default --max-request-bytes is 1.5 MiB; stay well below it per transaction.
MAX_TXN_BYTES = 768 * 1024  # base64 in the JSON gateway adds a third


class DatastoreError(Exception):
    """The store is unreachable or refused an operation. One line, naming the endpoint."""


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

    def put_many(self, items: Mapping[str, Value]) -> None:
        """Write many keys, in transactions of at most MAX_TXN_OPS puts (etcd's default
        limit, 128) and MAX_TXN_BYTES: atomic per transaction, so atomic as a whole
        only up to 128 keys. Each transaction is one revision."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
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

    # Watching is not needed yet. When it is, it goes here as
    #   watch_prefix(prefix, start_revision) -> (Iterator[WatchEvent], cancel)
    # with WatchEvent(kind "put"/"delete", key, value | None, revision), so that agents
    # can list at revision R and watch from R + 1 without missing a change.


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
