"""Calico's IPAM objects as stored in etcd: allocation blocks, block affinities, handles.

Shapes follow libcalico-go's backend model (``AllocationBlock``, ``BlockAffinity``,
``IPAMHandle``). A block lists one slot per address (``allocations``: an index into
``attributes`` or null), the free ordinals in hand-out order (``unallocated``) and one
attribute per owner (handle + who it was for). Functions here never mutate their input:
they return the new value, ready for a read-modify-write of the block key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import Any

Record = dict[str, Any]

CONFIRMED = "confirmed"  # BlockAffinity states: pending -> confirmed -> pendingDeletion


class BlockError(ValueError):
    """An allocation or release that does not fit the block."""


def affinity_of(node: str) -> str:
    """A block's ``affinity`` field: ``host:<node>``."""
    return f"host:{node}"


def empty_block(cidr: IPv4Network, node: str) -> Record:
    """A freshly claimed block affine to ``node``: every address free, in order."""
    size = cidr.num_addresses
    return {
        "cidr": str(cidr),
        "affinity": affinity_of(node),
        "strictAffinity": False,
        "allocations": [None] * size,
        "unallocated": list(range(size)),
        "attributes": [],
        "sequenceNumber": 0,
        "sequenceNumberForAllocation": {},
        "deleted": False,
    }


def block_cidr(block: Mapping[str, Any]) -> IPv4Network:
    try:
        cidr = ip_network(str(block["cidr"]))
    except (KeyError, ValueError) as exc:
        raise BlockError(f"IPAM block: bad or missing field cidr ({block.get('cidr')!r})") from exc
    if not isinstance(cidr, IPv4Network):
        raise BlockError(f"IPAM block {cidr}: not IPv4")
    return cidr


def ordinal_of(block: Mapping[str, Any], ip: IPv4Address) -> int:
    cidr = block_cidr(block)
    if ip not in cidr:
        raise BlockError(f"IPAM block {cidr}: {ip} is not inside it")
    return int(ip) - int(cidr.network_address)


def block_allocate(
    block: Mapping[str, Any], ip: IPv4Address, handle_id: str, secondary: Mapping[str, str]
) -> Record:
    """The block with ``ip`` allocated to ``handle_id``; BlockError if it is taken.

    Owners with identical attributes share one attribute entry, as in Calico.
    """
    new: Record = copy.deepcopy(dict(block))
    ordinal = ordinal_of(new, ip)
    if new["allocations"][ordinal] is not None:
        raise BlockError(f"IPAM block {new['cidr']}: {ip} is already allocated")
    attribute = {"handle_id": handle_id, "secondary": dict(secondary)}
    attributes: list[Record] = new["attributes"]
    if attribute in attributes:
        index = attributes.index(attribute)
    else:
        attributes.append(attribute)
        index = len(attributes) - 1
    new["allocations"][ordinal] = index
    new["unallocated"] = [o for o in new["unallocated"] if o != ordinal]
    new["sequenceNumber"] = int(new.get("sequenceNumber", 0)) + 1
    new.setdefault("sequenceNumberForAllocation", {})[str(ordinal)] = new["sequenceNumber"]
    return new


def block_release(block: Mapping[str, Any], handle_id: str) -> tuple[Record, int]:
    """The block with every address of ``handle_id`` freed, and how many were freed.

    Freed ordinals go to the end of ``unallocated`` (so they are handed out last) and
    attributes nobody refers to any more are dropped, the others renumbered.
    """
    new: Record = copy.deepcopy(dict(block))
    attributes: list[Record] = new["attributes"]
    allocations: list[int | None] = new["allocations"]
    freed = [
        o for o, a in enumerate(allocations) if a is not None and attributes[a].get("handle_id") == handle_id
    ]
    for ordinal in freed:
        allocations[ordinal] = None
        new["unallocated"].append(ordinal)
        new.get("sequenceNumberForAllocation", {}).pop(str(ordinal), None)
    used = sorted({a for a in allocations if a is not None})
    renumber = {old: i for i, old in enumerate(used)}
    new["attributes"] = [attributes[old] for old in used]
    new["allocations"] = [None if a is None else renumber[a] for a in allocations]
    if freed:
        new["sequenceNumber"] = int(new.get("sequenceNumber", 0)) + 1
    return new, len(freed)


def block_addresses(block: Mapping[str, Any]) -> dict[IPv4Address, str]:
    """Every allocated address of a block -> its handle."""
    cidr = block_cidr(block)
    attributes = block.get("attributes", [])
    result: dict[IPv4Address, str] = {}
    for ordinal, index in enumerate(block.get("allocations", [])):
        if index is not None:
            result[cidr.network_address + ordinal] = str(attributes[index].get("handle_id", ""))
    return result


def block_node(block: Mapping[str, Any]) -> str | None:
    """The node a block is affine to (``host:<node>``), or None."""
    affinity = str(block.get("affinity") or "")
    return affinity[len("host:") :] if affinity.startswith("host:") else None


def affinity_record(state: str = CONFIRMED) -> Record:
    """The value under ``/calico/ipam/v2/host/<node>/ipv4/block/<block>``."""
    return {"state": state, "deleted": False}


def handle_record(handle_id: str, blocks: Mapping[IPv4Network, int]) -> Record:
    """An IPAM handle: how many addresses it holds in which block."""
    return {
        "handleID": handle_id,
        "block": {str(cidr): count for cidr, count in sorted(blocks.items())},
        "deleted": False,
    }
