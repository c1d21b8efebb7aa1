"""Calico's allocation blocks: allocate and release without mutating, attributes shared."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from testbed.datastore import blocks

CIDR = IPv4Network("10.65.1.0/26")
WHO = {"namespace": "ns", "node": "n1", "pod": "p"}


def ip(last: int) -> IPv4Address:
    return CIDR.network_address + last


def test_an_empty_block() -> None:
    block = blocks.empty_block(CIDR, "n1")
    assert block["cidr"] == "10.65.1.0/26" and block["affinity"] == "host:n1"
    assert block["allocations"] == [None] * 64 and block["unallocated"] == list(range(64))
    assert blocks.block_node(block) == "n1"
    assert blocks.block_addresses(block) == {}


def test_allocate_does_not_mutate_and_records_the_owner() -> None:
    empty = blocks.empty_block(CIDR, "n1")
    block = blocks.block_allocate(empty, ip(3), "h1", WHO)
    assert empty["allocations"][3] is None
    assert block["allocations"][3] == 0
    assert 3 not in block["unallocated"] and len(block["unallocated"]) == 63
    assert block["attributes"] == [{"handle_id": "h1", "secondary": WHO}]
    assert block["sequenceNumber"] == 1
    assert blocks.block_addresses(block) == {ip(3): "h1"}


def test_identical_owners_share_an_attribute() -> None:
    block = blocks.block_allocate(blocks.empty_block(CIDR, "n1"), ip(0), "h1", WHO)
    block = blocks.block_allocate(block, ip(1), "h1", WHO)
    block = blocks.block_allocate(block, ip(2), "h2", WHO)
    assert block["allocations"][:3] == [0, 0, 1]
    assert len(block["attributes"]) == 2


def test_refuses_taken_and_foreign_addresses() -> None:
    block = blocks.block_allocate(blocks.empty_block(CIDR, "n1"), ip(0), "h1", WHO)
    with pytest.raises(blocks.BlockError, match="already allocated"):
        blocks.block_allocate(block, ip(0), "h2", WHO)
    with pytest.raises(blocks.BlockError, match="not inside"):
        blocks.block_allocate(block, IPv4Address("10.65.2.1"), "h2", WHO)


def test_release_frees_the_handle_and_renumbers_attributes() -> None:
    block = blocks.empty_block(CIDR, "n1")
    for last, handle in ((0, "h1"), (1, "h2"), (2, "h3")):
        block = blocks.block_allocate(block, ip(last), handle, {**WHO, "pod": handle})
    released, count = blocks.block_release(block, "h1")
    assert count == 1
    assert released["allocations"][:3] == [None, 0, 1]
    assert [a["handle_id"] for a in released["attributes"]] == ["h2", "h3"]
    assert released["unallocated"][-1] == 0  # freed addresses are handed out last
    assert blocks.block_addresses(released) == {ip(1): "h2", ip(2): "h3"}
    assert blocks.block_release(released, "nobody")[1] == 0


def test_affinity_and_handle_values() -> None:
    assert blocks.affinity_record() == {"state": "confirmed", "deleted": False}
    assert blocks.handle_record("h1", {CIDR: 1}) == {
        "handleID": "h1",
        "block": {"10.65.1.0/26": 1},
        "deleted": False,
    }
