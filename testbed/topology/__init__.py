"""Topology loading: YAML, JSON or Mininet-style Python files, and built-in topologies.

``load_topology("two-hosts")`` or ``load_topology("my-lab.yaml")`` returns a checked
``testbed.model.topology.Topology``, or raises ``TopologyError`` listing every problem,
one ``<file>: <field path>: <message>`` line each.
"""

from __future__ import annotations

from testbed.topology.build import pod_spec_from_dict, topology_from_dict
from testbed.topology.errors import TopologyError
from testbed.topology.loader import builtin_topologies, load_topology
from testbed.topology.scale import scale_topology
from testbed.topology.schema import SCHEMA_PATH, load_schema

__all__ = [
    "SCHEMA_PATH",
    "TopologyError",
    "builtin_topologies",
    "load_schema",
    "load_topology",
    "pod_spec_from_dict",
    "scale_topology",
    "topology_from_dict",
]
