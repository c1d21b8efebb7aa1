"""Felix v3.28's mark bits (calico.md §3), taken in order from the mark mask 0xffff0000."""

from __future__ import annotations

ACCEPT = 0x10000  # a policy or profile allowed the packet
PASS = 0x20000  # a policy passed the packet to the next tier (never set by Kubernetes policy)
SCRATCH0 = 0x40000  # here: "excepted by an ipBlock" inside one policy rule
SCRATCH1 = 0x80000
ALL = ACCEPT | PASS | SCRATCH0 | SCRATCH1


def xmark(value: int, mask: int) -> str:
    """The MARK target that sets ``value`` under ``mask`` (other bits untouched)."""
    return f"-j MARK --set-xmark {value:#x}/{mask:#x}"


def match(value: int, mask: int) -> str:
    return f"-m mark --mark {value:#x}/{mask:#x}"
