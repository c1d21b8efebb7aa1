"""Kubernetes objects in the lab's etcd: read manifests, check them all, then store them.

What ``testbed kubectl`` does for Namespace and NetworkPolicy: multi-document YAML from a
file or stdin, every document validated before anything is written (one bad document and
nothing is stored), kubectl's own result lines. Namespaces also update the Calico profile
``kns.<ns>`` whose labels policy selectors see; pod labels update the WorkloadEndpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.kube.errors import ManifestError, dns_label_problems
from testbed.kube.policy import network_policy_to_dict, parse_network_policy
from testbed.runtime.plan import NamespacePlan
from testbed.labels import label_key_problem, label_value_problem

POLICY_KIND = "networkpolicy.networking.k8s.io"
NETWORK_POLICIES = keys.REGISTRY + "networkpolicies/"


def policy_key(namespace: str, name: str) -> str:
    return f"{NETWORK_POLICIES}{namespace}/{name}"


@dataclass(frozen=True)
class Change:
    kind: str  # "namespace" or POLICY_KIND
    name: str
    verb: str  # created, configured, unchanged, deleted

    def line(self) -> str:
        return f'{self.kind} "{self.name}" {self.verb}'


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a manifest; one-line errors naming the source."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ManifestError([f"error: error parsing {source}:{where}: {getattr(exc, 'problem', exc)}"]) from None
    objects: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            objects.extend(item for item in doc["items"] if isinstance(item, dict))
        elif isinstance(doc, dict):
            objects.append(doc)
        else:
            raise ManifestError([f"error: error validating {source}: a document is not an object"])
    if not objects:
        raise ManifestError([f"error: no objects passed to apply ({source} is empty)"])
    return objects


@dataclass(frozen=True)
class NamespaceObject:
    name: str
    labels: tuple[tuple[str, str], ...]


def parse_namespace(obj: Mapping[str, Any]) -> NamespaceObject:
    if obj.get("apiVersion") != "v1":
        raise ManifestError([f'error: unable to recognize: no matches for kind "Namespace" in version "{obj.get("apiVersion")}"'])
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    problems: list[str] = []
    unknown = sorted(set(obj) - {"apiVersion", "kind", "metadata", "spec", "status"})
    problems += [f'Namespace in version "v1" cannot be handled as a Namespace: strict decoding error: unknown field "{k}"' for k in unknown]
    if not isinstance(name, str) or not name:
        problems.append("The Namespace \"\" is invalid: metadata.name: Required value: name or generateName is required")
        raise ManifestError(problems)
    problems += [f'The Namespace "{name}" is invalid: metadata.name: Invalid value: "{name}": {p}' for p in dns_label_problems(name)]
    labels = metadata.get("labels") or {}
    if not isinstance(labels, dict):
        problems.append(f'The Namespace "{name}" is invalid: metadata.labels: Invalid value: must be a map')
        labels = {}
    for key, value in labels.items():
        for problem in (label_key_problem(str(key)), label_value_problem(str(key), str(value) if value is not None else "")):
            if problem:
                problems.append(f'The Namespace "{name}" is invalid: metadata.labels: Invalid value: "{key}": {problem}')
    if problems:
        raise ManifestError(problems)
    return NamespaceObject(name, tuple(sorted((str(k), str(v)) for k, v in labels.items())))


def parse_objects(objects: Iterable[Mapping[str, Any]], namespace: str | None) -> list[object]:
    """Each manifest as NamespaceObject or NetworkPolicy; all problems of all documents."""
    parsed: list[object] = []
    problems: list[str] = []
    for obj in objects:
        kind = obj.get("kind")
        try:
            if kind == "Namespace":
                parsed.append(parse_namespace(obj))
            elif kind == "NetworkPolicy":
                parsed.append(parse_network_policy(dict(obj), default_namespace=namespace or "default"))
            else:
                problems.append(
                    f'error: unable to recognize: no matches for kind "{kind}" in version "{obj.get("apiVersion")}"'
                    " (this lab knows Namespace and NetworkPolicy)"
                )
        except ManifestError as exc:
            problems += exc.lines
    if problems:
        raise ManifestError(problems)
    return parsed


def namespace_values(lab: str, ns: NamespaceObject, created: float) -> dict[str, dict[str, Any]]:
    return records.namespace_records(lab, NamespacePlan(ns.name, ns.labels), created)


def store_objects(store: Datastore, lab: str, parsed: list[object], *, create_only: bool) -> list[Change]:
    """Write parsed objects (namespaces first); kubectl's verbs: created/configured/unchanged."""
    from testbed.model.policy import NetworkPolicy  # noqa: PLC0415 - keeps the import graph flat

    changes: list[Change] = []
    problems: list[str] = []
    writes: dict[str, dict[str, Any]] = {}
    created = time.time()
    namespaces = {k[len(keys.K8S_NAMESPACES):] for k in store.list(keys.K8S_NAMESPACES)}
    for obj in sorted(parsed, key=lambda o: 0 if isinstance(o, NamespaceObject) else 1):
        if isinstance(obj, NamespaceObject):
            current = store.get(keys.k8s_namespace(obj.name))
            if current is not None and create_only:
                problems.append(f'Error from server (AlreadyExists): namespaces "{obj.name}" already exists')
                continue
            old_labels = tuple(sorted((current or {}).get("metadata", {}).get("labels", {}).items()))
            wanted = namespace_values(lab, obj, created)
            wanted_labels = tuple(sorted(wanted[keys.k8s_namespace(obj.name)]["metadata"]["labels"].items()))
            verb = "created" if current is None else ("unchanged" if old_labels == wanted_labels else "configured")
            if verb != "unchanged":
                writes.update(wanted)
            namespaces.add(obj.name)
            changes.append(Change("namespace", obj.name, verb))
        elif isinstance(obj, NetworkPolicy):
            if obj.namespace not in namespaces:
                problems.append(f'Error from server (NotFound): namespaces "{obj.namespace}" not found')
                continue
            key = policy_key(obj.namespace, obj.name)
            current = store.get(key)
            if current is not None and create_only:
                problems.append(f'Error from server (AlreadyExists): networkpolicies.networking.k8s.io "{obj.name}" already exists')
                continue
            value = network_policy_to_dict(obj)
            value.setdefault("metadata", {})["creationTimestamp"] = (current or {}).get("metadata", {}).get(
                "creationTimestamp", records.timestamp(created)
            )
            verb = "created" if current is None else ("unchanged" if current == value else "configured")
            if verb != "unchanged":
                writes[key] = value
            changes.append(Change(POLICY_KIND, obj.name, verb))
    if problems:
        raise ManifestError(problems)
    if writes:
        store.put_many(writes)
    return changes
