"""The oracle on the upstream conformance model: namespaces x, y, z; pods a, b, c in each.

Each case loads manifests from tests/data/policies/ and asserts the whole 9x9 matrix,
printed as policy-assistant does ('.' allowed, 'X' denied; rows are sources).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from testbed.kube.policy import parse_network_policy
from testbed.model.policy import (
    Endpoint,
    LabelSelector,
    NamedPort,
    Namespace,
    NetworkPolicy,
    Requirement,
)
from testbed.oracle import RuleRef, evaluate, explain, matrix, selector_matches

POLICIES = Path(__file__).resolve().parent.parent / "data" / "policies"
NAMES = ("x", "y", "z")
PODS = ("a", "b", "c")
SERVE_PORTS = tuple(
    NamedPort(f"serve-{port}-{proto.lower()}", proto, port)  # type: ignore[arg-type]
    for port in (80, 81)
    for proto in ("TCP", "UDP")
)


def model_namespaces(**relabel: dict[str, str]) -> dict[str, Namespace]:
    out = {}
    for name in NAMES:
        labels = relabel.get(name, {"ns": name, "kubernetes.io/metadata.name": name})
        out[name] = Namespace(name, tuple(sorted(labels.items())))
    return out


def model_pods() -> list[Endpoint]:
    return [
        Endpoint(
            namespace=ns,
            name=pod,
            ip=f"10.65.{i}.{10 + j}",
            host=f"host{j + 1}",
            labels=(("pod", pod),),
            ports=SERVE_PORTS,
        )
        for i, ns in enumerate(NAMES)
        for j, pod in enumerate(PODS)
    ]


def load(*files: str) -> list[NetworkPolicy]:
    out = []
    for file in files:
        for doc in yaml.safe_load_all((POLICIES / file).read_text()):
            out.append(parse_network_policy(doc))
    return out


def format_matrix(names: list[str], grid: list[list[bool]]) -> str:
    """policy-assistant's truth table: a header of destinations, a row per source."""
    width = max(len(n) for n in names)
    lines = [" " * width + " " + " ".join(n.ljust(width) for n in names)]
    for name, row in zip(names, grid):
        cells = " ".join(("." if ok else "X").ljust(width) for ok in row)
        lines.append(f"{name.ljust(width)} {cells}".rstrip())
    return "\n".join(lines)


def parse_expected(text: str) -> list[list[bool]]:
    """Rows like ``x/a  .XX ... ...``: the source, then the 9 destinations x/a..z/c."""
    grid = []
    for line in text.strip().splitlines():
        cells = "".join(line.split()[1:])
        assert len(cells) == 9 and set(cells) <= {".", "X"}, line
        grid.append([c == "." for c in cells])
    assert len(grid) == 9
    return grid


def assert_matrix(
    policies: list[NetworkPolicy],
    expected: str,
    port: int = 80,
    protocol: str = "TCP",
    namespaces: dict[str, Namespace] | None = None,
    pods: list[Endpoint] | None = None,
) -> None:
    pods = pods or model_pods()
    names = [p.key for p in pods]
    got = matrix(pods, port, protocol, policies, namespaces or model_namespaces())
    want = parse_expected(expected)
    wrong = [
        f"{names[i]} -> {names[j]}"
        for i in range(len(names))
        for j in range(len(names))
        if got[i][j] != want[i][j]
    ]
    assert not wrong, (
        f"{port}/{protocol}: expected\n{format_matrix(names, want)}\n"
        f"got\n{format_matrix(names, got)}\nwrong: {', '.join(wrong)}"
    )


ALL_ALLOWED = "\n".join(f"{ns}/{pod} ... ... ..." for ns in NAMES for pod in PODS)
ONLY_X_A_COLUMN_DENIED = "x/a ... ... ...\n" + "\n".join(
    f"{ns}/{pod} X.. ... ..." for ns in NAMES for pod in PODS if (ns, pod) != ("x", "a")
)
ONLY_X_A_ROW_DENIED = "x/a .XX XXX XXX\n" + "\n".join(
    f"{ns}/{pod} ... ... ..." for ns in NAMES for pod in PODS if (ns, pod) != ("x", "a")
)


def test_no_policy_allows_everything() -> None:
    assert_matrix([], ALL_ALLOWED)


def test_deny_all_ingress() -> None:
    assert_matrix(
        load("deny-all-ingress.yaml"),
        """
        x/a .XX ... ...
        x/b X.X ... ...
        x/c XX. ... ...
        y/a XXX ... ...
        y/b XXX ... ...
        y/c XXX ... ...
        z/a XXX ... ...
        z/b XXX ... ...
        z/c XXX ... ...
        """,
    )


def test_deny_all_egress() -> None:
    assert_matrix(
        load("deny-all-egress.yaml"),
        """
        x/a .XX XXX XXX
        x/b X.X XXX XXX
        x/c XX. XXX XXX
        y/a ... ... ...
        y/b ... ... ...
        y/c ... ... ...
        z/a ... ... ...
        z/b ... ... ...
        z/c ... ... ...
        """,
    )


def test_allow_from_same_namespace() -> None:
    assert_matrix(
        load("allow-same-namespace.yaml"),
        """
        x/a ... ... ...
        x/b ... ... ...
        x/c ... ... ...
        y/a XXX ... ...
        y/b XXX ... ...
        y/c XXX ... ...
        z/a XXX ... ...
        z/b XXX ... ...
        z/c XXX ... ...
        """,
    )


FROM_Y_ONLY = """
    x/a ... ... ...
    x/b X.. ... ...
    x/c X.. ... ...
    y/a ... ... ...
    y/b ... ... ...
    y/c ... ... ...
    z/a X.. ... ...
    z/b X.. ... ...
    z/c X.. ... ...
"""


def test_allow_from_namespace_selector() -> None:
    assert_matrix(load("allow-from-namespace-y.yaml"), FROM_Y_ONLY)


def test_pod_and_namespace_selector_in_one_peer() -> None:
    assert_matrix(
        load("pod-and-namespace-one-peer.yaml"),
        """
        x/a ... ... ...
        x/b X.. ... ...
        x/c X.. ... ...
        y/a X.. ... ...
        y/b ... ... ...
        y/c X.. ... ...
        z/a X.. ... ...
        z/b X.. ... ...
        z/c X.. ... ...
        """,
    )


FROM_X_B_OR_Y = """
    x/a ... ... ...
    x/b ... ... ...
    x/c X.. ... ...
    y/a ... ... ...
    y/b ... ... ...
    y/c ... ... ...
    z/a X.. ... ...
    z/b X.. ... ...
    z/c X.. ... ...
"""


def test_pod_and_namespace_selector_as_two_peers() -> None:
    assert_matrix(load("pod-and-namespace-two-peers.yaml"), FROM_X_B_OR_Y)


def test_ip_block_with_except() -> None:
    policies = load("ip-block-except.yaml")
    assert_matrix(
        policies,
        """
        x/a ... ... ...
        x/b ... ... ...
        x/c ... ... ...
        y/a X.. ... ...
        y/b X.. ... ...
        y/c X.. ... ...
        z/a ... ... ...
        z/b ... ... ...
        z/c ... ... ...
        """,
    )
    x_a = model_pods()[0]
    outside = evaluate("192.0.2.7", x_a, 80, "TCP", policies, model_namespaces())
    assert not outside.allowed
    inside = evaluate("10.65.200.1", x_a, 80, "TCP", policies, model_namespaces())
    assert inside.allowed and not inside.egress.isolated  # an outside address is not judged


def test_named_port_ingress() -> None:
    policies = load("named-port-ingress.yaml")
    assert_matrix(policies, ALL_ALLOWED, port=80, protocol="TCP")
    assert_matrix(policies, ONLY_X_A_COLUMN_DENIED, port=81, protocol="TCP")
    assert_matrix(policies, ONLY_X_A_COLUMN_DENIED, port=80, protocol="UDP")


def test_named_port_egress_resolves_against_the_destination() -> None:
    policies = load("named-port-egress.yaml")
    assert_matrix(policies, ALL_ALLOWED, port=81, protocol="UDP")
    assert_matrix(policies, ONLY_X_A_ROW_DENIED, port=80, protocol="UDP")
    assert_matrix(policies, ONLY_X_A_ROW_DENIED, port=81, protocol="TCP")
    # a destination without that named port is not matched
    pods = model_pods()
    bare = dataclasses.replace(pods[4], ports=(NamedPort("serve-81-udp", "UDP", 8181),))
    verdict = evaluate(pods[0], bare, 81, "UDP", policies, model_namespaces())
    assert not verdict.allowed and verdict.egress.isolating == ("x/egress-serve-81-udp",)
    assert evaluate(pods[0], "192.0.2.1", 81, "UDP", policies, model_namespaces()).allowed is False


def test_end_port() -> None:
    policies = load("end-port.yaml")
    assert_matrix(policies, ALL_ALLOWED, port=80)
    assert_matrix(policies, ALL_ALLOWED, port=81)
    assert_matrix(policies, ONLY_X_A_COLUMN_DENIED, port=82)
    assert_matrix(policies, ONLY_X_A_COLUMN_DENIED, port=80, protocol="UDP")


def test_egress_to_a_port() -> None:
    policies = load("egress-to-port.yaml")
    assert_matrix(policies, ALL_ALLOWED, port=80)
    assert_matrix(policies, ONLY_X_A_ROW_DENIED, port=81)


def test_egress_rules_without_policy_types_also_isolate_ingress() -> None:
    policies = load("egress-without-policy-types.yaml")
    assert policies[0].policy_types == ("Ingress", "Egress")
    assert_matrix(policies, ONLY_X_A_COLUMN_DENIED, port=80)


def test_multiple_policies_are_a_union() -> None:
    assert_matrix(load("multiple-policies.yaml"), FROM_X_B_OR_Y)
    assert_matrix(load("deny-all-plus-allow-all.yaml"), ALL_ALLOWED)


def test_match_expressions() -> None:
    assert_matrix(
        load("match-expressions.yaml"),
        """
        x/a ... ... ...
        x/b ... ... ...
        x/c ... ... ...
        y/a XX. ... ...
        y/b XX. ... ...
        y/c XX. ... ...
        z/a ... ... ...
        z/b ... ... ...
        z/c ... ... ...
        """,
    )


def test_namespace_label_change_takes_effect() -> None:
    policies = load("allow-from-namespace-y.yaml")
    assert_matrix(policies, FROM_Y_ONLY)
    relabelled = model_namespaces(z={"ns": "y", "kubernetes.io/metadata.name": "z"})
    expected = FROM_Y_ONLY.replace("z/a X..", "z/a ...").replace("z/b X..", "z/b ...")
    assert_matrix(policies, expected.replace("z/c X..", "z/c ..."), namespaces=relabelled)


def test_pod_label_change_takes_effect() -> None:
    policies = load("multiple-policies.yaml")
    pods = model_pods()
    pods[2] = dataclasses.replace(pods[2], labels=(("pod", "b"),))  # x/c now looks like x/b
    assert_matrix(policies, FROM_X_B_OR_Y.replace("x/c X..", "x/c ..."), pods=pods)
    pods[0] = dataclasses.replace(pods[0], labels=(("pod", "z"),))  # x/a no longer selected
    assert_matrix(policies, ALL_ALLOWED, pods=pods)


def test_sctp_is_its_own_protocol() -> None:
    doc = yaml.safe_load((POLICIES / "end-port.yaml").read_text())
    doc["spec"]["ingress"][0]["ports"][0]["protocol"] = "SCTP"
    policies = [parse_network_policy(doc)]
    assert_matrix(policies, ALL_ALLOWED, port=81, protocol="sctp")
    assert_matrix(policies, ONLY_X_A_COLUMN_DENIED, port=81, protocol="TCP")


def test_verdict_details_and_explain() -> None:
    pods = model_pods()
    x_a, x_b, y_a = pods[0], pods[1], pods[3]
    spaces = model_namespaces()
    deny = load("deny-all-ingress.yaml")
    verdict = evaluate(x_b, x_a, 80, "TCP", deny, spaces)
    assert not verdict.allowed and verdict.ingress.isolated and not verdict.egress.isolated
    assert verdict.ingress.isolating == ("x/default-deny-ingress",)
    assert explain(verdict) == (
        "denied: ingress to x/a is isolated by x/default-deny-ingress and no rule allows x/b"
    )
    both = load("multiple-policies.yaml")
    verdict = evaluate(y_a, x_a, 80, "TCP", deny + both, spaces)
    assert verdict.ingress.allowed_by == (RuleRef("x/allow-from-y", "Ingress", 0),)
    assert explain(verdict) == "allowed by x/allow-from-y ingress rule 0"
    assert explain(evaluate(y_a, x_b, 80, "TCP", [], spaces)) == (
        "allowed: no policy isolates egress from y/a or ingress to x/b"
    )
    out = load("deny-all-egress.yaml")
    verdict = evaluate(x_a, y_a, 80, "TCP", out + deny, spaces)
    assert explain(verdict) == (
        "denied: egress from x/a is isolated by x/default-deny-egress and no rule allows y/a"
    )
    verdict = evaluate(x_a, x_a, 80, "TCP", out + deny, spaces)
    assert verdict.allowed and verdict.loopback and not verdict.ingress.allowed
    assert explain(verdict) == "allowed: x/a to itself never leaves the pod, no policy applies"


@pytest.mark.parametrize(
    ("requirement", "labels", "expected"),
    [
        (Requirement("pod", "In", ("a", "b")), {"pod": "b"}, True),
        (Requirement("pod", "In", ("a", "b")), {}, False),
        (Requirement("pod", "NotIn", ("a",)), {}, True),
        (Requirement("pod", "NotIn", ("a",)), {"pod": "a"}, False),
        (Requirement("pod", "Exists"), {"pod": ""}, True),
        (Requirement("pod", "Exists"), {"app": "x"}, False),
        (Requirement("pod", "DoesNotExist"), {"app": "x"}, True),
        (Requirement("pod", "DoesNotExist"), {"pod": "a"}, False),
    ],
)
def test_selector_matches(requirement: Requirement, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(LabelSelector(match_expressions=(requirement,)), labels) is expected


def test_selector_matches_labels_and_expressions_together() -> None:
    selector = LabelSelector(
        match_labels=(("app", "web"),), match_expressions=(Requirement("tier", "Exists"),)
    )
    assert selector_matches(selector, {"app": "web", "tier": "1"})
    assert not selector_matches(selector, {"app": "web"})
    assert not selector_matches(selector, {"app": "db", "tier": "1"})
    assert selector_matches(LabelSelector(), {})
