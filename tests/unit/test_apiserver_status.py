"""Status objects in the API server's wording, and the lab's manifest problems mapped onto
them (with lines the project's parsers and store really produce)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from testbed.apiserver import status
from testbed.datastore import MemoryDatastore
from testbed.kube import objects, policy, removal, services, workloads
from testbed.kube.errors import ManifestError

DEFAULT_NS = "default"


def lines_of(call: Callable[[], Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        call()
    return caught.value.lines


def create(store: MemoryDatastore, manifest: dict) -> None:
    objects.store_objects(store, "lab", objects.parse_objects([manifest], None), create_only=True)


def pod(name: str = "web", namespace: str = "demo", **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}  # fmt: skip


def test_not_found_is_group_qualified_with_details() -> None:
    assert status.not_found("pods", "x").body() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": 'pods "x" not found',
        "reason": "NotFound", "details": {"name": "x", "kind": "pods"}, "code": 404}  # fmt: skip
    error = status.not_found("deployments", "x", "apps")
    assert (error.code, error.message, error.details) == (
        404, 'deployments.apps "x" not found', {"name": "x", "group": "apps", "kind": "deployments"})  # fmt: skip
    assert str(error) == error.message and isinstance(error, Exception)


def test_already_exists_and_conflict() -> None:
    exists = status.already_exists("networkpolicies", "deny", "networking.k8s.io")
    assert (exists.code, exists.reason, exists.message) == (
        409, "AlreadyExists", 'networkpolicies.networking.k8s.io "deny" already exists')  # fmt: skip
    conflict = status.conflict("pods", "", "web")
    assert (conflict.code, conflict.reason) == (409, "Conflict")
    assert conflict.message == ('Operation cannot be fulfilled on pods "web": the object has been modified; '
                                "please apply your changes to the latest version and try again")  # fmt: skip
    custom = status.conflict("deployments", "apps", "d", detail="Precondition failed: UID in precondition: a")
    assert custom.message == ('Operation cannot be fulfilled on deployments.apps "d": '
                              "Precondition failed: UID in precondition: a")


def test_invalid_one_cause_and_several() -> None:
    one = status.invalid("Pod", "x", [("spec.containers", "Required value", "FieldValueRequired")])
    assert one.code == 422 and one.reason == "Invalid"
    assert one.message == 'Pod "x" is invalid: spec.containers: Required value'
    assert one.details == {"name": "x", "kind": "Pod", "causes": [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}]}  # fmt: skip
    causes = [status.Cause("spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
              status.Cause("spec.template.spec.containers", "Required value")]
    two = status.invalid("Deployment", "d", causes, group="apps")
    assert two.message == ('Deployment.apps "d" is invalid: [spec.replicas: Invalid value: -1: must be greater than or '
                           "equal to 0, spec.template.spec.containers: Required value]")  # fmt: skip
    assert [c["reason"] for c in two.details["causes"]] == ["FieldValueInvalid", "FieldValueRequired"]
    assert status.invalid("Pod", "x", []).message == 'Pod "x" is invalid'


def test_the_other_failures() -> None:
    assert status.bad_request("nope").body()["code"] == 400
    assert status.unauthorized().body() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
        "reason": "Unauthorized", "code": 401}  # fmt: skip
    forbidden = status.forbidden("pods", "", "web", "not today")
    assert (forbidden.code, forbidden.message) == (403, 'pods "web" is forbidden: not today')
    assert status.forbidden("pods", "", "", "not today").message == "pods is forbidden: not today"
    user = status.forbidden_user("jane", "get", "/api/v1/pods")
    assert user.message == 'forbidden: User "jane" cannot get path "/api/v1/pods"' and user.details == {}
    method = status.method_not_allowed("pods", "POST")
    assert (method.code, method.reason, method.message) == (
        405, "MethodNotAllowed", 'POST is not supported on resources of kind "pods"')  # fmt: skip
    sub = status.method_not_allowed_sub("pods", "exec", "GET")
    assert sub.message == 'GET is not supported on resources of kind "pods/exec"'
    gone = status.too_old_resource_version(5, 9)
    assert (gone.code, gone.reason, gone.message) == (410, "Expired", "too old resource version: 5 (9)")
    media = status.unsupported_media_type(["application/json-patch+json", "application/merge-patch+json"])
    assert (media.code, media.reason) == (415, "UnsupportedMediaType")
    assert media.message == ("the body of the request was in an unknown format - accepted media types include: "
                             "application/json-patch+json, application/merge-patch+json")  # fmt: skip
    assert status.not_acceptable().code == 406
    internal = status.internal("etcd is down")
    assert (internal.code, internal.reason) == (500, "InternalError")
    assert internal.message == "Internal error occurred: etcd is down"
    assert status.not_found_path().body()["details"] == {} and status.not_found_path().code == 404
    assert {code: status.from_patch_error(code, "x").reason for code in (400, 409, 415, 422, 500)} == {
        400: "BadRequest", 409: "Conflict", 415: "UnsupportedMediaType", 422: "Invalid", 500: "InternalError"}


def test_namespace_terminating_carries_its_cause() -> None:
    error = status.namespace_terminating("pods", "", "web", "demo")
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message == ('pods "web" is forbidden: unable to create new content in namespace demo because it is '
                             "being terminated")  # fmt: skip
    assert error.details["causes"] == [{
        "reason": "NamespaceTerminating", "message": "namespace demo is being terminated",
        "field": "metadata.namespace"}]  # fmt: skip


def test_success() -> None:
    assert status.success() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    details = {"name": "web", "kind": "pods", "uid": "u-1"}
    assert status.success(details)["details"] == details


# -- the project's own lines --


def test_a_pod_without_containers_is_invalid() -> None:
    lines = lines_of(lambda: workloads.parse_workload({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                                                       "spec": {}}, DEFAULT_NS))  # fmt: skip
    assert lines == ['The Pod "x" is invalid: spec.containers: Required value']
    error = status.from_manifest_error(lines)
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.message == 'Pod "x" is invalid: spec.containers: Required value'
    assert error.details == {"name": "x", "kind": "Pod", "causes": [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}]}  # fmt: skip


def test_several_problems_of_a_deployment_aggregate_with_its_group() -> None:
    template = {"metadata": {"labels": {"a": "c"}}, "spec": {}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template}}
    lines = lines_of(lambda: workloads.parse_workload(deployment, DEFAULT_NS))
    assert len(lines) == 2
    error = status.from_manifest_error(lines)
    assert error.code == 422 and error.details["group"] == "apps" and error.details["kind"] == "Deployment"
    assert error.message.startswith('Deployment.apps "d" is invalid: [spec.template.metadata.labels: Invalid value: ')
    fields = [c["field"] for c in error.details["causes"]]
    assert fields == ["spec.template.metadata.labels", "spec.template.spec.containers"]
    assert [c["reason"] for c in error.details["causes"]] == ["FieldValueInvalid", "FieldValueRequired"]


def test_a_service_port_out_of_range() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000}]}}
    error = status.from_manifest_error(lines_of(lambda: services.parse_service(svc, DEFAULT_NS)))
    assert error.code == 422
    assert error.details["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.ports[0].port",
        "message": "Invalid value: 70000: must be between 1 and 65535, inclusive"}]  # fmt: skip


def test_decoding_problems_come_first_as_a_bad_request() -> None:
    bogus = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
             "spec": {"containers": [{"name": "c"}], "bogus": 1, "other": 2}}  # fmt: skip
    lines = lines_of(lambda: workloads.parse_workload(bogus, DEFAULT_NS))
    assert any("is invalid" in line for line in lines), "the lab reports validation too"
    error = status.from_manifest_error(lines)
    assert (error.code, error.reason) == (400, "BadRequest")
    assert error.message == ('Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
                             'unknown field "spec.bogus", unknown field "spec.other"')  # fmt: skip
    netpol = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"},
              "spec": {"ingress": [{"fromm": []}]}}  # fmt: skip
    error = status.from_manifest_error(lines_of(lambda: policy.parse_network_policy(netpol, DEFAULT_NS)))
    assert error.code == 400 and error.message.endswith('strict decoding error: unknown field "spec.ingress[0].fromm"')


def test_the_stores_answers_keep_their_reason() -> None:
    store = MemoryDatastore()
    missing = lines_of(lambda: create(store, pod()))
    assert missing == ['Error from server (NotFound): namespaces "demo" not found']
    error = status.from_manifest_error(missing)
    assert (error.code, error.reason, error.message) == (404, "NotFound", 'namespaces "demo" not found')
    assert error.details == {"name": "demo", "kind": "namespaces"}

    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
    create(store, namespace)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "demo"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}  # fmt: skip
    create(store, deployment)
    twice = lines_of(lambda: create(store, deployment))
    error = status.from_manifest_error(twice)
    assert (error.code, error.reason, error.message) == (409, "AlreadyExists", 'deployments.apps "d" already exists')
    assert error.details == {"name": "d", "group": "apps", "kind": "deployments"}

    gone = lines_of(lambda: removal.request_deletion(store, [("deployments", "demo", "nope")]))
    error = status.from_manifest_error(gone)
    assert (error.code, error.message, error.details["group"]) == (404, 'deployments.apps "nope" not found', "apps")

    removal.request_deletion(store, [("namespaces", None, "demo")])
    late = lines_of(lambda: create(store, pod("w2")))
    assert late == ["Error from server (Forbidden): unable to create new content in namespace demo because it is "
                    "being terminated"]  # fmt: skip
    bare = status.from_manifest_error(late)
    assert (bare.code, bare.reason) == (403, "Forbidden")
    assert bare.details["causes"][0]["reason"] == "NamespaceTerminating"
    named = status.from_manifest_error(late, resource="pods", name="w2")
    assert named.message == ('pods "w2" is forbidden: unable to create new content in namespace demo because it is '
                             "being terminated")  # fmt: skip
    assert named.details["name"] == "w2" and named.details["causes"][0]["field"] == "metadata.namespace"


def test_the_stores_unnamed_conflict_and_kubectls_own_lines() -> None:
    unnamed = ["Error from server (Conflict): Operation cannot be fulfilled: the object has been modified; "
               "please apply your changes to the latest version and try again"]  # fmt: skip
    assert status.from_manifest_error(unnamed).code == 409
    named = status.from_manifest_error(unnamed, resource="pods", name="web")
    assert named.message == status.conflict("pods", "", "web").message
    with_file = ['Error from server (AlreadyExists): error when creating "web.yaml": pods "web" already exists']
    assert status.from_manifest_error(with_file).message == 'pods "web" already exists'
    lines = lines_of(lambda: workloads.parse_workload({"apiVersion": "v9", "kind": "Pod", "metadata": {"name": "x"}},
                                                      DEFAULT_NS))  # fmt: skip
    error = status.from_manifest_error(lines)
    assert (error.code, error.reason) == (400, "BadRequest") and not error.message.startswith("error: ")
    assert status.from_manifest_error(["something else"]).message == "something else"
