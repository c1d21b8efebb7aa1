"""Kubernetes objects in the lab's etcd: read manifests, check them all, then store them.

What ``testbed kubectl`` does for Namespace and NetworkPolicy: multi-document YAML from a
file or stdin, every document validated before anything is written (one bad document and
nothing is stored), kubectl's own result lines. Namespaces also update the Calico profile
``kns.<ns>`` whose labels policy selectors see; pod labels update the WorkloadEndpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.kube import registry, workloads
from testbed.kube.errors import ManifestError, dns_label_problems
from testbed.kube.policy import network_policy_to_dict
from testbed.runtime.plan import NamespacePlan
from testbed.labels import label_key_problem, label_value_problem

POLICY_KIND = registry.BY_KIND["NetworkPolicy"].singular


def policy_key(namespace: str, name: str) -> str:
    return registry.BY_KIND["NetworkPolicy"].key(namespace, name)


@dataclass(frozen=True)
class Change:
    kind: str  # "namespace", POLICY_KIND, "deployment.apps", "service", ...
    name: str
    verb: str  # created, configured, unchanged, deleted, exposed
    slash: bool = False  # `kind/name verb`: how the lab's kubectl words kinds it only stores

    def line(self) -> str:
        if self.slash:
            return f"{self.kind}/{self.name} {self.verb}"
        return f'{self.kind} "{self.name}" {self.verb}'


@dataclass(frozen=True)
class StoredObject:
    """An object of a STORED_ONLY kind: kept verbatim in etcd, listed by `get`."""

    kind: str
    namespace: str | None
    name: str
    manifest: dict[str, Any]

    @property
    def resource(self) -> str:
        return registry.BY_KIND[self.kind].resource

    @property
    def singular(self) -> str:
        return registry.BY_KIND[self.kind].singular

    @property
    def key(self) -> str:
        return registry.BY_KIND[self.kind].key(self.namespace, self.name)


def parse_stored(obj: Mapping[str, Any], default_namespace: str) -> StoredObject:
    kind = str(obj.get("kind"))
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError([f'The {kind} "" is invalid: metadata.name: Required value: name or generateName is required'])
    entry = registry.BY_KIND[kind]
    version = obj.get("apiVersion")
    if not isinstance(version, str) or "/" not in version and entry.group:
        raise ManifestError([f'error: unable to recognize: no matches for kind "{kind}" in version "{version}"'])
    namespaced = entry.namespaced
    namespace = (metadata.get("namespace") or default_namespace) if namespaced else None
    manifest = json.loads(json.dumps(dict(obj)))
    if namespace:
        manifest.setdefault("metadata", {})["namespace"] = namespace
    return StoredObject(kind, namespace, name, manifest)


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


def parse_namespace_manifest(obj: Mapping[str, Any], _default_namespace: str) -> NamespaceObject:
    """``parse_namespace`` as the registry calls every kind's parser."""
    return parse_namespace(obj)


# Kinds a manifest may create: the registry's, less those only the lab itself writes.
WRITABLE = tuple(k for k in registry.KINDS if k.kind != "Node")


def parse_objects(objects: Iterable[Mapping[str, Any]], namespace: str | None) -> list[object]:
    """Each manifest checked by its kind's parser (the registry's); all problems of all documents."""
    parsed: list[object] = []
    problems: list[str] = []
    for obj in objects:
        kind = registry.of_kind(str(obj.get("kind")))
        try:
            if kind is not None and kind in WRITABLE:
                parsed.append(kind.parse(obj, namespace or "default"))
            else:
                known = ", ".join(sorted(k.kind for k in WRITABLE))
                problems.append(
                    f'error: unable to recognize: no matches for kind "{obj.get("kind")}" in version "{obj.get("apiVersion")}"'
                    f" (this lab knows {known})"
                )
        except ManifestError as exc:
            problems += exc.lines
    if problems:
        raise ManifestError(problems)
    return parsed


def namespace_values(lab: str, ns: NamespaceObject, created: float) -> dict[str, dict[str, Any]]:
    return records.namespace_records(lab, NamespacePlan(ns.name, ns.labels), created)


_ORDER = {"NamespaceObject": 0, "StoredObject": 1, "Service": 2, "NetworkPolicy": 3, "Workload": 4}


def _is_same(current: dict[str, Any] | None, value: dict[str, Any]) -> bool:
    """Equal but for the server-filled metadata (what makes `apply` say "unchanged")."""
    if current is None:
        return False
    strip = ("creationTimestamp", "uid", "resourceVersion")

    def bare(v: dict[str, Any]) -> dict[str, Any]:
        out = {k: x for k, x in v.items() if k != "status"}
        out["metadata"] = {k: x for k, x in v.get("metadata", {}).items() if k not in strip}
        return out

    return bare(current) == bare(value)


def store_objects(store: Datastore, lab: str, parsed: list[object], *, create_only: bool) -> list[Change]:
    """Write parsed objects (namespaces first), then run the workload controllers.

    kubectl's verbs: created/configured/unchanged. Any problem (a missing namespace, an
    object that exists for ``create``) and nothing at all is written.
    """
    from testbed.kube import controller  # noqa: PLC0415 - the runtime is needed only for workloads
    from testbed.model.policy import NetworkPolicy  # noqa: PLC0415 - keeps the import graph flat

    changes: list[Change] = []
    problems: list[str] = []
    writes: dict[str, dict[str, Any]] = {}
    created = time.time()
    stored_namespaces = store.list(keys.K8S_NAMESPACES)
    namespaces = {k[len(keys.K8S_NAMESPACES):] for k in stored_namespaces}
    touched_namespaces: set[str] = set()

    def check_namespace(namespace: str) -> bool:
        if namespace not in namespaces:
            problems.append(f'Error from server (NotFound): namespaces "{namespace}" not found')
            return False
        return True

    def exists_problem(resource: str, name: str) -> None:
        problems.append(f'Error from server (AlreadyExists): {resource} "{name}" already exists')

    def write(key: str, current: dict[str, Any] | None, value: dict[str, Any], same: bool) -> str:
        """kubectl's verb for storing ``value`` over ``current``; queues the write if any."""
        verb = "created" if current is None else ("unchanged" if same else "configured")
        if verb != "unchanged":
            writes[key] = value
        return verb

    starts: list[tuple[int, int]] = []  # (position in the manifest, first change of it)
    for position in sorted(range(len(parsed)), key=lambda i: _ORDER.get(type(parsed[i]).__name__, 5)):
        obj = parsed[position]
        starts.append((position, len(changes)))
        if isinstance(obj, NamespaceObject):
            current = stored_namespaces.get(keys.k8s_namespace(obj.name))
            if current is not None and create_only:
                exists_problem("namespaces", obj.name)
                continue
            old_labels = tuple(sorted((current or {}).get("metadata", {}).get("labels", {}).items()))
            wanted = namespace_values(lab, obj, created)
            wanted_labels = tuple(sorted(wanted[keys.k8s_namespace(obj.name)]["metadata"]["labels"].items()))
            verb = "created" if current is None else ("unchanged" if old_labels == wanted_labels else "configured")
            if verb != "unchanged":
                writes.update(wanted)
            namespaces.add(obj.name)
            changes.append(Change("namespace", obj.name, verb))
        elif isinstance(obj, StoredObject):
            if obj.namespace is not None and not check_namespace(obj.namespace):
                continue
            current = store.get(obj.key)
            if current is not None and create_only:
                exists_problem(obj.resource, obj.name)
                continue
            value = dict(obj.manifest)
            value["metadata"] = {**value.get("metadata", {}), "creationTimestamp": (current or {}).get(
                "metadata", {}).get("creationTimestamp", records.timestamp(created))}
            verb = write(obj.key, current, value, _is_same(current, value))
            changes.append(Change(obj.singular, obj.name, verb, slash=True))
        elif type(obj).__name__ == "Service":
            from testbed.kube import services  # noqa: PLC0415

            assert isinstance(obj, services.Service)
            if not check_namespace(obj.namespace):
                continue
            key = keys.service(obj.namespace, obj.name)
            current = store.get(key)
            if current is not None and create_only:
                exists_problem("services", obj.name)
                continue
            try:
                value = services.store_value(store, obj, current, created, pending=writes)
            except ManifestError as exc:
                problems += exc.lines
                continue
            verb = write(key, current, value, _is_same(current, value))
            changes.append(Change("service", obj.name, verb))
        elif isinstance(obj, NetworkPolicy):
            if not check_namespace(obj.namespace):
                continue
            key = policy_key(obj.namespace, obj.name)
            current = store.get(key)
            if current is not None and create_only:
                exists_problem("networkpolicies.networking.k8s.io", obj.name)
                continue
            value = network_policy_to_dict(obj)
            value.setdefault("metadata", {})["creationTimestamp"] = (current or {}).get("metadata", {}).get(
                "creationTimestamp", records.timestamp(created)
            )
            verb = write(key, current, value, current == value)
            changes.append(Change(POLICY_KIND, obj.name, verb))
        elif isinstance(obj, workloads.Workload):
            if not check_namespace(obj.namespace):
                continue
            key = controller.workload_key(obj.kind, obj.namespace, obj.name)
            current = store.get(key)
            if current is not None and create_only:
                exists_problem(obj.plural, obj.name)
                continue
            if obj.kind == "Pod":  # pods are made by the controller code, not stored as given
                changes.append(Change("pod", obj.name, "created" if current is None else "unchanged"))
                continue
            value = controller.stored_value(lab, obj, current, created)
            verb = write(key, current, value, _is_same(current, value))
            touched_namespaces.add(obj.namespace)
            changes.append(Change(obj.resource, obj.name, verb))
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)))
    if writes:
        store.put_many(writes)
    if any(c.kind == "service" and c.verb == "created" for c in changes):
        from testbed.kube import cluster_dns  # noqa: PLC0415

        # The first Service of a lab brings the cluster DNS, before any pod of this file
        # starts: a program that looks a name up before DNS answers waits for glibc's
        # 5 s retry.
        cluster_dns.ensure(lab, store)
    for pod in (o for o in parsed if isinstance(o, workloads.Workload) and o.kind == "Pod"):
        if any(c.kind == "pod" and c.name == pod.name and c.verb == "created" for c in changes):
            controller.create_bare_pod(lab, store, pod)
    if touched_namespaces:
        controller.reconcile(lab, store, touched_namespaces)
    return in_manifest_order(changes, starts)


def in_manifest_order(changes: list[Change], starts: list[tuple[int, int]]) -> list[Change]:
    """The result lines in the order of the manifest's documents, as kubectl prints them
    (objects are written namespaces first, whatever the file's order). ``starts``: for
    each object in processing order, its position in the file and its first change."""
    bounds = [*starts, (-1, len(changes))]
    owner: list[int] = []
    for (position, first), (_, following) in zip(bounds, bounds[1:]):
        owner += [position] * (following - first)
    return [change for _, change in sorted(zip(owner, changes), key=lambda pair: pair[0])]
