"""The pytest plugin's pure parts (testbed.pytest_plugin): lab names that no two runs or
two labs of one run share, manifests given as paths or as text, and the plugin being
loadable by name, as users' suites load it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testbed import naming
import pytest

from testbed.kube.errors import ManifestError
from testbed.pytest_plugin import manifest_documents, unique_name


def test_lab_names_are_valid_unique_and_carry_the_pid() -> None:
    names = [unique_name("itstars") for _ in range(3)]
    assert len(set(names)) == 3
    assert all(n.startswith(f"itstars-{os.getpid()}-") and naming.is_valid_lab_name(n) for n in names)


def test_a_long_prefix_is_cut_to_the_lab_name_limit() -> None:
    name = unique_name("a-very-long-topology-name-for-a-lab-")
    assert naming.is_valid_lab_name(name) and len(name) <= naming.MAX_LAB


def test_a_manifest_is_yaml_text_or_paths_read_as_kubectl_reads_them(tmp_path: Path) -> None:
    doc = "kind: Namespace\napiVersion: v1\nmetadata: {name: demo}\n"
    path = tmp_path / "ns.yaml"
    path.write_text(doc)
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "b.yml").write_text(doc.replace("demo", "b"))
    (tmp_path / "more" / "a.json").write_text('{"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "a"}}')
    (tmp_path / "more" / "notes.txt").write_text("not a manifest")

    def named(manifest: object) -> list[tuple[str, str]]:
        return [(d.source, d.body["metadata"]["name"]) for d in manifest_documents(manifest)]  # type: ignore[arg-type]

    assert named(path) == named(str(path)) == [(str(path), "demo")]
    assert named(doc) == [("manifest", "demo")]
    assert named([path, tmp_path / "more"]) == [
        (str(path), "demo"), (str(tmp_path / "more" / "a.json"), "a"), (str(tmp_path / "more" / "b.yml"), "b"),
    ]  # fmt: skip
    with pytest.raises(ManifestError, match='the path "gone.yaml" does not exist'):
        manifest_documents("gone.yaml")


def test_the_plugin_loads_by_name_and_offers_its_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text("def test_nothing(): pass\n")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "testbed.pytest_plugin", "-p", "no:cacheprovider", "--fixtures"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    ).stdout
    assert "testbed_lab -- " in out and "testbed_module_lab [module scope]" in out
