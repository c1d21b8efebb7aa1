"""kube-proxy in iptables mode, for one host: Services and Endpoints in, nat and filter rules out.

The Felix-like agent of each host calls ``desired_rules`` on every sync with what etcd
holds (stored Services and the Endpoints the controller manager writes for them: as
kube-proxy, it never looks at pods) and hands the two texts to ``KubeProxyTables.apply``,
which writes them only when they changed (or drifted, on a resync). Rendering is pure
(``render``); only ``apply`` runs commands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agents.kubeproxy.apply import KubeProxyReport, KubeProxyTables
from agents.kubeproxy.render import render_filter, render_nat
from testbed.kube.endpoints import endpoints_by_service
from testbed.kube.errors import ManifestError
from testbed.kube.services import Service, service_from_dict

log = logging.getLogger(__name__)


def _service(obj: Service | Mapping[str, Any]) -> Service | None:
    if isinstance(obj, Service):
        return obj
    try:
        return service_from_dict(obj)
    except ManifestError as exc:  # a bad stored object must not stop every other service
        log.warning("skipping a stored Service that does not parse: %s", exc)
        return None


def desired_rules(
    services: Iterable[Service | Mapping[str, Any]],
    endpoints: Iterable[Mapping[str, Any]],
    node_ips: Sequence[str] = (),
) -> tuple[str, str]:
    """(nat text, filter text) for ``services`` (``Service`` or stored v1 objects) and
    ``endpoints`` (stored v1 Endpoints, of every namespace: only their ready addresses
    count). ``node_ips``: the addresses NodePorts answer on; empty: any local address."""
    parsed = [s for s in map(_service, services) if s is not None]
    by_service = endpoints_by_service(parsed, endpoints)
    return render_nat(parsed, by_service, node_ips), render_filter(parsed, by_service)


__all__ = ["KubeProxyReport", "KubeProxyTables", "desired_rules"]
