"""The built-in ``scale`` topology, generated: N hosts with M pods each.

Hosts are ``host1..hostN``; host ``hostK`` runs pods ``pod-hostK-1..pod-hostK-M`` in the
namespace ``scale``, all labelled ``app: scale``. Built directly (not through the schema):
every name here is valid by construction, and 200 x 1000 pods should load in a blink.
"""

from __future__ import annotations

import math

from testbed import addressing
from testbed.model.topology import HostSpec, NamespaceSpec, PodSpec, Topology
from testbed.topology.errors import TopologyError

SCALE = "scale"
SCALE_SOURCE = f"built-in {SCALE}"
SCALE_NAMESPACE = "scale"
SCALE_LABELS = (("app", "scale"),)
DEFAULT_HOSTS = 2
DEFAULT_PODS_PER_HOST = 2
HOSTS_RANGE = range(1, 201)
PODS_PER_HOST_RANGE = range(0, 1001)


def _out_of_range(flag: str, value: object, allowed: range) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{SCALE_SOURCE}: {flag}: expected an integer, got {value!r}"
    if value not in allowed:
        bounds = f"{allowed.start} to {allowed.stop - 1}"
        return f"{SCALE_SOURCE}: {flag}: {value} is out of range ({bounds})"
    return None


def scale_problems(hosts: int, pods_per_host: int) -> list[str]:
    """Why (hosts, pods_per_host) cannot make a scale topology, one line each."""
    problems = [
        p
        for p in (
            _out_of_range("--hosts", hosts, HOSTS_RANGE),
            _out_of_range("--pods-per-host", pods_per_host, PODS_PER_HOST_RANGE),
        )
        if p is not None
    ]
    if problems:
        return problems
    block_size = 2 ** (32 - addressing.BLOCK_PREFIX)
    pool_blocks = 2 ** (addressing.BLOCK_PREFIX - addressing.POOL.prefixlen)
    needed = hosts * max(1, math.ceil(pods_per_host / block_size))
    if needed > pool_blocks:
        return [
            f"{SCALE_SOURCE}: --pods-per-host: {hosts} hosts with {pods_per_host} pods each need "
            f"{needed} /{addressing.BLOCK_PREFIX} blocks; "
            f"the pool {addressing.POOL} has {pool_blocks}"
        ]
    return []


def scale_topology(
    hosts: int = DEFAULT_HOSTS, pods_per_host: int = DEFAULT_PODS_PER_HOST
) -> Topology:
    """``hosts`` hosts with ``pods_per_host`` pods each; TopologyError when out of bounds."""
    problems = scale_problems(hosts, pods_per_host)
    if problems:
        raise TopologyError(problems)
    host_names = [f"host{k}" for k in range(1, hosts + 1)]
    pods = tuple(
        PodSpec(name=f"pod-{host}-{i}", namespace=SCALE_NAMESPACE, labels=SCALE_LABELS, host=host)
        for host in host_names
        for i in range(1, pods_per_host + 1)
    )
    return Topology(
        name=SCALE,
        hosts=tuple(HostSpec(name) for name in host_names),
        namespaces=(NamespaceSpec(SCALE_NAMESPACE),),
        pods=pods,
        source=SCALE_SOURCE,
    )
