"""What Kubernetes NetworkPolicy means: is src -> dst:port/protocol allowed, and why.

Pure and independent of any renderer: it reads only ``testbed.model.policy``, so the
dataplane (Felix's chains) can be checked against it (``verify``), and it explains
verdicts (``explain``).

The meaning, direction by direction:

- egress is judged at the source (when it is a pod), ingress at the destination (when it
  is a pod); an address outside the cluster is never judged;
- a pod is isolated in a direction when some policy of its namespace selects it and has
  that policy type; an isolated direction allows only what some rule of those policies
  allows (the union); a direction that is not isolated allows everything;
- a rule matches when one of its peers matches (no peers: every peer) and one of its
  ports matches (no ports: every port and protocol);
- peers: podSelector alone = pods of the policy's namespace; namespaceSelector alone =
  pods of the matching namespaces; both = matching pods of matching namespaces; ipBlock =
  the peer's address in cidr and in no except (pod addresses too, as Calico does);
- ports: the protocol must match; a number or a range port..endPort; a name is resolved
  against the destination pod's named container ports (for egress too).

A pod that connects to its own address is always allowed (``loopback``): the packet never
leaves the pod's network namespace, so no implementation can judge it; the upstream e2e
suite leaves that cell to the implementation too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from testbed.model.policy import (
    Direction,
    Endpoint,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Peer,
    PolicyPort,
    PolicyRule,
)

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

Party = Endpoint | str  # a pod, or an address outside the cluster


@dataclass(frozen=True)
class RuleRef:
    policy: str  # the policy's key, "<namespace>/<name>"
    direction: Direction
    index: int  # position in the policy's ingress or egress list


@dataclass(frozen=True)
class DirectionVerdict:
    isolated: bool
    allowed: bool
    allowed_by: tuple[RuleRef, ...] = ()  # every rule that matches (isolated only)
    isolating: tuple[str, ...] = ()  # keys of the policies selecting the pod in this direction


NOT_ISOLATED = DirectionVerdict(isolated=False, allowed=True)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    egress: DirectionVerdict  # judged at the source
    ingress: DirectionVerdict  # judged at the destination
    src: str = ""  # "ns/pod" or the address, for explain
    dst: str = ""
    loopback: bool = False  # a pod to itself: allowed whatever the policies say


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every term of ``selector`` (the empty selector: always)."""
    for key, value in selector.match_labels:
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In":
            ok = present and labels[req.key] in req.values
        elif req.operator == "NotIn":
            ok = not present or labels[req.key] not in req.values
        elif req.operator == "Exists":
            ok = present
        else:
            ok = not present
        if not ok:
            return False
    return True


def evaluate(
    src: Party,
    dst: Party,
    port: int,
    protocol: str,
    policies: Sequence[NetworkPolicy],
    namespaces: Mapping[str, Namespace],
) -> Verdict:
    """The verdict on a connection from ``src`` to ``dst`` on ``port``/``protocol``."""
    protocol = protocol.upper()
    egress = NOT_ISOLATED
    ingress = NOT_ISOLATED
    if isinstance(src, Endpoint):
        egress = _judge(src, dst, dst, port, protocol, "Egress", policies, namespaces)
    if isinstance(dst, Endpoint):
        ingress = _judge(dst, src, dst, port, protocol, "Ingress", policies, namespaces)
    loopback = isinstance(src, Endpoint) and isinstance(dst, Endpoint) and src.key == dst.key
    return Verdict(
        allowed=loopback or (egress.allowed and ingress.allowed),
        egress=egress,
        ingress=ingress,
        src=_name(src),
        dst=_name(dst),
        loopback=loopback,
    )


def _judge(
    pod: Endpoint,
    peer: Party,
    receiver: Party,
    port: int,
    protocol: str,
    direction: Direction,
    policies: Sequence[NetworkPolicy],
    namespaces: Mapping[str, Namespace],
) -> DirectionVerdict:
    """The direction's verdict at ``pod``, talking with ``peer``; ``receiver`` owns named ports."""
    labels = dict(pod.labels)
    isolating = [
        p
        for p in policies
        if p.namespace == pod.namespace
        and direction in p.policy_types
        and selector_matches(p.pod_selector, labels)
    ]
    if not isolating:
        return NOT_ISOLATED
    allowed_by = []
    for policy in isolating:
        rules = policy.ingress if direction == "Ingress" else policy.egress
        for index, rule in enumerate(rules):
            if _rule_matches(rule, policy, peer, receiver, port, protocol, namespaces):
                allowed_by.append(RuleRef(policy.key, direction, index))
    return DirectionVerdict(
        isolated=True,
        allowed=bool(allowed_by),
        allowed_by=tuple(allowed_by),
        isolating=tuple(p.key for p in isolating),
    )


def _rule_matches(
    rule: PolicyRule,
    policy: NetworkPolicy,
    peer: Party,
    receiver: Party,
    port: int,
    protocol: str,
    namespaces: Mapping[str, Namespace],
) -> bool:
    peer_ok = not rule.peers or any(_peer_matches(p, policy, peer, namespaces) for p in rule.peers)
    port_ok = not rule.ports or any(_port_matches(p, receiver, port, protocol) for p in rule.ports)
    return peer_ok and port_ok


def _peer_matches(
    peer: Peer, policy: NetworkPolicy, party: Party, namespaces: Mapping[str, Namespace]
) -> bool:
    if peer.ip_block is not None:
        address = ipaddress.ip_address(party.ip if isinstance(party, Endpoint) else party)
        block = peer.ip_block
        if address not in ipaddress.ip_network(block.cidr):  # other family: not in it either
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.excepts)
    if not isinstance(party, Endpoint):
        return False  # selectors pick pods only
    if peer.namespace_selector is None:
        if party.namespace != policy.namespace:
            return False
    else:
        labels = namespace_labels(party.namespace, namespaces)
        if not selector_matches(peer.namespace_selector, labels):
            return False
    return peer.pod_selector is None or selector_matches(peer.pod_selector, dict(party.labels))


def namespace_labels(name: str, namespaces: Mapping[str, Namespace]) -> dict[str, str]:
    """A namespace's labels; one missing from ``namespaces`` has only its automatic name label."""
    known = namespaces.get(name)
    return dict(known.labels) if known is not None else {NAMESPACE_NAME_LABEL: name}


def _port_matches(rule_port: PolicyPort, receiver: Party, port: int, protocol: str) -> bool:
    if rule_port.protocol != protocol:
        return False
    if rule_port.port is None:
        return True
    if isinstance(rule_port.port, int):
        return rule_port.port <= port <= (rule_port.end_port or rule_port.port)
    if not isinstance(receiver, Endpoint):
        return False  # a name means a container port; an outside address has none
    return any(
        named.name == rule_port.port and named.protocol == protocol and named.port == port
        for named in receiver.ports
    )


def _name(party: Party) -> str:
    return party.key if isinstance(party, Endpoint) else party


def explain(verdict: Verdict) -> str:
    """One line: which rules allow the connection, or which policies isolate it without a rule."""
    if verdict.loopback:
        return f"allowed: {verdict.src} to itself never leaves the pod, no policy applies"
    if not verdict.allowed:
        reasons = []
        if not verdict.egress.allowed:
            by = ", ".join(verdict.egress.isolating)
            reasons.append(
                f"egress from {verdict.src} is isolated by {by} and no rule allows {verdict.dst}"
            )
        if not verdict.ingress.allowed:
            by = ", ".join(verdict.ingress.isolating)
            reasons.append(
                f"ingress to {verdict.dst} is isolated by {by} and no rule allows {verdict.src}"
            )
        return "denied: " + "; ".join(reasons)
    refs = verdict.egress.allowed_by + verdict.ingress.allowed_by
    if not refs:
        return f"allowed: no policy isolates egress from {verdict.src} or ingress to {verdict.dst}"
    parts = [f"{r.policy} {r.direction.lower()} rule {r.index}" for r in refs]
    return "allowed by " + ", ".join(parts)


def matrix(
    endpoints: Sequence[Endpoint],
    port: int,
    protocol: str,
    policies: Sequence[NetworkPolicy],
    namespaces: Mapping[str, Namespace],
) -> list[list[bool]]:
    """Rows are sources, columns destinations, in the order of ``endpoints``."""
    return [
        [evaluate(src, dst, port, protocol, policies, namespaces).allowed for dst in endpoints]
        for src in endpoints
    ]
