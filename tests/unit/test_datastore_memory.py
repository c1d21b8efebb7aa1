"""The in-memory Datastore behaves as the etcd one does (revisions, prefixes, chunks)."""

from __future__ import annotations

import pytest

from testbed.datastore import Datastore, DatastoreError, MemoryDatastore
from testbed.datastore.base import decode_value, encode_value, transactions
from tests import datastore_contract as contract


def test_it_is_a_datastore() -> None:
    assert isinstance(MemoryDatastore(), Datastore)


def test_put_get_returns_copies() -> None:
    ds = MemoryDatastore()
    value = {"a": [1, 2]}
    ds.put("/k", value)
    value["a"].append(3)
    got = ds.get("/k")
    assert got == {"a": [1, 2]}
    assert got is not None
    got["a"].append(4)
    assert ds.get("/k") == {"a": [1, 2]}
    assert ds.get("/missing") is None


def test_only_json_objects_are_values() -> None:
    ds = MemoryDatastore()
    with pytest.raises(TypeError):
        ds.put("/k", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ds.put("/k", {"x": object()})


def test_list_is_sorted_by_key_and_bounded_by_prefix() -> None:
    ds = MemoryDatastore()
    ds.put_many({"/p/b/1": {"n": 3}, "/p/a/2": {"n": 2}, "/p/a/1": {"n": 1}, "/q": {}})
    assert list(ds.list("/p/a/")) == ["/p/a/1", "/p/a/2"]
    assert list(ds.list("/p/")) == ["/p/a/1", "/p/a/2", "/p/b/1"]
    assert len(ds.list("")) == 4


def test_revisions_count_writes_that_changed_something() -> None:
    ds = MemoryDatastore()
    assert ds.revision() == 1
    ds.put("/a", {})
    assert ds.revision() == 2
    assert ds.delete("/a") is True and ds.revision() == 3
    assert ds.delete("/a") is False and ds.revision() == 3
    assert ds.delete_prefix("/nothing/") == 0 and ds.revision() == 3


def test_put_many_runs_one_transaction_per_128_keys() -> None:
    ds = MemoryDatastore()
    ds.put_many({f"/k/{i:03d}": {"i": i} for i in range(300)})
    assert ds.transactions == 3
    assert ds.revision() == 1 + 3
    assert len(ds.list("/k/")) == 300


def test_delete_prefix_counts_and_refuses_the_empty_prefix() -> None:
    ds = MemoryDatastore()
    ds.put_many({"/a/1": {}, "/a/2": {}, "/ab/1": {}})
    assert ds.delete_prefix("/a/") == 2
    assert list(ds.list("/")) == ["/ab/1"]
    with pytest.raises(ValueError):
        ds.delete_prefix("")


def test_a_closed_store_fails_clearly() -> None:
    with MemoryDatastore() as ds:
        ds.put("/a", {})
    assert ds.healthy() is False
    with pytest.raises(DatastoreError, match="memory"):
        ds.get("/a")


def test_values_are_stored_compact_and_sorted() -> None:
    assert encode_value({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a":{"c":3,"d":2},"b":1}'
    assert decode_value("/k", b'{"a":1}') == {"a": 1}
    with pytest.raises(DatastoreError, match="/k"):
        decode_value("/k", b"[1]")
    with pytest.raises(DatastoreError, match="/k"):
        decode_value("/k", b"{nope")


def test_transactions_respect_ops_and_bytes() -> None:
    items = {f"/k/{i}": "x" * 10 for i in range(10)}
    assert [len(g) for g in transactions(items, max_ops=4)] == [4, 4, 2]
    assert [len(g) for g in transactions(items, max_ops=100, max_bytes=35)] == [2, 2, 2, 2, 2]
    assert list(transactions({}, max_ops=4)) == []


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda c: c.__name__)
def test_conditional_writes(check) -> None:
    check(MemoryDatastore())
