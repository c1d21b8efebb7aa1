"""Python topology files written with Mininet's ``Topo`` API.

The file defines a ``Topo`` subclass, or ``topos = {"name": factory}`` as Mininet's
``--custom`` files do. We build it with no arguments and read only its description:

- each host (``topo.hosts()``, in Mininet's order) becomes a host; its ``ip`` parameter
  (``"172.18.203.20/24"`` or bare) pins its fabric address, and its ``pods`` parameter
  (a list of pods in the YAML shape) puts pods on it;
- the attributes ``name``, ``options``, ``namespaces`` and ``pods`` (automatic placement),
  if present, are read as in YAML;
- switches and links are ignored: the fabric is one L2 segment.

The result goes through the same checks as YAML. Nothing of Mininet runs but the Topo
class: no network, no cleanup.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from testbed import addressing
from testbed.model.topology import Topology
from testbed.topology.build import assemble
from testbed.topology.errors import FieldPath, Problem, TopologyError, one_line, raise_for_problems
from testbed.topology.schema import kind_of
from testbed.topology.validate import check_topology

HOST_PARAMS = ("ip", "pods")
_module_numbers = itertools.count()
TOPO_ATTRIBUTES = ("name", "options", "namespaces", "pods")


def _fail(label: str, message: str) -> TopologyError:
    return TopologyError([f"{label}: {one_line(message)}"])


def _where(exc: BaseException, path: Path) -> str:
    """``line N: `` of the deepest frame of the file in the traceback, if any."""
    if isinstance(exc, SyntaxError) and exc.lineno is not None and exc.filename == str(path):
        return f"line {exc.lineno}: "
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f"line {frames[-1].lineno}: " if frames else ""


def _describe(exc: BaseException, path: Path) -> str:
    return f"{_where(exc, path)}{type(exc).__name__}: {exc}"


def _import_file(path: Path, label: str) -> ModuleType:
    module_name = f"_testbed_topology_{next(_module_numbers)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise _fail(label, "cannot load as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up there
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise _fail(label, "no such file") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - user code: one line
        raise _fail(label, f"cannot import: {_describe(exc, path)}") from None
    finally:
        sys.modules.pop(module_name, None)
    return module


def _topo_class() -> type:
    from mininet.topo import Topo  # imported late: only Python topologies need Mininet

    topo_class: type = Topo
    return topo_class


def _factory(module: ModuleType, label: str) -> Callable[[], Any]:
    """The Topo factory of a module: ``topos``' first entry, else its one Topo subclass."""
    topo_class = _topo_class()
    topos = getattr(module, "topos", None)
    if topos is not None:
        if not isinstance(topos, dict) or not topos:
            raise _fail(label, "'topos' must be a non-empty dict of name -> Topo class or function")
        factory = next(iter(topos.values()))
        if not callable(factory):
            raise _fail(label, f"topos[{next(iter(topos))!r}] is not a class or function")
        return factory  # type: ignore[no-any-return]
    defined = [
        c
        for c in vars(module).values()
        if inspect.isclass(c)
        and issubclass(c, topo_class)
        and c is not topo_class
        and c.__module__ == module.__name__
    ]
    leaves = [c for c in defined if not any(o is not c and issubclass(o, c) for o in defined)]
    if not leaves:
        raise _fail(label, "defines no subclass of mininet.topo.Topo (and no 'topos' dict)")
    if len(leaves) > 1:
        names = ", ".join(c.__name__ for c in leaves)
        raise _fail(
            label,
            f"defines several Topo classes ({names}); say which with topos = {{'name': Class}}",
        )
    return leaves[0]


def _host_ip(value: object) -> tuple[object, str | None]:
    """Mininet's ``ip`` parameter ('a.b.c.d/len' or bare) -> (the address, a problem)."""
    if not isinstance(value, str) or "/" not in value:
        return value, None
    address, _, length = value.partition("/")
    if length != str(addressing.FABRIC.prefixlen):
        return value, f"prefix /{length} does not match the fabric {addressing.FABRIC}"
    return address, None


def topo_to_dict(topo: Any) -> tuple[dict[str, Any], list[Problem], dict[FieldPath, FieldPath]]:
    """A built Topo -> (the YAML-shaped dict, problems found on the way, pod path renames).

    Pods declared on a host are appended to ``pods``; the renames map each one's place in
    that list (``("pods", 3)``) to where the file declared it (``("hosts", 0, "pods", 1)``).
    """
    data: dict[str, Any] = {}
    problems: list[Problem] = []
    for attribute in TOPO_ATTRIBUTES:
        value = getattr(topo, attribute, None)
        if value is not None:
            data[attribute] = value
    pods: list[Any] = []
    if "pods" in data:
        if isinstance(data["pods"], (list, tuple)):
            pods = list(data["pods"])
        else:
            problems.append(
                Problem(("pods",), f"expected a list of pods, got {kind_of(data['pods'])}")
            )
    renames: dict[FieldPath, FieldPath] = {}
    hosts: list[dict[str, Any]] = []
    for i, name in enumerate(topo.hosts()):
        params = dict(topo.nodeInfo(name) or {})
        host: dict[str, Any] = {"name": name}
        for key in params:
            if key not in HOST_PARAMS:
                allowed = ", ".join(HOST_PARAMS)
                problems.append(
                    Problem(("hosts", i), f"unknown host parameter {key!r} (allowed: {allowed})")
                )
        if "ip" in params:
            ip, problem = _host_ip(params["ip"])
            if problem:
                problems.append(Problem(("hosts", i, "ip"), problem))
            else:
                host["ip"] = ip
        host_pods = params.get("pods")
        if host_pods is not None and not isinstance(host_pods, (list, tuple)):
            problems.append(Problem(("hosts", i, "pods"), "expected a list of pods"))
            host_pods = None
        for j, pod in enumerate(host_pods or ()):
            renames[("pods", len(pods))] = ("hosts", i, "pods", j)
            if isinstance(pod, dict):
                pod = dict(pod)
                pod.setdefault("host", name)
            pods.append(pod)
        hosts.append(host)
    data["hosts"] = hosts
    data.pop("pods", None)
    if pods:
        data["pods"] = pods
    return data, problems, renames


def _rename(problem: Problem, renames: dict[FieldPath, FieldPath]) -> Problem:
    head = problem.path[:2]
    if head in renames:
        return Problem(renames[head] + problem.path[2:], problem.message)
    return problem


def load_python_topology(path: Path, label: str, source: str) -> Topology:
    """Build the Topo that a Python file defines and turn it into a checked Topology."""
    module = _import_file(path, label)
    try:
        factory = _factory(module, label)
    except ImportError as exc:
        raise _fail(label, f"needs Mininet's Topo API: {exc} (pip install mininet)") from None
    try:
        topo = factory()
        if not callable(getattr(topo, "hosts", None)) or not callable(
            getattr(topo, "nodeInfo", None)
        ):
            raise _fail(label, f"the topology factory returned {kind_of(topo)}, not a Topo")
        data, problems, renames = topo_to_dict(topo)
    except TopologyError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - user code: one line
        raise _fail(label, f"building the topology failed: {_describe(exc, path)}") from None
    problems += check_topology(data)
    raise_for_problems(label, [_rename(p, renames) for p in problems])
    return assemble(data, source, path.stem)
