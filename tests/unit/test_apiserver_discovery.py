"""Discovery documents and request paths, from the registry (no server)."""

from __future__ import annotations

import pytest

from testbed.apiserver import discovery, paths
from testbed.kube import registry


def test_groups_follow_the_registry_order_with_core_first() -> None:
    names = [g["name"] for g in discovery.api_group_list()["groups"]]
    assert names[:3] == ["apps", "discovery.k8s.io", "coordination.k8s.io"]
    assert names.index("networking.k8s.io") < names.index("rbac.authorization.k8s.io")
    assert discovery.api_versions()["versions"] == ["v1"]
    apps = discovery.api_group("apps")
    assert apps is not None and apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert discovery.api_group("nope.example.com") is None


def test_a_group_version_lists_its_kinds_short_names_categories_and_subresources() -> None:
    core = discovery.resource_list("", "v1", {"pods": ("status",)})
    assert core is not None and core["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"] and by_name["pods"]["categories"] == ["all"]
    assert by_name["pods"]["namespaced"] is True and "watch" in by_name["pods"]["verbs"]
    assert by_name["pods/status"]["kind"] == "Pod"
    assert by_name["namespaces"]["namespaced"] is False and "categories" not in by_name["namespaces"]
    apps = discovery.resource_list("apps", "v1", {})
    assert apps is not None and {r["name"] for r in apps["resources"]} == {"deployments", "replicasets", "daemonsets"}
    assert discovery.resource_list("apps", "v1beta1", {}) is None  # older versions are read from manifests only


def test_the_server_version_is_semver_and_echoes_the_clients_minor() -> None:
    info = discovery.version_info("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07", "0.1.0")
    assert info["major"] == "1" and info["minor"] == "32"
    assert info["gitVersion"] == "v1.32.0+testbed.0.1.0"
    assert discovery.version_info("OpenAPI-Generator/37.0.2/python", "0.1.0")["minor"] == str(discovery.DEFAULT_MINOR)


@pytest.mark.parametrize(
    ("path", "kind", "namespace", "name", "sub"),
    [
        ("/api/v1/pods", "Pod", None, None, None),
        ("/api/v1/namespaces/demo/pods", "Pod", "demo", None, None),
        ("/api/v1/namespaces/demo/pods/pod-a", "Pod", "demo", "pod-a", None),
        ("/api/v1/namespaces/demo/pods/pod-a/status", "Pod", "demo", "pod-a", "status"),
        ("/api/v1/namespaces", "Namespace", None, None, None),
        ("/api/v1/namespaces/demo", "Namespace", None, "demo", None),
        ("/api/v1/namespaces/demo/finalize", "Namespace", None, "demo", "finalize"),
        ("/api/v1/nodes/host1", "Node", None, "host1", None),
        ("/apis/apps/v1/namespaces/demo/deployments/web/scale", "Deployment", "demo", "web", "scale"),
        ("/apis/networking.k8s.io/v1/networkpolicies", "NetworkPolicy", None, None, None),
    ],
)
def test_paths_name_their_kind_namespace_object_and_subresource(
    path: str, kind: str, namespace: str | None, name: str | None, sub: str | None
) -> None:
    assert paths.resolve(path) == paths.Target(registry.BY_KIND[kind], namespace, name, sub)


@pytest.mark.parametrize(
    "path",
    ["/api/v1", "/api/v1/nope", "/apis/apps/v1/pods", "/apis/apps/v1/namespaces/demo/nodes",
     "/api/v1/namespaces/demo/nodes/host1", "/apis/apps/v1beta1/deployments", "/healthz", "/api/v1/pods/a/b/c"],
)  # fmt: skip
def test_paths_outside_the_served_kinds_name_no_route(path: str) -> None:
    with pytest.raises(paths.NoRoute):
        paths.resolve(path)
