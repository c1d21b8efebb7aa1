"""The JSON Schema of topology files, and its errors turned into one-line problems.

The schema (``topologies/topology.schema.json``) checks the shape: fields, types, ranges.
Name syntax and lengths are in the schema too, for editors, but their messages come from
``testbed.topology.validate``, which knows the rules in words; their schema errors are dropped.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from testbed.topology.errors import Problem, show

TOPOLOGIES_DIR = Path(__file__).resolve().parents[2] / "topologies"
SCHEMA_PATH = TOPOLOGIES_DIR / "topology.schema.json"

# Checked again, with better words, by the semantic checks.
_LEFT_TO_SEMANTICS = frozenset({"pattern", "maxLength", "format"})

_EXPECTED = {
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "null": "nothing",
}


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema())


def kind_of(value: object) -> str:
    """What a value is, in YAML's words."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _expected(types: str | list[str]) -> str:
    names = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    return " or ".join(_EXPECTED.get(t, t) for t in names)


def _type_message(expected: str | list[str], value: object) -> str:
    message = f"expected {_expected(expected)}, got {kind_of(value)}"
    if isinstance(value, (bool, int, float, str)):
        message += f" {show(value)}"
    wants_string = expected == "string" or (isinstance(expected, list) and "string" in expected)
    if wants_string and isinstance(value, (bool, int, float)):
        message += " (quote it)"
    return message


def _messages(error: jsonschema.ValidationError) -> list[str]:
    keyword = error.validator
    value: Any = error.instance
    limit: Any = error.validator_value
    schema: Any = error.schema
    if keyword == "type":
        return [_type_message(limit, value)]
    if keyword == "additionalProperties" and isinstance(value, dict):
        allowed = list(schema.get("properties", {}))
        unknown = [k for k in value if k not in allowed]
        return [f"unknown field {show(k)} (allowed: {', '.join(allowed)})" for k in unknown]
    if keyword == "required" and isinstance(value, dict):
        return [f"missing required field {name!r}" for name in limit if name not in value]
    if keyword == "minItems":
        return [f"must have at least {limit} {'entry' if limit == 1 else 'entries'}"]
    if keyword == "minLength":
        return ["must not be empty"]
    if keyword == "minimum":
        return [f"{show(value)} is less than the minimum {limit}"]
    if keyword == "maximum":
        return [f"{show(value)} is more than the maximum {limit}"]
    return [error.message]


def schema_problems(data: object) -> list[Problem]:
    """Every way ``data`` breaks the topology schema, as problems with field paths."""
    problems: list[Problem] = []
    for error in _validator().iter_errors(data):
        if error.validator in _LEFT_TO_SEMANTICS or "propertyNames" in error.schema_path:
            continue
        path = tuple(error.absolute_path)
        problems.extend(Problem(path, message) for message in _messages(error))
    return problems
