"""Per-endpoint chains ``cali-tw-<iface>`` (to the pod) and ``cali-fw-<iface>`` (from it)."""

from __future__ import annotations

from collections.abc import Sequence

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
    iface = workload_interface(endpoint.namespace, endpoint.name)
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
    for policy in policies:
        rules += [
            Rule(marks.match(0, marks.PASS), f"-j {policy_chain(policy, direction)}"),
            Rule(marks.match(marks.ACCEPT, marks.ACCEPT), "-j RETURN", "Return if policy accepted"),
        ]
    if policies:
        rules.append(Rule(marks.match(0, marks.PASS), "-j DROP", "Drop if no policies passed packet"))
    rules += [
        Rule("", f"-j {profile_chain(endpoint.namespace, direction)}"),
        Rule(marks.match(marks.ACCEPT, marks.ACCEPT), "-j RETURN", "Return if profile accepted"),
        Rule("", "-j DROP", "Drop if no profiles matched"),
    ]
    return Chain(endpoint_chain(iface, direction), tuple(rules))
