"""Label keys and values on namespaces and pods, with their exact messages."""

from __future__ import annotations

import pytest

from testbed.topology import topology_from_dict
from tests.unit.test_topology_validate import SOURCE, only_problem, with_pods

_NAME_RULE = (
    "at most 63 characters of letters, digits, '-', '_' and '.', "
    "starting and ending with a letter or digit"
)


@pytest.mark.parametrize(
    "key",
    [
        "app",
        "App_1.x-y",
        "example.com/app",
        "a/b",
        "x" * 63,
        "k8s.io/" + "x" * 63,
        "a" * 253 + "/b",
    ],
)
def test_valid_label_keys(key: str) -> None:
    topology = topology_from_dict(with_pods({"name": "p", "labels": {key: ""}}), SOURCE)
    assert topology.pods[0].label_dict == {key: ""}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "label key '' is empty"),
        ("-app", f"label key '-app': name '-app' must be {_NAME_RULE}"),
        ("x" * 64, f"label key '{'x' * 64}': name '{'x' * 64}' must be {_NAME_RULE}"),
        ("a/b/c", "label key 'a/b/c' has more than one '/'"),
        (
            "Example.com/app",
            "label key 'Example.com/app': prefix 'Example.com' is not a DNS subdomain "
            "(at most 253 characters of lowercase letters, digits, '-' and '.')",
        ),
        ("example.com/", f"label key 'example.com/': name '' must be {_NAME_RULE}"),
    ],
)
def test_invalid_label_keys(key: str, message: str) -> None:
    data = {"hosts": ["h"], "namespaces": {"demo": {"labels": {key: "v"}}}}
    assert only_problem(data) == f"{SOURCE}: namespaces.demo.labels: {message}"


def test_label_key_must_be_a_string() -> None:
    assert only_problem(with_pods({"name": "p", "labels": {1: "x"}})) == (
        f"{SOURCE}: pods[0].labels: label key 1 must be a string, got an integer (quote it)"
    )


@pytest.mark.parametrize("value", ["-x", "a b", "v" * 64, "x/y"])
def test_invalid_label_values(value: str) -> None:
    assert only_problem(with_pods({"name": "p", "labels": {"app": value}})) == (
        f"{SOURCE}: pods[0].labels: label 'app': value {value!r} must be empty or {_NAME_RULE}"
    )


def test_labels_are_sorted_pairs() -> None:
    data = with_pods({"name": "p", "labels": {"tier": "web", "app": ""}})
    assert topology_from_dict(data, SOURCE).pods[0].labels == (("app", ""), ("tier", "web"))
