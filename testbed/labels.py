"""Kubernetes label syntax: keys ``[prefix/]name`` and their values.

The patterns are also written in ``topologies/topology.schema.json`` (for editors); a unit
test keeps the two equal.
"""

from __future__ import annotations

import re

MAX_LABEL_NAME = 63  # the name part of a key, and a value
MAX_LABEL_PREFIX = 253  # a DNS subdomain

LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
LABEL_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
LABEL_KEY = re.compile(
    r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
)

_NAME_RULE = (
    f"at most {MAX_LABEL_NAME} characters of letters, digits, '-', '_' and '.', "
    "starting and ending with a letter or digit"
)


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None."""
    if key == "":
        return "label key '' is empty"
    parts = key.split("/")
    if len(parts) > 2:
        return f"label key {key!r} has more than one '/'"
    if len(parts) == 2:
        prefix, name = parts
        if len(prefix) > MAX_LABEL_PREFIX or not LABEL_PREFIX.fullmatch(prefix):
            return (
                f"label key {key!r}: prefix {prefix!r} is not a DNS subdomain "
                f"(at most {MAX_LABEL_PREFIX} characters of lowercase letters, digits, '-' and '.')"
            )
    else:
        name = key
    if not LABEL_NAME.fullmatch(name):
        return f"label key {key!r}: name {name!r} must be {_NAME_RULE}"
    return None


def label_value_problem(key: str, value: str) -> str | None:
    """Why ``value`` is not a valid value for label ``key``, or None."""
    if not LABEL_VALUE.fullmatch(value):
        return f"label {key!r}: value {value!r} must be empty or {_NAME_RULE}"
    return None
