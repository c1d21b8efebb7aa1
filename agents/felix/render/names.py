"""Felix's chain names (calico.md §3): fixed names, prefixes, and hashing to fit 28 chars."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from testbed.model.policy import Direction, NetworkPolicy
from testbed.naming import MAX_CHAIN, WORKLOAD_PREFIX, check_length

FORWARD = "cali-FORWARD"
INPUT = "cali-INPUT"
OUTPUT = "cali-OUTPUT"
PREROUTING = "cali-PREROUTING"  # raw table
WL_TO_HOST = "cali-wl-to-host"
FROM_WL_DISPATCH = "cali-from-wl-dispatch"
TO_WL_DISPATCH = "cali-to-wl-dispatch"

TO_WORKLOAD = "cali-tw-"  # ingress to the pod
FROM_WORKLOAD = "cali-fw-"  # egress from the pod
POLICY_IN = "cali-pi-"
POLICY_OUT = "cali-po-"
PROFILE_IN = "cali-pri-"
PROFILE_OUT = "cali-pro-"

CHAIN_PREFIX = "cali-"  # every chain we own starts with it (mark-and-sweep by prefix)
WORKLOAD_WILDCARD = WORKLOAD_PREFIX + "+"
POLICY_ORDER = 1000.0  # every Kubernetes policy (knp.default.*) has this order
TIER = "default"


@lru_cache(maxsize=65536)  # pure; a host asks for the same few thousand names on every render
def chain_name(prefix: str, ident: str, always_hash: bool = False) -> str:
    """prefix + ident, or, when too long, prefix + "_" + base64url(SHA-256(ident)) cut to fit."""
    name = prefix + ident
    if always_hash or len(name) > MAX_CHAIN:
        digest = base64.urlsafe_b64encode(hashlib.sha256(ident.encode()).digest()).decode()
        name = prefix + "_" + digest[: MAX_CHAIN - len(prefix) - 1]
    check_length("chain", name)
    return name


def policy_id(policy: NetworkPolicy) -> str:
    """Felix's key for a converted Kubernetes policy in v3.28."""
    return f"{policy.namespace}/knp.{TIER}.{policy.name}"


def policy_chain(policy: NetworkPolicy, direction: Direction) -> str:
    """Always hashed, as calico.md §3 observes for Kubernetes policies (real ids are longer
    than 20 characters; hashing the rare short one too keeps "/" out of chain names)."""
    prefix = POLICY_IN if direction == "Ingress" else POLICY_OUT
    return chain_name(prefix, policy_id(policy), always_hash=True)


def profile_chain(namespace: str, direction: Direction) -> str:
    return chain_name(PROFILE_IN if direction == "Ingress" else PROFILE_OUT, f"kns.{namespace}")


def endpoint_chain(interface: str, direction: Direction) -> str:
    return chain_name(TO_WORKLOAD if direction == "Ingress" else FROM_WORKLOAD, interface)
