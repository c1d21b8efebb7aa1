"""The API server's errors as ``Status`` objects, in kube-apiserver's wording. Pure.

A non-2xx answer is a Status ``{"kind":"Status","apiVersion":"v1","metadata":{},
"status":"Failure","message","reason","details","code"}``; client-go turns it into a typed
error only if it decodes as one, and kubectl prints ``Error from server (<reason>):
<message>`` from it, or, for Invalid, ``The <details.kind> "<details.name>" is invalid:``
and the causes [kube-api.md §5; kubectl pkg/cmd/util/helpers.go ``checkErr``]. The messages
and details are those of apimachinery's constructors [am pkg/api/errors/errors.go
``NewNotFound``, ``NewConflict``, ``NewInvalid``...], the 406/415 ones the negotiator's [as
pkg/endpoints/handlers/negotiation/errors.go], a namespace being deleted the lifecycle
admission plugin's [as pkg/admission/plugin/namespace/lifecycle/admission.go], a stale
watch the watch cache's [as pkg/storage/cacher/watch_cache_history.go], a refused identity
the authorizer's [as pkg/endpoints/handlers/responsewriters/errors.go ``forbiddenMessage``].

The lab's manifest checks (`testbed.kube`) word their problems as kubectl prints them
(``The Pod "x" is invalid: spec.containers: Required value``, ``Error from server
(NotFound): namespaces "x" not found``); ``from_manifest_error`` turns those lines back into
the Status the real server would have sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testbed.kube import registry

Value = dict[str, Any]
MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"
SERVED_MEDIA_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
# StatusReason -> HTTP code [am pkg/apis/meta/v1/types.go StatusReason*].
REASON_CODES: Mapping[str, int] = {
    "BadRequest": 400, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "MethodNotAllowed": 405,
    "NotAcceptable": 406, "AlreadyExists": 409, "Conflict": 409, "Gone": 410, "Expired": 410,
    "RequestEntityTooLarge": 413, "UnsupportedMediaType": 415, "Invalid": 422, "TooManyRequests": 429,
    "InternalError": 500, "ServerTimeout": 500, "ServiceUnavailable": 503, "Timeout": 504,
}  # fmt: skip
# HTTP code -> the reason an error of only that code gets (the last of a shared code wins, but 500).
CODE_REASONS: Mapping[int, str] = {**{code: reason for reason, code in REASON_CODES.items()}, 500: "InternalError"}
# field.ErrorType: how its message starts -> the cause's reason [am pkg/util/validation/field/errors.go].
CAUSE_TYPES: Mapping[str, str] = {
    "Required value": "FieldValueRequired", "Invalid value": "FieldValueInvalid",
    "Unsupported value": "FieldValueNotSupported", "Forbidden": "FieldValueForbidden",
    "Duplicate value": "FieldValueDuplicate", "Not found": "FieldValueNotFound", "Too long": "FieldValueTooLong",
    "Too many": "FieldValueTooMany", "Too few": "FieldValueTooFew", "Too short": "FieldValueTooShort",
    "Internal error": "InternalError",
}  # fmt: skip
NAMESPACE_TERMINATING = "NamespaceTerminating"


@dataclass(frozen=True)
class Cause:
    """One ``details.causes`` entry: a field error (reason ``FieldValueRequired``...)."""

    field: str
    message: str
    reason: str = ""

    def to_dict(self) -> Value:
        found = {"reason": self.reason or cause_reason(self.message), "message": self.message, "field": self.field}
        return {k: v for k, v in found.items() if v}


class ApiError(Exception):
    """An error the server answers with: ``code``, ``reason``, ``message``, ``details``."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: Mapping[str, Any] | None = details

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"

    def body(self) -> Value:
        """The Status object (empty fields left out, as Go's ``omitempty`` does)."""
        out: Value = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        if self.message:
            out["message"] = self.message
        if self.reason:
            out["reason"] = self.reason
        if self.details is not None:
            out["details"] = dict(self.details)
        out["code"] = self.code
        return out


def cause_reason(message: str) -> str:
    """The reason of a field error from its message (``Required value`` -> FieldValueRequired)."""
    for prefix, reason in CAUSE_TYPES.items():
        if message == prefix or message.startswith(prefix + ":"):
            return reason
    return ""


def _quote(name: str) -> str:
    """Go's ``%q``."""
    return json.dumps(name, ensure_ascii=False)


def qualified(resource: str, group: str = "") -> str:
    """``schema.GroupResource.String()``: ``pods``, ``deployments.apps``."""
    return f"{resource}.{group}" if group else resource


def _details(resource: str, group: str, name: str, **more: Any) -> Value:
    found = {"name": name, "group": group, "kind": resource, **more}
    return {k: v for k, v in found.items() if v}


# -- the constructors --


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f"{qualified(resource, group)} {_quote(name)} not found",
                    _details(resource, group, name))  # fmt: skip


def not_found_path() -> ApiError:
    """A path the server does not serve (the real one answers Go's text 404, which kubectl
    reports as this message)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(409, "AlreadyExists", f"{qualified(resource, group)} {_quote(name)} already exists",
                    _details(resource, group, name))  # fmt: skip


def conflict(resource: str, group: str, name: str, detail: str = MODIFIED) -> ApiError:
    message = f"Operation cannot be fulfilled on {qualified(resource, group)} {_quote(name)}: {detail}"
    return ApiError(409, "Conflict", message, _details(resource, group, name))


def _causes(causes: Sequence[Cause | tuple[str, ...]]) -> list[Cause]:
    return [c if isinstance(c, Cause) else Cause(*c) for c in causes]


def aggregate(messages: Sequence[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message as is, several ``[a, b]`` (repeats once)."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"


def invalid(kind: str, name: str, causes: Sequence[Cause | tuple[str, ...]], group: str = "") -> ApiError:
    """422 for field errors ``(field, message, reason)``, message the error's body (``Required
    value``, ``Invalid value: "x": ...``): ``Pod "x" is invalid: spec.containers: Required value``."""
    found = _causes(causes)
    head = f"{kind}.{group}" if group else kind
    message = f"{head} {_quote(name)} is invalid"
    if found:
        message += ": " + aggregate([f"{c.field}: {c.message}" for c in found])
    details = _details(kind, group, name, causes=[c.to_dict() for c in found])
    return ApiError(422, "Invalid", message, details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized(message: str = "Unauthorized") -> ApiError:
    """401 for a request without credentials the server accepts [as pkg/endpoints/filters/
    authentication.go ``NewUnauthorized("Unauthorized")``]."""
    return ApiError(401, "Unauthorized", message)


def forbidden(resource: str, group: str, name: str, reason_text: str, causes: Sequence[Cause] = ()) -> ApiError:
    """403 ``pods "x" is forbidden: <reason_text>`` (no name: ``pods is forbidden: ...``)."""
    if not resource:
        message = f"forbidden: {reason_text}"
    elif not name:
        message = f"{qualified(resource, group)} is forbidden: {reason_text}"
    else:
        message = f"{qualified(resource, group)} {_quote(name)} is forbidden: {reason_text}"
    more = {"causes": [c.to_dict() for c in causes]} if causes else {}
    return ApiError(403, "Forbidden", message, _details(resource, group, name, **more))


def namespace_terminating(resource: str, group: str, name: str, namespace: str) -> ApiError:
    """403 for a create in a namespace being deleted, with its NamespaceTerminating cause."""
    cause = Cause("metadata.namespace", f"namespace {namespace} is being terminated", NAMESPACE_TERMINATING)
    why = f"unable to create new content in namespace {namespace} because it is being terminated"
    return forbidden(resource, group, name, why, [cause])


def forbidden_user(user: str, verb: str, path: str) -> ApiError:
    """403 for an identity the authorizer refuses, in its non-resource form (``verb`` an API
    verb: get, list, create...) [as responsewriters/errors.go ``forbiddenMessage``]."""
    return forbidden("", "", "", f"User {_quote(user)} cannot {verb} path {_quote(path)}")


def method_not_allowed(resource: str, action: str, group: str = "") -> ApiError:
    """405 ``<action> is not supported on resources of kind "<resource>"`` [NewMethodNotSupported]."""
    message = f"{action} is not supported on resources of kind {_quote(qualified(resource, group))}"
    return ApiError(405, "MethodNotAllowed", message, _details(resource, group, ""))


def method_not_allowed_sub(resource: str, subresource: str, action: str, group: str = "") -> ApiError:
    """405 for a subresource (``pods/exec``) the lab does not serve that way."""
    return method_not_allowed(f"{resource}/{subresource}" if subresource else resource, action, group)


def gone(message: str) -> ApiError:
    """410 Expired (``NewResourceExpired``): a watch or list from a compacted revision."""
    return ApiError(410, "Expired", message)


def too_old_resource_version(requested: int, oldest: int) -> ApiError:
    return gone(f"too old resource version: {requested} ({oldest})")


def unsupported_media_type(accepted: Sequence[str] = SERVED_MEDIA_TYPES) -> ApiError:
    """415 for a body (or patch) type the server does not read; the message lists what it reads."""
    message = f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}"
    return ApiError(415, "UnsupportedMediaType", message)


def not_acceptable(accepted: Sequence[str] = SERVED_MEDIA_TYPES) -> ApiError:
    return ApiError(406, "NotAcceptable", f"only the following media types are accepted: {', '.join(accepted)}")


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def from_code(code: int, message: str) -> ApiError:
    """An error of a given HTTP code, with that code's reason (BadRequest for an unknown one)."""
    return ApiError(code, CODE_REASONS.get(code, "BadRequest" if code < 500 else "InternalError"), message)


def from_patch_error(code: int, message: str) -> ApiError:
    """A patch that could not be applied (the patcher's 400, 415 or 422) as the server's error."""
    return from_code(code, message)


def success(details: Mapping[str, Any] | None = None) -> Value:
    """The Success Status a DELETE answers once the object is gone."""
    out: Value = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        out["details"] = dict(details)
    return out


# -- the lab's manifest problems as the server's errors --

_INVALID = re.compile(r'^The (?P<kind>[A-Za-z0-9]+) (?P<name>"(?:[^"\\]|\\.)*") is invalid: (?P<rest>.*)$', re.S)
_SERVER = re.compile(r"^Error from server \((?P<reason>[A-Za-z]+)\): (?P<message>.*)$", re.S)
_CLIENT_PREFIX = re.compile(r'^error when [a-z]+ "(?:[^"\\]|\\.)*": ')
_OBJECT = re.compile(r'^(?P<resource>[a-z0-9.-]+) (?P<name>"(?:[^"\\]|\\.)*")')
_CONFLICT = re.compile(r'^Operation cannot be fulfilled on (?P<resource>[a-z0-9.-]+) (?P<name>"(?:[^"\\]|\\.)*"): ')
_TERMINATING = re.compile(r"unable to create new content in namespace (?P<ns>\S+) because it is being terminated")
_STRICT = "strict decoding error: "
_UNNAMED_CONFLICT = "Operation cannot be fulfilled: "


def _invalid_cause(rest: str) -> Cause:
    field, sep, body = rest.partition(": ")
    return Cause(field, body) if sep else Cause("", rest)


def _object_details(message: str) -> Value:
    """The resource, group and name a server message names (``deployments.apps "x" ...``)."""
    found = _OBJECT.match(message) or _CONFLICT.match(message)
    if found is None:
        return {}
    resource, _, group = found["resource"].partition(".")
    return _details(resource, group, json.loads(found["name"]))


def _from_server_line(reason: str, message: str, resource: str, group: str, name: str) -> ApiError:
    message = _CLIENT_PREFIX.sub("", message)
    named = _OBJECT.match(message) or _CONFLICT.match(message)
    terminating = _TERMINATING.search(message) if reason == "Forbidden" else None
    if resource and not named and terminating:  # the lab's line leaves out the object
        return namespace_terminating(resource, group, name, terminating["ns"])
    if resource and not named and reason == "Conflict" and message.startswith(_UNNAMED_CONFLICT):
        return conflict(resource, group, name, message[len(_UNNAMED_CONFLICT):])
    details = _object_details(message) if reason != "BadRequest" else {}
    if terminating:
        cause = Cause("metadata.namespace", f"namespace {terminating['ns']} is being terminated", NAMESPACE_TERMINATING)
        details = {**details, "causes": [cause.to_dict()]}
    return ApiError(REASON_CODES.get(reason, 400), reason, message, details or None)


def _decoding(lines: Sequence[str]) -> str:
    """The first decoding problem; strict-decoding ones of one kind joined, as the decoder does."""
    head, _, _ = lines[0].partition(_STRICT)
    if _STRICT not in lines[0]:
        return lines[0]
    fields = [line[len(head) + len(_STRICT):] for line in lines if line.startswith(head + _STRICT)]
    return head + _STRICT + ", ".join(fields)


def from_manifest_error(lines: Sequence[str], *, resource: str = "", group: str = "", name: str = "") -> ApiError:
    """The error the server answers for a ManifestError's lines, checked in the order the
    server checks: decoding (400), then field validation of the first object named (422),
    then the store's answers (``Error from server (<Reason>): ...``: that reason's code);
    any other line (kubectl's ``error: ...``) is a 400 with the line as its message.
    ``resource``/``group``/``name``: the object of the request, for the lines that leave it
    out (a namespace being terminated, a conflict)."""
    if not lines:
        return bad_request("the object could not be stored")
    invalid_lines = [m for line in lines if (m := _INVALID.match(line))]
    server_lines = [m for line in lines if (m := _SERVER.match(line))]
    other = [line.removeprefix("error: ") for line in lines if not _INVALID.match(line) and not _SERVER.match(line)]
    if other:
        return bad_request(_decoding(other))
    if invalid_lines:
        kind, first = invalid_lines[0]["kind"], json.loads(invalid_lines[0]["name"])
        mine = [m for m in invalid_lines if (m["kind"], json.loads(m["name"])) == (kind, first)]
        entry = registry.of_kind(kind)
        return invalid(kind, first, [_invalid_cause(m["rest"]) for m in mine], entry.group if entry is not None else "")
    return _from_server_line(server_lines[0]["reason"], server_lines[0]["message"], resource, group, name)
