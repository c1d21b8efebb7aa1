"""The cluster DNS: a `coredns` Deployment in kube-system behind the Service kube-dns, 10.96.0.10.

As in a cluster, it is an ordinary workload: its pod gets an address from the pool, its
Service gets kube-proxy rules on every host, and policy applies to it. It is created the
first time a lab gets a Service (labs without Services start no DNS process), and
``ensure`` returns once the server listens, so the next `wget nginx` resolves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from testbed import addressing
from testbed.datastore import keys
from testbed.datastore.base import Datastore

NAMESPACE = "kube-system"
SERVICE = "kube-dns"
DEPLOYMENT = "coredns"
IMAGE = "coredns"
LABELS = {"k8s-app": "kube-dns"}
READY_TIMEOUT = 10.0


def manifests() -> list[dict[str, Any]]:
    """Namespace kube-system, Deployment coredns (1 replica), Service kube-dns. Pure."""
    ports = [
        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
    ]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE, "labels": LABELS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {"containers": [{
                        "name": "coredns", "image": IMAGE, "ports": ports,
                        # Ready once it answers on TCP 53 (it binds UDP 53 first): until then
                        # it is out of kube-dns's endpoints, and `up` waits for it.
                        "readinessProbe": {"tcpSocket": {"port": 53}, "periodSeconds": 1},
                    }]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": LABELS},
            "spec": {
                "clusterIP": str(addressing.CLUSTER_DNS),
                "selector": LABELS,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"},
                ],
            },
        },
    ]


def present(store: Datastore) -> bool:
    return store.get(keys.service(NAMESPACE, SERVICE)) is not None


def ensure(lab: str, store: Datastore) -> bool:
    """Create the cluster DNS if the lab has none; True when it was created now."""
    from testbed.kube import objects  # noqa: PLC0415 - objects imports this module's callers

    if present(store):
        return False
    existing = store.get(keys.k8s_namespace(NAMESPACE)) is not None
    docs = manifests()[1:] if existing else manifests()
    objects.store_objects(store, lab, objects.parse_objects(docs, NAMESPACE), create_only=False)
    wait_listening(lab, store)
    return True


def listens_on(pid: int, port: int, proc: Path = Path("/proc")) -> bool:
    """Whether the netns of ``pid`` has a UDP socket bound to ``port`` (read from /proc)."""
    try:
        lines = (proc / str(pid) / "net" / "udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in lines if line.strip())


def wait_listening(lab: str, store: Datastore, timeout: float = READY_TIMEOUT) -> None:
    """Until the DNS pod's server has bound port 53 (no packet is sent to find out)."""
    from testbed import naming  # noqa: PLC0415
    from testbed.netns import namespaces  # noqa: PLC0415

    netns = [naming.pod_netns(lab, NAMESPACE, keys.name_of(k)) for k in store.list(keys.pods_in(NAMESPACE))
             if keys.name_of(k).startswith(f"{DEPLOYMENT}-")]  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for found in namespaces.pids_by_netns(netns).values() for pid in found]
        if any(listens_on(pid, 53) for pid in pids):
            return
        time.sleep(0.05)
    raise TimeoutError(f"the cluster DNS of lab {lab!r} did not start listening within {timeout:.0f} s (see its log: testbed kubectl logs -n {NAMESPACE} ...)")
