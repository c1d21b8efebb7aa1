"""Reading -f paths as kubectl does (testbed.kube.sources): files, directories, -R, stdin,
globs, and one line naming the file for every problem."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from testbed.kube import sources
from testbed.kube.errors import ManifestError


def ns(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def names(documents: list[sources.Document]) -> list[tuple[str, str]]:
    return [(d.source, d.body["metadata"]["name"]) for d in documents]


def problems(*paths: str, recursive: bool = False, stdin: str = "") -> list[str]:
    with pytest.raises(ManifestError) as caught:
        sources.read_documents(paths, recursive=recursive, stdin=io.StringIO(stdin))
    return caught.value.lines


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """b.yaml, a.json, c.yml, notes.txt, sub/d.yaml, sub/deeper/e.yaml, z.yaml."""
    write(tmp_path / "b.yaml", ns("b") + "---\n" + ns("b2"))
    write(tmp_path / "a.json", '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}')
    write(tmp_path / "c.yml", ns("c"))
    write(tmp_path / "notes.txt", "not: a manifest\n")
    write(tmp_path / "sub" / "d.yaml", ns("d"))
    write(tmp_path / "sub" / "deeper" / "e.yaml", ns("e"))
    write(tmp_path / "z.yaml", ns("z"))
    return tmp_path


def test_several_files_in_the_order_given_then_document_order(tree: Path) -> None:
    documents = sources.read_documents([str(tree / "z.yaml"), str(tree / "b.yaml")])
    assert names(documents) == [(str(tree / "z.yaml"), "z"), (str(tree / "b.yaml"), "b"), (str(tree / "b.yaml"), "b2")]


def test_a_directory_gives_its_manifest_files_by_name_not_its_subdirectories(tree: Path) -> None:
    documents = sources.read_documents([str(tree)])
    assert [name for _, name in names(documents)] == ["a", "b", "b2", "c", "z"]


def test_recursive_walks_subdirectories_where_their_names_sort(tree: Path) -> None:
    files = sources.expand_paths([str(tree)], recursive=True)
    assert [os.path.relpath(f, tree) for f in files] == [
        "a.json", "b.yaml", "c.yml", "sub/d.yaml", "sub/deeper/e.yaml", "z.yaml",
    ]  # fmt: skip


def test_a_file_named_explicitly_is_read_whatever_its_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "manifest.txt", ns("x"))
    assert names(sources.read_documents([str(path)])) == [(str(path), "x")]


def test_stdin_is_named_STDIN_and_usable_once(tree: Path) -> None:
    documents = sources.read_documents(["-", str(tree / "c.yml")], stdin=io.StringIO(ns("in")))
    assert names(documents) == [("STDIN", "in"), (str(tree / "c.yml"), "c")]
    assert problems("-", "-", stdin=ns("in")) == ["error: standard input cannot be used for multiple arguments"]


def test_a_glob_pattern_gives_its_matches(tree: Path) -> None:
    assert [n for _, n in names(sources.read_documents([str(tree / "*.y*ml")]))] == ["b", "b2", "c", "z"]


def test_a_missing_path_is_kubectls_line_and_nothing_is_read(tree: Path) -> None:
    assert problems(str(tree / "c.yml"), "gone.yaml", str(tree / "nothing-*.yaml")) == [
        'error: the path "gone.yaml" does not exist',
        f'error: the path "{tree / "nothing-*.yaml"}" does not exist',
    ]


def test_a_directory_without_manifests(tmp_path: Path) -> None:
    write(tmp_path / "README", "hello")
    assert problems(str(tmp_path)) == [f"error: error reading [{tmp_path}]: recognized file extensions are [.json .yaml .yml]"]


def test_every_bad_file_is_reported_each_on_one_line_naming_it(tree: Path) -> None:
    bad_yaml = write(tree / "bad" / "1.yaml", "kind: Namespace\n  bad: [\n")
    not_object = write(tree / "bad" / "2.yaml", "- just\n- a list\n")
    not_text = tree / "bad" / "3.yaml"
    not_text.write_bytes(b"kind: \xff\xfe\n")
    dangling = tree / "bad" / "4.yaml"
    dangling.symlink_to(tree / "nowhere.yaml")
    found = problems(str(tree / "c.yml"), str(tree / "bad"))
    assert len(found) == 4, found
    assert found[0].startswith(f"error: error parsing {bad_yaml}: line 2 column")
    assert found[1] == f'error: error validating "{not_object}": a document is not an object'
    assert found[2] == f'error: error reading "{not_text}": not UTF-8 text'
    assert found[3] == f'error: error reading "{dangling}": No such file or directory'


def test_no_document_at_all_is_no_objects_passed(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.yaml", "# nothing\n---\n")
    assert problems(str(empty)) == ["error: no objects passed to apply"]
    with pytest.raises(ManifestError, match="no objects passed to create"):
        sources.read_documents([str(empty)], verb="create")


def test_an_empty_file_among_others_is_fine_and_lists_are_unpacked(tmp_path: Path) -> None:
    empty = write(tmp_path / "a.yaml", "")
    listed = write(tmp_path / "b.yaml", "apiVersion: v1\nkind: List\nitems:\n- " + ns("one").replace("\n", "\n  ").rstrip() + "\n")
    assert names(sources.read_documents([str(empty), str(listed)])) == [(str(listed), "one")]
