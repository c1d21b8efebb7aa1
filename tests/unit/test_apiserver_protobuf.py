"""Kubernetes protobuf bodies: real ones kubectl sent (tests/data/protobuf/, see capture.py there), hand-built
ones for what kubectl's imperative commands never send (a Pod: `kubectl run` sends JSON), and the wire reader."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from testbed.apiserver import protobuf
from testbed.apiserver.protobuf import MAGIC, UnsupportedKind, decode, read_fields, read_varint

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "protobuf"


# --- a tiny encoder: enough protobuf to write test bodies -----------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers as Go writes them: 64-bit two's complement, ten bytes
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def f(number: int, value: int | str | bytes) -> bytes:
    """One field: an int (or bool) as a varint, a str or bytes (a nested message) length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(number: int, key: str, value: int | str | bytes) -> bytes:
    """One map entry of field ``number``."""
    return f(number, f(1, key) + f(2, value))


def body(api_version: str, kind: str, raw: bytes) -> bytes:
    return MAGIC + f(1, f(1, api_version) + f(2, kind)) + f(2, raw) + f(3, "") + f(4, "")


def meta(name: str, *more: bytes) -> bytes:
    """ObjectMeta as Go writes it: every non-pointer string, the zero generation and creationTimestamp."""
    return f(1, name) + f(2, "") + f(3, "") + f(4, "") + f(5, "") + f(6, "") + f(7, 0) + f(8, b"") + b"".join(more)


# --- what kubectl really sends --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.pb")))
def test_kubectl_bodies_decode_to_what_kubectl_would_send_as_json(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert decode((FIXTURES / f"{name}.pb").read_bytes()) == expected


def test_the_fixtures_cover_the_imperative_commands() -> None:
    kinds = {json.loads(p.read_text())["kind"] for p in FIXTURES.glob("*.json")}
    assert kinds == {"Deployment", "Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount", "Job", "CronJob",
                     "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ResourceQuota",
                     "SelfSubjectAccessReview", "SelfSubjectRulesReview"}  # fmt: skip


def test_a_deployment_from_kubectl_reads_as_expected() -> None:
    found = decode((FIXTURES / "deployment.pb").read_bytes())
    assert (found["apiVersion"], found["kind"]) == ("apps/v1", "Deployment")
    assert found["metadata"] == {"name": "web", "namespace": "demo", "labels": {"app": "web"}}
    assert found["spec"]["replicas"] == 2
    assert found["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}]
    assert found["spec"]["strategy"] == {} and found["status"] == {}


def test_binary_data_and_secret_data_are_base64() -> None:
    config = decode((FIXTURES / "configmap-binary.pb").read_bytes())
    assert base64.b64decode(config["binaryData"]["bin.dat"]) == b"hello\x00\xff\xfebin"
    secret = decode((FIXTURES / "secret.pb").read_bytes())
    assert secret["data"] == {"p": base64.b64encode(b"q").decode()} and "type" not in secret  # the server's default


# --- a Pod, built by hand ---------------------------------------------------------------------------------------


def _pod() -> bytes:
    container = b"".join([
        f(1, "app"), f(2, "busybox"), f(3, "sleep"), f(4, "3600"), f(5, ""),
        f(6, f(1, "") + f(2, 0) + f(3, 8080) + f(4, "TCP") + f(5, "")),
        f(7, f(1, "MODE") + f(2, "fast")),
        f(7, f(1, "POD_IP") + f(2, "") + f(3, f(1, f(1, "v1") + f(2, "status.podIP")))),
        f(7, f(1, "PASSWORD") + f(3, f(4, f(1, f(1, "creds")) + f(2, "password") + f(3, 0)))),
        f(8, entry(1, "cpu", f(1, "500m")) + entry(1, "memory", f(1, "64Mi")) + entry(2, "cpu", f(1, "100m"))),
        f(9, f(1, "cfg") + f(2, 1) + f(3, "/etc/app") + f(4, "")),
        f(11, f(1, f(2, f(1, "/healthz") + f(2, f(1, 1) + f(2, 0) + f(3, "http")) + f(3, "") + f(4, "HTTP")))
              + f(2, 3) + f(3, 0) + f(4, 0) + f(5, 0) + f(6, 0)),
        f(10, f(1, f(3, f(1, f(1, 0) + f(2, 8080) + f(3, "")) + f(2, ""))) + f(2, 0)),
        f(13, "/dev/termination-log"), f(14, "IfNotPresent"),
        f(15, f(2, 0) + f(4, 1000) + f(7, 0)),
        f(16, 0), f(17, 0), f(18, 0), f(20, "File"),
    ])  # fmt: skip
    spec = b"".join([
        f(1, f(1, "cfg") + f(2, f(19, f(1, f(1, "app-config")) + f(3, 0o644)))),
        f(1, f(1, "scratch") + f(2, f(2, f(1, "")))),
        f(2, container), f(3, "Never"), f(4, 30), f(6, "ClusterFirst"), entry(7, "disk", "ssd"),
        f(8, "runner"), f(9, "runner"), f(10, ""), f(11, 0), f(12, 0), f(13, 0),
        f(14, f(2, 1000) + f(4, 1000) + f(4, 2000) + f(5, 3000)),
        f(19, "default-scheduler"), f(21, 0),
        f(22, f(1, "node.kubernetes.io/not-ready") + f(2, "Exists") + f(3, "") + f(4, "NoExecute") + f(5, 300)),
        f(30, 1),
    ])  # fmt: skip
    return body("v1", "Pod", f(1, meta("p", entry(11, "app", "p"))) + f(2, spec) + f(3, b""))


def test_a_pod_spec_reads_as_json_would_have_it() -> None:
    assert decode(_pod()) == {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "p"}},
        "spec": {
            "volumes": [{"name": "cfg", "configMap": {"name": "app-config", "defaultMode": 0o644}},
                        {"name": "scratch", "emptyDir": {}}],
            "containers": [{
                "name": "app", "image": "busybox", "command": ["sleep"], "args": ["3600"],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "MODE", "value": "fast"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password",
                                                                        "optional": False}}},
                ],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
                "volumeMounts": [{"name": "cfg", "readOnly": True, "mountPath": "/etc/app"}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                   "initialDelaySeconds": 3},
                "livenessProbe": {"tcpSocket": {"port": 8080}},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"privileged": False, "runAsUser": 1000, "allowPrivilegeEscalation": False},
            }],
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"disk": "ssd"}, "serviceAccountName": "runner", "serviceAccount": "runner",
            "securityContext": {"runAsUser": 1000, "supplementalGroups": [1000, 2000], "fsGroup": 3000},
            "schedulerName": "default-scheduler", "automountServiceAccountToken": False,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300}],
            "enableServiceLinks": True,
        },
        "status": {},
    }  # fmt: skip


# --- the zero-value rule -----------------------------------------------------------------------------------------


def _deployment(spec: bytes) -> dict[str, Any]:
    return decode(body("apps/v1", "Deployment", f(1, meta("web")) + f(2, spec)))


def test_zero_values_of_pointer_fields_are_kept_and_of_omitempty_fields_dropped() -> None:
    spec = _deployment(f(1, 0) + f(5, 0) + f(6, 0) + f(7, 0) + f(4, f(1, "")))["spec"]
    assert spec == {"replicas": 0, "revisionHistoryLimit": 0, "strategy": {}}  # minReadySeconds, paused: omitempty


def test_zero_values_of_fields_without_omitempty_are_kept() -> None:
    service = decode(body("v1", "Service", f(1, meta("s")) + f(2, f(1, f(1, "") + f(2, "") + f(3, 0) + f(5, 0)))))
    assert service["spec"]["ports"] == [{"port": 0}]  # `json:"port"`; nodePort has omitempty


def test_a_scale_of_zero_replicas_keeps_them() -> None:
    scale = decode(body("autoscaling/v1", "Scale", f(1, meta("web", f(3, "demo"))) + f(2, f(1, 0)) + f(3, b"")))
    assert scale["spec"] == {"replicas": 0} and scale["status"] == {}


def test_times_are_rfc3339_in_utc_and_the_zero_time_is_absent() -> None:
    created = decode(body("v1", "Namespace", f(1, f(1, "x") + f(8, f(1, 1_700_000_000) + f(2, 999)))))
    assert created["metadata"] == {"name": "x", "creationTimestamp": "2023-11-14T22:13:20Z"}  # nanos dropped
    assert decode(body("v1", "Namespace", f(1, meta("x"))))["metadata"] == {"name": "x"}


def test_micro_times_keep_their_microseconds() -> None:
    spec = f(1, "node-1") + f(2, 40) + f(3, f(1, 1_700_000_000) + f(2, 123_456_789)) + f(4, b"") + f(5, 0)
    lease = decode(body("coordination.k8s.io/v1", "Lease", f(1, meta("node-1")) + f(2, spec)))
    assert lease["spec"] == {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                             "acquireTime": "2023-11-14T22:13:20.123456Z", "leaseTransitions": 0}  # fmt: skip


def test_int_or_string_is_a_number_or_a_string() -> None:
    rolling = f(1, f(1, 0) + f(2, 1) + f(3, "")) + f(2, f(1, 1) + f(2, 0) + f(3, "25%"))
    spec = _deployment(f(4, f(1, "RollingUpdate") + f(2, rolling)))["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}}


# --- the wire ------------------------------------------------------------------------------------------------------


def test_varints() -> None:
    assert read_varint(b"\x96\x01", 0) == (150, 2)
    assert read_varint(b"\x00\x7f", 1) == (127, 2)
    with pytest.raises(ValueError, match="truncated"):
        read_varint(b"\x96", 0)
    with pytest.raises(ValueError, match="longer than 10 bytes"):
        read_varint(b"\xff" * 11, 0)


def test_negative_int32_and_int64_are_ten_byte_twos_complement() -> None:
    assert len(varint(-1)) == 10
    context = f(4, -5) + f(8, -(2**40))  # runAsUser, runAsGroup (int64)
    spec = f(2, f(1, "c") + f(15, context)) + f(4, -1)  # terminationGracePeriodSeconds (int64)
    pod = decode(body("v1", "Pod", f(1, meta("p")) + f(2, spec)))
    assert pod["spec"]["containers"][0]["securityContext"] == {"runAsUser": -5, "runAsGroup": -(2**40)}
    assert pod["spec"]["terminationGracePeriodSeconds"] == -1
    assert _deployment(f(1, -3))["spec"] == {"replicas": -3}  # int32


def test_every_wire_type_is_read_and_unknown_fields_are_skipped() -> None:
    fixed64, fixed32 = varint(99 << 3 | 1) + b"\x01" * 8, varint(98 << 3 | 5) + b"\x02" * 4
    data = f(1, 7) + fixed64 + fixed32 + f(97, "x")
    assert list(read_fields(data)) == [(1, 0, 7), (99, 1, 0x0101010101010101), (98, 5, 0x02020202), (97, 2, b"x")]
    plain = _deployment(f(1, 2))
    assert _deployment(fixed64 + f(1, 2) + fixed32 + f(97, "x") + f(96, 5)) == plain
    unknown_kind_field = body("v1", "Namespace", f(1, meta("x")) + f(42, f(1, "?")))
    assert decode(unknown_kind_field)["metadata"] == {"name": "x"}


def test_a_field_running_past_its_message_or_a_group_is_an_error() -> None:
    with pytest.raises(ValueError, match="runs past the end"):
        list(read_fields(varint(1 << 3 | 2) + varint(5) + b"ab"))
    with pytest.raises(ValueError, match="wire type 3"):
        list(read_fields(varint(1 << 3 | 3)))
    with pytest.raises(ValueError, match="truncated fixed-width"):
        list(read_fields(varint(1 << 3 | 1) + b"\x00"))


def test_a_wire_type_not_matching_the_schema_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"apps\.DeploymentSpec\.replicas should be a varint"):
        _deployment(f(1, "two"))
    with pytest.raises(ValueError, match=r"meta\.ObjectMeta\.name should be length-delimited"):
        decode(body("v1", "Namespace", f(1, f(1, 5))))


def test_maps_of_strings_bytes_and_quantities() -> None:
    labels = entry(11, "app", "web") + entry(11, "tier", "") + f(11, f(1, "no-value"))
    secret = decode(body("v1", "Secret", f(1, meta("s", labels)) + entry(2, "k", b"\x00\x01") + f(2, f(1, "e"))))
    assert secret["metadata"]["labels"] == {"app": "web", "tier": "", "no-value": ""}
    assert secret["data"] == {"k": "AAE=", "e": ""}
    quota = decode(body("v1", "ResourceQuota", f(1, meta("q")) + f(2, entry(1, "pods", f(1, "2")))))
    assert quota["spec"] == {"hard": {"pods": "2"}}


def test_packed_and_unpacked_repeated_integers() -> None:
    packed = varint(4 << 3 | 2) + varint(3) + varint(1) + varint(2) + varint(3)
    spec = f(2, f(1, "c")) + f(14, packed + f(4, 4))
    pod = decode(body("v1", "Pod", f(1, meta("p")) + f(2, spec)))
    assert pod["spec"]["securityContext"] == {"supplementalGroups": [1, 2, 3, 4]}


def test_invalid_utf8_reads_as_replacement_characters() -> None:
    assert decode(body("v1", "Namespace", f(1, f(1, b"a\xffb"))))["metadata"] == {"name": "a\ufffdb"}


# --- the envelope ----------------------------------------------------------------------------------------------------


def test_a_body_without_the_magic_is_refused() -> None:
    with pytest.raises(ValueError, match="not Kubernetes protobuf"):
        decode(b'{"kind": "Namespace"}')


def test_an_unsupported_kind_is_named() -> None:
    with pytest.raises(UnsupportedKind, match=r"HorizontalPodAutoscaler \(autoscaling/v2\)"):
        decode(body("autoscaling/v2", "HorizontalPodAutoscaler", b""))
    with pytest.raises(UnsupportedKind, match=r"Deployment \(apps/v1beta1\)"):
        decode(body("apps/v1beta1", "Deployment", b""))


def test_a_content_encoding_is_refused() -> None:
    raw = MAGIC + f(1, f(1, "v1") + f(2, "Namespace")) + f(2, b"") + f(3, "gzip")
    with pytest.raises(ValueError, match="content encoding 'gzip'"):
        decode(raw)


def test_the_envelope_kind_wins_and_an_empty_object_is_just_its_type() -> None:
    assert decode(body("v1", "ConfigMap", b"")) == {"apiVersion": "v1", "kind": "ConfigMap"}


# --- the schema itself ------------------------------------------------------------------------------------------------


def test_every_message_the_schema_names_is_defined() -> None:
    known = set(protobuf.MESSAGES) | set(protobuf._SPECIAL)
    missing = {f"{name}.{field.name}: {field.type}" for name, fields in protobuf.MESSAGES.items()
               for field in fields.values() if field.type not in protobuf.SCALARS and field.type not in known}
    assert not missing
    assert set(protobuf.KINDS.values()) <= set(protobuf.MESSAGES)


def test_every_kind_has_its_metadata_first() -> None:
    for message in protobuf.KINDS.values():
        assert protobuf.MESSAGES[message][1] == protobuf.Field("metadata", "meta.ObjectMeta"), message


def test_inlined_fields_are_messages() -> None:
    inlined = [(name, field.type) for name, fields in protobuf.MESSAGES.items() for field in fields.values()
               if not field.name]
    assert inlined and all(type_ in protobuf.MESSAGES for _, type_ in inlined)
