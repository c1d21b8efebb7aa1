"""The resource registry: one definition per kind, every kubectl name resolves to it."""

from __future__ import annotations

import pytest

from testbed.datastore import keys
from testbed.kube import registry


@pytest.mark.parametrize(
    "name, plural",
    [
        ("po", "pods"), ("Pod", "pods"), ("pods", "pods"), ("svc", "services"), ("ns", "namespaces"),
        ("deploy", "deployments"), ("deployment.apps", "deployments"), ("deployments.apps", "deployments"),
        ("rs", "replicasets"), ("rc", "replicationcontrollers"), ("netpol", "networkpolicies"),
        ("networkpolicies.networking.k8s.io", "networkpolicies"), ("sa", "serviceaccounts"),
        ("clusterrole", "clusterroles"), ("clusterroles.rbac.authorization.k8s.io", "clusterroles"),
        ("no", "nodes"),
    ],
)  # fmt: skip
def test_every_kubectl_name_resolves(name: str, plural: str) -> None:
    assert registry.resolve(name).plural == plural


def test_unknown_names_get_kubectl_s_line() -> None:
    with pytest.raises(registry.UnknownKind, match='the server doesn\'t have a resource type "widgets"'):
        registry.resolve("widgets")


def test_names_are_unique_and_kinds_defined_once() -> None:
    kinds = [k.kind for k in registry.KINDS]
    assert len(kinds) == len(set(kinds))
    plurals = [(k.group, k.plural) for k in registry.KINDS]
    assert len(plurals) == len(set(plurals))


def test_keys_and_scopes_follow_the_registry_layout() -> None:
    pod = registry.BY_KIND["Pod"]
    assert pod.key("demo", "a") == keys.pod("demo", "a")
    assert pod.scope("demo") == keys.pods_in("demo") and pod.scope(None) == keys.PODS
    ns = registry.BY_KIND["Namespace"]
    assert ns.key(None, "demo") == keys.k8s_namespace("demo") and not ns.namespaced
    role = registry.BY_KIND["ClusterRole"]
    assert role.key(None, "admin") == f"{keys.OTHER_OBJECTS}clusterroles.rbac.authorization.k8s.io/_cluster/admin"
    cm = registry.BY_KIND["ConfigMap"]
    assert cm.key("demo", "x") == f"{keys.OTHER_OBJECTS}configmaps/demo/x"


def test_result_line_names_and_versions() -> None:
    deploy = registry.BY_KIND["Deployment"]
    assert (deploy.singular, deploy.resource, deploy.api_version) == ("deployment.apps", "deployments.apps", "apps/v1")
    assert registry.accepts(deploy, "extensions/v1beta1") and registry.accepts(deploy, "apps/v1beta2")
    assert not registry.accepts(deploy, "v1")
    assert registry.BY_KIND["Service"].singular == "service"


def test_every_writable_kind_parses_through_its_parser() -> None:
    manifests = {
        "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
        "ConfigMap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
    }  # fmt: skip
    for kind, manifest in manifests.items():
        parsed = registry.BY_KIND[kind].parse(manifest, "default")
        assert getattr(parsed, "name") == manifest["metadata"]["name"]
