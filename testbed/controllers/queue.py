"""The controller manager's work queue: Kubernetes' workqueue semantics, small.

- An item waits in the queue at most once (adding it again while it waits does nothing).
- An item being processed is never handed out again until ``done``; adding it meanwhile
  marks it dirty, and ``done`` queues it again (so no change is lost and no key is
  reconciled by two workers at once).
- ``add_after`` queues an item once a delay has passed (a reconcile's "look again in N
  seconds"); of several delays for one item the earliest wins.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class WorkQueue(Generic[T]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()  # waiting in the queue, or to be queued again when done
        self._processing: set[T] = set()
        self._delayed: list[tuple[float, int, T]] = []  # heap of (when, order, item)
        self._due: dict[T, float] = {}  # item -> when its delayed add fires
        self._order = itertools.count()
        self._closed = False

    def add(self, item: T) -> None:
        with self._cond:
            self._add(item)

    def _add(self, item: T) -> None:
        if self._closed or item in self._dirty:
            return
        self._dirty.add(item)
        if item not in self._processing:
            self._queue.append(item)
            self._cond.notify()

    def add_after(self, item: T, delay: float) -> None:
        if delay <= 0:
            self.add(item)
            return
        with self._cond:
            if self._closed:
                return
            when = self._clock() + delay
            if item in self._due and self._due[item] <= when:
                return
            self._due[item] = when
            heapq.heappush(self._delayed, (when, next(self._order), item))
            self._cond.notify()

    def _promote(self) -> float | None:
        """Queue the delayed items that are due; seconds until the next one (None: none)."""
        now = self._clock()
        while self._delayed:
            when, _, item = self._delayed[0]
            if self._due.get(item) != when:  # superseded by an earlier delay
                heapq.heappop(self._delayed)
                continue
            if when > now:
                return when - now
            heapq.heappop(self._delayed)
            del self._due[item]
            self._add(item)
        return None

    def get(self, timeout: float | None = None) -> T | None:
        """The next item (now being processed: call ``done``), or None when the queue is
        closed or ``timeout`` seconds passed with nothing to hand out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                next_due = self._promote()
                if self._queue:
                    item = self._queue.popleft()
                    self._dirty.discard(item)
                    self._processing.add(item)
                    return item
                if self._closed:
                    return None
                waits = [w for w in (next_due, None if deadline is None else deadline - time.monotonic()) if w is not None]
                wait = min(waits) if waits else None
                if wait is not None and wait <= 0:
                    if deadline is not None and time.monotonic() >= deadline:
                        return None
                    continue
                self._cond.wait(wait)

    def done(self, item: T) -> None:
        with self._cond:
            self._processing.discard(item)
            if item in self._dirty and not self._closed:
                self._queue.append(item)
                self._cond.notify()

    def close(self) -> None:
        """Hand out nothing more: every ``get`` returns None."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def delayed(self) -> int:
        with self._cond:
            return len(self._due)
