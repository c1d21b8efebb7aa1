"""The cluster as policy sees it, read from the lab's etcd at one revision.

Used by each host's policy agent (what to render) and by the CLI (what the oracle judges).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.kube.errors import ManifestError
from testbed.kube.objects import NETWORK_POLICIES
from testbed.kube.policy import parse_network_policy
from testbed.model.policy import Endpoint, Namespace, NetworkPolicy

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterView:
    """Everything this host needs, read from etcd at one revision."""

    revision: int
    endpoints: tuple[Endpoint, ...]
    namespaces: dict[str, Namespace]
    policies: tuple[NetworkPolicy, ...]


def read_view(store: Datastore) -> ClusterView:
    revision = store.revision()
    endpoints = []
    for value in store.list(keys.WORKLOAD_ENDPOINTS).values():
        info = records.endpoint_summary(value)
        labels = tuple((k, v) for k, v in info.labels if not k.startswith("projectcalico.org/"))
        endpoints.append(Endpoint(info.namespace, info.pod, str(info.ip), info.node, labels, info.ports))
    namespaces = {}
    for value in store.list(keys.K8S_NAMESPACES).values():
        meta = value.get("metadata", {})
        namespaces[meta["name"]] = Namespace(meta["name"], tuple(sorted(meta.get("labels", {}).items())))
    policies = []
    for key, value in store.list(NETWORK_POLICIES).items():
        try:
            policies.append(parse_network_policy(value, default_namespace=value.get("metadata", {}).get("namespace", "")))
        except ManifestError as exc:  # stored ones were validated; never let one stop the host
            LOG.error("skipping %s: %s", key, str(exc).splitlines()[0])
    return ClusterView(revision, tuple(endpoints), namespaces, tuple(policies))
