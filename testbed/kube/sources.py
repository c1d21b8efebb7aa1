"""Where manifests come from: files, directories and stdin, read as kubectl reads them.

The one reader `testbed kubectl` (-f, -R), the pytest plugin (``lab.apply``) and `up`
(a topology's ``manifests``) share. Every path is read and every document split before
anything else happens; any problem (a missing path, an unreadable file, bad YAML) is one
line naming the file, and no document is returned at all.

kubectl's rules (cli-runtime's FilenameParam): ``-`` is stdin, at most once; a directory
gives its ``.json``, ``.yaml`` and ``.yml`` files in lexical order (with ``-R``, its
subdirectories' too, each where its name sorts); a file named explicitly is read whatever
its extension; a path that does not exist, but is a glob pattern, gives its matches.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import yaml

from testbed.kube.errors import ManifestError

FILE_EXTENSIONS = (".json", ".yaml", ".yml")
STDIN = "STDIN"  # the source name kubectl gives standard input


@dataclass(frozen=True)
class Document:
    """One manifest object and the file (or STDIN) it came from."""

    source: str
    body: dict[str, Any]


def expand_paths(paths: Sequence[str], recursive: bool = False) -> list[str]:
    """The files ``paths`` name, in kubectl's order (``-`` stays ``-``); ManifestError with
    one line per path that does not exist or cannot be listed."""
    files: list[str] = []
    problems: list[str] = []
    stdin_used = False
    for path in paths:
        if path == "-":
            if stdin_used:
                problems.append("error: standard input cannot be used for multiple arguments")
            stdin_used = True
            files.append(path)
            continue
        for match in _matches(path, problems):
            if os.path.isdir(match):
                try:
                    files += _walk(match, recursive)
                except OSError as exc:
                    problems.append(f'error: error reading "{match}": {exc.strerror}')
            else:
                files.append(match)
    if problems:
        raise ManifestError(problems)
    if not files:
        shown = " ".join(paths)
        raise ManifestError([f"error: error reading [{shown}]: recognized file extensions are [{' '.join(FILE_EXTENSIONS)}]"])
    return files


def _matches(path: str, problems: list[str]) -> list[str]:
    """``[path]`` if it exists, else a glob pattern's matches (sorted); [] and a problem if neither."""
    try:
        os.stat(path)
        return [path]
    except FileNotFoundError:
        pass
    except OSError as exc:
        problems.append(f'error: the path "{path}" cannot be accessed: {exc.strerror}')
        return []
    found = sorted(glob.glob(path)) if glob.has_magic(path) else []
    if not found:
        problems.append(f'error: the path "{path}" does not exist')
    return found


def _walk(folder: str, recursive: bool) -> list[str]:
    """A directory's manifest files, entries in lexical order, subdirectories only if ``recursive``."""
    found: list[str] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                found += _walk(entry.path, recursive)
        elif os.path.splitext(entry.name)[1] in FILE_EXTENSIONS:
            found.append(entry.path)
    return found


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Every non-empty YAML (or JSON) document of a manifest, ``List`` items unpacked;
    one-line errors naming the source. An empty manifest is an empty list."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ManifestError([f"error: error parsing {source}:{where}: {getattr(exc, 'problem', exc)}"]) from None
    objects: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            objects.extend(item for item in doc["items"] if isinstance(item, dict))
        elif isinstance(doc, dict):
            objects.append(doc)
        else:
            raise ManifestError([f'error: error validating "{source}": a document is not an object'])
    return objects


def read_text(path: str, stdin: TextIO | None = None) -> str:
    """The text of one file, or of ``stdin`` for ``-``; ManifestError naming the file."""
    if path == "-":
        return (stdin if stdin is not None else sys.stdin).read()
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.read()
    except OSError as exc:
        raise ManifestError([f'error: error reading "{path}": {exc.strerror}']) from None
    except UnicodeDecodeError:
        raise ManifestError([f'error: error reading "{path}": not UTF-8 text']) from None


def read_documents(
    paths: Sequence[str], *, recursive: bool = False, stdin: TextIO | None = None, verb: str = "apply"
) -> list[Document]:
    """Every document of every file ``paths`` name, in file order then document order.

    All files are read and parsed first; every problem found is reported together (one
    line each) and nothing is returned. No document at all is kubectl's
    ``no objects passed to <verb>``.
    """
    documents: list[Document] = []
    problems: list[str] = []
    for path in expand_paths(paths, recursive):
        source = STDIN if path == "-" else path
        try:
            documents += [Document(source, body) for body in load_documents(read_text(path, stdin), source)]
        except ManifestError as exc:
            problems += exc.lines
    if problems:
        raise ManifestError(problems)
    if not documents:
        raise ManifestError([f"error: no objects passed to {verb}"])
    return documents


def text_documents(text: str, source: str = "manifest", verb: str = "apply") -> list[Document]:
    """The documents of manifest text given directly (not a file), named ``source``."""
    documents = [Document(source, body) for body in load_documents(text, source)]
    if not documents:
        raise ManifestError([f"error: no objects passed to {verb}"])
    return documents
