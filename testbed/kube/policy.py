"""networking.k8s.io/v1 NetworkPolicy: manifest dict <-> ``testbed.model.policy``.

``parse_network_policy`` decodes strictly (unknown fields, wrong types) and validates as the
API server does, collecting every problem into one ManifestError; defaults are resolved as
the server stores them (protocol TCP; policyTypes Ingress, plus Egress when egress rules
exist). ``network_policy_to_dict`` writes the canonical manifest back (``get -o yaml``);
parsing it again gives the same NetworkPolicy. Reading YAML files is the kubectl layer's.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from testbed.kube.errors import (
    FieldReport,
    ManifestError,
    check_type_meta,
    dns_label_problems,
    dns_subdomain_problems,
    port_name_problems,
)
from testbed.kube.selectors import label_selector_to_dict, parse_label_selector
from testbed.model.policy import (
    Direction,
    IPBlock,
    NetworkPolicy,
    Peer,
    PolicyPort,
    PolicyRule,
    Protocol,
)

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
PROTOCOLS: tuple[Protocol, ...] = ("SCTP", "TCP", "UDP")
POLICY_TYPES: tuple[Direction, ...] = ("Ingress", "Egress")
METADATA_FIELDS = (
    "name", "generateName", "namespace", "labels", "annotations", "uid", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "ownerReferences", "finalizers", "managedFields", "selfLink",
)  # fmt: skip


def parse_network_policy(
    obj: Mapping[str, Any], default_namespace: str = "default", *, explicit_namespace: bool = False
) -> NetworkPolicy:
    """The NetworkPolicy a manifest describes, or ManifestError with one line per problem.

    ``default_namespace`` applies when the manifest names none; with ``explicit_namespace``
    (kubectl's ``-n`` given) a manifest naming another namespace is refused, as kubectl does.
    """
    if not isinstance(obj, Mapping):
        raise ManifestError([f"a {KIND} manifest must be an object, not {json.dumps(obj)}"])
    check_type_meta(obj, API_VERSION, KIND)
    rep = FieldReport(KIND)
    top = rep.mapping(obj, "", ("apiVersion", "kind", "metadata", "spec")) or {}
    name, namespace = _parse_metadata(rep, top.get("metadata"))
    if namespace and explicit_namespace and namespace != default_namespace:
        rep.other(
            f"the namespace from the provided object {json.dumps(namespace)} does not match "
            f"the namespace {json.dumps(default_namespace)}. "
            f"You must pass '--namespace={namespace}' to perform this operation."
        )
    spec = rep.mapping(top.get("spec"), "spec", ("podSelector", "policyTypes", "ingress", "egress"))
    spec = spec or {}
    selector = parse_label_selector(spec.get("podSelector"), "spec.podSelector", rep)
    ingress = _parse_rules(rep, spec.get("ingress"), "spec.ingress", "from")
    egress = _parse_rules(rep, spec.get("egress"), "spec.egress", "to")
    types = _parse_policy_types(rep, spec.get("policyTypes"), has_egress=bool(egress))
    rep.raise_if_any()
    return NetworkPolicy(
        namespace=namespace or default_namespace,
        name=name,
        pod_selector=selector,
        policy_types=types,
        ingress=ingress,
        egress=egress,
    )


def _parse_metadata(rep: FieldReport, raw: object) -> tuple[str, str]:
    meta = rep.mapping(raw, "metadata", METADATA_FIELDS) or {}
    name = rep.string(meta.get("name"), "metadata.name") or ""
    namespace = rep.string(meta.get("namespace"), "metadata.namespace") or ""
    rep.name = name
    if not name:
        rep.required("metadata.name", "name or generateName is required")
    for problem in dns_subdomain_problems(name) if name else []:
        rep.invalid("metadata.name", name, problem)
    for problem in dns_label_problems(namespace) if namespace else []:
        rep.invalid("metadata.namespace", namespace, problem)
    rep.labels(meta.get("labels"), "metadata.labels")
    rep.string_map(meta.get("annotations"), "metadata.annotations")
    return name, namespace


def _parse_policy_types(rep: FieldReport, raw: object, has_egress: bool) -> tuple[Direction, ...]:
    items = rep.sequence(raw, "spec.policyTypes")
    if not items:
        return ("Ingress", "Egress") if has_egress else ("Ingress",)
    if len(items) > len(POLICY_TYPES):
        rep.invalid("spec.policyTypes", items, "may not specify more than two policyTypes")
    types: list[Direction] = []
    for i, item in enumerate(items):
        text = rep.string(item, f"spec.policyTypes[{i}]")
        if text is None:
            continue
        if text == "Ingress" or text == "Egress":
            if text not in types:
                types.append(text)
        else:
            rep.unsupported(f"spec.policyTypes[{i}]", text, POLICY_TYPES)
    return tuple(types)


def _parse_rules(rep: FieldReport, raw: object, path: str, key: str) -> tuple[PolicyRule, ...]:
    rules = []
    for i, item in enumerate(rep.sequence(raw, path)):
        rule_path = f"{path}[{i}]"
        fields = rep.mapping(item, rule_path, ("ports", key)) or {}
        ports = [
            _parse_port(rep, port, f"{rule_path}.ports[{j}]")
            for j, port in enumerate(rep.sequence(fields.get("ports"), f"{rule_path}.ports"))
        ]
        raw_peers = rep.sequence(fields.get(key), f"{rule_path}.{key}")
        peers = [_parse_peer(rep, p, f"{rule_path}.{key}[{j}]") for j, p in enumerate(raw_peers)]
        rules.append(
            PolicyRule(
                peers=tuple(p for p in peers if p is not None),
                ports=tuple(p for p in ports if p is not None),
            )
        )
    return tuple(rules)


def _parse_peer(rep: FieldReport, raw: object, path: str) -> Peer | None:
    fields = rep.mapping(raw, path, ("podSelector", "namespaceSelector", "ipBlock"))
    if fields is None:
        return None
    pods = spaces = None
    if fields.get("podSelector") is not None:
        pods = parse_label_selector(fields["podSelector"], f"{path}.podSelector", rep)
    if fields.get("namespaceSelector") is not None:
        spaces = parse_label_selector(fields["namespaceSelector"], f"{path}.namespaceSelector", rep)
    block = None
    if fields.get("ipBlock") is not None:
        block = _parse_ip_block(rep, fields["ipBlock"], f"{path}.ipBlock")
    given = sum(fields.get(k) is not None for k in ("podSelector", "namespaceSelector", "ipBlock"))
    if given == 0:
        rep.required(path, "must specify a peer")
    elif given > 1 and fields.get("ipBlock") is not None:
        rep.forbidden(path, "may not specify both ipBlock and another peer")
    return Peer(pod_selector=pods, namespace_selector=spaces, ip_block=block)


def _parse_cidr(
    rep: FieldReport, raw: object, path: str
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    text = rep.string(raw, path)
    if text is None:
        return None
    try:
        if "/" not in text:
            raise ValueError(text)
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        rep.invalid(path, text, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
        return None


def _parse_ip_block(rep: FieldReport, raw: object, path: str) -> IPBlock | None:
    fields = rep.mapping(raw, path, ("cidr", "except"))
    if fields is None:
        return None
    cidr = None
    if not fields.get("cidr"):
        rep.required(f"{path}.cidr")
    else:
        cidr = _parse_cidr(rep, fields["cidr"], f"{path}.cidr")
    excepts = []
    for i, item in enumerate(rep.sequence(fields.get("except"), f"{path}.except")):
        net = _parse_cidr(rep, item, f"{path}.except[{i}]")
        if net is None or cidr is None:
            continue
        inside = net.version == cidr.version and net.subnet_of(cidr)  # type: ignore[arg-type]
        if not inside or net.prefixlen <= cidr.prefixlen:
            rep.invalid(f"{path}.except[{i}]", item, "must be a strict subset of `cidr`")
        excepts.append(str(net))
    if cidr is None:
        return None
    return IPBlock(cidr=str(cidr), excepts=tuple(excepts))


def _parse_port(rep: FieldReport, raw: object, path: str) -> PolicyPort | None:
    fields = rep.mapping(raw, path, ("protocol", "port", "endPort"))
    if fields is None:
        return None
    protocol = rep.string(fields.get("protocol"), f"{path}.protocol") or "TCP"
    if protocol not in PROTOCOLS:
        rep.unsupported(f"{path}.protocol", protocol, PROTOCOLS)
    port = fields.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, (int, str))):
        rep.wrong_type(f"{path}.port", port, "intstr.IntOrString")
        port = None
    elif isinstance(port, int):
        _check_port_number(rep, port, f"{path}.port")
    elif isinstance(port, str):
        for problem in port_name_problems(port):
            rep.invalid(f"{path}.port", port, problem)
    end = fields.get("endPort")
    if end is not None and (isinstance(end, bool) or not isinstance(end, int)):
        rep.wrong_type(f"{path}.endPort", end, "int32")
        end = None
    if end is not None:
        if port is None:
            rep.required(f"{path}.port", "must be specified when `endPort` is specified")
        elif isinstance(port, str):
            rep.forbidden(f"{path}.endPort", "may not be specified when `port` is non-numeric")
        elif end < port:
            rep.invalid(f"{path}.endPort", end, "must be greater than or equal to `port`")
        _check_port_number(rep, end, f"{path}.endPort")
    proto: Protocol = protocol if protocol in PROTOCOLS else "TCP"  # type: ignore[assignment]
    return PolicyPort(protocol=proto, port=port, end_port=end)


def _check_port_number(rep: FieldReport, port: int, path: str) -> None:
    if not 1 <= port <= 65535:
        rep.invalid(path, port, "must be between 1 and 65535, inclusive")


def network_policy_to_dict(policy: NetworkPolicy) -> dict[str, Any]:
    """The canonical manifest of ``policy``: defaults written out, empty parts left out."""
    spec: dict[str, Any] = {"podSelector": label_selector_to_dict(policy.pod_selector)}
    if policy.ingress:
        spec["ingress"] = [_rule_to_dict(r, "from") for r in policy.ingress]
    if policy.egress:
        spec["egress"] = [_rule_to_dict(r, "to") for r in policy.egress]
    spec["policyTypes"] = list(policy.policy_types)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": policy.name, "namespace": policy.namespace},
        "spec": spec,
    }


def _rule_to_dict(rule: PolicyRule, peers_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.ports:
        out["ports"] = [_port_to_dict(p) for p in rule.ports]
    if rule.peers:
        out[peers_key] = [_peer_to_dict(p) for p in rule.peers]
    return out


def _peer_to_dict(peer: Peer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if peer.ip_block is not None:
        block: dict[str, Any] = {"cidr": peer.ip_block.cidr}
        if peer.ip_block.excepts:
            block["except"] = list(peer.ip_block.excepts)
        out["ipBlock"] = block
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = label_selector_to_dict(peer.namespace_selector)
    if peer.pod_selector is not None:
        out["podSelector"] = label_selector_to_dict(peer.pod_selector)
    return out


def _port_to_dict(port: PolicyPort) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": port.protocol}
    if port.port is not None:
        out["port"] = port.port
    if port.end_port is not None:
        out["endPort"] = port.end_port
    return out
