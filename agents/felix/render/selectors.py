"""Kubernetes label selectors as Calico selectors (calico.md §5): text, normal form, matching.

A selector here is an AND of terms. The normal form keeps the terms in a fixed order
(namespace terms, the orchestrator term, then the pod's terms: matchLabels by key, then
matchExpressions), drops repeated terms, sorts set values and quotes with single quotes,
so two peers meaning the same thing hash to the same ipset. Calico nests the parts in
parentheses (``(a) && (b && c)``); we print the flattened AND, which means the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from testbed.model.policy import Endpoint, LabelSelector, Namespace, NetworkPolicy, Peer
from testbed.naming import LABEL_NAMESPACE, LABEL_ORCHESTRATOR, ORCHESTRATOR

NAMESPACE_LABEL_PREFIX = "pcns."  # namespace labels as endpoints inherit them (profile kns.<ns>)
NAMESPACE_NAME_LABEL = "projectcalico.org/name"

Op = Literal["==", "in", "not in", "has", "!has"]


@dataclass(frozen=True)
class Term:
    key: str
    op: Op
    values: tuple[str, ...] = ()

    def render(self) -> str:
        if self.op == "==":
            return f"{self.key} == '{self.values[0]}'"
        if self.op in ("in", "not in"):
            inner = ", ".join(f"'{v}'" for v in self.values)
            return f"{self.key} {self.op} {{ {inner} }}" if inner else f"{self.key} {self.op} {{}}"
        if self.op == "has":
            return f"has({self.key})"
        return f"! has({self.key})"

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "==":
            return value == self.values[0]
        if self.op == "in":
            return value is not None and value in self.values
        if self.op == "not in":  # true when the key is missing, as in Kubernetes
            return value not in self.values
        if self.op == "has":
            return value is not None
        return value is None


@dataclass(frozen=True)
class Selector:
    terms: tuple[Term, ...]  # ANDed; none = all()

    @classmethod
    def of(cls, terms: Iterable[Term]) -> Selector:
        unique: list[Term] = []
        for term in terms:
            if term not in unique:
                unique.append(term)
        return cls(tuple(unique))

    def __str__(self) -> str:
        return " && ".join(t.render() for t in self.terms) if self.terms else "all()"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(t.matches(labels) for t in self.terms)


ORCHESTRATOR_TERM = Term(LABEL_ORCHESTRATOR, "==", (ORCHESTRATOR,))
ALL_PODS = Selector((ORCHESTRATOR_TERM,))  # every Kubernetes pod, in any namespace


def namespace_term(namespace: str) -> Term:
    return Term(LABEL_NAMESPACE, "==", (namespace,))


def label_terms(selector: LabelSelector, prefix: str = "") -> list[Term]:
    terms = [Term(prefix + k, "==", (v,)) for k, v in selector.match_labels]
    for req in selector.match_expressions:
        key = prefix + req.key
        if req.operator == "In":
            terms.append(Term(key, "in", tuple(sorted(set(req.values)))))
        elif req.operator == "NotIn":
            terms.append(Term(key, "not in", tuple(sorted(set(req.values)))))
        elif req.operator == "Exists":
            terms.append(Term(key, "has"))
        else:
            terms.append(Term(key, "!has"))
    return terms


def policy_selector(policy: NetworkPolicy) -> Selector:
    """The endpoints a policy applies to: its podSelector inside its namespace."""
    return Selector.of(
        [namespace_term(policy.namespace), ORCHESTRATOR_TERM, *label_terms(policy.pod_selector)]
    )


def peer_selector(policy_namespace: str, peer: Peer) -> Selector | None:
    """The endpoints a from/to peer names; None for an ipBlock peer."""
    if peer.pod_selector is None and peer.namespace_selector is None:
        return None
    ns_sel = peer.namespace_selector
    if ns_sel is None:
        ns_terms = [namespace_term(policy_namespace)]
    elif ns_sel.is_empty():
        ns_terms = [Term(LABEL_NAMESPACE, "has")]
    else:
        ns_terms = label_terms(ns_sel, NAMESPACE_LABEL_PREFIX)
    pod_terms = label_terms(peer.pod_selector) if peer.pod_selector is not None else []
    return Selector.of([*ns_terms, ORCHESTRATOR_TERM, *pod_terms])


def endpoint_labels(endpoint: Endpoint, namespace: Namespace | None) -> dict[str, str]:
    """Labels Felix evaluates selectors against: the namespace's labels as ``pcns.*``
    (inherited from profile kns.<ns>), then the pod's labels and Calico's own."""
    labels = {NAMESPACE_LABEL_PREFIX + NAMESPACE_NAME_LABEL: endpoint.namespace}
    if namespace is not None:
        labels.update((NAMESPACE_LABEL_PREFIX + k, v) for k, v in namespace.labels)
    labels.update(endpoint.labels)
    labels[LABEL_NAMESPACE] = endpoint.namespace
    labels[LABEL_ORCHESTRATOR] = ORCHESTRATOR
    return labels
