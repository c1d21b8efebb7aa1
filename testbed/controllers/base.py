"""What every controller of the controller manager is: prefixes it watches, which keys an
event makes dirty, and an idempotent reconcile of one key.

The manager (``testbed.controllers.manager``) runs them over etcd watches with a work
queue, re-lists on a lost watch and resyncs on a timer; unit tests drive the same
controllers over the in-memory datastore with ``settle``, which reconciles until nothing
is dirty any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from testbed.datastore.base import Datastore, WatchEvent


class Controller(Protocol):
    name: str  # for logs: "replicaset", "deployment", ...
    prefixes: Sequence[str]  # what it watches (keys.py prefixes)

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        """The work-queue keys a change makes dirty (e.g. a pod's event -> its owner's key).
        Pure and cheap: no store access beyond what the event carries."""
        ...

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        """Every key this controller should look at on a full resync (after a re-list)."""
        ...

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        """Bring one key to what its objects ask, with conditional writes only; idempotent.
        Returns seconds after which to look at the key again (a back-off, a grace period
        running out), or None."""
        ...


def settle(
    store: Datastore, controllers: Sequence[Controller], now: float, rounds: int = 50
) -> int:
    """Reconcile every controller's resync keys, then whatever their writes made dirty,
    until nothing is dirty (for unit tests and for the manager's first pass). Returns the
    number of reconciles run; RuntimeError if it does not settle in ``rounds`` rounds."""
    dirty: list[tuple[Controller, str]] = [(c, k) for c in controllers for k in c.resync_keys(store)]
    events: list[WatchEvent] = []
    cancels = [store.watch_prefix(p, events.append) for c in controllers for p in c.prefixes]
    runs = 0
    try:
        for _ in range(rounds):
            seen: set[tuple[str, str]] = set()
            for controller, key in dirty:
                if (controller.name, key) in seen:
                    continue
                seen.add((controller.name, key))
                controller.reconcile(store, key, now)
                runs += 1
            taken, events[:] = list(events), []
            dirty = [
                (c, k) for e in taken for c in controllers
                if any(e.key.startswith(p) for p in c.prefixes) for k in c.keys_for(e)
            ]  # fmt: skip
            if not dirty:
                return runs
    finally:
        for cancel in cancels:
            cancel()
    raise RuntimeError(f"controllers did not settle in {rounds} rounds")
