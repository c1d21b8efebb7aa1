"""The scale and log subresources' pure parts."""

from __future__ import annotations

from testbed.apiserver import subresources


def test_a_deployments_scale_carries_its_replicas_and_selector_as_a_string() -> None:
    deployment = {
        "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo", "uid": "u", "resourceVersion": "7",
                                           "labels": {"x": "y"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "f"}}},
        "status": {"replicas": 2},
    }  # fmt: skip
    assert subresources.scale_of(deployment) == {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "demo", "uid": "u", "resourceVersion": "7"},
        "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "app=web,tier=f"},
    }  # fmt: skip
    rc = {"kind": "ReplicationController", "metadata": {"name": "r"}, "spec": {"selector": {"b": "2", "a": "1"}}}
    assert subresources.scale_of(rc)["status"] == {"replicas": 0, "selector": "a=1,b=2"}
    assert subresources.scale_of(rc)["spec"] == {"replicas": 1}  # the API server's default


def test_a_log_is_cut_to_its_last_lines_then_to_its_byte_limit() -> None:
    text = b"one\ntwo\nthree\n"
    assert subresources.tail(text, None, None) == text
    assert subresources.tail(text, 2, None) == b"two\nthree\n"
    assert subresources.tail(text, 0, None) == b""
    assert subresources.tail(text, 5, 5) == b"one\nt"
