"""NetworkPolicy manifests: defaults, strict validation with kubectl-like lines, round trip."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.kube import (
    ManifestError,
    network_policy_to_dict,
    parse_label_selector,
    parse_network_policy,
)
from testbed.model.policy import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    PolicyRule,
    Requirement,
)

POLICIES = Path(__file__).resolve().parent.parent / "data" / "policies"
INVALID = 'The NetworkPolicy "default-deny" is invalid: '
DECODING = 'NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy: '


def manifest(spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", **metadata},
        "spec": spec if spec is not None else {"podSelector": {}},
    }


def errors(obj: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_network_policy(obj, **kwargs)
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


def all_documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}#{i}", doc)
        for path in sorted(POLICIES.glob("*.yaml"))
        for i, doc in enumerate(yaml.safe_load_all(path.read_text()))
    ]


# -- defaults --


def test_minimal_policy_defaults() -> None:
    policy = parse_network_policy(manifest({}), default_namespace="x")
    assert policy == NetworkPolicy(
        namespace="x", name="default-deny", pod_selector=LabelSelector(), policy_types=("Ingress",)
    )


def test_manifest_namespace_wins_over_default_unless_explicit() -> None:
    assert parse_network_policy(manifest(namespace="y"), default_namespace="x").namespace == "y"
    assert parse_network_policy(manifest(namespace="x"), "x", explicit_namespace=True).namespace == "x"
    assert errors(manifest(namespace="y"), default_namespace="x", explicit_namespace=True) == [
        'the namespace from the provided object "y" does not match the namespace "x". '
        "You must pass '--namespace=y' to perform this operation."
    ]


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ({"ingress": [{}]}, ("Ingress",)),
        ({"egress": [{}]}, ("Ingress", "Egress")),
        ({"egress": []}, ("Ingress",)),
        ({"egress": [{}], "policyTypes": ["Egress"]}, ("Egress",)),
        ({"policyTypes": ["Egress", "Ingress"]}, ("Egress", "Ingress")),
        ({"policyTypes": ["Egress", "Egress"]}, ("Egress",)),
    ],
)
def test_policy_types_default_as_the_api_server(spec: dict[str, Any], types: tuple[str, ...]) -> None:
    assert parse_network_policy(manifest(spec)).policy_types == types


def test_rules_peers_and_ports() -> None:
    policy = parse_network_policy(
        manifest(
            {
                "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b", "a", "a"]}]},
                "ingress": [
                    {"from": []},
                    {
                        "from": [
                            {"podSelector": {"matchLabels": {"pod": "a"}}, "namespaceSelector": {}},
                            {"ipBlock": {"cidr": "10.65.1.7/16", "except": ["10.65.1.0/24"]}},
                        ],
                        "ports": [
                            {"port": 80},
                            {"port": "serve-81-udp", "protocol": "UDP"},
                            {"port": 1000, "endPort": 2000, "protocol": "SCTP"},
                            {"protocol": "UDP"},
                        ],
                    },
                ],
            }
        )
    )
    assert policy.pod_selector.match_expressions == (Requirement("pod", "In", ("a", "b")),)
    assert policy.ingress[0] == PolicyRule()  # empty from = every peer, no ports = every port
    assert policy.ingress[1] == PolicyRule(
        peers=(
            Peer(pod_selector=LabelSelector(match_labels=(("pod", "a"),)), namespace_selector=LabelSelector()),
            Peer(ip_block=IPBlock("10.65.0.0/16", ("10.65.1.0/24",))),
        ),
        ports=(
            PolicyPort("TCP", 80),
            PolicyPort("UDP", "serve-81-udp"),
            PolicyPort("SCTP", 1000, 2000),
            PolicyPort("UDP"),
        ),
    )


def test_parse_label_selector_alone_raises() -> None:
    assert parse_label_selector({"matchLabels": {"a": "b"}}, "x") == LabelSelector((("a", "b"),))
    with pytest.raises(ManifestError) as caught:
        parse_label_selector({"matchExpressions": [{"key": "a", "operator": "In"}]}, "sel")
    assert caught.value.lines == [
        'The LabelSelector "" is invalid: sel.matchExpressions[0].values: Required value: '
        "must be specified when `operator` is 'In' or 'NotIn'"
    ]


# -- round trip --


@pytest.mark.parametrize(("name", "doc"), all_documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_round_trip(name: str, doc: dict[str, Any]) -> None:
    policy = parse_network_policy(doc)
    canonical = network_policy_to_dict(policy)
    assert parse_network_policy(copy.deepcopy(canonical)) == policy
    assert network_policy_to_dict(parse_network_policy(canonical)) == canonical


def test_canonical_form_writes_defaults() -> None:
    policy = parse_network_policy(
        yaml.safe_load((POLICIES / "egress-without-policy-types.yaml").read_text())
    )
    assert network_policy_to_dict(policy) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "egress-to-80-default-types", "namespace": "x"},
        "spec": {
            "podSelector": {"matchLabels": {"pod": "a"}},
            "egress": [{"ports": [{"protocol": "TCP", "port": 80}]}],
            "policyTypes": ["Ingress", "Egress"],
        },
    }


# -- errors: one exact line per problem --

LABEL_RULE = "at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("port out of range", {"ingress": [{"ports": [{"port": 70000}]}]},
     [INVALID + "spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
    ("port zero on egress", {"egress": [{"ports": [{"port": 0}]}]},
     [INVALID + "spec.egress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"]),
    ("bad port name", {"ingress": [{"ports": [{"port": "http_x"}]}]},
     [INVALID + 'spec.ingress[0].ports[0].port: Invalid value: "http_x": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)']),
    ("numeric string port", {"ingress": [{"ports": [{"port": "80"}]}]},
     [INVALID + 'spec.ingress[0].ports[0].port: Invalid value: "80": must contain at least one letter (a-z)']),
    ("endPort without port", {"ingress": [{"ports": [{"endPort": 90}]}]},
     [INVALID + "spec.ingress[0].ports[0].port: Required value: must be specified when `endPort` is specified"]),
    ("endPort with named port", {"ingress": [{"ports": [{"port": "web", "endPort": 90}]}]},
     [INVALID + "spec.ingress[0].ports[0].endPort: Forbidden: may not be specified when `port` is non-numeric"]),
    ("endPort below port", {"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
     [INVALID + "spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`"]),
    ("endPort out of range", {"ingress": [{"ports": [{"port": 90, "endPort": 65536}]}]},
     [INVALID + "spec.ingress[0].ports[0].endPort: Invalid value: 65536: must be between 1 and 65535, inclusive"]),
    ("protocol", {"egress": [{"ports": [{"protocol": "tcp"}]}]},
     [INVALID + 'spec.egress[0].ports[0].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"']),
    ("empty peer", {"ingress": [{"from": [{}]}]},
     [INVALID + "spec.ingress[0].from[0]: Required value: must specify a peer"]),
    ("ipBlock plus selector", {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}]},
     [INVALID + "spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer"]),
    ("bad cidr", {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]},
     [INVALID + 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)']),
    ("cidr without prefix", {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.1"}}]}]},
     [INVALID + 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.1": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)']),
    ("missing cidr", {"ingress": [{"from": [{"ipBlock": {"except": ["10.0.0.0/8"]}}]}]},
     [INVALID + "spec.ingress[0].from[0].ipBlock.cidr: Required value"]),
    ("except outside cidr", {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24", "10.0.0.0/16"]}}]}]},
     [INVALID + 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`',
      INVALID + 'spec.ingress[0].from[0].ipBlock.except[1]: Invalid value: "10.0.0.0/16": must be a strict subset of `cidr`']),
    ("bad except", {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["nope"]}}]}]},
     [INVALID + 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "nope": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)']),
    ("label key", {"podSelector": {"matchLabels": {"bad key": "v"}}},
     [INVALID + f"spec.podSelector.matchLabels: Invalid value: \"bad key\": label key 'bad key': name 'bad key' must be {LABEL_RULE}"]),
    ("label value", {"ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "-x"}}}]}]},
     [INVALID + f"spec.ingress[0].from[0].podSelector.matchLabels: Invalid value: \"-x\": label 'app': value '-x' must be empty or {LABEL_RULE}"]),
    ("unknown operator", {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}},
     [INVALID + 'spec.podSelector.matchExpressions[0].operator: Invalid value: "Has": not a valid selector operator']),
    ("values with Exists", {"ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}]}]},
     [INVALID + "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"]),
    ("no values with In", {"podSelector": {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}},
     [INVALID + "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"]),
    ("expression key", {"podSelector": {"matchExpressions": [{"key": "a/b/c", "operator": "Exists"}]}},
     [INVALID + "spec.podSelector.matchExpressions[0].key: Invalid value: \"a/b/c\": label key 'a/b/c' has more than one '/'"]),
    ("policy type", {"policyTypes": ["ingress"]},
     [INVALID + 'spec.policyTypes[0]: Unsupported value: "ingress": supported values: "Ingress", "Egress"']),
    ("too many policy types", {"policyTypes": ["Ingress", "Egress", "Ingress"]},
     [INVALID + 'spec.policyTypes: Invalid value: ["Ingress", "Egress", "Ingress"]: may not specify more than two policyTypes']),
    ("unknown fields", {"podSelecter": {}, "ingress": [{"fromm": []}]},
     [DECODING + 'strict decoding error: unknown field "spec.podSelecter"',
      DECODING + 'strict decoding error: unknown field "spec.ingress[0].fromm"']),
    ("wrong types", {"ingress": {"from": []}, "egress": [{"ports": [{"port": True, "endPort": "90"}]}]},
     [DECODING + "json: cannot unmarshal object into Go struct field spec.ingress of type array",
      DECODING + "json: cannot unmarshal bool into Go struct field spec.egress[0].ports[0].port of type intstr.IntOrString",
      DECODING + "json: cannot unmarshal string into Go struct field spec.egress[0].ports[0].endPort of type int32"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "spec", "lines"), CASES, ids=[c[0] for c in CASES])
def test_invalid_spec(case: str, spec: dict[str, Any], lines: list[str]) -> None:
    assert errors(manifest(spec)) == lines


def test_all_problems_are_collected_in_document_order() -> None:
    spec = {
        "podSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]},
        "ingress": [{"ports": [{"port": 0}], "from": [{}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "x"}}]}],
    }
    assert errors(manifest(spec)) == [
        INVALID + 'spec.podSelector.matchExpressions[0].operator: Invalid value: "Has": not a valid selector operator',
        INVALID + "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        INVALID + "spec.ingress[0].from[0]: Required value: must specify a peer",
        INVALID + 'spec.egress[0].to[0].ipBlock.cidr: Invalid value: "x": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',
    ]  # fmt: skip


def test_metadata_problems() -> None:
    obj = manifest(namespace="Bad_NS", labels={"ok": "-bad"})
    obj["metadata"]["name"] = "Default_Deny"
    obj["metadata"]["owner"] = "me"
    head = 'The NetworkPolicy "Default_Deny" is invalid: '
    assert errors(obj) == [
        DECODING + 'strict decoding error: unknown field "metadata.owner"',
        head + 'metadata.name: Invalid value: "Default_Deny": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character',
        head + 'metadata.namespace: Invalid value: "Bad_NS": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\', and must start and end with an alphanumeric character',
        head + f"metadata.labels: Invalid value: \"-bad\": label 'ok': value '-bad' must be empty or {LABEL_RULE}",
    ]  # fmt: skip
    del obj["metadata"]["name"]
    assert 'The NetworkPolicy "" is invalid: metadata.name: Required value: name or generateName is required' in errors(obj)


def test_name_too_long() -> None:
    name = "a" * 254
    lines = errors({**manifest(), "metadata": {"name": name}})
    assert lines == [f'The NetworkPolicy "{name}" is invalid: metadata.name: Invalid value: "{name}": must be no more than 253 characters']


@pytest.mark.parametrize(
    ("version", "kind", "line"),
    [
        ("v1", "NetworkPolicy", 'no matches for kind "NetworkPolicy" in version "v1"'),
        ("networking.k8s.io/v1", "NetPol", 'no matches for kind "NetPol" in version "networking.k8s.io/v1"'),
        ("networking.k8s.io/v1", None, "Object 'Kind' is missing in the manifest"),
        (None, "NetworkPolicy", "Object 'apiVersion' is missing in the manifest"),
    ],
)
def test_wrong_api_version_or_kind(version: str | None, kind: str | None, line: str) -> None:
    obj = {**manifest(), "apiVersion": version, "kind": kind}
    assert errors({k: v for k, v in obj.items() if v is not None}) == [line]


def test_unknown_top_level_field() -> None:
    assert errors({**manifest(), "status": {}}) == [DECODING + 'strict decoding error: unknown field "status"']
