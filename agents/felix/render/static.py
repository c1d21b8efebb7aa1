"""The fixed chains and the hooks from the kernel's chains (calico.md §3).

Simplified from Felix v3.28, on purpose (no host endpoints, no encapsulation, no kube-proxy
hand-off):
- ``cali-FORWARD`` accepts itself once the accept mark is set, instead of Felix's rule
  appended to FORWARD; there are no host-endpoint or cidr-block chains.
- ``cali-INPUT`` only sends pod traffic through ``cali-wl-to-host``: the pod's egress
  policy, then DefaultEndpointToHostAction ACCEPT (as calico.yaml sets it).
- ``cali-OUTPUT``: host -> local pod skips pod ingress policy, as in Felix.
- Anti-spoofing in raw ``cali-PREROUTING`` is one ``-i caliX ! -s <pod ip>/32 -j DROP``
  per local endpoint (not Felix's rpfilter match): it needs no route lookup, works on the
  legacy backend, and the walker can evaluate it. Unknown ``cali*`` interfaces are dropped
  by the filter dispatch chains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.felix.render import marks
from agents.felix.render.names import (
    FORWARD, FROM_WL_DISPATCH, INPUT, OUTPUT, PREROUTING, TO_WL_DISPATCH, WL_TO_HOST,
    WORKLOAD_WILDCARD,
)
from agents.felix.render.rules import Chain, Rule


@dataclass(frozen=True)
class Hook:
    """A jump inserted at the top of a kernel chain: ``-I <chain> 1 -j <target>``."""

    table: str  # "filter" or "raw"
    chain: str  # the kernel's chain, e.g. "FORWARD"
    target: str  # our chain, e.g. "cali-FORWARD"

    @property
    def rule(self) -> Rule:
        return Rule("", f"-j {self.target}")


HOOKS: tuple[Hook, ...] = (
    Hook("raw", "PREROUTING", PREROUTING),
    Hook("filter", "INPUT", INPUT),
    Hook("filter", "FORWARD", FORWARD),
    Hook("filter", "OUTPUT", OUTPUT),
)


def render_filter_static() -> tuple[Chain, ...]:
    wl = WORKLOAD_WILDCARD
    accepted = marks.match(marks.ACCEPT, marks.ACCEPT)
    forward = Chain(FORWARD, (
        Rule("", marks.xmark(0, marks.ALL & ~marks.ACCEPT), "Pre-clear marks"),
        Rule(f"-i {wl}", f"-j {FROM_WL_DISPATCH}", "From workload endpoint"),
        Rule(f"-o {wl}", f"-j {TO_WL_DISPATCH}", "To workload endpoint"),
        Rule(accepted, "-j ACCEPT", "Policy explicitly accepted packet."),
    ))
    input_ = Chain(INPUT, (Rule(f"-i {wl}", f"-g {WL_TO_HOST}"),))
    wl_to_host = Chain(WL_TO_HOST, (
        Rule("", f"-j {FROM_WL_DISPATCH}"),
        Rule("", "-j ACCEPT", "Configured DefaultEndpointToHostAction"),
    ))
    output = Chain(OUTPUT, (Rule(f"-o {wl}", "-j RETURN"),))
    return (forward, input_, wl_to_host, output)


def render_raw_prerouting(endpoints: Sequence[tuple[str, str]]) -> Chain:
    """``endpoints``: (interface, IPv4 address) of the local workloads."""
    rules = [
        Rule(f"-i {iface} ! -s {ip}/32", "-j DROP", "Anti-spoofing: source is not the workload address")
        for iface, ip in sorted(endpoints)
    ]
    return Chain(PREROUTING, tuple(rules))
