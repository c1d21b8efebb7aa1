"""Conditional writes, checked the same way against every Datastore (memory and etcd)."""

from __future__ import annotations

import threading

from testbed.datastore.base import Datastore, WatchEvent, delete_if, put_if


def check_create_only_once(store: Datastore) -> None:
    assert put_if(store, "/c/a", {"n": 1}, 0) is True
    assert put_if(store, "/c/a", {"n": 2}, 0) is False  # exists already
    assert store.get("/c/a") == {"n": 1}


def check_update_from_the_revision_read(store: Datastore) -> None:
    store.put("/c/b", {"n": 1})
    read = store.get_versioned("/c/b")
    assert read is not None and read.value == {"n": 1} and read.revision > 0
    assert put_if(store, "/c/b", {"n": 2}, read.revision) is True
    assert put_if(store, "/c/b", {"n": 3}, read.revision) is False  # someone wrote since
    after = store.get_versioned("/c/b")
    assert after is not None and after.value == {"n": 2} and after.revision > read.revision
    assert delete_if(store, "/c/b", read.revision) is False
    assert delete_if(store, "/c/b", after.revision) is True
    assert store.get_versioned("/c/b") is None


def check_commit_is_atomic(store: Datastore) -> None:
    store.put("/c/x", {"n": 1})
    x = store.get_versioned("/c/x")
    assert x is not None
    assert store.commit({"/c/y": {"n": 1}, "/c/z": {"n": 1}}, ["/c/x"], expect={"/c/x": x.revision, "/c/y": 0})
    assert store.get("/c/x") is None and store.get("/c/y") == {"n": 1} and store.get("/c/z") == {"n": 1}
    before = store.revision()
    assert not store.commit({"/c/w": {"n": 1}}, ["/c/y"], expect={"/c/y": 0})  # /c/y exists
    assert store.get("/c/w") is None and store.get("/c/y") == {"n": 1} and store.revision() == before


def check_list_versioned(store: Datastore) -> None:
    store.put_many({"/l/a": {"n": 1}, "/l/b": {"n": 2}, "/lx": {"n": 3}})
    items, revision = store.list_versioned("/l/")
    assert sorted(items) == ["/l/a", "/l/b"]
    assert items["/l/a"].value == {"n": 1}
    assert revision >= max(v.revision for v in items.values())
    assert store.get_versioned("/l/a") == items["/l/a"]


def check_racing_creators(store: Datastore, writers: int = 8) -> None:
    """Many threads create the same key from the same read: exactly one wins."""
    wins: list[int] = []
    start = threading.Barrier(writers)

    def create(n: int) -> None:
        start.wait()
        if put_if(store, "/race/pod", {"by": n}, 0):
            wins.append(n)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.get("/race/pod") == {"by": wins[0]}


def check_watch_with_previous_values(store: Datastore) -> None:
    """A watch ``with_previous`` tells a create from an update and shows what a delete removed."""
    seen: list[WatchEvent] = []
    done = threading.Event()

    def on_event(event: WatchEvent) -> None:
        seen.append(event)
        if len(seen) == 4:
            done.set()

    cancel = store.watch_prefix("/p/", on_event, with_previous=True)
    try:
        store.put("/p/a", {"n": 1})
        store.put("/p/a", {"n": 2})
        store.commit({"/p/b": {"n": 1}}, ["/p/a"])
        assert done.wait(5.0), seen
    finally:
        cancel()
    shown = sorted(((e.key, e.kind, e.existed, e.previous, e.value) for e in seen[2:]))
    assert [(e.kind, e.existed, e.previous, e.value) for e in seen[:2]] == [
        ("put", False, None, {"n": 1}), ("put", True, {"n": 1}, {"n": 2})]  # fmt: skip
    assert shown == [("/p/a", "delete", True, {"n": 2}, None), ("/p/b", "put", False, None, {"n": 1})]


CHECKS = (
    check_create_only_once,
    check_update_from_the_revision_read,
    check_commit_is_atomic,
    check_list_versioned,
    check_racing_creators,
    check_watch_with_previous_values,
)
