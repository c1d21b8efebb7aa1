"""``labelSelector`` and ``fieldSelector`` query strings: parsed, checked and matched as the
API server does. Pure.

Label selectors follow apimachinery's lexer and parser, errors worded alike (the server
answers them with 400 BadRequest) [am pkg/labels/selector.go ``Parse``, ``NewRequirement``,
``Requirement.Matches``; key and value checks am pkg/api/validate/content/kube.go
``IsLabelKey``, ``IsLabelValue``]: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin
(a,b)``, ``k``, ``!k``, ``k>1``, ``k<1``; ``!=`` and ``notin`` match an object without the key.

Field selectors are ``f=v``, ``f==v``, ``f!=v`` terms, with ``\\,``, ``\\=`` and ``\\\\`` escapes
[am pkg/fields/selector.go ``ParseSelector``]. Each term goes through its kind's field label
conversion, which decides what is supported and how a refusal is worded [k/k
pkg/apis/core/v1/conversion.go ``AddFieldLabelConversionFunc``: ``field label not supported:
x``; any other kind am pkg/runtime/conversion.go ``DefaultMetaV1FieldSelectorConversion``:
``"x" is not a known field selector: only "metadata.name", "metadata.namespace"``], and is
matched against the object's selectable fields [k/k pkg/registry/core/*/strategy.go
``*ToSelectableFields``]: a field the object lacks reads "", a boolean "true"/"false"
(unset: false), a count its decimal (unset: 0). Cluster-scoped kinds with a conversion
(nodes, namespaces) do not take ``metadata.namespace``. Two entries are looser than some
servers: Services' ``spec.clusterIP`` and ``spec.type`` (only recent ones register them), and
ReplicaSets' ``status.replicas`` (kube-api.md §3.1 lists it; apps/v1 may not register it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Value = dict[str, Any]


class SelectorError(ValueError):
    """A selector the server refuses (400 BadRequest), with its message."""


# -- label keys and values, as apimachinery words their problems --

_LABEL_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL = re.compile(f"^{_LABEL_FMT}$")
_VALUE_FMT = f"({_LABEL_FMT})?"
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_SUBDOMAIN = re.compile(f"^{_SUBDOMAIN_FMT}$")
_KEY_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)


def _regex_error(message: str, regex: str, *examples: str) -> str:
    """``content.RegexError``."""
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{regex}')"


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def label_key_errors(key: str) -> list[str]:
    """``IsLabelKey``: why ``key`` is no label key ([] when it is one)."""
    parts = key.split("/")
    if len(parts) > 2:
        return ["a valid label key " + _regex_error(_KEY_MSG, _LABEL_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]  # fmt: skip
    errors = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errors.append("prefix part must be no more than 253 bytes")
            if not _SUBDOMAIN.match(prefix):
                errors.append("prefix part " + _regex_error(_SUBDOMAIN_MSG, _SUBDOMAIN_FMT, "example.com"))
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 bytes")
    if not _LABEL.match(name):
        errors.append("name part " + _regex_error(_KEY_MSG, _LABEL_FMT, "MyName", "my.name", "123-abc"))
    return errors


def label_value_errors(value: str) -> list[str]:
    """``IsLabelValue``: why ``value`` is no label value ([] when it is one)."""
    errors = ["must be no more than 63 bytes"] if len(value) > 63 else []
    if value and not _LABEL.match(value):
        errors.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def _invalid(path: str, bad: str, details: Sequence[str]) -> str:
    """A ``field.Invalid`` error's text (a nil path prints ``<nil>``)."""
    return f"{path}: Invalid value: {_go_quote(bad)}: {'; '.join(details)}"


def _aggregate(errors: Sequence[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"


# -- label selectors --

OPERATORS = ("in", "notin", "=", "==", "!=", "gt", "lt")  # the binary ones, in apimachinery's order
_SYMBOLS = {")": ")", ",": ",", "!": "!", "==": "==", "=": "=", ">": ">", "<": "<", "!=": "!=", "(": "("}
_KEYWORDS = {"in": "in", "notin": "notin"}
_SPECIAL = set("=!(),><")
_SPACE = set(" \t\r\n")
ID, END = "identifier", "end"


@dataclass(frozen=True)
class Requirement:
    """One label requirement: ``operator`` is apimachinery's (``=``, ``==``, ``!=``, ``in``,
    ``notin``, ``exists``, ``!``, ``gt``, ``lt``); ``values`` sorted and unique."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.operator in ("in", "=", "=="):
            return has and labels[self.key] in self.values
        if self.operator in ("notin", "!="):
            return not has or labels[self.key] not in self.values
        if self.operator == "exists":
            return has
        if self.operator == "!":
            return not has
        if self.operator in ("gt", "lt") and has and len(self.values) == 1:
            try:
                mine, theirs = int(labels[self.key]), int(self.values[0])
            except ValueError:
                return False
            return mine > theirs if self.operator == "gt" else mine < theirs
        return False

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        symbol = {"gt": ">", "lt": "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{','.join(self.values)}"


@dataclass(frozen=True)
class LabelQuery:
    """A parsed labelSelector: every requirement must match (none: everything matches)."""

    requirements: tuple[Requirement, ...] = field(default_factory=tuple)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _lex(text: str) -> list[tuple[str, str]]:
    """(token, literal) pairs, ending with (END, "") [selector.go ``Lexer``]."""
    out, i = [], 0
    while True:
        while i < len(text) and text[i] in _SPACE:
            i += 1
        if i >= len(text):
            out.append((END, ""))
            return out
        if text[i] in _SPECIAL:
            j, found = i, None
            while j < len(text) and text[j] in _SPECIAL:
                j += 1
                if text[i:j] in _SYMBOLS:
                    found = (_SYMBOLS[text[i:j]], text[i:j], j)
                elif found is not None:
                    break
            if found is None:
                out.append(("error", f"error expected: keyword found '{text[i:j]}'"))
                i = j
            else:
                out.append(found[:2])
                i = found[2]
            continue
        j = i
        while j < len(text) and text[j] not in _SPECIAL and text[j] not in _SPACE:
            j += 1
        word = text[i:j]
        out.append((_KEYWORDS.get(word, ID), word))
        i = j


class _Parser:
    """apimachinery's recursive descent over the tokens [selector.go ``Parser``]; in a
    values context ``in`` and ``notin`` are identifiers."""

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.position = 0

    def lookahead(self, values: bool = True) -> tuple[str, str]:
        token, literal = self.items[self.position]
        return (ID if values and token in _KEYWORDS else token), literal

    def consume(self, values: bool = True) -> tuple[str, str]:
        found = self.lookahead(values)
        self.position += 1
        return found

    def parse(self) -> list[Requirement]:
        requirements = []
        while True:
            token, literal = self.lookahead()
            if token == END:
                return requirements
            if token not in (ID, "!"):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except SelectorError as exc:
                raise SelectorError(f"unable to parse requirement: {exc}") from None
            token, literal = self.consume()
            if token == END:
                return requirements
            if token != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            token, literal = self.lookahead()
            if token not in (ID, "!"):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        key, operator = self.key_and_operator()
        if operator in ("exists", "!"):
            return new_requirement(key, operator, [])
        operator = self.operator()
        values = self.values() if operator in ("in", "notin") else self.exact_value()
        return new_requirement(key, operator, sorted(set(values)))

    def key_and_operator(self) -> tuple[str, str]:
        operator = ""
        token, literal = self.consume()
        if token == "!":
            operator = "!"
            token, literal = self.consume()
        if token != ID:
            raise SelectorError(f"found '{literal}', expected: identifier")
        problems = label_key_errors(literal)
        if problems:
            raise SelectorError(_invalid("<nil>", literal, problems))
        if self.lookahead()[0] in (END, ",") and operator != "!":
            operator = "exists"
        return literal, operator

    def operator(self) -> str:
        token, literal = self.consume(values=False)
        found = {"in": "in", "notin": "notin", "=": "=", "==": "==", "!=": "!=", ">": "gt", "<": "lt"}.get(token)
        if found is None:
            raise SelectorError(f"found '{literal}', expected: {', '.join(OPERATORS)}")
        return found

    def values(self) -> list[str]:
        token, literal = self.consume()
        if token != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        token, literal = self.lookahead()
        if token == ")":
            self.consume()
            return [""]
        if token not in (ID, ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        found = self.identifiers()
        if self.consume()[0] != ")":
            raise SelectorError(f"found '{literal}', expected: ')'")
        return found

    def identifiers(self) -> list[str]:
        """A comma-separated list of possibly empty identifiers, up to ``)``."""
        found: list[str] = []
        while True:
            token, literal = self.consume()
            if token == ID:
                found.append(literal)
                after, after_literal = self.lookahead()
                if after == ")":
                    return found
                if after != ",":
                    raise SelectorError(f"found '{after_literal}', expected: ',' or ')'")
            elif token == ",":
                if not found:
                    found.append("")
                if self.lookahead()[0] in (")", ","):
                    found.append("")
                    if self.lookahead()[0] == ")":
                        return found
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def exact_value(self) -> list[str]:
        token, _ = self.lookahead()
        if token in (END, ","):
            return [""]
        token, literal = self.consume()
        if token == ID:
            return [literal]
        raise SelectorError(f"found '{literal}', expected: identifier")


def new_requirement(key: str, operator: str, values: Sequence[str]) -> Requirement:
    """``NewRequirement``'s checks of a parsed requirement's values."""
    errors = []
    if operator in ("gt", "lt"):
        errors += [_invalid(f"values[{i}]", v, ["for 'Gt', 'Lt' operators, the value must be an integer"])
                   for i, v in enumerate(values) if not re.fullmatch(r"[+-]?\d+", v)]  # fmt: skip
    for i, v in enumerate(values):
        problems = label_value_errors(v)
        if problems:
            errors.append(_invalid(f"values[{i}][{key}]", v, problems))
    if errors:
        raise SelectorError(_aggregate(errors))
    return Requirement(key, operator, tuple(values))


def parse_label_selector(text: str) -> LabelQuery:
    """A labelSelector query string; SelectorError with the server's message."""
    requirements = _Parser(text).parse()
    return LabelQuery(tuple(sorted(requirements, key=lambda r: r.key)))


def label_matches(query: LabelQuery, labels: Mapping[str, str]) -> bool:
    return query.matches(labels)


# -- field selectors --


def _get(*path: str) -> Callable[[Value], str]:
    def read(value: Value) -> str:
        found: object = value
        for part in path:
            found = found.get(part) if isinstance(found, dict) else None
        return "" if found is None else str(found)

    return read


def _flag(*path: str) -> Callable[[Value], str]:
    """A boolean field as ``strconv.FormatBool``: unset is false."""
    read = _get(*path)
    return lambda value: "true" if read(value) in ("True", "true") else "false"


def _number(*path: str) -> Callable[[Value], str]:
    read = _get(*path)
    return lambda value: read(value) or "0"


def _pod_ip(value: Value) -> str:
    status = value.get("status", {})
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    return str(ips[0] if ips else status.get("podIP") or "")


def _event_source(value: Value) -> str:
    return str((value.get("source") or {}).get("component") or value.get("reportingComponent") or "")


@dataclass(frozen=True)
class FieldSpec:
    """A kind's field label conversion: its selectable fields (label -> reader), the labels
    it renames, the ones it accepts without ever setting them; ``generic``: no conversion of
    its own (apimachinery's default wording)."""

    fields: Mapping[str, Callable[[Value], str]]
    aliases: Mapping[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    generic: bool = False

    def accepts(self, label: str) -> str:
        """The canonical label, or SelectorError worded as the kind's conversion words it."""
        label = self.aliases.get(label, label)
        if label in self.fields or label in self.unset:
            return label
        if self.generic:
            raise SelectorError(f"{_go_quote(label)} is not a known field selector: only {_ONLY_METADATA}")
        raise SelectorError(f"field label not supported: {label}")


_ONLY_METADATA = '"metadata.name", "metadata.namespace"'
_NAME = {"metadata.name": _get("metadata", "name")}
_METADATA = {**_NAME, "metadata.namespace": _get("metadata", "namespace")}
_INVOLVED = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
FIELDS: Mapping[str, FieldSpec] = {
    "pods": FieldSpec({
        **_METADATA, "spec.nodeName": _get("spec", "nodeName"), "spec.restartPolicy": _get("spec", "restartPolicy"),
        "spec.schedulerName": _get("spec", "schedulerName"),
        "spec.serviceAccountName": _get("spec", "serviceAccountName"), "spec.hostNetwork": _flag("spec", "hostNetwork"),
        "status.phase": _get("status", "phase"), "status.podIP": _pod_ip,
        "status.nominatedNodeName": _get("status", "nominatedNodeName"),
    }, aliases={"spec.host": "spec.nodeName"}, unset=("status.podIPs",)),
    "events": FieldSpec({
        **_METADATA, **{f"involvedObject.{f}": _get("involvedObject", f) for f in _INVOLVED},
        "reason": _get("reason"), "reportingComponent": _get("reportingComponent"), "source": _event_source,
        "type": _get("type"),
    }),
    "namespaces": FieldSpec({**_NAME, "status.phase": _get("status", "phase")}),
    "nodes": FieldSpec({**_NAME, "spec.unschedulable": _flag("spec", "unschedulable")}),
    "replicationcontrollers": FieldSpec({**_METADATA, "status.replicas": _number("status", "replicas")}),
    "replicasets": FieldSpec({**_METADATA, "status.replicas": _number("status", "replicas")}),
    "secrets": FieldSpec({**_METADATA, "type": _get("type")}),
    "services": FieldSpec({**_METADATA, "spec.clusterIP": _get("spec", "clusterIP"),
                           "spec.type": _get("spec", "type")}),
}  # fmt: skip
GENERIC = FieldSpec(_METADATA, generic=True)


def field_spec(plural: str) -> FieldSpec:
    return FIELDS.get(plural, GENERIC)


@dataclass(frozen=True)
class FieldRequirement:
    """``field`` (canonical) ``operator`` (``=``, ``==`` or ``!=``) ``value`` (unescaped)."""

    field: str
    operator: str
    value: str

    def matches(self, actual: str) -> bool:
        return actual != self.value if self.operator == "!=" else actual == self.value


@dataclass(frozen=True)
class FieldQuery:
    """A parsed fieldSelector for one resource: every term must match."""

    plural: str
    requirements: tuple[FieldRequirement, ...] = field(default_factory=tuple)

    def matches(self, value: Value) -> bool:
        fields = field_spec(self.plural).fields
        return all(r.matches(fields[r.field](value) if r.field in fields else "") for r in self.requirements)


def _split_terms(text: str) -> list[str]:
    """Comma-separated terms; a backslash-escaped comma stays in its term."""
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    return [*terms, text[start:]] if text else []


def _split_term(term: str) -> tuple[str, str, str] | None:
    """(field, operator, raw value) at the first operator (``!=`` before ``==`` before ``=``)."""
    for i in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, i):
                return term[:i], operator, term[i + len(operator):]
    return None


def _unescape(raw: str) -> str:
    out, escaped = [], False
    for ch in raw:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str, plural: str) -> FieldQuery:
    """A fieldSelector for ``plural``; SelectorError with the server's message (a bad term,
    or a field the kind does not support)."""
    spec, parsed = field_spec(plural), []
    for term in sorted(_split_terms(text)):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        name, operator, raw = split
        parsed.append((name, operator, _unescape(raw)))
    return FieldQuery(plural, tuple(FieldRequirement(spec.accepts(n), op, v) for n, op, v in parsed))


def field_matches(query: FieldQuery, value: Value) -> bool:
    return query.matches(value)
