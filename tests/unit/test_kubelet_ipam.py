"""The CNI plugin's IPAM over the in-memory store: Calico's order, conditional writes,
the annotated address, reuse by handle, release."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from agents.kubelet import cni
from testbed.datastore import blocks, keys
from testbed.datastore.base import Versioned
from testbed.datastore.memory import MemoryDatastore

BLOCK1 = IPv4Network("10.65.0.0/26")
ATTRS = {"namespace": "demo", "node": "host1", "pod": "p", "timestamp": "2026-01-01T00:00:00Z"}


def lab_store() -> MemoryDatastore:
    """host1 owns 10.65.0.0/26, host2 owns 10.65.0.64/26; 10.65.0.0 is taken by pod-a."""
    store = MemoryDatastore()
    b1 = blocks.block_allocate(blocks.empty_block(BLOCK1, "host1"), IPv4Address("10.65.0.0"), "h-a", ATTRS)
    b2 = blocks.empty_block(IPv4Network("10.65.0.64/26"), "host2")
    store.put_many({keys.block(BLOCK1): b1, keys.block(IPv4Network("10.65.0.64/26")): b2,
                    keys.handle("h-a"): blocks.handle_record("h-a", {BLOCK1: 1})})  # fmt: skip
    return store


def handles_of(store: MemoryDatastore) -> dict[IPv4Address, str]:
    found: dict[IPv4Address, str] = {}
    for value in store.list(keys.BLOCKS).values():
        found.update(blocks.block_addresses(value))
    return found


def test_the_next_address_of_the_hosts_block_and_its_handle() -> None:
    store = lab_store()
    got = cni.assign_address(store, "host1", "h-p", ATTRS)
    assert (got.ip, got.block, got.borrowed, got.reused) == (IPv4Address("10.65.0.1"), BLOCK1, False, False)
    assert handles_of(store)[IPv4Address("10.65.0.1")] == "h-p"
    assert store.get(keys.handle("h-p")) == blocks.handle_record("h-p", {BLOCK1: 1})


def test_a_host_without_a_block_claims_one_with_its_affinity() -> None:
    store = lab_store()
    got = cni.assign_address(store, "host3", "h-p", ATTRS)
    assert got.block == IPv4Network("10.65.0.128/26") and got.ip == IPv4Address("10.65.0.128")
    assert store.get(keys.block_affinity("host3", got.block)) == blocks.affinity_record()
    assert blocks.block_node(store.get(keys.block(got.block)) or {}) == "host3"


def test_the_annotated_address_is_taken_borrowed_from_another_hosts_block() -> None:
    store = lab_store()
    got = cni.assign_address(store, "host1", "h-p", ATTRS, requested=IPv4Address("10.65.0.70"))
    assert (got.ip, got.borrowed) == (IPv4Address("10.65.0.70"), True)


def test_an_address_the_handle_holds_is_reused_without_a_write() -> None:
    store = lab_store()
    before = store.revision()
    got = cni.assign_address(store, "host1", "h-a", ATTRS, requested=IPv4Address("10.65.0.0"))
    assert (got.ip, got.reused) == (IPv4Address("10.65.0.0"), True)
    assert store.revision() == before
    again = cni.assign_address(store, "host1", "h-a", ATTRS)  # no annotation: the handle's own
    assert again.ip == IPv4Address("10.65.0.0")


def test_an_address_someone_else_holds_is_refused() -> None:
    store = lab_store()
    with pytest.raises(cni.CniError, match=r"pod demo/p: 10.65.0.0 is already assigned"):
        cni.assign_address(store, "host1", "h-p", ATTRS, requested=IPv4Address("10.65.0.0"), owner="pod demo/p")
    with pytest.raises(cni.CniError, match=r"asks for 10.65.0.9 but its IPAM handle h-a holds 10.65.0.0"):
        cni.assign_address(store, "host1", "h-a", ATTRS, requested=IPv4Address("10.65.0.9"))


class RacingStore(MemoryDatastore):
    """Another writer takes the next address between our read and our write, once."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def list_versioned(self, prefix: str) -> tuple[dict[str, Versioned], int]:
        listed = super().list_versioned(prefix)
        if prefix == keys.BLOCKS and not self.raced:
            self.raced = True
            key = keys.block(BLOCK1)
            value = blocks.block_allocate(self.get(key) or {}, IPv4Address("10.65.0.1"), "h-other", ATTRS)
            self.put(key, value)
        return listed


def test_a_lost_race_reads_again_and_never_hands_out_an_address_twice() -> None:
    store = RacingStore()
    for key, value in lab_store().list("").items():
        store.put(key, value)
    got = cni.assign_address(store, "host1", "h-p", ATTRS)
    assert got.ip == IPv4Address("10.65.0.2")
    assert handles_of(store)[IPv4Address("10.65.0.1")] == "h-other"


def test_release_frees_the_address_and_deletes_the_handle() -> None:
    store = lab_store()
    cni.assign_address(store, "host1", "h-p", ATTRS)
    assert cni.release_address(store, "h-p") == 1
    assert IPv4Address("10.65.0.1") not in handles_of(store)
    assert store.get(keys.handle("h-p")) is None
    assert cni.release_address(store, "h-p") == 0  # twice: no error


@pytest.mark.parametrize(
    ("raw", "expected"),
    [('["10.65.0.5"]', "10.65.0.5"), ('["x"]', "annotation cni.projectcalico.org/ipAddrs: 'x' is not an IPv4"),
     ("10.65.0.5", "expected a JSON list of one IPv4 address"), ('["10.65.0.5", "10.65.0.6"]', "expected a JSON list")],
)  # fmt: skip
def test_the_ip_addrs_annotation(raw: str, expected: str) -> None:
    annotations = {cni.ANNOTATION_IP_ADDRS: raw}
    if expected[0].isdigit():
        assert cni.requested_address("pod demo/p", annotations) == IPv4Address(expected)
    else:
        with pytest.raises(cni.CniError, match=expected):
            cni.requested_address("pod demo/p", annotations)
    assert cni.requested_address("pod demo/p", {}) is None
