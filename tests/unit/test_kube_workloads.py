"""Workload manifests (Pod, Deployment, ReplicaSet, ReplicationController): parsing, errors, names."""

from __future__ import annotations

import random

import pytest

from testbed.kube import workloads
from testbed.kube.errors import ManifestError


def deployment(**spec_overrides: object) -> dict:
    spec = {
        "replicas": 2,
        "selector": {"matchLabels": {"run": "nginx"}},
        "template": {"metadata": {"labels": {"run": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}},
    }
    spec.update(spec_overrides)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx", "namespace": "policy-demo"}, "spec": spec}


def test_deployment_is_read_whole() -> None:
    w = workloads.parse_workload(deployment())
    assert (w.kind, w.namespace, w.name, w.replicas) == ("Deployment", "policy-demo", "nginx", 2)
    assert w.selector == (("run", "nginx"),)
    assert w.template.image == "nginx" and w.template.labels == (("run", "nginx"),)
    assert w.resource == "deployment.apps" and w.plural == "deployments.apps"


def test_replication_controller_selector_defaults_to_template_labels() -> None:
    rc = {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "backend", "namespace": "stars"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"role": "backend"}}, "spec": {"containers": [
            {"name": "backend", "image": "agnhost", "ports": [{"containerPort": 6379, "name": "redis"}]}]}}},
    }  # fmt: skip
    w = workloads.parse_workload(rc)
    assert w.selector == (("role", "backend"),)
    assert w.template.ports[0].name == "redis" and w.template.ports[0].port == 6379


def test_every_problem_is_reported_with_its_field() -> None:
    bad = deployment(replicas="two", template={"metadata": {"labels": {"run": "other"}}, "spec": {"containers": [{"name": "x", "image": "nosuchimage"}]}})
    with pytest.raises(ManifestError) as err:
        workloads.parse_workload(bad)
    text = str(err.value)
    assert "spec.replicas" in text and "int32" in text
    assert "`selector` does not match template `labels`" in text
    assert 'spec.template.spec.containers[0].image: Invalid value: "nosuchimage": unknown image' in text


def test_unknown_fields_and_missing_image() -> None:
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "bogus": 1}}
    with pytest.raises(ManifestError) as err:
        workloads.parse_workload(bad)
    assert 'unknown field "spec.bogus"' in str(err.value)
    assert "spec.containers[0].image: Required value" in str(err.value)


def test_wrong_api_version_is_refused() -> None:
    with pytest.raises(ManifestError, match='no matches for kind "Deployment" in version "v1"'):
        workloads.parse_workload({**deployment(), "apiVersion": "v1"})


def test_the_template_hash_follows_the_template_and_leaves_its_own_label_out() -> None:
    w = workloads.parse_workload(deployment())
    digest = workloads.template_hash(w.manifest["spec"]["template"])
    assert len(digest) == 10 and set(digest) <= set(workloads.NAME_ALPHABET)
    changed = workloads.parse_workload(deployment(template={"metadata": {"labels": {"run": "nginx"}}, "spec": {"containers": [{"name": "n", "image": "busybox"}]}}))
    assert workloads.template_hash(changed.manifest["spec"]["template"]) != digest
    labelled = {**w.manifest["spec"]["template"], "metadata": {"labels": {"run": "nginx", "pod-template-hash": digest}}}
    assert workloads.template_hash(labelled) == digest  # its own label left out


def test_pod_names() -> None:
    rng = random.Random(1)
    name = workloads.pod_name("nginx-abc", ["nginx-abc-bbbbb"], rng)
    assert name.startswith("nginx-abc-") and len(name) == len("nginx-abc-") + 5
    assert set(name[-5:]) <= set(workloads.NAME_ALPHABET)
