"""The cluster DNS: a `coredns` Deployment in kube-system behind the Service kube-dns, 10.96.0.10.

As in a cluster, it is an ordinary workload: its pod gets an address from the pool, its
Service gets kube-proxy rules on every host, and policy applies to it. It is an add-on that
`up` applies to every lab (``testbed.runtime.build.apply_addons``); its readiness probe
(TCP 53) keeps it out of kube-dns's endpoints until it answers.
"""

from __future__ import annotations

from typing import Any

from testbed import addressing

NAMESPACE = "kube-system"
SERVICE = "kube-dns"
DEPLOYMENT = "coredns"
IMAGE = "coredns"
LABELS = {"k8s-app": "kube-dns"}
# The Service's, as a cluster's kube-dns carries them: `kubectl cluster-info` lists the
# kube-system Services labelled cluster-service, named by kubernetes.io/name.
SERVICE_LABELS = {**LABELS, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
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
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": SERVICE_LABELS},
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
