"""The API server's verbs on the lab's store: get, list, create, update, delete.

Blocking (the server calls them from its worker threads, one store client per thread).
Writes go through the same path as `testbed kubectl` (``objects.store_objects`` and
``removal.request_deletion``): the registry's checks and defaults, every write
conditional on the revision read, and no side effect but the objects themselves; the
controllers and kubelets make them real.

What a client sees of a stored value (``served``): its ``apiVersion`` and ``kind``, and
``metadata.resourceVersion``, the etcd revision that last changed it, as the real server
reports it [k8s.io/apiserver pkg/storage/etcd3/store.go]. A value stored without a uid
(the lab's older records) gets one derived from its name and creation time, so it is
stable across reads and new when the object is created again.
"""

from __future__ import annotations

import calendar
import copy
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from testbed.apiserver import status
from testbed.apiserver.paths import Target
from testbed.apiserver.selectors import FieldQuery, LabelQuery, field_matches, label_matches
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore, delete_if
from testbed.kube import objects, registry, removal
from testbed.kube.errors import ManifestError

Value = dict[str, Any]
# Namespaces the API server refuses to delete [k8s.io/apiserver pkg/admission/plugin/namespace/lifecycle].
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
# Kinds whose DELETE answers with the deleted object's last state, not a Status
# (``ReturnDeletedObject: true`` in their registry [k8s pkg/registry/core/pod/storage/storage.go,
# serviceaccount, podsecuritypolicy]); the Python client's typed delete of a pod reads a V1Pod.
RETURN_DELETED = ("pods", "serviceaccounts", "podsecuritypolicies")


def truthy(value: str | None) -> bool:
    """A boolean query parameter as the API server reads it: anything but "" / 0 / false
    (the Python client sends ``True``) [apimachinery pkg/runtime/conversion.go]."""
    return value is not None and value.lower() not in ("", "0", "false")


def served(kind: registry.Kind, value: Mapping[str, Any], revision: int) -> Value:
    """A stored value as the API returns it (a copy)."""
    out = copy.deepcopy(dict(value))
    out["apiVersion"] = kind.api_version
    out["kind"] = kind.kind
    metadata = out.setdefault("metadata", {})
    metadata["resourceVersion"] = str(revision)
    if not metadata.get("uid"):
        created = metadata.get("creationTimestamp") or ""
        name = f"{metadata.get('namespace', '')}/{metadata.get('name')}"
        metadata["uid"] = records.object_uid("apiserver", kind.kind, name, _seconds(created))
    return out


def _seconds(stamp: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return 0.0


def _is_object(kind: registry.Kind, key: str, value: Mapping[str, Any]) -> bool:
    """A key of the kind's own (not a deeper record under its prefix) holding an object."""
    depth = 2 if kind.namespaced or kind.stored_only else 1
    return key[len(kind.prefix):].count("/") == depth - 1 and isinstance(value.get("metadata"), dict)


def get(store: Datastore, target: Target) -> Value:
    """One object; ApiError NotFound."""
    assert target.name is not None
    found = store.get_versioned(target.kind.key(target.namespace, target.name))
    if found is None:
        raise status.not_found(target.kind.plural, target.name, target.kind.group)
    return served(target.kind, found.value, found.revision)


@dataclass(frozen=True)
class Listing:
    items: list[Value]
    revision: int  # the store revision the list was read at: watch from it


def list_objects(
    store: Datastore, kind: registry.Kind, namespace: str | None,
    labels: LabelQuery | None = None, fields: FieldQuery | None = None,
) -> Listing:
    """Every object of ``kind`` (in ``namespace``, or all), filtered, sorted by namespace
    and name as etcd's key order gives them."""
    found, revision = store.list_versioned(kind.scope(namespace))
    items = []
    for key, versioned in found.items():
        if not _is_object(kind, key, versioned.value):
            continue
        value = served(kind, versioned.value, versioned.revision)
        if labels is not None and not label_matches(labels, value["metadata"].get("labels") or {}):
            continue
        if fields is not None and not field_matches(fields, value):
            continue
        items.append(value)
    return Listing(items, revision)


def list_body(kind: registry.Kind, listing: Listing) -> Value:
    return {
        "kind": f"{kind.kind}List",
        "apiVersion": kind.api_version,
        "metadata": {"resourceVersion": str(listing.revision)},
        "items": listing.items,
    }


def _checked_body(kind: registry.Kind, target_namespace: str | None, body: object) -> Value:
    """The request's object, with its kind and namespace checked against the path."""
    if not isinstance(body, dict):
        raise status.bad_request("the body of the request is not a JSON object")
    if body.get("kind") not in (None, kind.kind):
        raise status.bad_request(f"the kind of the provided object ({body.get('kind')}) does not match the path ({kind.kind})")
    value = copy.deepcopy(body)
    value["kind"] = kind.kind
    value.setdefault("apiVersion", kind.api_version)
    metadata = value.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise status.bad_request("metadata: must be an object")
    if kind.namespaced:
        namespace = metadata.get("namespace")
        if namespace and namespace != target_namespace:
            raise status.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        metadata["namespace"] = target_namespace
    for server_owned in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink"):
        metadata.pop(server_owned, None)
    return value


def _store(store: Datastore, lab: str, value: Value, namespace: str | None, *, create_only: bool, dry_run: bool,
           expect: Mapping[str, int] | None = None, kind: registry.Kind | None = None) -> None:  # fmt: skip
    if kind is not None and (kind not in registry.KINDS or kind.kind == "CustomResourceDefinition"):
        _store_custom(store, kind, value, namespace, create_only=create_only, dry_run=dry_run, expect=expect)
        return
    try:
        parsed = objects.parse_objects([value], namespace)
        objects.store_objects(store, lab, parsed, create_only=create_only, dry_run=dry_run, expect=expect)
    except ManifestError as exc:
        raise status.from_manifest_error(exc.lines) from None


def _store_custom(store: Datastore, kind: registry.Kind, value: Value, namespace: str | None, *, create_only: bool,
                  dry_run: bool, expect: Mapping[str, int] | None) -> None:  # fmt: skip
    """A custom resource (a CRD's kind), or a CRD itself (Established at once): stored as
    given with the API server's fields, in a namespace that exists and is not going."""
    from testbed.apiserver import crds  # noqa: PLC0415
    from testbed.controllers.namespaces import is_terminating  # noqa: PLC0415

    meta = value["metadata"]
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise status.invalid(kind.kind, "", [("metadata.name", "Required value: name or generateName is required")],
                             kind.group)  # fmt: skip
    if kind.namespaced:
        found = store.get(keys.k8s_namespace(str(namespace)))
        if found is None:
            raise status.not_found("namespaces", str(namespace))
        if is_terminating(found):
            raise status.namespace_terminating(kind.plural, kind.group, name, str(namespace))
    key = kind.key(namespace, name)
    current = store.get_versioned(key)
    if current is not None and create_only:
        raise status.already_exists(kind.plural, name, kind.group)
    if current is None and not create_only:
        raise status.not_found(kind.plural, name, kind.group)
    old = current.value.get("metadata", {}) if current is not None else {}
    meta["uid"] = old.get("uid") or str(uuid.uuid4())
    meta["creationTimestamp"] = old.get("creationTimestamp") or records.timestamp(time.time())
    changed = current is None or current.value.get("spec") != value.get("spec")
    meta["generation"] = int(old.get("generation", 0)) + 1 if changed else int(old.get("generation", 1))
    if current is not None and "status" in current.value:
        value["status"] = current.value["status"]
    else:
        value.pop("status", None)
    if kind.kind == "CustomResourceDefinition":
        if crds.kind_of(value) is None:
            raise status.invalid(kind.kind, name, [("spec", "Required value: group, names.kind, names.plural and "
                                                    "a served version are required")], kind.group)  # fmt: skip
        value = crds.with_status(value)
    if dry_run:
        return
    wanted = {key: (expect or {}).get(key, current.revision if current is not None else 0)}
    if not store.commit({key: value}, expect=wanted):
        raise status.conflict(kind.plural, kind.group, name)


def create(store: Datastore, lab: str, target: Target, body: object, *, dry_run: bool = False) -> Value:
    """POST to a collection: the object as stored (201); AlreadyExists, Invalid, ..."""
    kind = target.kind
    if kind.namespaced and target.namespace is None:
        raise status.method_not_allowed(kind.plural, "create in every namespace")
    value = _checked_body(kind, target.namespace, body)
    name = value["metadata"].get("name")
    if not name and value["metadata"].get("generateName"):
        name = value["metadata"]["generateName"] + _suffix()
        value["metadata"]["name"] = name
    _store(store, lab, value, target.namespace, create_only=True, dry_run=dry_run, kind=kind)
    if dry_run:
        return served(kind, value, store.revision())
    return get(store, Target(kind, target.namespace, str(name)))


def _suffix() -> str:
    """generateName's five random characters, from the API server's alphabet (no vowels)."""
    import secrets  # noqa: PLC0415

    return "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def update(store: Datastore, lab: str, target: Target, body: object, *, dry_run: bool = False) -> Value:
    """PUT of one object: optimistic concurrency on ``metadata.resourceVersion`` (409 when
    it is not the stored one; no resourceVersion: unconditional, as for most kinds)."""
    kind = target.kind
    assert target.name is not None
    key = kind.key(target.namespace, target.name)
    current = store.get_versioned(key)
    if current is None:
        raise status.not_found(kind.plural, target.name, kind.group)
    claimed = body.get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
    value = _checked_body(kind, target.namespace, body)
    if value["metadata"].get("name") not in (None, target.name):
        raise status.bad_request("the name of the object does not match the name on the URL")
    value["metadata"]["name"] = target.name
    expected = current.revision
    if claimed:
        if str(claimed) != str(current.revision):
            raise status.conflict(kind.plural, kind.group, target.name)
        expected = int(claimed)
    try:
        _store(store, lab, value, target.namespace, create_only=False, dry_run=dry_run, expect={key: expected}, kind=kind)
    except status.ApiError as exc:
        if exc.code == 409:
            raise status.conflict(kind.plural, kind.group, target.name) from None
        raise
    if dry_run:
        return served(kind, value, current.revision)
    return get(store, target)


@dataclass(frozen=True)
class DeleteOptions:
    propagation: str = "Background"  # Background | Foreground | Orphan
    grace_period: int | None = None
    dry_run: bool = False
    uid: str | None = None  # preconditions
    resource_version: str | None = None


def delete_options(body: object, query: Mapping[str, str]) -> DeleteOptions:
    """DeleteOptions from the request body (kubectl sends one) and the query."""
    options = body if isinstance(body, dict) else {}
    preconditions = options.get("preconditions") or {}
    grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
    propagation = options.get("propagationPolicy") or query.get("propagationPolicy") or "Background"
    if options.get("orphanDependents") is True or query.get("orphanDependents", "").lower() == "true":
        propagation = "Orphan"
    if propagation not in ("Background", "Foreground", "Orphan"):
        raise status.bad_request(f'unsupported propagationPolicy "{propagation}"')
    dry_run = "All" in (options.get("dryRun") or []) or query.get("dryRun") == "All"
    return DeleteOptions(propagation, int(grace) if grace is not None else None, dry_run,
                         preconditions.get("uid"), preconditions.get("resourceVersion"))  # fmt: skip


def delete(store: Datastore, target: Target, options: DeleteOptions) -> tuple[int, Value]:
    """DELETE of one object: (200, the object, marked for deletion) while a kubelet or a
    controller still has work on it, else (200, a Success Status naming its uid, or the
    last state for RETURN_DELETED kinds) [as the API server answers; kubectl's wait keys on
    the uid]."""
    kind = target.kind
    assert target.name is not None
    current = get(store, target)
    if kind.kind == "Namespace" and target.name in IMMORTAL_NAMESPACES:
        raise status.forbidden(kind.plural, kind.group, target.name, "this namespace may not be deleted")
    if options.uid and options.uid != current["metadata"]["uid"]:
        raise status.conflict(kind.plural, kind.group, target.name, detail=(
            f"Precondition failed: UID in precondition: {options.uid}, UID in object meta: {current['metadata']['uid']}"))
    if options.resource_version and options.resource_version != current["metadata"]["resourceVersion"]:
        raise status.conflict(kind.plural, kind.group, target.name, detail=(
            f"Precondition failed: ResourceVersion in precondition: {options.resource_version}, "
            f"ResourceVersion in object meta: {current['metadata']['resourceVersion']}"))
    force = options.grace_period == 0
    if kind not in registry.KINDS:  # a custom resource: no finalizers of the lab's, gone at once
        if not options.dry_run and not delete_if(store, kind.key(target.namespace, target.name),
                                                 int(current["metadata"]["resourceVersion"])):  # fmt: skip
            raise status.conflict(kind.plural, kind.group, target.name)
        details = {"name": target.name, "kind": kind.plural, "uid": current["metadata"]["uid"], "group": kind.group}
        return 200, status.success(details)
    try:
        removal.request_deletion(
            store, [(kind.plural, target.namespace, target.name)], dry_run=options.dry_run,
            cascade=options.propagation.lower(), grace_period=options.grace_period, force=force,
        )
    except ManifestError as exc:
        raise status.from_manifest_error(exc.lines) from None
    if options.dry_run:
        return 200, current
    if kind.kind == "CustomResourceDefinition":  # its objects go with it, as the CRD's finalizer has them go
        from testbed.apiserver import crds  # noqa: PLC0415

        defined = crds.kind_of(current)
        if defined is not None and defined not in registry.KINDS:
            store.delete_prefix(defined.prefix)
    after = store.get_versioned(kind.key(target.namespace, target.name))
    if after is not None:
        return 200, served(kind, after.value, after.revision)
    if kind.plural in RETURN_DELETED:
        return 200, current
    details = {"name": target.name, "kind": kind.plural, "uid": current["metadata"]["uid"]}
    if kind.group:
        details["group"] = kind.group
    return 200, status.success(details)


def delete_collection(
    store: Datastore, kind: registry.Kind, namespace: str | None, labels: LabelQuery | None,
    fields: FieldQuery | None, options: DeleteOptions,
) -> Value:
    """DELETE of a collection: each matching object as one DELETE; the list of what was deleted."""
    listing = list_objects(store, kind, namespace, labels, fields)
    deleted = []
    for item in listing.items:
        meta = item["metadata"]
        try:
            delete(store, Target(kind, meta.get("namespace"), meta["name"]), options)
        except status.ApiError as exc:
            if exc.code != 404:  # gone meanwhile: nothing to do
                raise
        deleted.append(item)
    return list_body(kind, Listing(deleted, store.revision()))


def as_json(value: object) -> bytes:
    """Compact JSON, as the API server writes it (one watch event per line needs no newlines)."""
    return json.dumps(value, separators=(",", ":")).encode()

