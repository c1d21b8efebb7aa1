"""Reading topology files: YAML (strict: duplicate keys are errors) and JSON.

Syntax errors become one ``<file>: line L, column C: <problem>`` line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from testbed.topology.errors import TopologyError, one_line

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: MappingNode) -> dict[Any, Any]:
    first_line: dict[object, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = key in first_line
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if seen:
            message = f"duplicate key {key!r} (first at line {first_line[key] + 1})"
            raise ConstructorError(None, None, message, key_node.start_mark)
        first_line[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_error_line(label: str, exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        return f"{label}: line {mark.line + 1}, column {mark.column + 1}: {one_line(problem)}"
    return f"{label}: invalid YAML: {one_line(str(exc))}"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def read_text(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError([f"{label}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError([f"{label}: cannot read: {one_line(str(exc))}"]) from None


def parse_yaml(text: str, label: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TopologyError([_yaml_error_line(label, exc)]) from None


def parse_json(text: str, label: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise TopologyError(
            [f"{label}: line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from None
    except ValueError as exc:
        raise TopologyError([f"{label}: {exc}"]) from None


def read_data(path: Path, label: str) -> Any:
    """The data of a .yaml/.yml or .json file, or TopologyError."""
    text = read_text(path, label)
    if path.suffix == ".json":
        return parse_json(text, label)
    return parse_yaml(text, label)
