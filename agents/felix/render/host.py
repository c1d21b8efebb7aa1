"""One host's whole desired state: filter and raw chains, ipsets and hooks (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from agents.felix.render.dispatch import render_dispatch_chains
from agents.felix.render.endpoint import interface_of, render_endpoint_chain
from agents.felix.render.ipsets import SetRequests, build_ipsets
from agents.felix.render.names import POLICY_ORDER
from agents.felix.render.policy import render_policy_chain, render_profile_chain
from agents.felix.render.rules import Chain, IPSet
from agents.felix.render.selectors import endpoint_labels, policy_selector
from agents.felix.render.static import HOOKS, Hook, render_filter_static, render_raw_prerouting
from testbed.model.policy import Direction, Endpoint, Namespace, NetworkPolicy
from testbed.naming import check_length

DIRECTIONS: tuple[Direction, ...] = ("Ingress", "Egress")

# The host-wide chains depend only on the local interfaces (and addresses): memoised, so a
# policy change renders them once, and the applier meets the same Chain objects again.
_dispatch_chains = lru_cache(maxsize=16)(render_dispatch_chains)
_raw_prerouting = lru_cache(maxsize=16)(render_raw_prerouting)
_filter_static = lru_cache(maxsize=1)(render_filter_static)


@dataclass(frozen=True)
class HostRules:
    host: str
    chains: tuple[Chain, ...]  # filter table, sorted by name
    raw_chains: tuple[Chain, ...]  # raw table
    ipsets: tuple[IPSet, ...]  # sorted by name
    hooks: tuple[Hook, ...]

    def table(self, name: str) -> tuple[Chain, ...]:
        return {"filter": self.chains, "raw": self.raw_chains}[name]

    def chain(self, name: str) -> Chain:
        for chain in self.chains + self.raw_chains:
            if chain.name == name:
                return chain
        raise KeyError(name)

    def ipset(self, name: str) -> IPSet:
        for ipset in self.ipsets:
            if ipset.name == name:
                return ipset
        raise KeyError(name)


def tier_order(policy: NetworkPolicy) -> tuple[float, str, str]:
    return (POLICY_ORDER, f"knp.default.{policy.name}", policy.namespace)


def render_host(
    host: str,
    endpoints: Sequence[Endpoint],
    namespaces: Mapping[str, Namespace],
    policies: Sequence[NetworkPolicy],
) -> HostRules:
    labelled = [(ep, endpoint_labels(ep, namespaces.get(ep.namespace))) for ep in endpoints]
    local = sorted(
        ((ep, labels) for ep, labels in labelled if ep.host == host),
        key=lambda item: interface_of(item[0].namespace, item[0].name),
    )
    ordered = sorted(policies, key=tier_order)
    applying: dict[tuple[str, Direction], list[NetworkPolicy]] = {}
    active: list[tuple[NetworkPolicy, Direction]] = []
    for policy in ordered:
        selector = policy_selector(policy)
        selected = [ep for ep, labels in local if selector.matches(labels)]
        for direction in DIRECTIONS:
            if direction not in policy.policy_types or not selected:
                continue
            active.append((policy, direction))
            for ep in selected:
                applying.setdefault((ep.key, direction), []).append(policy)

    sets = SetRequests()
    chains: list[Chain] = [render_policy_chain(p, d, sets) for p, d in active]
    for namespace in sorted({ep.namespace for ep, _ in local}):
        chains += [render_profile_chain(namespace, d) for d in DIRECTIONS]
    for ep, _ in local:
        chains += [render_endpoint_chain(ep, d, applying.get((ep.key, d), [])) for d in DIRECTIONS]
    interfaces = tuple(interface_of(ep.namespace, ep.name) for ep, _ in local)
    chains += _dispatch_chains(interfaces)
    chains += _filter_static()
    raw = _raw_prerouting(tuple((iface, ep.ip) for iface, (ep, _) in zip(interfaces, local)))
    for chain in [*chains, raw]:
        check_length("chain", chain.name)
    return HostRules(
        host=host,
        chains=tuple(sorted(chains, key=lambda c: c.name)),
        raw_chains=(raw,),
        ipsets=build_ipsets(sets, labelled),
        hooks=HOOKS,
    )
