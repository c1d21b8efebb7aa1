"""Watches: a kind's changes streamed as the API server streams them.

The wire format [k8s.io/apiserver pkg/endpoints/handlers/watch.go; the Python client's
watch.py splits on newlines]: 200, chunked, one compact JSON per line,
``{"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": {...}}``. What comes first
depends on ``resourceVersion`` (https://kubernetes.io/docs/reference/using-api/api-concepts/):

- unset or ``0``: an ADDED event for every object there now, then the changes;
- ``N``: the changes after revision N, replayed from etcd's history; a revision etcd
  compacted gives an ERROR event with a 410 ``Expired`` Status;
- ``sendInitialEvents=true`` (kubectl 1.35+ sends it for `wait`, `rollout status`,
  delete's wait): the ADDED events, then a BOOKMARK annotated
  ``k8s.io/initial-events-end: "true"``, which is what the client's reflector waits for.

A change that moves an object into a selector's match is ADDED, out of it DELETED, as the
real watch cache reports them. BOOKMARKs carry only ``metadata.resourceVersion``; they
are sent (when the client allows them) after the initial events and once a minute.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from testbed.apiserver import resources, status, tables
from testbed.apiserver.selectors import FieldQuery, LabelQuery, field_matches, label_matches
from testbed.datastore.base import DatastoreError, WatchEvent
from testbed.kube import registry

if TYPE_CHECKING:
    from testbed.apiserver.app import Backend

Value = dict[str, Any]
DEFAULT_TIMEOUT = 1800.0  # the real server picks minRequestTimeout (30 min) to twice that
BOOKMARK_EVERY = 60.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class WatchRequest:
    kind: registry.Kind
    namespace: str | None
    labels: LabelQuery | None
    fields: FieldQuery | None
    resource_version: str
    send_initial_events: bool
    bookmarks: bool
    timeout: float
    table: bool

    @classmethod
    def of(cls, kind: registry.Kind, namespace: str | None, labels: LabelQuery | None, fields: FieldQuery | None,
           request: web.Request) -> WatchRequest:  # fmt: skip
        query = request.query
        try:
            timeout = float(query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
        except ValueError:
            raise status.bad_request(f'invalid timeoutSeconds "{query.get("timeoutSeconds")}"') from None
        rv = query.get("resourceVersion", "")
        if rv not in ("", "0") and not rv.isdigit():
            raise status.bad_request(f'invalid resourceVersion "{rv}"')
        return cls(kind, namespace, labels, fields, rv, resources.truthy(query.get("sendInitialEvents")),
                   resources.truthy(query.get("allowWatchBookmarks")), max(0.0, timeout),
                   tables.wants_table(request.headers.get("Accept", "")))  # fmt: skip

    def matches(self, value: Value | None) -> bool:
        if value is None:
            return False
        if self.labels is not None and not label_matches(self.labels, value.get("metadata", {}).get("labels") or {}):
            return False
        return self.fields is None or field_matches(self.fields, value)

    def of_kind(self, key: str, value: Value | None) -> bool:
        """Is this key one of the kind's objects (in the namespace asked for)?"""
        if not key.startswith(self.kind.scope(self.namespace)):
            return False
        depth = 2 if self.kind.namespaced or self.kind.stored_only else 1
        return key[len(self.kind.prefix):].count("/") == depth - 1 and (value is None or isinstance(value.get("metadata"), dict))


def event_type(watch: WatchRequest, event: WatchEvent) -> tuple[str, Value | None, Value | None]:
    """(type, the stored value to show, its previous) of one store event for this watch
    (pure); type "" when the watch does not show it."""
    before = event.previous if event.existed else None
    after = event.value if event.kind == "put" else None
    was, now = watch.matches(before), watch.matches(after)
    if event.kind == "delete":
        return ("DELETED", before, before) if was else ("", None, None)
    if was and now:
        return "MODIFIED", after, before
    if now:
        return "ADDED", after, before
    if was:
        return "DELETED", after, before  # no longer matches the selector
    return "", None, None


class _Stream:
    """The response, and the one-row Tables' first-event state."""

    def __init__(self, response: web.StreamResponse, watch: WatchRequest) -> None:
        self.response = response
        self.watch = watch
        self.first_table = True

    async def send(self, kind: str, obj: Value) -> None:
        if self.watch.table and kind in ("ADDED", "MODIFIED", "DELETED"):
            obj = tables.watch_event_table(self.watch.kind.plural, obj, first=self.first_table)
            self.first_table = False
        await self.response.write(resources.as_json({"type": kind, "object": obj}) + b"\n")

    async def bookmark(self, revision: int, initial_end: bool = False) -> None:
        metadata: Value = {"resourceVersion": str(revision)}
        if initial_end:
            metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
        await self.response.write(resources.as_json({"type": "BOOKMARK", "object": {
            "kind": self.watch.kind.kind, "apiVersion": self.watch.kind.api_version, "metadata": metadata}}) + b"\n")


async def watch_stream(request: web.Request, backend: Backend, watch: WatchRequest) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_event(event: WatchEvent) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("event", event))

    def on_error(error: DatastoreError) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("error", error))

    initial: list[Value] = []
    if watch.resource_version in ("", "0") or watch.send_initial_events:
        listing = await backend.run(lambda s: resources.list_objects(s, watch.kind, watch.namespace, watch.labels, watch.fields))
        initial, start = listing.items, listing.revision + 1
    else:
        start = int(watch.resource_version) + 1
    prefix = watch.kind.scope(watch.namespace)
    try:
        cancel = await backend.run(
            lambda s: s.watch_prefix(prefix, on_event, start_revision=start, on_error=on_error, with_previous=True)
        )
    except DatastoreError as exc:
        raise status.internal(str(exc)) from None
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    stream = _Stream(response, watch)
    last = start - 1
    try:
        await response.prepare(request)
        for obj in initial:
            await stream.send("ADDED", obj)
        if watch.send_initial_events:
            await stream.bookmark(last, initial_end=True)
        elif watch.bookmarks and initial:
            await stream.bookmark(last)
        await response.drain()
        deadline = loop.time() + watch.timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                what, item = await asyncio.wait_for(queue.get(), min(remaining, BOOKMARK_EVERY))
            except asyncio.TimeoutError:
                if watch.bookmarks:
                    await stream.bookmark(last)
                continue
            if what == "error":
                gone = "compacted" in str(item)
                error = status.gone(f"too old resource version: {start - 1} ({last})") if gone else status.internal(str(item))
                await response.write(resources.as_json({"type": "ERROR", "object": error.body()}) + b"\n")
                break
            event: WatchEvent = item
            last = max(last, event.revision)
            if not watch.of_kind(event.key, event.value if event.kind == "put" else event.previous):
                continue
            kind, shown, _before = event_type(watch, event)
            if kind and shown is not None:
                await stream.send(kind, resources.served(watch.kind, shown, event.revision))
        await response.write_eof()
    except ConnectionResetError:  # the client went away
        pass
    finally:
        loop.run_in_executor(None, cancel)  # joins the watch's thread: not on the loop, not awaited
    return response
