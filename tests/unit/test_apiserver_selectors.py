"""labelSelector and fieldSelector: apimachinery's grammar, matching and wording."""

from __future__ import annotations

import pytest

from testbed.apiserver.selectors import (
    LabelQuery,
    Requirement,
    SelectorError,
    field_matches,
    label_matches,
    parse_field_selector,
    parse_label_selector,
)

WEB = {"app": "web", "tier": "front", "example.com/team": "blue", "replicas": "3"}


@pytest.mark.parametrize(("text", "matches"), [
    ("app=web", True), ("app==web", True), ("app=db", False),
    ("app!=db", True), ("app!=web", False), ("missing!=x", True),  # != matches an object without the key
    ("app in (web,db)", True), ("app in (db)", False), ("missing in (x)", False),
    ("app notin (db)", True), ("app notin (web)", False), ("missing notin (x)", True),
    ("app", True), ("missing", False), ("!missing", True), ("!app", False),
    ("example.com/team=blue", True), ("example.com/team", True), ("!example.com/team", False),
    ("app=web,tier=front", True), ("app=web,tier=back", False), ("app in (web), !missing ,tier", True),
    ("replicas>2", True), ("replicas<3", False), ("app>1", False),
    ("", True),
])  # fmt: skip
def test_label_operators(text: str, matches: bool) -> None:
    query = parse_label_selector(text)
    assert label_matches(query, WEB) is matches
    assert query.matches(WEB) is matches


def test_parsed_requirements_are_sorted_and_print_as_upstream() -> None:
    query = parse_label_selector("z in (b,a,b), a!=1, !m, k")
    assert query == LabelQuery((Requirement("a", "!=", ("1",)), Requirement("k", "exists"),
                                Requirement("m", "!"), Requirement("z", "in", ("a", "b"))))  # fmt: skip
    assert str(query) == "a!=1,k,!m,z in (a,b)"
    assert parse_label_selector("x in (,a)").requirements[0].values == ("", "a")
    assert parse_label_selector("x in ()").requirements[0].values == ("",)
    assert parse_label_selector("x=").requirements[0].values == ("",)
    assert parse_label_selector("in in (in,notin)").requirements[0] == Requirement("in", "in", ("in", "notin"))


@pytest.mark.parametrize(("text", "message"), [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a=b,", "found '', expected: identifier after ','"),
    ("a,,b", "found ',', expected: identifier after ','"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a==b==c", "found '==', expected: ',' or 'end of string'"),
    ("a>x", "unable to parse requirement: values[0]: Invalid value: \"x\": "
            "for 'Gt', 'Lt' operators, the value must be an integer"),
])  # fmt: skip
def test_label_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_bad_keys_and_values_are_worded_as_the_api_server_words_them() -> None:
    name_rule = (
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("-x=y")
    assert str(caught.value) == f'unable to parse requirement: <nil>: Invalid value: "-x": {name_rule}'
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("Bad_Prefix/x")
    assert str(caught.value).startswith('unable to parse requirement: <nil>: Invalid value: "Bad_Prefix/x": '
                                        "prefix part a lowercase RFC 1123 subdomain must consist of")  # fmt: skip
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("a/b/c")
    assert "a valid label key must consist of" in str(caught.value)
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("app=-web")
    assert str(caught.value).startswith(
        'unable to parse requirement: values[0][app]: Invalid value: "-web": a valid label must be an empty string')
    with pytest.raises(SelectorError) as caught:
        parse_label_selector("app in (-a,-b)")
    assert str(caught.value).startswith('unable to parse requirement: [values[0][app]: Invalid value: "-a"')
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(f"k={'v' * 64}")
    assert "must be no more than 63 bytes" in str(caught.value)


# -- field selectors --

POD = {
    "metadata": {"name": "web-1", "namespace": "demo"},
    "spec": {"nodeName": "host1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default", "containers": [{"name": "c"}]},
    "status": {"phase": "Running", "podIP": "10.65.0.4", "podIPs": [{"ip": "10.65.0.4"}],
               "nominatedNodeName": "host2"},
}  # fmt: skip


@pytest.mark.parametrize(("text", "matches"), [
    ("metadata.name=web-1", True), ("metadata.namespace=demo", True), ("metadata.namespace!=demo", False),
    ("spec.nodeName=host1", True), ("spec.nodeName==host2", False), ("spec.host=host1", True),
    ("spec.restartPolicy=Always", True), ("spec.schedulerName=default-scheduler", True),
    ("spec.serviceAccountName=default", True),
    ("spec.hostNetwork=false", True), ("spec.hostNetwork=true", False),  # unset: false
    ("status.phase=Running", True), ("status.phase!=Running", False),
    ("status.podIP=10.65.0.4", True), ("status.nominatedNodeName=host2", True),
    ("status.podIPs=10.65.0.4", False),  # accepted, never selectable: reads ""
    ("spec.nodeName=host1,status.phase=Running", True), ("spec.nodeName=host1,status.phase=Pending", False),
    ("", True),
])  # fmt: skip
def test_every_pod_field(text: str, matches: bool) -> None:
    assert field_matches(parse_field_selector(text, "pods"), POD) is matches


def test_host_network_and_missing_fields() -> None:
    host = {**POD, "spec": {**POD["spec"], "hostNetwork": True}}
    assert field_matches(parse_field_selector("spec.hostNetwork=true", "pods"), host)
    bare = {"metadata": {"name": "p", "namespace": "demo"}}
    assert field_matches(parse_field_selector("spec.nodeName=", "pods"), bare), "a missing field reads as empty"
    assert field_matches(parse_field_selector("spec.nodeName!=host1", "pods"), bare)
    node = {"metadata": {"name": "host1"}}
    assert field_matches(parse_field_selector("spec.unschedulable=false", "nodes"), node)
    cordoned = {**node, "spec": {"unschedulable": True}}
    assert field_matches(parse_field_selector("spec.unschedulable=true", "nodes"), cordoned)
    assert field_matches(parse_field_selector("status.replicas=0", "replicasets"), {"metadata": {"name": "r"}})


EVENT = {
    "metadata": {"name": "web.17a", "namespace": "demo"}, "reason": "Scheduled", "type": "Normal",
    "involvedObject": {"kind": "Pod", "namespace": "demo", "name": "web", "uid": "u-1", "apiVersion": "v1",
                       "resourceVersion": "12", "fieldPath": "spec.containers{web}"},
    "source": {"component": "default-scheduler"},
}  # fmt: skip


@pytest.mark.parametrize("text", [
    "involvedObject.kind=Pod", "involvedObject.namespace=demo", "involvedObject.name=web",
    "involvedObject.uid=u-1", "involvedObject.apiVersion=v1", "involvedObject.resourceVersion=12",
    "involvedObject.fieldPath=spec.containers{web}", "reason=Scheduled", "type=Normal",
    "source=default-scheduler", "metadata.namespace=demo", "involvedObject.kind=Pod,involvedObject.name=web",
])  # fmt: skip
def test_event_fields(text: str) -> None:
    assert field_matches(parse_field_selector(text, "events"), EVENT)
    name, _, value = text.partition(",")[0].partition("=")
    assert not field_matches(parse_field_selector(f"{name}=other", "events"), EVENT)


def test_event_source_falls_back_to_the_reporting_component() -> None:
    reported = {**EVENT, "source": {}, "reportingComponent": "kubelet"}
    assert field_matches(parse_field_selector("source=kubelet", "events"), reported)


def test_other_kinds_fields() -> None:
    assert field_matches(parse_field_selector("status.phase=Active", "namespaces"), {"status": {"phase": "Active"}})
    rc = {"status": {"replicas": 2}}
    assert field_matches(parse_field_selector("status.replicas=2", "replicationcontrollers"), rc)
    assert field_matches(parse_field_selector("type=Opaque", "secrets"), {"type": "Opaque"})
    assert field_matches(parse_field_selector("metadata.name=web", "deployments"), {"metadata": {"name": "web"}})


@pytest.mark.parametrize(("text", "plural", "message"), [
    ("spec.foo=1", "pods", "field label not supported: spec.foo"),
    ("metadata.labels=x", "events", "field label not supported: metadata.labels"),
    ("metadata.namespace=x", "nodes", "field label not supported: metadata.namespace"),
    ("metadata.namespace=x", "namespaces", "field label not supported: metadata.namespace"),
    ("spec.replicas=1", "deployments",
     '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    ("spec.nodeName", "pods", "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"),
    ("metadata.name=a,b", "pods", "invalid selector: 'metadata.name=a,b'; can't understand 'b'"),
    ("metadata.name=a=b", "pods", "invalid field selector: unescaped character in value: 61"),
    ("metadata.name=a\\x", "pods", "invalid field selector: invalid escape sequence: \\x"),
])  # fmt: skip
def test_field_selector_errors(text: str, plural: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text, plural)
    assert str(caught.value) == message


def test_escaped_values_and_operators() -> None:
    query = parse_field_selector("metadata.name=a\\,b\\=c\\\\d", "pods")
    assert [(r.field, r.operator, r.value) for r in query.requirements] == [("metadata.name", "=", "a,b=c\\d")]
    assert field_matches(query, {"metadata": {"name": "a,b=c\\d"}})
    ops = parse_field_selector("status.phase!=Failed,metadata.name==web-1", "pods")
    assert [r.operator for r in ops.requirements] == ["==", "!="]  # terms sorted, as upstream
    assert field_matches(ops, POD)
