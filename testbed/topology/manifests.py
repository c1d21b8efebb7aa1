"""A topology's ``manifests``: paths relative to the topology file, resolved and checked.

Done at load time, before anything is created, so that a wrong path stops `up` with one
``<file>: manifests[i]: ...`` line instead of failing half-way through a built lab.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from testbed.model.topology import Topology
from testbed.topology.errors import Problem, raise_for_problems, show


def manifest_problems(entries: tuple[str, ...], base: Path) -> tuple[list[Path], list[Problem]]:
    """Each entry joined to ``base`` (absolute entries stay as they are), and what is wrong."""
    paths: list[Path] = []
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        path = (base / entry).resolve()
        paths.append(path)
        if not path.exists():
            problems.append(Problem(("manifests", i), f"{show(entry)}: no such file ({path})"))
        elif not path.is_file():
            problems.append(Problem(("manifests", i), f"{show(entry)}: not a file ({path})"))
        else:
            try:
                path.read_bytes()
            except OSError as exc:
                problems.append(Problem(("manifests", i), f"{show(entry)}: cannot read: {exc.strerror}"))
    return paths, problems


def resolve_manifests(topology: Topology, base: Path, label: str) -> Topology:
    """``topology`` with absolute manifest paths; TopologyError naming the file and field."""
    if not topology.manifests:
        return topology
    paths, problems = manifest_problems(topology.manifests, base)
    raise_for_problems(label, problems)
    return replace(topology, manifests=tuple(str(p) for p in paths))
