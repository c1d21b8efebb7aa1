"""The cluster as policy sees it, read from the lab's etcd at one revision.

Used by each host's policy agent (what to render) and by the CLI (what the oracle judges).
The agent keeps a `ViewCache` between syncs: it re-reads only the prefixes its watches
say changed (a policy change reads the policies, not a thousand endpoints) and parses
an endpoint again only when its stored value changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.kube.errors import ManifestError
from testbed.datastore.keys import NETWORK_POLICIES
from testbed.kube.policy import parse_network_policy
from testbed.model.policy import Endpoint, Namespace, NetworkPolicy

LOG = logging.getLogger(__name__)

# Everything a view is made of; an agent watches exactly these.
PREFIXES = (keys.WORKLOAD_ENDPOINTS, keys.K8S_NAMESPACES, NETWORK_POLICIES)


@dataclass(frozen=True)
class ClusterView:
    """Everything this host needs, read from etcd at one revision."""

    revision: int
    endpoints: tuple[Endpoint, ...]
    namespaces: dict[str, Namespace]
    policies: tuple[NetworkPolicy, ...]


def parse_endpoint(value: Mapping[str, Any]) -> Endpoint:
    info = records.endpoint_summary(value)
    labels = tuple((k, v) for k, v in info.labels if not k.startswith("projectcalico.org/"))
    return Endpoint(info.namespace, info.pod, str(info.ip), info.node, labels, info.ports)


def parse_namespace(value: Mapping[str, Any]) -> Namespace:
    meta = value.get("metadata", {})
    return Namespace(meta["name"], tuple(sorted(meta.get("labels", {}).items())))


def parse_policies(values: Mapping[str, Mapping[str, Any]]) -> tuple[NetworkPolicy, ...]:
    policies = []
    for key, value in values.items():
        try:
            policies.append(parse_network_policy(value, default_namespace=value.get("metadata", {}).get("namespace", "")))
        except ManifestError as exc:  # stored ones were validated; never let one stop the host
            LOG.error("skipping %s: %s", key, str(exc).splitlines()[0])
    return tuple(policies)


class ViewCache:
    """A ClusterView kept between reads; `read` lists only the prefixes it is given (and
    any never read yet). The caller answers for the others being unchanged: the agent
    knows from its watches."""

    def __init__(self) -> None:
        self._endpoints: dict[str, tuple[Mapping[str, Any], Endpoint]] = {}  # key -> (stored value, parsed)
        self._endpoint_tuple: tuple[Endpoint, ...] = ()
        self._namespaces: dict[str, Namespace] = {}
        self._policies: tuple[NetworkPolicy, ...] = ()
        self._loaded: set[str] = set()

    def read(self, store: Datastore, prefixes: Iterable[str] = PREFIXES) -> ClusterView:
        """The view at the store's current revision, re-listing ``prefixes`` (a subset of
        PREFIXES) and whatever was never read; the rest comes from the last read."""
        revision = store.revision()  # before the lists: they hold at least this revision
        wanted = set(prefixes) | (set(PREFIXES) - self._loaded)
        for prefix in PREFIXES:
            if prefix in wanted:
                self._load(prefix, store.list(prefix))
        return ClusterView(revision, self._endpoint_tuple, dict(self._namespaces), self._policies)

    def _load(self, prefix: str, values: Mapping[str, Mapping[str, Any]]) -> None:
        if prefix == keys.WORKLOAD_ENDPOINTS:
            parsed: dict[str, tuple[Mapping[str, Any], Endpoint]] = {}
            for key, value in values.items():
                cached = self._endpoints.get(key)
                parsed[key] = cached if cached is not None and cached[0] == value else (value, parse_endpoint(value))
            self._endpoints = parsed
            self._endpoint_tuple = tuple(endpoint for _, endpoint in parsed.values())
        elif prefix == keys.K8S_NAMESPACES:
            found = (parse_namespace(value) for value in values.values())
            self._namespaces = {ns.name: ns for ns in found}
        elif prefix == NETWORK_POLICIES:
            self._policies = parse_policies(values)
        else:
            raise ValueError(f"{prefix!r} is not part of a cluster view ({', '.join(PREFIXES)})")
        self._loaded.add(prefix)


def read_view(store: Datastore) -> ClusterView:
    """Everything, read now (the CLI's one-off view)."""
    return ViewCache().read(store)
