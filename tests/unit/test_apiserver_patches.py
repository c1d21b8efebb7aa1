"""PATCH bodies: RFC 6902 JSON patch, RFC 7386 merge patch, Kubernetes' strategic merge patch, dispatch."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.apiserver import patches
from testbed.apiserver.patches import PatchError, apply_patch, json_patch, merge_patch, strategic_merge_patch


def _error(call: Any, *args: Any) -> PatchError:
    with pytest.raises(PatchError) as caught:
        call(*args)
    return caught.value


# --- JSON patch: RFC 6902 appendix A ------------------------------------------------------------------------

RFC6902 = [
    ("A.1 add an object member", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A.2 add an array element", {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ("A.3 remove an object member", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ("A.4 remove an array element", {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ("A.5 replace a value", {"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ("A.6 move a value", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7 move an array element", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}], {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8 test a value: success", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.10 add a nested member object", {"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11 ignore unrecognized elements", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    ("A.14 ~ escape ordering", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ("A.16 add an array value", {"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "document", "operations", "expected"), RFC6902, ids=[c[0] for c in RFC6902])
def test_json_patch_rfc6902_examples(name: str, document: dict[str, Any], operations: list[Any],
                                     expected: dict[str, Any]) -> None:  # fmt: skip
    assert json_patch(document, operations) == expected


def test_json_patch_test_failure_is_422() -> None:  # A.9
    error = _error(json_patch, {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}])
    assert (error.code, str(error), error.reason) == (422, "testing value /baz failed: test failed", "Invalid")


def test_json_patch_add_to_a_missing_parent_names_the_path() -> None:  # A.12
    error = _error(json_patch, {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}])
    assert error.code == 422
    assert str(error) == 'add operation does not apply: doc is missing path: "/baz/bat": missing value'


def test_json_patch_compares_strings_and_numbers_strictly() -> None:  # A.15
    error = _error(json_patch, {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}])
    assert error.code == 422
    assert json_patch({"a": True}, [{"op": "test", "path": "/a", "value": True}]) == {"a": True}
    assert _error(json_patch, {"a": True}, [{"op": "test", "path": "/a", "value": 1}]).code == 422
    assert json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}
    assert json_patch({"a": {"x": [1, {"y": 2}]}}, [{"op": "test", "path": "/a", "value": {"x": [1, {"y": 2}]}}])


def test_json_patch_escapes_in_pointers() -> None:
    document = {"metadata": {"labels": {"app.kubernetes.io/name": "web", "a~b": "1"}}}
    patched = json_patch(document, [
        {"op": "replace", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "api"},
        {"op": "remove", "path": "/metadata/labels/a~0b"},
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/annotations/x~1y~0z", "value": "v"},
    ])  # fmt: skip
    assert patched == {"metadata": {"labels": {"app.kubernetes.io/name": "api"}, "annotations": {"x/y~z": "v"}}}
    assert patches.parse_pointer("/a~1b/~01").tokens == ("a/b", "~1")
    assert patches.parse_pointer("").tokens == ()
    for bad in ("a/b", "/a~2", "/a~"):
        assert _error(patches.parse_pointer, bad).code == 422


def test_json_patch_add_replaces_an_existing_member_and_appends_with_dash() -> None:
    document = {"spec": {"replicas": 1, "args": ["a"]}}
    patched = json_patch(document, [
        {"op": "add", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/spec/args/-", "value": "b"},
        {"op": "add", "path": "/spec/args/0", "value": "first"},
        {"op": "add", "path": "/spec/args/3", "value": "last"},
    ])  # fmt: skip
    assert patched == {"spec": {"replicas": 3, "args": ["first", "a", "b", "last"]}}


@pytest.mark.parametrize(("operation", "message"), [
    ({"op": "remove", "path": "/spec/x"},
     'remove operation does not apply: doc is missing path: "/spec/x": missing value'),
    ({"op": "replace", "path": "/spec/x", "value": 1},
     'replace operation does not apply: doc is missing path: "/spec/x": missing value'),
    ({"op": "replace", "path": "/nope/x", "value": 1},
     'replace operation does not apply: doc is missing path: "/nope/x": missing value'),
    ({"op": "move", "from": "/spec/x", "path": "/y"},
     'move operation does not apply: doc is missing from path: "/spec/x": missing value'),
    ({"op": "copy", "from": "/spec/x", "path": "/y"},
     'copy operation does not apply: doc is missing from path: "/spec/x": missing value'),
    ({"op": "test", "path": "/spec/x", "value": 1},
     'test operation does not apply: doc is missing path: "/spec/x": missing value'),
    ({"op": "add", "path": "/spec/args/5", "value": 1}, "Unable to access invalid index: 5: invalid index referenced"),
    ({"op": "remove", "path": "/spec/args/1"}, "Unable to access invalid index: 1: invalid index referenced"),
    ({"op": "remove", "path": "/spec/args/-"}, "value was not a proper array index: '-'"),
    ({"op": "add", "path": "/spec/args/01", "value": 1}, "value was not a proper array index: '01'"),
    ({"op": "replace", "path": "/spec/args/-1", "value": 1}, "value was not a proper array index: '-1'"),
    ({"op": "add", "path": "/spec/replicas/x", "value": 1},
     'add operation does not apply: doc is missing path: "/spec/replicas/x": missing value'),
    ({"op": "remove", "path": ""}, 'remove operation does not apply: doc is missing path: "": missing value'),
    ({"op": "move", "from": "/spec", "path": "/spec/inner"},
     'move operation does not apply: "/spec" cannot move into its own child "/spec/inner"'),
    ({"op": "frobnicate", "path": "/spec"}, "Unexpected kind: frobnicate"),
    ({"path": "/spec"}, "Unexpected kind: unknown"),
    ({"op": "add", "value": 1}, "add operation failed to decode path: missing value"),
    ({"op": "copy", "path": "/x"}, "copy operation failed to decode from: missing value"),
    ({"op": "add", "path": "/x"}, "add operation, missing value field: missing value"),
    ({"op": "replace", "path": "", "value": [1]}, "the patched document is a JSON array, not an object"),
])  # fmt: skip
def test_json_patch_errors_are_422_with_the_path(operation: dict[str, Any], message: str) -> None:
    error = _error(json_patch, {"spec": {"replicas": 1, "args": ["a"]}}, [operation])
    assert (error.code, str(error)) == (422, message)


def test_json_patch_is_all_or_nothing_and_works_on_a_copy() -> None:
    document = {"spec": {"replicas": 1}}
    operations = [{"op": "replace", "path": "/spec/replicas", "value": 2}, {"op": "test", "path": "/x", "value": 1}]
    before, ops_before = copy.deepcopy(document), copy.deepcopy(operations)
    _error(json_patch, document, operations)
    assert (document, operations) == (before, ops_before)
    value = {"k": ["v"]}
    patched = json_patch(document, [{"op": "add", "path": "/data", "value": value},
                                    {"op": "copy", "from": "/data", "path": "/other"}])  # fmt: skip
    patched["data"]["k"].append("changed")
    assert (value, patched["other"], document) == ({"k": ["v"]}, {"k": ["v"]}, before)


def test_json_patch_move_copy_and_root() -> None:
    document = {"a": {"b": [1, 2]}, "c": 3}
    assert json_patch(document, [{"op": "move", "from": "/a/b", "path": "/b"}]) == {"a": {}, "c": 3, "b": [1, 2]}
    assert json_patch(document, [{"op": "move", "from": "/c", "path": "/c"}]) == document
    assert json_patch(document, [{"op": "copy", "from": "/a/b/1", "path": "/a/b/0"}]) == {"a": {"b": [2, 1, 2]}, "c": 3}
    assert json_patch(document, [{"op": "replace", "path": "", "value": {"new": 1}}]) == {"new": 1}
    assert json_patch(document, [{"op": "test", "path": "", "value": document}]) == document
    assert json_patch(document, None) == document  # Go decodes null as an empty patch


@pytest.mark.parametrize(("operations", "message"), [
    ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    ("add", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
    ([{"op": "add", "path": "/a", "value": 1}, 7],
     "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
])  # fmt: skip
def test_json_patch_that_is_not_a_list_of_objects_is_400(operations: object, message: str) -> None:
    error = _error(json_patch, {}, operations)
    assert (error.code, str(error), error.reason) == (400, message, "BadRequest")


def test_json_patch_with_too_many_operations_is_413() -> None:
    operations = [{"op": "test", "path": "", "value": {}}] * (patches.MAX_OPERATIONS + 1)
    error = _error(json_patch, {}, operations)
    assert error.code == 413
    assert str(error).endswith(f"is {patches.MAX_OPERATIONS}, got {patches.MAX_OPERATIONS + 1}")


# --- merge patch: RFC 7386 appendix A -----------------------------------------------------------------------

RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("document", "patch", "expected"), RFC7386)
def test_merge_patch_rfc7386_examples(document: dict[str, Any], patch: dict[str, Any], expected: Any) -> None:
    before = copy.deepcopy((document, patch))
    assert merge_patch(document, patch) == expected
    assert (document, patch) == before


@pytest.mark.parametrize("patch", [["c", "d"], ["c"], None, "bar", 3])  # RFC 7386: these replace the whole document
def test_merge_patch_that_is_not_an_object_is_400(patch: object) -> None:
    error = _error(merge_patch, {"a": "b"}, patch)
    assert (error.code, str(error)) == (400, "Invalid JSON Patch")


def test_merge_patch_kubectl_label_and_scale() -> None:
    document = {"metadata": {"name": "web", "labels": {"app": "web", "tier": "x"}}, "spec": {"replicas": 1}}
    patched = merge_patch(document, {"metadata": {"labels": {"tier": None, "env": "prod"}}, "spec": {"replicas": 3}})
    assert patched == {"metadata": {"name": "web", "labels": {"app": "web", "env": "prod"}}, "spec": {"replicas": 3}}
    patched["metadata"]["labels"]["app"] = "changed"
    assert document["metadata"]["labels"]["app"] == "web"


# --- strategic merge patch ----------------------------------------------------------------------------------


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "app", "image": "nginx:1.25", "args": ["-a", "-b"],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "https"}]},
                    {"name": "sidecar", "image": "busybox"},
                ]},
            },
        },
    }  # fmt: skip


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = document["spec"]["template"]["spec"]["containers"]
    return containers


def _template(patch: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": patch}}}


def test_smp_label_merge_keeps_other_labels_and_null_deletes() -> None:
    patched = strategic_merge_patch(_deployment(), {"metadata": {"labels": {"env": "prod", "app": None}}}, "Deployment")
    assert patched["metadata"]["labels"] == {"env": "prod"}
    assert patched["spec"] == _deployment()["spec"]


def test_smp_set_image_changes_one_container_and_keeps_the_others() -> None:
    patch = _template({"containers": [{"name": "sidecar", "image": "busybox:1.36"}]})
    containers = _containers(strategic_merge_patch(_deployment(), patch, "Deployment"))
    assert [(c["name"], c["image"]) for c in containers] == [("app", "nginx:1.25"), ("sidecar", "busybox:1.36")]
    assert containers[0] == _containers(_deployment())[0]


def test_smp_adds_an_env_var_by_name_before_the_old_ones_unless_ordered() -> None:
    env = [{"name": "C", "value": "3"}, {"name": "A", "value": "9"}]
    patch = _template({"containers": [{"name": "app", "env": env}]})
    env = _containers(strategic_merge_patch(_deployment(), patch, "Deployment"))[0]["env"]
    # upstream's mergeSortedSlice: entries the old list lacks come first, the patch's own order is kept
    assert env == [{"name": "C", "value": "3"}, {"name": "A", "value": "9"}, {"name": "B", "value": "2"}]
    order = [{"name": "A"}, {"name": "B"}, {"name": "C"}]
    ordered = _template({"containers": [{"name": "app", "$setElementOrder/env": order,
                                         "env": [{"name": "C", "value": "3"}]}]})  # fmt: skip
    env = _containers(strategic_merge_patch(_deployment(), ordered, "Deployment"))[0]["env"]
    assert env == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]


def test_smp_patch_delete_removes_a_container_by_name() -> None:
    patch = _template({"containers": [{"name": "sidecar", "$patch": "delete"}]})
    assert [c["name"] for c in _containers(strategic_merge_patch(_deployment(), patch, "Deployment"))] == ["app"]
    missing = _template({"containers": [{"name": "nope", "$patch": "delete"}]})
    assert strategic_merge_patch(_deployment(), missing, "Deployment") == _deployment()


def test_smp_patch_replace_in_a_list_replaces_it_without_the_directive() -> None:
    patch = _template({"containers": [{"$patch": "replace"}, {"name": "only", "image": "x", "env": None}]})
    assert _containers(strategic_merge_patch(_deployment(), patch, "Deployment")) == [{"name": "only", "image": "x"}]
    emptied = _template({"containers": [{"$patch": "replace"}]})
    assert _containers(strategic_merge_patch(_deployment(), emptied, "Deployment")) == []


def test_smp_patch_replace_and_delete_in_a_map() -> None:
    replace = {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}
    assert strategic_merge_patch(_deployment(), replace, "Deployment")["metadata"]["labels"] == {"only": "this"}
    delete = {"metadata": {"labels": {"$patch": "delete"}}}
    assert "labels" not in strategic_merge_patch(_deployment(), delete, "Deployment")["metadata"]
    assert strategic_merge_patch(_deployment(), {"$patch": "replace", "kind": "X"}, "Deployment") == {"kind": "X"}


def test_smp_retain_keys_drops_the_other_keys() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert strategic_merge_patch(_deployment(), patch, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    unlisted = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}}
    error = _error(strategic_merge_patch, _deployment(), unlisted, "Deployment")
    assert (error.code, str(error)) == (400, "invalid patch format of retainKeys")


def test_smp_finalizers_are_a_set_and_delete_from_primitive_list() -> None:
    add = {"metadata": {"finalizers": ["b", "c"]}}
    assert strategic_merge_patch(_deployment(), add, "Deployment")["metadata"]["finalizers"] == ["a", "b", "c"]
    new_first = {"metadata": {"finalizers": ["z"]}}  # upstream places unknown values before the old ones
    assert strategic_merge_patch(_deployment(), new_first, "Deployment")["metadata"]["finalizers"] == ["z", "a", "b"]
    delete = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "nope"]}}
    assert strategic_merge_patch(_deployment(), delete, "Deployment")["metadata"]["finalizers"] == ["b"]
    absent = {"spec": {"$deleteFromPrimitiveList/nothing": ["x"]}}
    assert strategic_merge_patch(_deployment(), absent, "Deployment") == _deployment()


def test_smp_replaces_lists_without_a_merge_key() -> None:
    patch = _template({"containers": [{"name": "app", "args": ["-c"]}]})
    assert _containers(strategic_merge_patch(_deployment(), patch, "Deployment"))[0]["args"] == ["-c"]
    policy = {"spec": {"ingress": [{"from": [{"podSelector": {}}]}], "podSelector": {}}}
    patched = strategic_merge_patch(policy, {"spec": {"ingress": [{"ports": [{"port": 80}]}]}}, "NetworkPolicy")
    assert patched["spec"]["ingress"] == [{"ports": [{"port": 80}]}]
    endpoints = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}
    patched = strategic_merge_patch(endpoints, {"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}, "Endpoints")
    assert patched == {"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}


def test_smp_service_ports_merge_by_port() -> None:
    service = {"spec": {"ports": [{"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443, "name": "https"}]}}
    patch = {"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}
    assert strategic_merge_patch(service, patch, "Service")["spec"]["ports"] == [
        {"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443, "name": "https", "targetPort": 8443}]


def test_smp_container_ports_merge_by_container_port_inside_a_template() -> None:
    patch = _template({"containers": [{"name": "app", "ports": [{"containerPort": 443, "name": "tls"},
                                                                {"containerPort": 8080}]}]})  # fmt: skip
    ports = _containers(strategic_merge_patch(_deployment(), patch, "Deployment"))[0]["ports"]
    assert ports == [{"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "tls"},
                     {"containerPort": 8080}]  # fmt: skip


def test_smp_null_deletes_a_field_and_new_maps_drop_nulls() -> None:
    patch = {"spec": {"replicas": None, "paused": None, "selector": {"matchLabels": {"app": "web", "x": None}}}}
    patched = strategic_merge_patch(_deployment(), patch, "Deployment")
    assert "replicas" not in patched["spec"] and "paused" not in patched["spec"]
    assert patched["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def test_smp_pod_and_node_lists() -> None:
    pod = {"spec": {"containers": [{"name": "c", "volumeMounts": [{"mountPath": "/a", "name": "v"}]}],
                    "volumes": [{"name": "v", "emptyDir": {}}]},
           "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}}
    patch = {"spec": {"containers": [{"name": "c", "volumeMounts": [{"mountPath": "/a", "readOnly": True}]}],
                      "volumes": [{"name": "w", "configMap": {"name": "cm"}}]},
             "status": {"conditions": [{"type": "Ready", "status": "True"}]}}  # fmt: skip
    patched = strategic_merge_patch(pod, patch, "Pod")
    assert patched["spec"]["containers"][0]["volumeMounts"] == [{"mountPath": "/a", "name": "v", "readOnly": True}]
    assert [v["name"] for v in patched["spec"]["volumes"]] == ["w", "v"]
    assert patched["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                               {"type": "Initialized", "status": "True"}]  # fmt: skip
    node = {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                     {"type": "Hostname", "address": "n"}]}}  # fmt: skip
    patch = {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]}}
    assert strategic_merge_patch(node, patch, "Node")["status"]["addresses"] == [
        {"type": "InternalIP", "address": "10.0.0.9"}, {"type": "Hostname", "address": "n"}]


def test_smp_set_element_order_places_server_only_entries_between() -> None:
    # apimachinery patch_test.go "set elements order in a list with server-only items 2"
    document = {"metadata": {"ownerReferences": [{"uid": "1", "o": "a"}, {"uid": "2"}, {"uid": "9"}, {"uid": "3"},
                                                 {"uid": "4"}]}}  # fmt: skip
    patch = {"metadata": {"$setElementOrder/ownerReferences": [{"uid": "2"}, {"uid": "1"}, {"uid": "4"}, {"uid": "3"}]}}
    patched = strategic_merge_patch(document, patch, "Pod")
    assert [o["uid"] for o in patched["metadata"]["ownerReferences"]] == ["2", "1", "9", "4", "3"]
    mismatch = {"metadata": {"$setElementOrder/finalizers": ["a", "b"], "finalizers": ["b", "a"]}}
    assert _error(strategic_merge_patch, {"metadata": {"finalizers": ["a"]}}, mismatch, "Pod").code == 400


def test_smp_kubectl_apply_style_patch() -> None:
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "D"}],
                            "$setElementOrder/ports": [{"containerPort": 80}],
                            "env": [{"name": "D", "value": "4"}, {"name": "B", "$patch": "delete"}],
                            "name": "app", "ports": [{"containerPort": 443, "$patch": "delete"}]}]}}},
    }  # fmt: skip
    patched = strategic_merge_patch(_deployment(), patch, "Deployment")
    app = _containers(patched)[0]
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "D", "value": "4"}]
    assert app["ports"] == [{"containerPort": 80, "name": "http"}]
    assert [c["name"] for c in _containers(patched)] == ["app", "sidecar"]
    assert patched["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{}"}


@pytest.mark.parametrize(("patch", "message"), [
    ({"metadata": {"$patch": "merge"}}, "unknown patch type: merge in map: map[$patch:merge]"),
    ({"spec": {"ports": [{"name": "x"}]}}, "map: map[name:x] does not contain declared merge key: port"),
    ({"spec": {"ports": [{"port": 1, "$patch": "bogus"}]}},
     "unknown patch type: bogus in map: map[$patch:bogus port:1]"),
    ({"spec": {"ports": [{"$patch": "merge"}]}}, "merging lists cannot yet be specified in the patch"),
    ({"metadata": {"finalizers": ["a", 1]}}, "list element types are not identical: [[a] [a 1]]"),
    ({"metadata": {"$retainKeys": "name"}}, "invalid patch format of retainKeys"),
    ({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, "invalid patch format of primitive list"),
    ({"metadata": {"$setElementOrderfinalizers": []}}, "invalid patch format of setElementOrder list"),
    ({"metadata": {"$setElementOrder/finalizers": "a"}}, "invalid patch format of setElementOrder list"),
    (["x"], "json: cannot unmarshal array into Go value of type map[string]interface {}"),
])  # fmt: skip
def test_smp_malformed_patches_are_400(patch: object, message: str) -> None:
    error = _error(strategic_merge_patch, {"metadata": {"finalizers": ["a"]}, "spec": {"ports": [{"port": 1}]}},
                   patch, "Service")  # fmt: skip
    assert (error.code, str(error)) == (400, message)


def test_smp_on_a_custom_resource_is_415() -> None:
    error = _error(strategic_merge_patch, {"spec": {}}, {"spec": {"x": 1}}, "Widget")
    assert (error.code, error.reason) == (415, "UnsupportedMediaType")
    assert str(error) == ("the body of the request was in an unknown format - accepted media types include: "
                          "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")


def test_smp_does_not_mutate_its_inputs_or_share_with_them() -> None:
    document, patch = _deployment(), _template({"containers": [{"name": "new", "env": [{"name": "X", "value": "1"}]}]})
    before = copy.deepcopy((document, patch))
    patched = strategic_merge_patch(document, patch, "Deployment")
    assert (document, patch) == before
    _containers(patched)[0]["env"].append({"name": "Y"})
    _containers(patched)[1]["env"].append({"name": "Z"})
    patched["metadata"]["finalizers"].append("q")
    assert (document, patch) == before
    assert strategic_merge_patch(document, None, "Deployment") == document


_SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "a", "b"])
_VALUES = st.recursive(_SCALARS | st.lists(_SCALARS.filter(lambda v: v is not None), max_size=3),
                       lambda inner: st.dictionaries(st.sampled_from(["data", "x", "y", "z"]), inner, max_size=3),
                       max_leaves=12)  # fmt: skip
_OBJECTS = st.dictionaries(st.sampled_from(["data", "spec", "x"]), _VALUES, max_size=3)


@settings(max_examples=300, deadline=None)
@given(_OBJECTS, _OBJECTS)
def test_smp_without_merging_lists_or_directives_is_a_merge_patch(document: dict[str, Any],
                                                                  patch: dict[str, Any]) -> None:  # fmt: skip
    before = copy.deepcopy((document, patch))
    assert strategic_merge_patch(document, patch, "ConfigMap") == merge_patch(document, patch)
    assert (document, patch) == before


def test_merge_key_table() -> None:
    assert patches.merge_key(("spec", "containers"), "Pod") == ("name", "merge")
    assert patches.merge_key(("spec", "template", "spec", "initContainers", "ports"), "DaemonSet") == (
        "containerPort", "merge")
    assert patches.merge_key(("spec", "template", "spec", "containers", "volumeDevices"), "ReplicationController") == (
        "devicePath", "merge")
    assert patches.merge_key(("spec", "ports"), "Service") == ("port", "merge")
    assert patches.merge_key(("spec", "ports"), "Pod") == (None, "replace")
    assert patches.merge_key(("metadata", "finalizers"), "ConfigMap") == (None, "merge")
    assert patches.merge_key(("spec", "finalizers"), "Namespace") == (None, "replace")
    assert patches.merge_key(("status", "addresses"), "Node") == ("type", "merge")
    assert patches.merge_key(("spec", "hostAliases"), "Pod") == ("ip", "merge")
    assert patches.merge_key(("subsets",), "Endpoints") == (None, "replace")
    assert patches.merge_key(("spec", "containers", "args"), "Pod") == (None, "replace")
    assert patches.merge_key(("spec", "containers"), "Widget") == (None, "replace")


# --- dispatch -----------------------------------------------------------------------------------------------


def _body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_apply_patch_dispatches_on_content_type() -> None:
    document = {"metadata": {"name": "web", "finalizers": ["a"]}, "spec": {"replicas": 1}}
    finalizers = _body({"metadata": {"finalizers": ["b"]}})
    merged = apply_patch(document, "application/merge-patch+json", finalizers, "Deployment")
    assert merged["metadata"]["finalizers"] == ["b"]
    strategic = apply_patch(document, "application/strategic-merge-patch+json; charset=utf-8", finalizers, "Deployment")
    assert strategic["metadata"]["finalizers"] == ["b", "a"]
    jsonp = apply_patch(document, "application/json-patch+json", _body([{"op": "replace", "path": "/spec/replicas",
                                                                         "value": 5}]), "Widget")  # fmt: skip
    assert jsonp["spec"]["replicas"] == 5
    assert apply_patch(document, "application/merge-patch+json", _body({"spec": None}), "Widget") == {
        "metadata": {"name": "web", "finalizers": ["a"]}}


@pytest.mark.parametrize(("content_type", "kind", "accepted"), [
    ("application/apply-patch+yaml", "Pod", patches.ACCEPTED),
    ("application/json", "Pod", patches.ACCEPTED),
    ("", "Service", patches.ACCEPTED),
    ("application/strategic-merge-patch+json", "Widget", patches.CUSTOM_ACCEPTED),
    ("text/plain", "Widget", patches.CUSTOM_ACCEPTED),
])  # fmt: skip
def test_apply_patch_unsupported_media_type_is_415(content_type: str, kind: str, accepted: tuple[str, ...]) -> None:
    error = _error(apply_patch, {}, content_type, b"{}", kind)
    assert error.code == 415
    prefix = "the body of the request was in an unknown format - accepted media types include: "
    assert str(error) == prefix + ", ".join(accepted)


@pytest.mark.parametrize("body", [b"{", b"", b"\xff", b'{"a": NaN}'])
def test_apply_patch_bad_json_is_400(body: bytes) -> None:
    error = _error(apply_patch, {}, "application/merge-patch+json", body, "Pod")
    assert error.code == 400 and str(error).startswith("error decoding patch: ")
    assert "\n" not in str(error)
