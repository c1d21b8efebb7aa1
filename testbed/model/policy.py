"""Kubernetes NetworkPolicy (networking.k8s.io/v1), its meaning kept whole, as frozen data.

Parsed from manifests by ``testbed.kube.policy`` (validation, kubectl-like errors); read by
the oracle (``testbed.oracle``: what is allowed) and by Felix's renderer
(``agents.felix.render``: chains and ipsets). Defaults are already resolved here: a rule's
missing protocol is TCP, policy types are what the API server would store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
Protocol = Literal["TCP", "UDP", "SCTP"]
Direction = Literal["Ingress", "Egress"]


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()  # In/NotIn only, sorted


@dataclass(frozen=True)
class LabelSelector:
    """matchLabels and matchExpressions, ANDed; an empty selector selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    match_expressions: tuple[Requirement, ...] = ()

    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True)
class IPBlock:
    cidr: str  # normalised network, e.g. "10.65.0.0/16"
    excepts: tuple[str, ...] = ()  # normalised networks inside cidr


@dataclass(frozen=True)
class Peer:
    """One entry of from/to. With neither selector nor ipBlock it cannot exist (validation).

    pod_selector only: pods of the policy's namespace. namespace_selector only: all pods of
    matching namespaces. Both: matching pods in matching namespaces. ip_block: addresses
    (Kubernetes leaves pod IPs in ipBlocks to the implementation; Calico matches them too).
    """

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    protocol: Protocol = "TCP"
    port: int | str | None = None  # None: every port of the protocol; str: a named container port
    end_port: int | None = None  # with a numeric port: the range port..end_port


@dataclass(frozen=True)
class PolicyRule:
    """An ingress or egress rule. ``peers`` empty = every peer (missing or empty from/to);
    ``ports`` empty = every port and protocol."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: tuple[Direction, ...]  # resolved as the API server does
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class NamedPort:
    name: str
    protocol: Protocol
    port: int


@dataclass(frozen=True)
class Endpoint:
    """A pod as policy sees it: where it is, its labels, its named container ports."""

    namespace: str
    name: str
    ip: str
    host: str
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    ports: tuple[NamedPort, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: tuple[tuple[str, str], ...] = ()  # includes kubernetes.io/metadata.name
