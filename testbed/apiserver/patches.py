"""The body of a PATCH request applied to the stored object: JSON patch, merge patch, strategic merge patch. Pure.

kubectl and the Python client choose the patch type by Content-Type [kube-api.md §3.3; apiserver
pkg/endpoints/handlers/patch.go]: ``label``/``annotate``/``scale`` send merge patches, ``patch --type
json`` RFC 6902 operations, and ``patch`` (default), ``apply``, ``set image``, ``rollout restart`` strategic
merge patches. Every function here works on deep copies and returns a new document.

- **JSON patch** (RFC 6902, JSON pointers per RFC 6901). Upstream applies it with evanphx/json-patch v4,
  whose wording the error lines follow (a missing target always reads ``doc is missing path: "<p>": missing
  value``) [evanphx/json-patch patch.go]. Where v4 is laxer than the RFC we follow the RFC: ``replace`` and
  ``test`` of a missing member fail (v4 adds it / passes for null), a missing ``value`` fails (v4 uses null),
  array indices are plain decimals (v4 also takes ``-1`` and ``01``).
- **Merge patch** (RFC 7386): objects merge, ``null`` deletes, anything else replaces. A patch that is not
  an object would replace the whole object, which the server can only reject: "Invalid JSON Patch", 400
  [evanphx/json-patch merge.go ``ErrBadJSONPatch``].
- **Strategic merge patch** [apimachinery pkg/util/strategicpatch/patch.go ``mergeMap``, ``mergeSlice``]:
  a merge patch where a list with ``patchStrategy:"merge"`` merges (by its ``patchMergeKey``, or as a set of
  primitives) and every other list is replaced. ``MERGE_KEYS`` holds those Go struct tags for the kinds the
  lab serves, copied by hand from the ``x-kubernetes-patch-merge-key``/``-strategy`` of the Python client's
  swagger (kubernetes-client/python ``kubernetes/swagger.json.unprocessed``). Directives:
  ``$patch: replace|delete`` (in a map or a list entry), ``$retainKeys``, ``$deleteFromPrimitiveList/<f>``,
  ``$setElementOrder/<f>``. The order of a merged list is upstream's (``normalizeElementOrder``,
  ``mergeSortedSlice``): entries named in the patch (or in ``$setElementOrder``) in that order, the others
  where they were; an entry the old list did not have therefore goes *before* the old ones unless
  ``$setElementOrder`` places it (kubectl apply and set env send one; ``kubectl patch`` does not).
  Custom resources have no struct tags: upstream answers 415 [handlers/patch.go; apiextensions-apiserver
  customresource_handler.go ``supportedTypes``].

``PatchError.code`` is the HTTP status: 422 when the patch cannot apply to this object (kube-apiserver then
says only ``INVALID``, keeping no detail [apimachinery api/errors ``NewGenericServerResponse``]), 400 for a
malformed patch (upstream answers 500 for a few strategic ones, e.g. a missing merge key), 413 for more than
``MAX_OPERATIONS`` JSON-patch operations, 415 for a media type not served.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
ACCEPTED = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)  # what we apply to built-in kinds
CUSTOM_ACCEPTED = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)  # what kube-apiserver lists for custom resources
MAX_OPERATIONS = 10000  # handlers/patch.go maxJSONPatchOperations
INVALID = "the server rejected our request due to an error in our request"  # upstream's message for 422

_REASONS = {400: "BadRequest", 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid"}


class PatchError(ValueError):
    """A patch the server refuses: a one-line message and the HTTP status ``code``."""

    code: int

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code

    @property
    def reason(self) -> str:
        """The Status ``reason`` kube-apiserver gives with this code."""
        return _REASONS.get(self.code, "BadRequest")


def unsupported_media_type(accepted: tuple[str, ...]) -> PatchError:
    """415 in kube-apiserver's words [apiserver endpoints/handlers/negotiation/errors.go]."""
    return PatchError(f"the body of the request was in an unknown format - accepted media types include: "
                      f"{', '.join(accepted)}", 415)  # fmt: skip


def apply_patch(document: dict[str, Any], content_type: str, body: bytes, kind: str) -> dict[str, Any]:
    """``document`` patched by a PATCH request's JSON ``body`` of ``content_type``, for an object of ``kind``."""
    media = content_type.split(";", 1)[0].strip()  # "; charset=utf-8" is dropped, as upstream does
    builtin = kind in MERGE_KEYS
    if media not in ACCEPTED or (media == STRATEGIC_MERGE_PATCH and not builtin):
        raise unsupported_media_type(ACCEPTED if builtin else CUSTOM_ACCEPTED)
    patch = _decode(body)
    if media == JSON_PATCH:
        return json_patch(document, patch)
    if media == MERGE_PATCH:
        return merge_patch(document, patch)
    return strategic_merge_patch(document, patch, kind)


def _decode(body: bytes) -> object:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PatchError(f"error decoding patch: {exc}", 400) from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _json_type(value: object) -> str:
    """The JSON type's name as Go's decoder reports it."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "bool" if isinstance(value, bool) else "number"


# --- JSON patch (RFC 6902) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pointer:
    """A JSON pointer (RFC 6901): its text and its unescaped reference tokens."""

    text: str
    tokens: tuple[str, ...]


_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


def parse_pointer(text: str) -> Pointer:
    """``/a~1b/0`` → tokens ``("a/b", "0")``; ``""`` is the whole document."""
    if text == "":
        return Pointer(text, ())
    if not text.startswith("/") or _BAD_ESCAPE.search(text):
        raise PatchError(f'invalid JSON pointer: "{text}"')
    return Pointer(text, tuple(t.replace("~1", "/").replace("~0", "~") for t in text[1:].split("/")))


def json_patch(document: dict[str, Any], operations: object) -> dict[str, Any]:
    """``document`` with RFC 6902 ``operations`` applied in order (all or nothing)."""
    if operations is None:  # Go decodes null as an empty patch
        return copy.deepcopy(document)
    if not isinstance(operations, list):
        raise PatchError(f"json: cannot unmarshal {_json_type(operations)} into Go value of type jsonpatch.Patch", 400)
    for operation in operations:
        if not isinstance(operation, dict):
            raise PatchError(f"json: cannot unmarshal {_json_type(operation)} into Go value of type "
                             f"jsonpatch.Operation", 400)  # fmt: skip
    if len(operations) > MAX_OPERATIONS:
        raise PatchError(f"Request entity too large: The allowed maximum operations in a JSON patch is "
                         f"{MAX_OPERATIONS}, got {len(operations)}", 413)  # fmt: skip
    result: object = copy.deepcopy(document)  # the operations below edit this private copy in place
    for operation in copy.deepcopy(operations):
        op = operation.get("op")
        apply = _OPERATIONS.get(op) if isinstance(op, str) else None
        if apply is None:
            raise PatchError(f"Unexpected kind: {op if isinstance(op, str) else 'unknown'}")
        result = apply(result, operation)
    if not isinstance(result, dict):
        raise PatchError(f"the patched document is a JSON {_json_type(result)}, not an object")
    return result


def _member(operation: dict[str, Any], name: str, op: str) -> Pointer:
    text = operation.get(name)
    if not isinstance(text, str):
        raise PatchError(f"{op} operation failed to decode {name}: missing value")
    return parse_pointer(text)


def _value(operation: dict[str, Any], op: str) -> object:
    if "value" not in operation:
        raise PatchError(f"{op} operation, missing value field: missing value")
    return operation["value"]


def _missing(op: str, pointer: Pointer, role: str = "path") -> PatchError:
    return PatchError(f'{op} operation does not apply: doc is missing {role}: "{pointer.text}": missing value')


def _walk(doc: object, tokens: tuple[str, ...], missing: PatchError) -> object:
    """The value the tokens lead to; ``missing`` if there is none."""
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and _INDEX.fullmatch(token) and int(token) < len(node):
            node = node[int(token)]
        else:
            raise missing
    return node


def _parent(doc: object, pointer: Pointer, missing: PatchError) -> dict[str, Any] | list[Any]:
    parent = _walk(doc, pointer.tokens[:-1], missing)
    if not isinstance(parent, (dict, list)):
        raise missing
    return parent


def _index(token: str, size: int, end_ok: bool = False) -> int:
    """A list position: ``0..size-1``, or also ``size`` (and ``-``) where an add may append."""
    if end_ok and token == "-":
        return size
    if not _INDEX.fullmatch(token):
        raise PatchError(f"value was not a proper array index: '{token}'")
    if int(token) > size or (int(token) == size and not end_ok):
        raise PatchError(f"Unable to access invalid index: {token}: invalid index referenced")
    return int(token)


def _insert(doc: object, pointer: Pointer, value: object, op: str) -> object:
    if not pointer.tokens:
        return value
    parent = _parent(doc, pointer, _missing(op, pointer))
    if isinstance(parent, dict):
        parent[pointer.tokens[-1]] = value
    else:
        parent.insert(_index(pointer.tokens[-1], len(parent), end_ok=True), value)
    return doc


def _take(doc: object, pointer: Pointer, missing: PatchError) -> object:
    """Remove the value at ``pointer`` (not the root) and return it."""
    if not pointer.tokens:
        raise missing
    parent = _parent(doc, pointer, missing)
    if isinstance(parent, dict):
        if pointer.tokens[-1] not in parent:
            raise missing
        return parent.pop(pointer.tokens[-1])
    return parent.pop(_index(pointer.tokens[-1], len(parent)))


def _add(doc: object, operation: dict[str, Any]) -> object:
    return _insert(doc, _member(operation, "path", "add"), _value(operation, "add"), "add")


def _remove(doc: object, operation: dict[str, Any]) -> object:
    pointer = _member(operation, "path", "remove")
    _take(doc, pointer, _missing("remove", pointer))
    return doc


def _replace(doc: object, operation: dict[str, Any]) -> object:
    pointer, value = _member(operation, "path", "replace"), _value(operation, "replace")
    if not pointer.tokens:
        return value
    parent = _parent(doc, pointer, _missing("replace", pointer))
    if isinstance(parent, dict):
        if pointer.tokens[-1] not in parent:
            raise _missing("replace", pointer)
        parent[pointer.tokens[-1]] = value
    else:
        parent[_index(pointer.tokens[-1], len(parent))] = value
    return doc


def _move(doc: object, operation: dict[str, Any]) -> object:
    source, target = _member(operation, "from", "move"), _member(operation, "path", "move")
    missing = _missing("move", source, "from path")
    if target.tokens == source.tokens:
        _walk(doc, source.tokens, missing)
        return doc
    if target.tokens[: len(source.tokens)] == source.tokens:
        raise PatchError(f'move operation does not apply: "{source.text}" cannot move into its own child '
                         f'"{target.text}"')  # fmt: skip
    return _insert(doc, target, _take(doc, source, missing), "move")


def _copy(doc: object, operation: dict[str, Any]) -> object:
    source, target = _member(operation, "from", "copy"), _member(operation, "path", "copy")
    value = copy.deepcopy(_walk(doc, source.tokens, _missing("copy", source, "from path")))
    return _insert(doc, target, value, "copy")


def _test(doc: object, operation: dict[str, Any]) -> object:
    pointer, expected = _member(operation, "path", "test"), _value(operation, "test")
    actual = _walk(doc, pointer.tokens, _missing("test", pointer))
    if not json_equal(actual, expected):
        raise PatchError(f"testing value {pointer.text} failed: test failed")
    return doc


_OPERATIONS: Mapping[str, Callable[[object, dict[str, Any]], object]] = {
    "add": _add, "remove": _remove, "replace": _replace, "move": _move, "copy": _copy, "test": _test,
}  # fmt: skip


def json_equal(left: object, right: object) -> bool:
    """RFC 6902 §4.6 equality: numbers by value, objects unordered, arrays in order; true is not 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(v, right[k]) for k, v in left.items())
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right))
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    return type(left) is type(right) and left == right


# --- merge patch (RFC 7386) ---------------------------------------------------------------------------------


def merge_patch(document: dict[str, Any], patch: object) -> dict[str, Any]:
    """``document`` merged with an RFC 7386 ``patch``, which must be an object."""
    if not isinstance(patch, dict):
        raise PatchError("Invalid JSON Patch", 400)
    merged: dict[str, Any] = _merge(copy.deepcopy(document), copy.deepcopy(patch))
    return merged


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 §2 MergePatch(target, patch), returning a new value."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


# --- strategic merge patch ----------------------------------------------------------------------------------

Path = tuple[str, ...]  # field names from the object's root, list entries left out: ("spec", "containers", "env")
Fields = Mapping[Path, str | None]  # lists that merge: their merge key, None for a set of primitives


def _under(prefix: Path, fields: Fields) -> dict[Path, str | None]:
    return {prefix + path: key for path, key in fields.items()}


# Go struct tags patchMergeKey/patchStrategy:"merge" [k8s.io/api core/v1, apps/v1 types.go], as the swagger has them.
_OBJECT_META: Fields = {("ownerReferences",): "uid", ("finalizers",): None}
_CONTAINER: Fields = {(): "name", ("env",): "name", ("ports",): "containerPort", ("volumeMounts",): "mountPath",
                      ("volumeDevices",): "devicePath"}  # fmt: skip
_POD_SPEC: Fields = {
    **_under(("containers",), _CONTAINER), **_under(("initContainers",), _CONTAINER),
    **_under(("ephemeralContainers",), _CONTAINER),
    ("volumes",): "name", ("imagePullSecrets",): "name", ("hostAliases",): "ip", ("topologySpreadConstraints",):
    "topologyKey", ("schedulingGates",): "name", ("resourceClaims",): "name",
    **_under(("volumes", "ephemeral", "volumeClaimTemplate", "metadata"), _OBJECT_META),
}  # fmt: skip
_CONTAINER_STATUS: Fields = {("volumeMounts",): "mountPath", ("allocatedResourcesStatus",): "name"}
_POD_STATUS: Fields = {
    ("conditions",): "type", ("podIPs",): "ip", ("hostIPs",): "ip", ("resourceClaimStatuses",): "name",
    **_under(("containerStatuses",), _CONTAINER_STATUS), **_under(("initContainerStatuses",), _CONTAINER_STATUS),
    **_under(("ephemeralContainerStatuses",), _CONTAINER_STATUS),
}  # fmt: skip
_META = _under(("metadata",), _OBJECT_META)
_CONDITIONS: Fields = {("status", "conditions"): "type"}
_WORKLOAD = {**_META, **_under(("spec", "template", "metadata"), _OBJECT_META),
             **_under(("spec", "template", "spec"), _POD_SPEC), **_CONDITIONS}  # fmt: skip

MERGE_KEYS: Mapping[str, Fields] = {
    "Pod": {**_META, **_under(("spec",), _POD_SPEC), **_under(("status",), _POD_STATUS)},
    "Deployment": _WORKLOAD, "ReplicaSet": _WORKLOAD, "DaemonSet": _WORKLOAD, "ReplicationController": _WORKLOAD,
    "Service": {**_META, ("spec", "ports"): "port", **_CONDITIONS},
    "Namespace": {**_META, **_CONDITIONS},  # spec.finalizers has no strategy: replaced
    "Node": {**_META, ("spec", "podCIDRs"): None, **_CONDITIONS, ("status", "addresses"): "type"},
    "ServiceAccount": {**_META, ("secrets",): "name"},
    # built-in kinds whose only merging lists are the metadata's (Endpoints subsets, NetworkPolicy ingress,
    # EndpointSlice endpoints, RBAC rules and subjects: all replaced)
    **{kind: _META for kind in ("Endpoints", "EndpointSlice", "NetworkPolicy", "ConfigMap", "Secret", "LimitRange",
                                "ResourceQuota", "Lease", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                                "PodSecurityPolicy", "Scale")},
}  # fmt: skip

_PATCH = "$patch"
_RETAIN = "$retainKeys"
_DELETE_PREFIX = "$deleteFromPrimitiveList"
_ORDER_PREFIX = "$setElementOrder"
_ABSENT: Any = object()  # a field that is not there (None is JSON null)


def merge_key(path: Path, kind: str) -> tuple[str | None, str]:
    """(merge key or None, "merge"|"replace") for the list at ``path`` in an object of ``kind``."""
    return _lookup(path, MERGE_KEYS.get(kind, {}))


def _lookup(path: Path, fields: Fields) -> tuple[str | None, str]:
    return (fields[path], "merge") if path in fields else (None, "replace")


def strategic_merge_patch(document: dict[str, Any], patch: object, kind: str) -> dict[str, Any]:
    """``document`` (an object of built-in ``kind``) with a strategic merge ``patch`` applied."""
    if kind not in MERGE_KEYS:
        raise unsupported_media_type(CUSTOM_ACCEPTED)
    if patch is None:  # Go decodes null into an empty map
        return copy.deepcopy(document)
    if not isinstance(patch, dict):
        raise PatchError(f"json: cannot unmarshal {_json_type(patch)} into Go value of type map[string]interface {{}}",
                         400)  # fmt: skip
    merged = _smp_map(copy.deepcopy(document), copy.deepcopy(patch), (), MERGE_KEYS[kind])
    return {} if merged is None else merged


def _smp_map(original: dict[str, Any], patch: dict[str, Any], path: Path, fields: Fields) -> dict[str, Any] | None:
    """The merged map; None when the patch says ``$patch: delete``."""
    if _PATCH not in patch:
        return _smp_fields(original, patch, path, fields)
    if patch[_PATCH] == "replace":
        return _smp_fields({}, {k: v for k, v in patch.items() if k != _PATCH}, path, fields)
    if patch[_PATCH] == "delete":
        return None
    raise PatchError(f"unknown patch type: {_go(patch[_PATCH])} in map: {_go(patch)}", 400)


def _smp_fields(original: dict[str, Any], patch: dict[str, Any], path: Path, fields: Fields) -> dict[str, Any]:
    rest = dict(patch)
    result = _retain(original, rest.pop(_RETAIN, _ABSENT), rest)
    for name in [k for k in rest if k.startswith(_DELETE_PREFIX)]:
        field = _directive_field(name, _DELETE_PREFIX, "invalid patch format of primitive list")
        result = _delete_from_list(result, field, rest.pop(name))
    for name in [k for k in rest if k.startswith(_ORDER_PREFIX)]:
        field = _directive_field(name, _ORDER_PREFIX, "invalid patch format of setElementOrder list")
        result = _set_order(result, field, rest.pop(name), rest.pop(field, _ABSENT), path + (field,), fields)
    for name, value in rest.items():
        result = _with(result, name, _smp_value(result.get(name, _ABSENT), value, path + (name,), fields))
    return result


def _with(result: dict[str, Any], name: str, value: object) -> dict[str, Any]:
    """``result`` with field ``name`` set to ``value``, or without it for ``_ABSENT``."""
    if value is _ABSENT:
        return {k: v for k, v in result.items() if k != name}
    return {**result, name: value}


def _smp_value(current: object, value: object, path: Path, fields: Fields) -> object:
    """The new value of one field (``_ABSENT``: remove it)."""
    if value is None:
        return _ABSENT
    if isinstance(value, dict):
        merged = _smp_map(current if isinstance(current, dict) else {}, value, path, fields)
        return _ABSENT if merged is None else merged
    if not isinstance(value, list):
        return value
    key, strategy = _lookup(path, fields)
    if strategy == "merge":
        return _merge_list(current if isinstance(current, list) else [], value, key, path, fields)
    return [_fresh(entry, path, fields) for entry in value if not _is_directive(entry)]


def _fresh(entry: object, path: Path, fields: Fields) -> object:
    """A new list entry: a map has its directives applied and nulls dropped, as if merged into nothing."""
    return _smp_fields({}, entry, path, fields) if isinstance(entry, dict) else entry


def _is_directive(entry: object) -> bool:
    return isinstance(entry, dict) and _PATCH in entry


def _directive_field(name: str, prefix: str, message: str) -> str:
    head, slash, field = name.partition("/")
    if head != prefix or not slash:
        raise PatchError(message, 400)
    return field


def _retain(original: dict[str, Any], retain: object, patch: dict[str, Any]) -> dict[str, Any]:
    """``$retainKeys``: only the keys listed survive, and the patch may set no other."""
    if retain is _ABSENT:
        return dict(original)
    if not isinstance(retain, list):
        raise PatchError("invalid patch format of retainKeys", 400)
    keep = {k for k in retain if isinstance(k, str)}
    for name, value in patch.items():
        if value is not None and not name.startswith((_DELETE_PREFIX, _ORDER_PREFIX)) and name not in keep:
            raise PatchError("invalid patch format of retainKeys", 400)
    return {k: v for k, v in original.items() if k in keep}


def _delete_from_list(result: dict[str, Any], field: str, values: object) -> dict[str, Any]:
    """``$deleteFromPrimitiveList/<field>``: drop those values from the list, if there is one."""
    if not isinstance(values, list):
        raise PatchError("invalid patch format of primitive list", 400)
    current = result.get(field)
    if not isinstance(current, list):
        return result
    drop = {_token(v) for v in values}
    return {**result, field: [v for v in current if _token(v) not in drop]}


def _set_order(result: dict[str, Any], field: str, order: object, patched: object, path: Path,
               fields: Fields) -> dict[str, Any]:  # fmt: skip
    """``$setElementOrder/<field>`` with the patch's list for that field (if any) [patch.go mergePatchIntoOriginal]."""
    if not isinstance(order, list):
        raise PatchError("invalid patch format of setElementOrder list", 400)
    key, strategy = _lookup(path, fields)
    if strategy != "merge" or not (patched is _ABSENT or isinstance(patched, list)):  # no order to set
        if patched is _ABSENT:
            return result
        return _with(result, field, _smp_value(result.get(field, _ABSENT), patched, path, fields))
    current = result.get(field, _ABSENT)
    if patched is _ABSENT and not isinstance(current, list):
        return result
    original = current if isinstance(current, list) else []
    for entry in order:
        _identity(entry, key)  # every entry names its merge key
    if isinstance(patched, list):
        _check_order(patched, order, key)
        merged = _merge_list(original, patched, key, path, fields)
    else:
        merged = list(original)
    return {**result, field: _ordered(merged, order, original, key)}


def _check_order(patched: list[Any], order: list[Any], key: str | None) -> None:
    """The patch's entries must all be in ``order``, in the same relative order [validatePatchWithSetOrderList]."""
    entries = [e for e in patched if not _is_directive(e)]
    if not entries or not order:
        return
    wanted = [_identity(e, key) for e in order]
    at = 0
    for entry in entries:
        identity = _identity(entry, key)
        while at < len(wanted) and wanted[at] != identity:
            at += 1
        if at == len(wanted):
            raise PatchError(f"The order in patch list: {_go(patched)} doesn't match {_ORDER_PREFIX} list: "
                             f"{_go(order)}", 400)  # fmt: skip
        at += 1


def _merge_list(original: list[Any], patch: list[Any], key: str | None, path: Path, fields: Fields) -> list[Any]:
    """A list with strategy "merge": maps merged by ``key``, primitives unioned [patch.go mergeSlice]."""
    if not original and not patch:
        return list(original)
    element = _element_kind(original, patch)
    if element == "list":
        raise PatchError("lists of lists are not supported")
    if element != "map":
        return _ordered(_dedupe(original + patch), patch, original, None)
    if key is None:
        raise PatchError(f"cannot merge lists without merge key for {'.'.join(path)}", 400)
    original, patch = _list_directives(original, patch, key, path, fields)
    merged = list(original)
    for entry in patch:
        identity = _identity(entry, key)
        found = next((i for i, old in enumerate(merged) if _token(old.get(key, _ABSENT)) == identity), None)
        if found is None:
            merged.append(_smp_fields({}, entry, path, fields))
        else:
            merged[found] = _smp_fields(merged[found], entry, path, fields)
    return _ordered(merged, patch, original, key)


def _list_directives(original: list[Any], patch: list[Any], key: str, path: Path,
                     fields: Fields) -> tuple[list[Any], list[Any]]:  # fmt: skip
    """(original, patch) after the ``$patch`` entries: ``delete`` drops the entries with that key,
    ``replace`` makes the other entries the whole list [patch.go mergeSliceWithSpecialElements]."""
    plain: list[Any] = []
    replace = False
    for entry in patch:
        directive = entry.get(_PATCH, _ABSENT)
        if directive is _ABSENT:
            plain.append(entry)
        elif directive == "delete":
            identity = _identity(entry, key)
            original = [old for old in original if _token(old.get(key, _ABSENT)) != identity]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch", 400)
        else:
            raise PatchError(f"unknown patch type: {_go(directive)} in map: {_go(entry)}", 400)
    if replace:
        return [_smp_fields({}, entry, path, fields) for entry in plain], []
    return original, plain


def _ordered(merged: list[Any], patch_order: list[Any], server_order: list[Any], key: str | None) -> list[Any]:
    """Upstream's order [patch.go normalizeElementOrder, mergeSortedSlice]: the entries the patch names, in
    its order, with the others slotted in where they stood before any of the patch's that stood after them."""
    patch_rank = _ranks(patch_order, key)
    server_rank = _ranks(server_order, key)
    named = sorted((e for e in merged if _rank_key(e, key) in patch_rank), key=lambda e: patch_rank[_rank_key(e, key)])
    others = sorted((e for e in merged if _rank_key(e, key) not in patch_rank),
                    key=lambda e: server_rank.get(_rank_key(e, key), len(server_rank)))  # fmt: skip
    result: list[Any] = []
    while named or others:
        if not named or (others and _before(others[0], named[0], server_rank, key)):
            result.append(others.pop(0))
        else:
            result.append(named.pop(0))
    return result


def _before(left: object, right: object, rank: dict[object, int], key: str | None) -> bool:
    a, b = rank.get(_rank_key(left, key)), rank.get(_rank_key(right, key))
    return a is not None and b is not None and a < b


def _ranks(items: list[Any], key: str | None) -> dict[object, int]:
    ranks: dict[object, int] = {}
    for i, item in enumerate(items):
        ranks.setdefault(_rank_key(item, key), i)
    return ranks


def _rank_key(item: object, key: str | None) -> object:
    if key is None:
        return _token(item)
    return _token(item.get(key, _ABSENT)) if isinstance(item, dict) else _token(item)


def _identity(entry: object, key: str | None) -> object:
    """An entry's identity: its merge key's value (which it must have), or itself for a primitive."""
    if key is None:
        return _token(entry)
    if not isinstance(entry, dict) or key not in entry:
        raise PatchError(f"map: {_go(entry)} does not contain declared merge key: {key}", 400)
    return _token(entry[key])


def _token(value: object) -> object:
    """A hashable stand-in with JSON equality: 80 == 80.0, but true != 1 and "80" != 80."""
    if value is _ABSENT:
        return ("absent",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return ("json", json.dumps(value, sort_keys=True))


def _dedupe(values: list[Any]) -> list[Any]:
    """The values without repeats, first occurrences kept."""
    seen: set[object] = set()
    unique: list[Any] = []
    for value in values:
        if _token(value) not in seen:
            seen.add(_token(value))
            unique.append(value)
    return unique


def _element_kind(original: list[Any], patch: list[Any]) -> str:
    """The one JSON type of two lists' elements; 400 when they differ, as upstream's sliceElementType."""
    kinds = {"map" if isinstance(v, dict) else "list" if isinstance(v, list) else _json_type(v) if v is not None
             else "null" for v in original + patch}  # fmt: skip
    if len(kinds) > 1:
        raise PatchError(f"list element types are not identical: {_go([original, patch])}", 400)
    return kinds.pop()


def _go(value: object) -> str:
    """``value`` as Go's ``%v`` prints decoded JSON: ``map[a:1 b:[x y]]``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(v) for v in value) + "]"
    return str(value)
