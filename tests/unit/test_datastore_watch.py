"""Watching a prefix: the memory store's synchronous watches, and the etcd stream's parsing."""

from __future__ import annotations

import base64
import json

import pytest

from testbed.datastore import Datastore, DatastoreError, MemoryDatastore
from testbed.datastore.base import WatchEvent
from testbed.datastore.etcd_watch import decode_event, messages


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Recorder:
    def __init__(self) -> None:
        self.events: list[WatchEvent] = []
        self.errors: list[DatastoreError] = []

    def __call__(self, event: WatchEvent) -> None:
        self.events.append(event)

    def on_error(self, error: DatastoreError) -> None:
        self.errors.append(error)


def test_the_protocol_has_watch_prefix() -> None:
    assert isinstance(MemoryDatastore(), Datastore)
    assert hasattr(Datastore, "watch_prefix")


def test_memory_watch_sees_puts_and_deletes_under_its_prefix_only() -> None:
    store = MemoryDatastore()
    seen = Recorder()
    store.watch_prefix("/a/", seen)
    store.put("/a/x", {"v": 1})
    store.put("/ab/x", {"v": 2})  # not under "/a/"
    store.delete("/a/x")
    store.delete("/a/missing")  # nothing deleted: no event
    assert seen.events == [
        WatchEvent("put", "/a/x", {"v": 1}, 2),
        WatchEvent("delete", "/a/x", None, 4),
    ]


def test_memory_watch_events_of_one_transaction_share_a_revision() -> None:
    store = MemoryDatastore(max_txn_ops=2)
    seen = Recorder()
    store.watch_prefix("/m/", seen)
    store.put_many({"/m/1": {}, "/m/2": {}, "/m/3": {}})
    assert [(e.key, e.revision) for e in seen.events] == [("/m/1", 2), ("/m/2", 2), ("/m/3", 3)]
    seen.events.clear()
    assert store.delete_prefix("/m/") == 3
    assert {(e.kind, e.revision) for e in seen.events} == {("delete", 4)}
    assert sorted(e.key for e in seen.events) == ["/m/1", "/m/2", "/m/3"]


def test_memory_cancel_stops_events_and_is_idempotent() -> None:
    store = MemoryDatastore()
    seen = Recorder()
    cancel = store.watch_prefix("/", seen)
    store.put("/k", {})
    cancel()
    cancel()
    store.put("/k", {"again": True})
    assert len(seen.events) == 1


def test_memory_watch_replays_from_a_start_revision() -> None:
    store = MemoryDatastore()
    store.put("/r/1", {"n": 1})  # revision 2
    store.put("/r/2", {"n": 2})  # revision 3
    seen = Recorder()
    store.watch_prefix("/r/", seen, start_revision=3)
    store.put("/r/3", {"n": 3})
    assert [e.key for e in seen.events] == ["/r/2", "/r/3"]


def test_memory_callback_may_use_the_store() -> None:
    store = MemoryDatastore()
    mirrored: list[dict[str, object] | None] = []
    store.watch_prefix("/w/", lambda e: mirrored.append(store.get(e.key)))
    store.put("/w/a", {"x": 1})
    assert mirrored == [{"x": 1}]


def test_memory_failing_callback_ends_its_watch_and_says_why() -> None:
    store = MemoryDatastore()
    seen = Recorder()

    def boom(event: WatchEvent) -> None:
        raise RuntimeError("boom")

    store.watch_prefix("/f/", boom, on_error=seen.on_error)
    store.watch_prefix("/f/", seen)
    store.put("/f/a", {})
    store.put("/f/b", {})
    assert len(seen.errors) == 1 and "boom" in str(seen.errors[0]) and "/f/" in str(seen.errors[0])
    assert [e.key for e in seen.events] == ["/f/a", "/f/b"]  # the other watch goes on


def test_memory_watch_on_a_closed_store_refuses() -> None:
    store = MemoryDatastore()
    store.close()
    with pytest.raises(DatastoreError):
        store.watch_prefix("/", Recorder())


# --- etcd's stream, as the JSON gateway sends it ------------------------------------------


def test_put_events_have_no_type_and_delete_events_say_so() -> None:
    put = {"kv": {"key": b64("/a/x"), "mod_revision": "7", "value": b64('{"v":1}')}}
    delete = {"type": "DELETE", "kv": {"key": b64("/a/x"), "mod_revision": "8"}}
    assert decode_event(put) == WatchEvent("put", "/a/x", {"v": 1}, 7)
    assert decode_event(delete) == WatchEvent("delete", "/a/x", None, 8)


def test_a_put_of_something_else_than_an_object_has_no_value() -> None:
    raw = {"kv": {"key": b64("/a/x"), "mod_revision": "3", "value": b64("[1, 2]")}}
    assert decode_event(raw) == WatchEvent("put", "/a/x", None, 3)


def test_messages_are_found_however_the_stream_is_cut() -> None:
    one = {"result": {"header": {"revision": "1"}, "created": True}}
    two = {"result": {"events": [{"kv": {"key": b64("/é"), "mod_revision": "2"}}]}}
    stream = (json.dumps(one) + "\n" + json.dumps(two, ensure_ascii=False) + "\n\n").encode()
    for size in (1, 2, 3, 7, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert list(messages(iter(chunks))) == [one, two]


def test_messages_without_newlines_between_them() -> None:
    stream = b'{"result":{"created":true}}{"result":{"canceled":true}}'
    assert list(messages(iter([stream]))) == [{"result": {"created": True}}, {"result": {"canceled": True}}]
