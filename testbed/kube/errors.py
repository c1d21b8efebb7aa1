"""kubectl-like errors for manifests: every problem found, one line each.

Two families of lines, as the API server words them:

- decoding problems (unknown fields, wrong JSON types), which the server reports before
  validating: ``NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy:
  strict decoding error: unknown field "spec.ingress[0].fromm"``;
- field validation: ``The NetworkPolicy "deny" is invalid: spec.ingress[0].ports[0].port:
  Invalid value: 70000: must be between 1 and 65535, inclusive``.

Unlike the server, which stops at the first family, both are collected, so that one run
shows everything wrong with a file. The kubectl layer prefixes ``error when creating FILE``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from testbed.labels import label_key_problem, label_value_problem

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_PORT_NAME = re.compile(r"[-a-z0-9]+")


class ManifestError(ValueError):
    """A manifest that cannot be stored; ``lines`` holds one line per problem."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))

    def __str__(self) -> str:
        return "\n".join(self.lines)


def show_value(value: object) -> str:
    """A bad value as Go's ``%v``/``%q`` would print it: strings quoted, numbers bare."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, default=str, sort_keys=True)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "null" if value is None else type(value).__name__


class FieldReport:
    """Collects the problems of one object (kind + name) while its fields are read."""

    def __init__(self, kind: str, version: str = "v1") -> None:
        self.kind = kind
        self.version = version
        self.name = ""
        self._decoding: list[str] = []
        self._invalid: list[str] = []

    # -- validation (field.Error in the API server) --
    def invalid(self, path: str, value: object, detail: str) -> None:
        self._invalid.append(f"{path}: Invalid value: {show_value(value)}: {detail}")

    def required(self, path: str, detail: str = "") -> None:
        self._invalid.append(f"{path}: Required value" + (f": {detail}" if detail else ""))

    def forbidden(self, path: str, detail: str) -> None:
        self._invalid.append(f"{path}: Forbidden: {detail}")

    def unsupported(self, path: str, value: object, supported: Iterable[str]) -> None:
        quoted = ", ".join(json.dumps(s) for s in supported)
        self._invalid.append(
            f"{path}: Unsupported value: {show_value(value)}: supported values: {quoted}"
        )

    # -- decoding (strict JSON decoding in the API server) --
    def decoding(self, message: str) -> None:
        self._decoding.append(
            f"{self.kind} in version {json.dumps(self.version)} cannot be handled as a "
            f"{self.kind}: {message}"
        )

    def unknown_field(self, path: str) -> None:
        self.decoding(f"strict decoding error: unknown field {json.dumps(path)}")

    def wrong_type(self, path: str, value: object, go_type: str) -> None:
        self.decoding(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field "
            f"{path} of type {go_type}"
        )

    def other(self, line: str) -> None:
        """A whole line of its own (kubectl's client-side checks)."""
        self._decoding.append(line)

    # -- readers that check JSON shapes --
    def mapping(self, value: object, path: str, fields: Iterable[str]) -> dict[str, Any] | None:
        """``value`` as an object with only ``fields``; unknown ones are reported and dropped."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.wrong_type(path, value, "object")
            return None
        allowed = set(fields)
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in allowed:
                out[key] = item
            else:
                self.unknown_field(f"{path}.{key}" if path else str(key))
        return out

    def sequence(self, value: object, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            self.wrong_type(path, value, "array")
            return []
        return list(value)

    def string(self, value: object, path: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.wrong_type(path, value, "string")
            return None
        return value

    def string_map(self, value: object, path: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.wrong_type(path, value, "map[string]string")
            return {}
        out: dict[str, str] = {}
        for key, item in value.items():
            if isinstance(key, str) and isinstance(item, str):
                out[key] = item
            else:
                self.wrong_type(f"{path}[{key}]", item, "string")
        return out

    def labels(self, value: object, path: str) -> dict[str, str]:
        """A label map, each bad key or value reported as the API server does (key
        problems show the key, value problems the value)."""
        labels = self.string_map(value, path)
        for key, item in labels.items():
            key_problem = label_key_problem(key)
            if key_problem:
                self.invalid(path, key, key_problem)
            value_problem = label_value_problem(key, item)
            if value_problem:
                self.invalid(path, item, value_problem)
        return labels

    # -- the end --
    def lines(self) -> list[str]:
        head = f"The {self.kind} {json.dumps(self.name)} is invalid: "
        found = self._decoding + [head + line for line in self._invalid]
        return list(dict.fromkeys(found))

    def raise_if_any(self) -> None:
        found = self.lines()
        if found:
            raise ManifestError(found)


# -- the API server's checks of names, worded as it words them --


def check_type_meta(obj: Mapping[str, Any], version: str, kind: str) -> None:
    """apiVersion and kind present and the ones a parser expects, worded as kubectl does."""
    found_version, found_kind = obj.get("apiVersion"), obj.get("kind")
    if not found_kind:
        raise ManifestError(["Object 'Kind' is missing in the manifest"])
    if not found_version:
        raise ManifestError(["Object 'apiVersion' is missing in the manifest"])
    if found_version != version or found_kind != kind:
        raise ManifestError([f"no matches for kind {json.dumps(found_kind)} in version {json.dumps(found_version)}"])


def _rfc1123_problems(text: str, pattern: re.Pattern[str], limit: int, what: str, chars: str) -> list[str]:
    problems = []
    if len(text) > limit:
        problems.append(f"must be no more than {limit} characters")
    if not pattern.fullmatch(text):
        problems.append(
            f"a lowercase RFC 1123 {what} must consist of lower case alphanumeric "
            f"characters{chars}, and must start and end with an alphanumeric character"
        )
    return problems


def dns_subdomain_problems(text: str) -> list[str]:
    return _rfc1123_problems(text, _DNS_SUBDOMAIN, 253, "subdomain", ", '-' or '.'")


def dns_label_problems(text: str) -> list[str]:
    return _rfc1123_problems(text, _DNS_LABEL, 63, "label", " or '-'")


def port_name_problems(name: str) -> list[str]:
    """Why ``name`` is not a valid named port (an IANA service name), as the API server says."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not _PORT_NAME.fullmatch(name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        problems.append("must contain at least one letter (a-z)")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems
