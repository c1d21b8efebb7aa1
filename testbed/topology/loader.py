"""``load_topology(ref)``: a built-in name or a file path -> a checked Topology.

Built-ins are the files of the repository's ``topologies/`` folder plus the generated
``scale`` topology. A file is YAML (.yaml, .yml), JSON (.json) or Python with Mininet's
Topo API (.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from testbed.model.topology import Topology
from testbed.topology.build import topology_from_dict
from testbed.topology.errors import TopologyError
from testbed.topology.files import read_data
from testbed.topology.manifests import resolve_manifests
from testbed.topology.python_topo import load_python_topology
from testbed.topology.scale import DEFAULT_HOSTS, DEFAULT_PODS_PER_HOST, SCALE, scale_topology
from testbed.topology.schema import TOPOLOGIES_DIR

DATA_SUFFIXES = (".yaml", ".yml", ".json")
SUFFIXES = (*DATA_SUFFIXES, ".py")
_NOT_TOPOLOGIES = (".schema.json",)


def _builtin_files(directory: Path = TOPOLOGIES_DIR) -> dict[str, Path]:
    """Built-in name -> file; on a name clash the first suffix of SUFFIXES wins."""
    files: dict[str, Path] = {}
    if not directory.is_dir():
        return files
    for suffix in SUFFIXES:
        for path in sorted(directory.glob(f"*{suffix}")):
            if (
                path.is_file()
                and not path.name.endswith(_NOT_TOPOLOGIES)
                and not path.name.startswith("_")
            ):
                files.setdefault(path.stem, path)
    return files


def builtin_topologies() -> list[str]:
    """The names ``load_topology`` accepts besides file paths, sorted."""
    return sorted({*_builtin_files(), SCALE})


def _is_path(ref: str) -> bool:
    return ref.endswith(SUFFIXES) or os.sep in ref or "/" in ref


def _repo_label(path: Path) -> str:
    """How messages name a built-in file: relative to the repository."""
    return str(path.relative_to(TOPOLOGIES_DIR.parent))


def load_file(path: Path, label: str, source: str) -> Topology:
    """A topology file of any supported kind; messages start with ``label``."""
    if path.suffix == ".py":
        if not path.is_file():
            raise TopologyError([f"{label}: no such file"])
        return load_python_topology(path, label, source)
    if path.suffix not in DATA_SUFFIXES:
        kinds = ", ".join(SUFFIXES)
        raise TopologyError(
            [f"{label}: unsupported file type {path.suffix!r} (supported: {kinds})"]
        )
    data = read_data(path, label)
    topology = topology_from_dict(data, source, label=label, default_name=path.stem)
    return resolve_manifests(topology, path.parent, label)


def load_topology(
    ref: str, *, hosts: int | None = None, pods_per_host: int | None = None
) -> Topology:
    """A built-in topology by name (``two-hosts``, ``scale``, ...) or a topology file by path.

    ``hosts`` and ``pods_per_host`` size the ``scale`` topology (default 2 and 2) and are
    refused for any other. Raises TopologyError with one line per problem.
    """
    if ref == SCALE:
        return scale_topology(
            DEFAULT_HOSTS if hosts is None else hosts,
            DEFAULT_PODS_PER_HOST if pods_per_host is None else pods_per_host,
        )
    if hosts is not None or pods_per_host is not None:
        raise TopologyError(
            [f"{ref}: --hosts and --pods-per-host apply only to the scale topology"]
        )
    if _is_path(ref):
        return load_file(Path(ref), ref, ref)
    builtin = _builtin_files().get(ref)
    if builtin is None:
        known = ", ".join(builtin_topologies())
        raise TopologyError(
            [f"{ref}: not a built-in topology nor a .yaml/.yml/.json/.py file (built-in: {known})"]
        )
    return load_file(builtin, _repo_label(builtin), f"built-in {ref}")
