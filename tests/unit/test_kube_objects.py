"""kubectl's storage for Namespace and NetworkPolicy, on the in-memory datastore."""

from __future__ import annotations

import pytest

from testbed.datastore import keys
from testbed.datastore.memory import MemoryDatastore
from testbed.kube import edits, objects, sources
from testbed.kube.errors import ManifestError

DENY = """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: default-deny, namespace: policy-demo}
spec:
  podSelector:
    matchLabels: {}
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: policy-demo, labels: {role: demo}}\n"


def apply(store: MemoryDatastore, text: str, create_only: bool = False) -> list[str]:
    parsed = objects.parse_objects(sources.load_documents(text, "test.yaml"), None)
    return [c.line() for c in objects.store_objects(store, "lab", parsed, create_only=create_only)]


def test_namespace_then_policy_created_configured_unchanged() -> None:
    store = MemoryDatastore()
    assert apply(store, NAMESPACE + "---\n" + DENY) == [
        'namespace "policy-demo" created',
        'networkpolicy.networking.k8s.io "default-deny" created',
    ]
    assert apply(store, NAMESPACE + "---\n" + DENY) == [
        'namespace "policy-demo" unchanged',
        'networkpolicy.networking.k8s.io "default-deny" unchanged',
    ]
    profile = store.get(keys.namespace_profile("policy-demo"))
    assert profile is not None and profile["spec"]["labelsToApply"]["pcns.role"] == "demo"
    changed = DENY.replace("matchLabels: {}", "matchLabels: {app: x}")
    assert apply(store, changed) == ['networkpolicy.networking.k8s.io "default-deny" configured']


def test_create_refuses_existing_objects_and_stores_nothing_new() -> None:
    store = MemoryDatastore()
    apply(store, NAMESPACE)
    before = store.revision()
    with pytest.raises(ManifestError, match=r'AlreadyExists\): namespaces "policy-demo" already exists'):
        apply(store, NAMESPACE, create_only=True)
    assert store.revision() == before


def test_a_bad_document_stores_nothing_at_all() -> None:
    store = MemoryDatastore()
    bad = NAMESPACE + "---\n" + DENY + "---\nkind: Frobnicator\napiVersion: v9\nmetadata: {name: x}\n"
    with pytest.raises(ManifestError, match='no matches for kind "Frobnicator"'):
        apply(store, bad)
    assert store.list(keys.K8S_NAMESPACES) == {}


def test_policy_needs_its_namespace() -> None:
    with pytest.raises(ManifestError, match=r'NotFound\): namespaces "policy-demo" not found'):
        apply(MemoryDatastore(), DENY)


def test_yaml_errors_name_the_source_and_line() -> None:
    with pytest.raises(ManifestError, match=r"error parsing test.yaml: line 2 column"):
        sources.load_documents("kind: Namespace\n  bad: [\n", "test.yaml")


def test_label_namespace_updates_the_profile_and_needs_overwrite() -> None:
    store = MemoryDatastore()
    apply(store, NAMESPACE)
    with pytest.raises(ManifestError, match=r"'role' already has a value \(demo\), and --overwrite is false"):
        edits.label(store, "ns", "default", "policy-demo", ["role=other"], overwrite=False)
    edits.label(store, "ns", "default", "policy-demo", ["role=other", "team=a"], overwrite=True)
    applied = store.get(keys.namespace_profile("policy-demo"))["spec"]["labelsToApply"]  # type: ignore[index]
    assert applied["pcns.role"] == "other" and applied["pcns.team"] == "a"
    edits.label(store, "ns", "default", "policy-demo", ["team-"], overwrite=False)
    applied = store.get(keys.namespace_profile("policy-demo"))["spec"]["labelsToApply"]  # type: ignore[index]
    assert "pcns.team" not in applied
    assert applied["pcns.kubernetes.io/metadata.name"] == "policy-demo"


def test_delete_policies_by_name_and_all() -> None:
    store = MemoryDatastore()
    apply(store, NAMESPACE + "---\n" + DENY)
    with pytest.raises(ManifestError, match='"nope" not found'):
        edits.delete_policies(store, "policy-demo", ["nope"], everything=False)
    assert [c.line() for c in edits.delete_policies(store, "policy-demo", [], everything=True)] == [
        'networkpolicy.networking.k8s.io "default-deny" deleted'
    ]
    assert edits.get(store, "netpol", "policy-demo") == []


def test_result_lines_follow_the_manifest_order() -> None:
    from testbed.kube.objects import Change, in_manifest_order

    # processed namespaces first: file positions 2, 0 (no change), 1 with two changes
    changes = [Change("namespace", "ns", "created"), Change("service", "a", "created"), Change("service", "b", "created")]
    ordered = in_manifest_order(changes, [(2, 0), (0, 1), (1, 1)])
    assert [c.name for c in ordered] == ["a", "b", "ns"]
