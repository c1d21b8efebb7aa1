"""Pods and the workloads that own them: Pod, Deployment, ReplicaSet, ReplicationController.

Pure: manifests are decoded and validated (kubectl-like lines, every problem at once),
turned into a ``Workload`` (replicas, selector, one pod template) and back into the stored
object. The controllers (``testbed.controllers``) compare workloads with the pods in
etcd and create or delete pods; the names they give them are Kubernetes' shapes:
``<deployment>-<template hash>-<5 chars>``, ``<rs or rc>-<5 chars>``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testbed import images
from testbed.kube import registry
from testbed.kube.errors import FieldReport, ManifestError, dns_subdomain_problems, port_name_problems
from testbed.kube.policy import METADATA_FIELDS
from testbed.model.policy import NamedPort

KINDS = ("Pod", "Deployment", "ReplicaSet", "ReplicationController", "DaemonSet")  # their facts: testbed.kube.registry
PROTOCOLS = ("TCP", "UDP", "SCTP")
# Kubernetes' safe alphabet for generated names (no vowels, no 0/1/3: no words, no look-alikes).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
TEMPLATE_HASH_LABEL = "pod-template-hash"


@dataclass(frozen=True)
class PodTemplate:
    labels: tuple[tuple[str, str], ...]
    image: str
    command: tuple[str, ...] = ()  # container command + args; () = the image's default
    ports: tuple[NamedPort, ...] = ()
    host: str | None = None  # spec.nodeName (bare pods only)

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class Workload:
    kind: str
    namespace: str
    name: str
    replicas: int
    selector: tuple[tuple[str, str], ...]
    template: PodTemplate
    manifest: dict[str, Any]  # the object as stored (metadata completed, no status)

    @property
    def resource(self) -> str:
        """kubectl's name for one of them in result lines: ``deployment.apps``."""
        return registry.BY_KIND[self.kind].singular

    @property
    def plural(self) -> str:
        """kubectl's resource name in errors: ``deployments.apps``."""
        return registry.BY_KIND[self.kind].resource

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.selector)


def _ports(rep: FieldReport, value: object, path: str) -> tuple[NamedPort, ...]:
    ports: list[NamedPort] = []
    for i, raw in enumerate(rep.sequence(value, path)):
        where = f"{path}[{i}]"
        port = rep.mapping(raw, where, ("name", "containerPort", "protocol", "hostPort", "hostIP")) or {}
        number = port.get("containerPort")
        if not isinstance(number, int) or isinstance(number, bool):
            if number is None:
                rep.required(f"{where}.containerPort")
            else:
                rep.wrong_type(f"{where}.containerPort", number, "int32")
            continue
        if not 1 <= number <= 65535:
            rep.invalid(f"{where}.containerPort", number, "must be between 1 and 65535, inclusive")
        protocol = port.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            rep.unsupported(f"{where}.protocol", protocol, PROTOCOLS)
            continue
        name = rep.string(port.get("name"), f"{where}.name") or ""
        for problem in port_name_problems(name) if name else ():
            rep.invalid(f"{where}.name", name, problem)
        ports.append(NamedPort(name=name, protocol=protocol, port=number))
    return tuple(ports)


# The PodSpec and Container fields a manifest may carry (kubectl's strict decoding rejects
# others). Besides what the lab acts on, the ones the API server fills in or a client sends
# back from an object it read (schedulerName, enableServiceLinks, terminationMessagePath,
# ...): accepted and kept, with no meaning to the lab [k8s.io/api core/v1 types.go].
POD_SPEC_FIELDS = (
    "containers", "nodeName", "restartPolicy", "terminationGracePeriodSeconds", "serviceAccountName",
    "serviceAccount", "dnsPolicy", "nodeSelector", "tolerations", "securityContext", "volumes", "hostNetwork",
    "schedulerName", "enableServiceLinks", "priority", "priorityClassName", "preemptionPolicy", "dnsConfig",
    "hostname", "subdomain", "affinity", "imagePullSecrets", "automountServiceAccountToken", "activeDeadlineSeconds",
    "shareProcessNamespace", "topologySpreadConstraints", "readinessGates", "runtimeClassName", "overhead",
    "hostPID", "hostIPC", "hostAliases", "setHostnameAsFQDN", "os",
)  # fmt: skip
CONTAINER_FIELDS = (
    "name", "image", "command", "args", "ports", "imagePullPolicy", "env", "resources", "workingDir",
    "stdin", "tty", "volumeMounts", "securityContext", "readinessProbe", "livenessProbe",
    "terminationMessagePath", "terminationMessagePolicy", "startupProbe", "lifecycle", "envFrom", "stdinOnce",
    "volumeDevices", "resizePolicy", "restartPolicy",
)  # fmt: skip


def _pod_spec(rep: FieldReport, value: object, path: str, labels: dict[str, str], bare: bool) -> PodTemplate | None:
    spec = rep.mapping(value, path, POD_SPEC_FIELDS)
    if spec is None:
        return None
    containers = rep.sequence(spec.get("containers"), f"{path}.containers")
    if not containers:
        rep.required(f"{path}.containers")
        return None
    where = f"{path}.containers[0]"
    container = rep.mapping(containers[0], where, CONTAINER_FIELDS) or {}
    name = rep.string(container.get("name"), f"{where}.name")
    if not name:
        rep.required(f"{where}.name")
    image = rep.string(container.get("image"), f"{where}.image")
    if not image:
        rep.required(f"{where}.image")
    else:
        try:
            images.lookup(image)
        except images.UnknownImage as exc:
            rep.invalid(f"{where}.image", image, str(exc))
    command: list[str] = []
    for field_name in ("command", "args"):
        for i, item in enumerate(rep.sequence(container.get(field_name), f"{where}.{field_name}")):
            if isinstance(item, (str, int, float)) and not isinstance(item, bool):
                command.append(str(item))
            else:
                rep.wrong_type(f"{where}.{field_name}[{i}]", item, "string")
    ports = _ports(rep, container.get("ports"), f"{where}.ports")
    host = rep.string(spec.get("nodeName"), f"{path}.nodeName") if bare else None
    return PodTemplate(tuple(sorted(labels.items())), image or "", tuple(command), ports, host or None)


def _metadata(rep: FieldReport, value: object, default_namespace: str) -> tuple[str, str, dict[str, str]]:
    metadata = rep.mapping(value, "metadata", METADATA_FIELDS) or {}
    name = rep.string(metadata.get("name"), "metadata.name") or ""
    rep.name = name
    if not name:
        rep.required("metadata.name", "name or generateName is required")
    for problem in dns_subdomain_problems(name) if name else ():
        rep.invalid("metadata.name", name, problem)
    namespace = rep.string(metadata.get("namespace"), "metadata.namespace") or default_namespace
    return name, namespace, rep.labels(metadata.get("labels"), "metadata.labels")


def _replicas(rep: FieldReport, value: object, path: str) -> int:
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool):
        rep.wrong_type(path, value, "int32")
        return 1
    if value < 0:
        rep.invalid(path, value, "must be greater than or equal to 0")
    return value


def parse_workload(obj: Mapping[str, Any], default_namespace: str = "default") -> Workload:
    """A Pod, Deployment, ReplicaSet or ReplicationController manifest, checked whole."""
    kind = str(obj.get("kind"))
    version = str(obj.get("apiVersion"))
    if not registry.accepts(registry.BY_KIND[kind], version):
        raise ManifestError([f'error: unable to recognize: no matches for kind "{kind}" in version "{version}"'])
    rep = FieldReport(kind, version)
    top = rep.mapping(obj, "", ("apiVersion", "kind", "metadata", "spec", "status")) or {}
    name, namespace, labels = _metadata(rep, top.get("metadata"), default_namespace)
    if kind == "Pod":
        template = _pod_spec(rep, top.get("spec"), "spec", labels, bare=True)
        replicas, selector = 1, tuple(sorted(labels.items()))
    else:
        spec = rep.mapping(
            top.get("spec"), "spec",
            ("replicas", "selector", "template", "strategy", "minReadySeconds", "revisionHistoryLimit",
             "progressDeadlineSeconds", "paused", "updateStrategy"),
        ) or {}  # fmt: skip
        replicas = _replicas(rep, spec.get("replicas"), "spec.replicas")
        tpl = rep.mapping(spec.get("template"), "spec.template", ("metadata", "spec")) or {}
        tpl_meta = rep.mapping(tpl.get("metadata"), "spec.template.metadata", METADATA_FIELDS) or {}
        tpl_labels = rep.labels(tpl_meta.get("labels"), "spec.template.metadata.labels")
        if kind == "ReplicationController":
            selector_map = rep.string_map(spec.get("selector"), "spec.selector") or dict(tpl_labels)
        else:
            raw_selector = rep.mapping(spec.get("selector"), "spec.selector", ("matchLabels", "matchExpressions")) or {}
            selector_map = rep.string_map(raw_selector.get("matchLabels"), "spec.selector.matchLabels")
            if raw_selector.get("matchExpressions"):
                rep.forbidden("spec.selector.matchExpressions", "this lab supports matchLabels selectors only")
            if not selector_map and version == "apps/v1":
                rep.required("spec.selector")
            selector_map = selector_map or dict(tpl_labels)
        if not tpl_labels:
            rep.required("spec.template.metadata.labels")
        elif any(tpl_labels.get(k) != v for k, v in selector_map.items()):
            rep.invalid(
                "spec.template.metadata.labels", tpl_labels, "`selector` does not match template `labels`"
            )
        template = _pod_spec(rep, tpl.get("spec"), "spec.template.spec", tpl_labels, bare=False)
        selector = tuple(sorted(selector_map.items()))
    rep.raise_if_any()
    assert template is not None  # raise_if_any reported why otherwise
    manifest = json.loads(json.dumps(dict(top)))
    manifest.pop("status", None)
    manifest.setdefault("metadata", {})["namespace"] = namespace
    return Workload(kind, namespace, name, replicas, selector, template, manifest)


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable 10-character hash of a stored pod template (``spec.template``), as
    Deployments label their ReplicaSets and DaemonSets their pods: the canonical JSON of
    the whole template (any pod-template-hash label left out), so that any change to it
    (labels, containers, probes, restartPolicy) makes a new one. The one copy: the
    controllers (``testbed.controllers``) and the CLI both name ReplicaSets with it."""
    template = json.loads(json.dumps(template))
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(TEMPLATE_HASH_LABEL, None)
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).digest()
    value = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(10):
        value, index = divmod(value, len(NAME_ALPHABET))
        chars.append(NAME_ALPHABET[index])
    return "".join(chars)


def pod_name(owner: str, taken: Sequence[str], rng: random.Random) -> str:
    """``<owner>-<5 chars>``, unused among ``taken``."""
    while True:
        name = f"{owner}-{''.join(rng.choice(NAME_ALPHABET) for _ in range(5))}"
        if name not in taken:
            return name
