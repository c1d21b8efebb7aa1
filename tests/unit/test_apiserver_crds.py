"""CRDs: the kind one defines, and which kinds are served (pure)."""

from __future__ import annotations

from testbed.apiserver import crds, paths
from testbed.kube import registry

WIDGETS = {
    "metadata": {"name": "widgets.example.com", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets",
             "shortNames": ["wd"]}, "versions": [{"name": "v1alpha1", "served": True}, {"name": "v1", "served": True,
             "storage": True}]},
}  # fmt: skip


def test_a_crd_defines_a_stored_kind_in_its_storage_version() -> None:
    kind = crds.kind_of(WIDGETS)
    assert kind is not None and (kind.group, kind.version, kind.plural, kind.short_names) == (
        "example.com", "v1", "widgets", ("wd",))  # fmt: skip
    assert kind.namespaced and kind.stored_only and kind.key("demo", "w1") == "/registry/other/widgets.example.com/demo/w1"
    assert crds.kind_of({"spec": {"group": "x.io"}}) is None  # incomplete: nothing


def test_served_kinds_add_the_crds_kinds_after_the_builtin_ones_which_win() -> None:
    shadow = {"spec": {"group": "securityenforcement.admission.cloud.ibm.com", "names": {"kind": "ClusterImagePolicy",
              "plural": "clusterimagepolicies"}, "versions": [{"name": "v1beta1", "served": True, "storage": True}]}}  # fmt: skip
    kinds = crds.served_kinds([WIDGETS, shadow])
    assert kinds[: len(registry.KINDS)] == registry.KINDS and len(kinds) == len(registry.KINDS) + 1
    target = paths.resolve("/apis/example.com/v1/namespaces/demo/widgets/w1", kinds)
    assert (target.kind.kind, target.namespace, target.name) == ("Widget", "demo", "w1")


def test_a_stored_crd_is_established_at_once() -> None:
    stored = crds.with_status(WIDGETS)
    assert [c["type"] for c in stored["status"]["conditions"]] == ["NamesAccepted", "Established"]
    assert stored["status"]["acceptedNames"]["listKind"] == "WidgetList" and stored["status"]["storedVersions"] == ["v1"]
