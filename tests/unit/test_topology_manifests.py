"""A topology's ``manifests``: resolved next to the file, bad ones refused before `up` builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.runtime import manifests
from testbed.topology import TopologyError, load_topology

STARS = Path(__file__).resolve().parents[2] / "topologies" / "stars"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        load_topology(str(path))
    return caught.value.problems


def test_stars_lists_the_labs_manifests_resolved_next_to_it() -> None:
    topology = load_topology("stars")
    assert [h.name for h in topology.hosts] == ["host1", "host2", "host3"]
    assert topology.manifests == (
        str(STARS / "00-cluster-image-policy.yaml"),
        str(STARS / "01-namespace-and-apps.yaml"),
    )


def test_paths_are_relative_to_the_topology_file(tmp_path: Path) -> None:
    write(tmp_path, "apps/a.yaml", "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n")
    topo = write(tmp_path, "lab.yaml", "hosts: [host1]\nmanifests: [apps/a.yaml]\n")
    assert load_topology(str(topo)).manifests == (str(tmp_path / "apps" / "a.yaml"),)


def test_no_manifests_is_an_empty_tuple(tmp_path: Path) -> None:
    assert load_topology(str(write(tmp_path, "lab.yaml", "hosts: [host1]\nmanifests:\n"))).manifests == ()
    assert load_topology("two-hosts").manifests == ()


def test_a_missing_file_is_one_line_naming_file_and_field(tmp_path: Path) -> None:
    topo = write(tmp_path, "lab.yaml", "hosts: [host1]\nmanifests: [there.yaml, gone.yaml]\n")
    write(tmp_path, "there.yaml", "kind: Namespace\n")
    assert problems(topo) == [f"{topo}: manifests[1]: 'gone.yaml': no such file ({tmp_path / 'gone.yaml'})"]


def test_a_folder_is_not_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    topo = write(tmp_path, "lab.yaml", "hosts: [host1]\nmanifests: [dir.yaml]\n")
    assert problems(topo) == [f"{topo}: manifests[0]: 'dir.yaml': not a file ({tmp_path / 'dir.yaml'})"]


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("[a.txt]", "manifests[0]: 'a.txt' is not a .yaml, .yml or .json file"),
        ("[a.yaml, a.yaml]", "manifests[1]: 'a.yaml' is listed twice"),
        ("a.yaml", "manifests: expected a list, got a string"),
        ("['']", "manifests[0]:"),
        ("[3]", "manifests[0]:"),
    ],
)
def test_bad_entries(tmp_path: Path, value: str, line: str) -> None:
    write(tmp_path, "a.yaml", "kind: Namespace\n")
    topo = write(tmp_path, "lab.yaml", f"hosts: [host1]\nmanifests: {value}\n")
    found = problems(topo)
    assert len(found) == 1 and found[0].startswith(f"{topo}: {line}"), found


def test_manifest_contents_are_checked_before_anything_is_built(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n")
    bad = write(tmp_path, "bad.yaml", "kind: Frob\napiVersion: v1\n")
    with pytest.raises(manifests.ManifestFileError) as caught:
        manifests.parse_files([str(good), str(bad)])
    assert str(caught.value).startswith(f'error: unable to recognize "{bad}": no matches for kind "Frob"')
    assert len(str(caught.value).splitlines()) == 1


def test_the_stars_manifests_are_the_labs_kinds() -> None:
    objects = manifests.parse_files([str(STARS / "00-cluster-image-policy.yaml")]).objects
    assert [type(o).__name__ for o in objects] == ["StoredObject"]


def test_serving_pods_and_probe_status() -> None:
    pod = {
        "metadata": {"namespace": "stars", "name": "backend-x"},
        "spec": {"containers": [{"image": "calico/star-probe:v0.1.0", "ports": [{"containerPort": 6379}]}]},
        "status": {"podIP": "10.65.0.5"},
    }
    idle = {"metadata": {"namespace": "demo", "name": "p"}, "spec": {"containers": [{"image": "busybox"}]},
            "status": {"podIP": "10.65.0.6"}}
    assert manifests.serving_pods("lab", [pod, idle]) == [
        manifests.ServingPod("stars/backend-x", "lab.stars.backend-x", "10.65.0.5", 6379, True)
    ]
    assert manifests.probe_reports(b'{"status":{"targets":[]}}')
    assert not manifests.probe_reports(b'{"status":{}}')
    assert not manifests.probe_reports(b"<html>")
