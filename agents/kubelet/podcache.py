"""The stored Pods a kubelet cares about (bound to its node, or held by it), kept from a
list and the watch's events, and its conditional writes of their status.

An event older than what the cache holds is dropped (the watch replays what the list
already had; the kubelet's own write is newer). After its own write the cache holds the
value written with a revision it knows only as a lower bound (``exact`` False); the next
write to that key reads it again first, so every write expects the key's real revision.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from testbed.datastore import keys
from testbed.datastore.base import MAX_TXN_OPS, Datastore, Versioned, WatchEvent


@dataclass
class Cached:
    value: dict[str, Any]
    revision: int
    exact: bool = True  # ``revision`` is the key's mod revision (else: at least that)


def node_of(value: Mapping[str, Any]) -> str | None:
    return (value.get("spec") or {}).get("nodeName")


class PodCache:
    def __init__(self, store: Datastore, host: str) -> None:
        self.store, self.host = store, host
        self.entries: dict[str, Cached] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def keys(self) -> set[str]:
        return set(self.entries)

    def get(self, key: str) -> Cached | None:
        return self.entries.get(key)

    def apply(self, event: WatchEvent, held: Container[str]) -> None:
        entry = self.entries.get(event.key)
        if entry is not None and (event.revision < entry.revision or (entry.exact and event.revision == entry.revision)):
            return  # older than what we hold (the list, or our own write)
        if event.kind == "put" and event.value is not None and (node_of(event.value) == self.host or event.key in held):
            self.entries[event.key] = Cached(event.value, event.revision)
        else:
            self.entries.pop(event.key, None)

    def relist(self, held: Container[str]) -> dict[str, Versioned]:
        """Every stored Pod (the caller also looks at other nodes' ones); keeps ours."""
        values, _revision = self.store.list_versioned(keys.PODS)
        self.entries = {
            k: Cached(v.value, v.revision) for k, v in values.items() if node_of(v.value) == self.host or k in held
        }
        return values

    def exact(self, key: str) -> Cached | None:
        """The Pod with its exact revision (read again when our own write left it a bound)."""
        entry = self.entries.get(key)
        if entry is None or not entry.exact:
            entry = self.refetch(key)
        return entry

    def refetch(self, key: str) -> Cached | None:
        got = self.store.get_versioned(key)
        if got is None:
            self.entries.pop(key, None)
            return None
        entry = self.entries[key] = Cached(got.value, got.revision)
        return entry

    def wrote(self, key: str, value: dict[str, Any], revision: int) -> None:
        """Our write of ``value`` succeeded; ``revision`` is (at least) its revision."""
        self.entries[key] = Cached(value, revision, exact=False)

    def write_statuses(self, statuses: Mapping[str, dict[str, Any]]) -> list[str]:
        """Each pod's new ``status`` onto the value as last read, only if the pod did not
        change since: all in one transaction (per MAX_TXN_OPS), else one by one. Returns
        the keys that changed under us (read again: the caller looks next pass)."""
        entries = {k: e for k in statuses if (e := self.exact(k)) is not None}
        puts = {k: {**e.value, "status": statuses[k]} for k, e in entries.items()}
        items = sorted(puts)
        done: set[str] = set()
        if len(items) > 1:
            chunk = MAX_TXN_OPS // 2  # a put and a compare per pod
            for group in (items[i : i + chunk] for i in range(0, len(items), chunk)):
                if self.store.commit({k: puts[k] for k in group}, expect={k: entries[k].revision for k in group}):
                    for k in group:
                        self.wrote(k, puts[k], entries[k].revision + 1)
                    done.update(group)
        conflicts = []
        for k in items:
            if k in done:
                continue
            if self.store.commit({k: puts[k]}, expect={k: entries[k].revision}):
                self.wrote(k, puts[k], entries[k].revision + 1)
            else:
                self.refetch(k)
                conflicts.append(k)
        return conflicts
