"""Kubernetes objects in the lab's etcd: check every manifest document, then store them.

What ``testbed kubectl`` does with the documents ``sources`` read: every document
validated before anything is written (one bad document and nothing is stored), kubectl's
own result lines, and a dry run that computes the same lines without writing. Namespaces
also update the Calico profile ``kns.<ns>`` whose labels policy selectors see; pod labels
update the WorkloadEndpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.kube import registry, workloads
from testbed.kube.errors import ManifestError, dns_label_problems
from testbed.kube.policy import network_policy_to_dict
from testbed.kube.sources import Document
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
    key: str | None = None  # where the object lives, for kinds whose status is worth waiting on

    def line(self) -> str:
        if self.slash:
            return f"{self.kind}/{self.name} {self.verb}"
        return f'{self.kind} "{self.name}" {self.verb}'

    def dry_run_line(self, strategy: str) -> str:
        """The line of a dry run (``client`` or ``server``), as today's kubectl prints it:
        ``kind/name created (dry run)``; deletions keep ``kind "name" deleted (...)``."""
        suffix = DRY_RUN_SUFFIXES[strategy]
        if self.verb == "deleted":
            return f"{self.line()} {suffix}"
        return f"{self.kind}/{self.name} {self.verb} {suffix}"


DRY_RUN_SUFFIXES = {"client": "(dry run)", "server": "(server dry run)"}


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
WRITABLE = tuple(k for k in registry.KINDS if k.kind not in ("Node", "Endpoints", "EndpointSlice", "Lease"))


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


def parse_documents(documents: Sequence[Document], namespace: str | None, *, enforce_namespace: bool = False) -> list[object]:
    """``parse_objects`` over documents read from files: each problem names its file.

    ``enforce_namespace`` (kubectl's ``-n`` given): a namespaced object whose own
    ``metadata.namespace`` is another one is refused, with kubectl's line.
    """
    parsed: list[object] = []
    problems: list[str] = []
    for document in documents:
        try:
            (obj,) = parse_objects([document.body], namespace)
        except ManifestError as exc:
            problems += [_naming_source(line, document.source) for line in exc.lines]
            continue
        own = getattr(obj, "namespace", None)
        if enforce_namespace and own is not None and own != namespace:
            problems.append(
                f'error: the namespace from the provided object "{own}" does not match the namespace "{namespace}". '
                f"You must pass '--namespace={own}' to perform this operation."
            )
            continue
        parsed.append(obj)
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)))
    return parsed


def _naming_source(line: str, source: str) -> str:
    """A validation problem with the file it is in, in kubectl's words."""
    if line.startswith("error: unable to recognize: "):
        return f'error: unable to recognize "{source}": ' + line[len("error: unable to recognize: "):]
    return f'error: error validating "{source}": ' + line.removeprefix("error: ")


def change_kind(obj: object) -> str:
    """The kind a result line names for a parsed object (``networkpolicy.networking.k8s.io``)."""
    from testbed.model.policy import NetworkPolicy  # noqa: PLC0415 - keeps the import graph flat

    if isinstance(obj, NamespaceObject):
        return "namespace"
    if isinstance(obj, StoredObject):
        return obj.singular
    if isinstance(obj, workloads.Workload):
        return obj.resource
    if isinstance(obj, NetworkPolicy):
        return POLICY_KIND
    return "service"


def planned_changes(parsed: Sequence[object]) -> list[Change]:
    """What a client dry run reports: every object ``created``, in manifest order (no store read)."""
    return [Change(change_kind(obj), obj.name, "created", slash=isinstance(obj, StoredObject)) for obj in parsed]  # type: ignore[attr-defined]


def namespace_values(lab: str, ns: NamespaceObject, created: float) -> dict[str, dict[str, Any]]:
    return records.namespace_records(lab, NamespacePlan(ns.name, ns.labels), created)


_ORDER = {"NamespaceObject": 0, "StoredObject": 1, "Service": 2, "NetworkPolicy": 3, "Workload": 4}


class Conflict(RuntimeError):
    """Another writer changed an object between our read and our write."""


CONFLICT_RETRIES = 5
COMMIT_KEYS = 60  # puts per transaction: each also carries its compare (etcd allows 128 operations)


def store_objects(
    store: Datastore, lab: str, parsed: list[object], *, create_only: bool, dry_run: bool = False,
    sources: Sequence[str] | None = None, expect: Mapping[str, int] | None = None,
) -> list[Change]:
    """Write parsed objects (namespaces first); controllers and kubelets do the rest.

    kubectl's verbs: created/configured/unchanged. Any problem (a missing namespace, an
    object that exists for ``create``) and nothing at all is written. ``dry_run`` (kubectl's
    ``--dry-run=server``): the same checks and lines, then nothing written. ``sources``:
    the file of each object, named in its problems. Every write is conditional on the
    revision read (as the API server's): a writer that raced another reads again and
    decides again, so five concurrent applies of one Deployment store it once.
    ``expect``: key -> the revision the client read (an update's ``resourceVersion``):
    the write happens only if the key still has it, and a conflict is not retried.
    """
    for _attempt in range(1 if expect else CONFLICT_RETRIES):
        try:
            return _store_once(store, lab, parsed, create_only=create_only, dry_run=dry_run, sources=sources,
                               expect=expect)  # fmt: skip
        except Conflict:
            continue
    raise ManifestError([
        "Error from server (Conflict): Operation cannot be fulfilled: the object has been modified; "
        "please apply your changes to the latest version and try again"
    ])  # fmt: skip


def _store_once(
    store: Datastore, lab: str, parsed: list[object], *, create_only: bool, dry_run: bool,
    sources: Sequence[str] | None, expect: Mapping[str, int] | None = None,
) -> list[Change]:
    from testbed.controllers.namespaces import is_terminating  # noqa: PLC0415 - objects is imported by the controllers' modules
    from testbed.kube import server_fields  # noqa: PLC0415
    from testbed.model.policy import NetworkPolicy  # noqa: PLC0415 - keeps the import graph flat

    changes: list[Change] = []
    problems: list[str] = []
    writes: dict[str, dict[str, Any]] = {}
    read: dict[str, int] = dict(expect or {})  # key -> the revision we decided on (0: absent)
    created = time.time()
    listed, _ = store.list_versioned(keys.K8S_NAMESPACES)
    namespaces = {k[len(keys.K8S_NAMESPACES):] for k, v in listed.items() if not is_terminating(v.value)}
    terminating = {k[len(keys.K8S_NAMESPACES):] for k, v in listed.items() if is_terminating(v.value)}

    def server_error(reason: str, message: str, position: int) -> None:
        source = f'error when creating "{sources[position]}": ' if sources else ""
        problems.append(f"Error from server ({reason}): {source}{message}")

    def check_namespace(namespace: str, position: int) -> bool:
        if namespace in terminating:
            server_error(
                "Forbidden", f'unable to create new content in namespace {namespace} because it is being terminated',
                position,
            )
            return False
        if namespace not in namespaces:
            server_error("NotFound", f'namespaces "{namespace}" not found', position)
            return False
        if f"{keys.K8S_NAMESPACES}{namespace}" in listed:
            read.setdefault(f"{keys.K8S_NAMESPACES}{namespace}", listed[f"{keys.K8S_NAMESPACES}{namespace}"].revision)
        return True

    def exists_problem(resource: str, name: str, position: int) -> None:
        server_error("AlreadyExists", f'{resource} "{name}" already exists', position)

    def current_of(key: str) -> dict[str, Any] | None:
        """The value under ``key`` as an earlier document of these manifests left it, else
        as stored (an object in two files: created, then configured or unchanged)."""
        if key in writes:
            return writes[key]
        if key in listed:
            read.setdefault(key, listed[key].revision)
            return listed[key].value
        found = store.get_versioned(key)
        read.setdefault(key, found.revision if found else 0)
        return found.value if found else None

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
            current = current_of(keys.k8s_namespace(obj.name))
            if current is not None and create_only:
                exists_problem("namespaces", obj.name, position)
                continue
            old_labels = tuple(sorted((current or {}).get("metadata", {}).get("labels", {}).items()))
            wanted = namespace_values(lab, obj, created)
            wanted_labels = tuple(sorted(wanted[keys.k8s_namespace(obj.name)]["metadata"]["labels"].items()))
            verb = "created" if current is None else ("unchanged" if old_labels == wanted_labels else "configured")
            if verb != "unchanged":
                writes.update(wanted)
            namespaces.add(obj.name)
            changes.append(Change(change_kind(obj), obj.name, verb))
        elif isinstance(obj, StoredObject):
            if obj.namespace is not None and not check_namespace(obj.namespace, position):
                continue
            current = current_of(obj.key)
            if current is not None and create_only:
                exists_problem(obj.resource, obj.name, position)
                continue
            value = dict(obj.manifest)
            value["metadata"] = {**value.get("metadata", {}), "creationTimestamp": (current or {}).get(
                "metadata", {}).get("creationTimestamp", records.timestamp(created))}
            verb = write(obj.key, current, value, server_fields.same_for_client(current, value))
            changes.append(Change(change_kind(obj), obj.name, verb, slash=True))
        elif type(obj).__name__ == "Service":
            from testbed.kube import services  # noqa: PLC0415

            assert isinstance(obj, services.Service)
            if not check_namespace(obj.namespace, position):
                continue
            key = keys.service(obj.namespace, obj.name)
            current = current_of(key)
            if current is not None and create_only:
                exists_problem("services", obj.name, position)
                continue
            try:
                value = services.store_value(store, obj, current, created, pending=writes)
            except ManifestError as exc:
                problems += exc.lines
                continue
            verb = write(key, current, value, server_fields.same_for_client(current, value))
            changes.append(Change(change_kind(obj), obj.name, verb))
        elif isinstance(obj, NetworkPolicy):
            if not check_namespace(obj.namespace, position):
                continue
            key = policy_key(obj.namespace, obj.name)
            current = current_of(key)
            if current is not None and create_only:
                exists_problem("networkpolicies.networking.k8s.io", obj.name, position)
                continue
            value = network_policy_to_dict(obj)
            value.setdefault("metadata", {})["creationTimestamp"] = (current or {}).get("metadata", {}).get(
                "creationTimestamp", records.timestamp(created)
            )
            verb = write(key, current, value, current == value)
            changes.append(Change(change_kind(obj), obj.name, verb))
        elif isinstance(obj, workloads.Workload):
            if not check_namespace(obj.namespace, position):
                continue
            key = registry.BY_KIND[obj.kind].key(obj.namespace, obj.name)
            current = current_of(key)
            if current is not None and create_only:
                exists_problem(obj.plural, obj.name, position)
                continue
            value = server_fields.stored(obj.kind, obj.manifest, current, created)
            verb = write(key, current, value, server_fields.same_for_client(current, value))
            changes.append(Change(change_kind(obj), obj.name, verb, key=key))
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)))
    if dry_run:
        return in_manifest_order(changes, starts)
    _commit(store, writes, read)
    return in_manifest_order(changes, starts)


def _commit(store: Datastore, writes: Mapping[str, dict[str, Any]], read: Mapping[str, int]) -> None:
    """Write in transactions, each conditional on the revisions read of its keys (and of the
    namespaces they live in, so nothing lands in a namespace deleted meanwhile). Conflict
    if any other writer got there first: that transaction wrote nothing. Derived keys
    that were not read (a namespace's Calico profiles) are written as they are."""
    items = sorted(writes.items())
    for start in range(0, len(items), COMMIT_KEYS):
        chunk = dict(items[start : start + COMMIT_KEYS])
        expect = {k: read[k] for k in chunk if k in read}
        for key in chunk:
            namespace_key = _namespace_key_of(key)
            if namespace_key and namespace_key in read and namespace_key not in chunk:
                expect[namespace_key] = read[namespace_key]
        if not store.commit(chunk, expect=expect):
            raise Conflict(next(iter(chunk)))


def _namespace_key_of(key: str) -> str | None:
    """The namespace object a namespaced registry key belongs to (None for others)."""
    if not key.startswith(keys.REGISTRY) or key.startswith(keys.K8S_NAMESPACES):
        return None
    parts = key[len(keys.REGISTRY):].split("/")
    if key.startswith(keys.OTHER_OBJECTS):
        parts = parts[1:]
    if len(parts) >= 3 and parts[-3] not in ("_cluster",):
        return keys.k8s_namespace(parts[-2])
    return None


def in_manifest_order(changes: list[Change], starts: list[tuple[int, int]]) -> list[Change]:
    """The result lines in the order of the manifest's documents, as kubectl prints them
    (objects are written namespaces first, whatever the file's order). ``starts``: for
    each object in processing order, its position in the file and its first change."""
    bounds = [*starts, (-1, len(changes))]
    owner: list[int] = []
    for (position, first), (_, following) in zip(bounds, bounds[1:]):
        owner += [position] * (following - first)
    return [change for _, change in sorted(zip(owner, changes), key=lambda pair: pair[0])]
