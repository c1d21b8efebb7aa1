"""Per-endpoint chains ``cali-tw-<iface>`` (to the pod) and ``cali-fw-<iface>`` (from it)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from agents.felix.render import marks
from agents.felix.render.names import endpoint_chain, policy_chain, profile_chain
from agents.felix.render.rules import Chain, Rule
from testbed.model.policy import Direction, Endpoint, NetworkPolicy
from testbed.naming import workload_interface

VXLAN_PORT = 4789
IPIP_PROTOCOL = 4


def render_endpoint_chain(
    endpoint: Endpoint, direction: Direction, policies: Sequence[NetworkPolicy]
) -> Chain:
    """``policies``: those selecting the endpoint in this direction, already in tier order."""
    iface = interface_of(endpoint.namespace, endpoint.name)
    return _endpoint_chain(iface, endpoint.namespace, direction, tuple(policy_chain(p, direction) for p in policies))


# Pure, so memoised: an endpoint's chain depends only on these strings, and a host renders
# its hundreds of endpoint chains again on every change (a policy's port, say), nearly all
# of them unchanged. The applier then finds the very same Chain objects it last wrote.
interface_of = lru_cache(maxsize=65536)(workload_interface)


@lru_cache(maxsize=16384)
def _endpoint_chain(iface: str, namespace: str, direction: Direction, policy_chains: tuple[str, ...]) -> Chain:
    rules = [
        Rule("-m conntrack --ctstate RELATED,ESTABLISHED", "-j ACCEPT"),
        Rule("-m conntrack --ctstate INVALID", "-j DROP"),
        Rule("", marks.xmark(0, marks.ACCEPT | marks.PASS)),
    ]
    if direction == "Egress":
        rules += [
            Rule(f"-p udp -m multiport --dports {VXLAN_PORT}", "-j DROP",
                 "Drop VXLAN encapped packets originating in workloads"),
            Rule(f"-p {IPIP_PROTOCOL}", "-j DROP",
                 "Drop IPinIP encapped packets originating in workloads"),
        ]
    for chain in policy_chains:
        rules += [
            Rule(marks.match(0, marks.PASS), f"-j {chain}"),
            Rule(marks.match(marks.ACCEPT, marks.ACCEPT), "-j RETURN", "Return if policy accepted"),
        ]
    if policy_chains:
        rules.append(Rule(marks.match(0, marks.PASS), "-j DROP", "Drop if no policies passed packet"))
    rules += [
        Rule("", f"-j {profile_chain(namespace, direction)}"),
        Rule(marks.match(marks.ACCEPT, marks.ACCEPT), "-j RETURN", "Return if profile accepted"),
        Rule("", "-j DROP", "Drop if no profiles matched"),
    ]
    return Chain(endpoint_chain(iface, direction), tuple(rules))
