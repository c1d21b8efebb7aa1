"""Which pods `testbed matrix` and `verify` cover (testbed.api.matrix_pods): kube-system,
home of the cluster DNS pod that serves only port 53, only when asked for."""

from __future__ import annotations

from testbed.api import PodStatus, matrix_pods


def pod(namespace: str, name: str) -> PodStatus:
    return PodStatus(namespace, name, "10.65.0.1", "host1", "cali0", f"lab.{namespace}.{name}")


PODS = [pod("y", "b"), pod("kube-system", "coredns-x2b4c"), pod("x", "a"), pod("y", "a")]


def keys(pods: list[PodStatus]) -> list[str]:
    return [f"{p.namespace}/{p.name}" for p in pods]


def test_by_default_every_namespace_but_kube_system_sorted() -> None:
    assert keys(matrix_pods(PODS)) == ["x/a", "y/a", "y/b"]


def test_kube_system_when_named_or_with_all_namespaces() -> None:
    assert keys(matrix_pods(PODS, ["kube-system", "x"])) == ["kube-system/coredns-x2b4c", "x/a"]
    assert keys(matrix_pods(PODS, all_namespaces=True)) == ["kube-system/coredns-x2b4c", "x/a", "y/a", "y/b"]
    assert keys(matrix_pods(PODS, ["y"])) == ["y/a", "y/b"]
