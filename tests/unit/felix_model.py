"""Test helper: model objects (testbed.model.policy) from plain data, no manifest parser.

The data reads like Kubernetes objects (camelCase keys) so golden cases are easy to write:
``namespaces: [{name, labels}]``, ``pods: [{namespace, name, ip, host, labels, ports}]``,
``policies: [{namespace, name, podSelector, policyTypes, ingress, egress}]``.
"""

from __future__ import annotations

from typing import Any

from testbed.model.policy import (
    Endpoint, IPBlock, LabelSelector, NamedPort, Namespace, NetworkPolicy, Peer, PolicyPort,
    PolicyRule, Requirement,
)

METADATA_NAME = "kubernetes.io/metadata.name"


def _labels(data: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((data or {}).items()))


def selector(data: dict[str, Any] | None) -> LabelSelector:
    data = data or {}
    exprs = tuple(
        Requirement(e["key"], e["operator"], tuple(sorted(e.get("values", ()))))
        for e in data.get("matchExpressions", ())
    )
    return LabelSelector(_labels(data.get("matchLabels")), exprs)


def peer(data: dict[str, Any]) -> Peer:
    block = data.get("ipBlock")
    return Peer(
        pod_selector=selector(data["podSelector"]) if "podSelector" in data else None,
        namespace_selector=(
            selector(data["namespaceSelector"]) if "namespaceSelector" in data else None
        ),
        ip_block=IPBlock(block["cidr"], tuple(block.get("except", ()))) if block else None,
    )


def port(data: dict[str, Any]) -> PolicyPort:
    return PolicyPort(data.get("protocol", "TCP"), data.get("port"), data.get("endPort"))


def rule(data: dict[str, Any], peers_key: str) -> PolicyRule:
    return PolicyRule(
        tuple(peer(p) for p in data.get(peers_key) or ()),
        tuple(port(p) for p in data.get("ports") or ()),
    )


def policy(data: dict[str, Any]) -> NetworkPolicy:
    ingress = tuple(rule(r, "from") for r in data.get("ingress") or ())
    egress = tuple(rule(r, "to") for r in data.get("egress") or ())
    types = data.get("policyTypes") or (["Ingress", "Egress"] if egress else ["Ingress"])
    return NetworkPolicy(
        data["namespace"], data["name"], selector(data.get("podSelector")),
        tuple(types), ingress, egress,
    )


def namespace(data: dict[str, Any]) -> Namespace:
    labels = {METADATA_NAME: data["name"], **(data.get("labels") or {})}
    return Namespace(data["name"], _labels(labels))


def endpoint(data: dict[str, Any]) -> Endpoint:
    ports = tuple(
        NamedPort(p["name"], p.get("protocol", "TCP"), p["port"]) for p in data.get("ports", ())
    )
    return Endpoint(
        data["namespace"], data["name"], data["ip"], data["host"], _labels(data.get("labels")),
        ports,
    )


def model(
    data: dict[str, Any],
) -> tuple[list[Endpoint], dict[str, Namespace], list[NetworkPolicy]]:
    namespaces = {n["name"]: namespace(n) for n in data.get("namespaces", ())}
    return (
        [endpoint(p) for p in data.get("pods", ())],
        namespaces,
        [policy(p) for p in data.get("policies", ())],
    )
