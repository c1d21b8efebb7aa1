"""The JSON Schema of topology files: valid itself, agreeing with the Python checks."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from testbed import naming
from testbed.model.topology import LabOptions, PodSpec
from testbed.topology import SCHEMA_PATH, builtin_topologies, load_schema
from testbed.labels import LABEL_KEY, LABEL_VALUE
from testbed.topology.loader import _builtin_files
from testbed.topology.validate import MAX_HOST_NAME

DATA = Path(__file__).resolve().parents[1] / "data" / "topologies"


def test_schema_is_valid_draft_2020_12() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _objects(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value)
    return found


def test_every_fixed_object_is_closed_and_described() -> None:
    for node in _objects(load_schema()):
        if "properties" in node:
            assert node.get("additionalProperties") is False, node
            for field, spec in node["properties"].items():  # type: ignore[attr-defined]
                assert "description" in spec or "$ref" in spec, field


@pytest.mark.parametrize("name", [n for n in builtin_topologies() if n in _builtin_files()])
def test_builtin_files_validate(name: str) -> None:
    path = _builtin_files()[name]
    if path.suffix == ".py":
        pytest.skip("Python topologies are checked after conversion")
    data = yaml.safe_load(path.read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(data)


@pytest.mark.parametrize("name", ["pinned.json"])
def test_valid_test_data_validates(name: str) -> None:
    data = json.loads((DATA / name).read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(data)


def test_name_patterns_match_the_naming_module() -> None:
    defs = load_schema()["$defs"]
    assert defs["host_name"]["pattern"] == naming.HOST_NAME.pattern
    assert defs["host"]["pattern"] == naming.HOST_NAME.pattern
    assert defs["host_name"]["maxLength"] == defs["host"]["maxLength"] == MAX_HOST_NAME
    assert defs["namespace_name"]["pattern"] == naming.K8S_NAMESPACE.pattern
    assert defs["namespace_name"]["maxLength"] == naming.MAX_K8S_NAMESPACE
    assert defs["pod_name"]["pattern"] == naming.K8S_NAME.pattern
    assert defs["pod_name"]["maxLength"] == naming.MAX_K8S_NAME
    assert defs["labels"]["propertyNames"]["pattern"] == LABEL_KEY.pattern
    assert defs["labels"]["additionalProperties"]["pattern"] == LABEL_VALUE.pattern


def test_defaults_match_the_model() -> None:
    schema = load_schema()
    options = schema["properties"]["options"]["properties"]
    assert options["route_reflector"]["default"] == LabOptions().route_reflector
    assert options["bgp_hold_time"]["default"] == LabOptions().bgp_hold_time
    assert set(options) == set(LabOptions.__dataclass_fields__)
    pod = schema["$defs"]["pod"]["properties"]
    assert pod["image"]["default"] == PodSpec.image
    assert set(pod) == set(PodSpec.__dataclass_fields__)
