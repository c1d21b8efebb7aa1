"""A checked topology dict -> the frozen ``Topology`` the runtime consumes."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from testbed import addressing
from testbed.model.policy import NamedPort
from testbed.model.topology import HostSpec, LabOptions, NamespaceSpec, PodSpec, Topology
from testbed.topology.errors import Problem, raise_for_problems
from testbed.topology.validate import DEFAULT_NAMESPACE, check_pods, check_topology

DEFAULT_IMAGE: str = PodSpec.image  # the dataclass default


def topology_from_dict(
    data: dict[str, Any], source: str, *, label: str | None = None, default_name: str | None = None
) -> Topology:
    """Check ``data`` (the YAML shape) and build its Topology, or raise TopologyError.

    ``source`` goes into ``Topology.source``; messages start with ``label`` (default: source).
    The name defaults to ``default_name``, else to the stem of ``source``.
    """
    raise_for_problems(label or source, check_topology(data))
    return assemble(data, source, default_name or Path(source).stem)


def assemble(data: dict[str, Any], source: str, default_name: str) -> Topology:
    """Build a Topology from a dict that passed ``check_topology``."""
    options = data.get("options") or {}
    return Topology(
        name=data.get("name") or default_name,
        hosts=tuple(_host(h) for h in data["hosts"]),
        namespaces=_namespaces(data.get("namespaces")),
        pods=tuple(_pod(p) for p in data.get("pods") or ()),
        options=LabOptions(**options),
        source=source,
        manifests=tuple(data.get("manifests") or ()),
    )


def _labels(labels: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((labels or {}).items()))


def _normal_ip(value: str | None) -> str | None:
    return None if value is None else str(addressing.parse_ipv4(value))


def _host(entry: str | dict[str, Any]) -> HostSpec:
    if isinstance(entry, str):
        return HostSpec(entry)
    return HostSpec(entry["name"], _normal_ip(entry.get("ip")))


def _namespaces(
    namespaces: dict[str, Any] | list[dict[str, Any]] | None,
) -> tuple[NamespaceSpec, ...]:
    if isinstance(namespaces, dict):
        return tuple(
            NamespaceSpec(name, _labels((body or {}).get("labels")))
            for name, body in namespaces.items()
        )
    return tuple(NamespaceSpec(e["name"], _labels(e.get("labels"))) for e in namespaces or ())


def _command(command: str | list[str] | None) -> tuple[str, ...]:
    if command is None:
        return ()
    if isinstance(command, str):
        return tuple(shlex.split(command))
    return tuple(command)


def _pod(entry: dict[str, Any]) -> PodSpec:
    return PodSpec(
        name=entry["name"],
        namespace=entry.get("namespace", DEFAULT_NAMESPACE),
        labels=_labels(entry.get("labels")),
        host=entry.get("host"),
        image=entry.get("image", DEFAULT_IMAGE),
        command=_command(entry.get("command")),
        ip=_normal_ip(entry.get("ip")),
        ports=tuple(
            NamedPort(name=p.get("name", ""), protocol=p.get("protocol", "TCP"), port=p["containerPort"])
            for p in entry.get("ports") or ()
        ),
    )


def pod_spec_from_dict(entry: dict[str, Any], label: str) -> PodSpec:
    """One pod in the topology file's pod shape (for pods added to a running lab), checked
    with the same rules; problems are reported as ``<label>: <field>: <message>``."""
    problems: list[Problem] = []
    check_pods([entry], None, problems)
    # The checks name fields as pods[0].<field>; here there is only the one pod.
    raise_for_problems(label, [Problem(p.path[2:], p.message) for p in problems])
    return _pod({k: v for k, v in entry.items() if v is not None})
