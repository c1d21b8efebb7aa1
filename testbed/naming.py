"""Every name the testbed gives to a kernel object, process or file, and the limits on them.

A lab owns everything whose name starts with its prefix: network namespaces are
``<lab>.fabric``, ``<lab>.<host>`` and ``<lab>.<namespace>.<pod>``. Lab names cannot
contain dots, so one lab's prefix never matches another lab's objects; that is how
``testbed down`` finds exactly what a lab made, even after ``testbed up`` was killed.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

# Limits the kernel (or Calico) puts on names.
MAX_INTERFACE = 15  # IFNAMSIZ - 1
MAX_CHAIN = 28  # iptables chain names, as Felix keeps them
MAX_IPSET = 31  # ipset names
MAX_LAB = 32  # keeps netns names and paths readable

LAB_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
# Hosts are DNS labels too; they name netns and BGP peers.
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
# Kubernetes: namespaces are DNS-1123 labels, pods DNS-1123 subdomains.
K8S_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
K8S_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
MAX_K8S_NAMESPACE = 63
MAX_K8S_NAME = 253

# Node names the runtime keeps for itself.
FABRIC = "fabric"
ROUTE_REFLECTOR = "rr"
RESERVED_HOST_NAMES = frozenset({FABRIC, ROUTE_REFLECTOR})

# Interfaces.
WORKLOAD_PREFIX = "cali"  # Felix's default interface prefix
WORKLOAD_MAC = "ee:ee:ee:ee:ee:ee"  # every host-side cali veth
POD_INTERFACE = "eth0"
HOST_INTERFACE = "eth0"  # a host's port on the fabric
FABRIC_BRIDGE = "br0"

# Labels Calico puts on workload endpoints.
LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_ORCHESTRATOR = "projectcalico.org/orchestrator"
LABEL_SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"
ORCHESTRATOR = "k8s"

# Where a lab keeps its files: pids, logs, etcd data, the lab record.
STATE_ROOT = Path("/run/testbed")
ENV_LAB = "TESTBED_LAB"


def is_valid_lab_name(name: str) -> bool:
    return len(name) <= MAX_LAB and LAB_NAME.match(name) is not None


def netns_prefix(lab: str) -> str:
    return f"{lab}."


def fabric_netns(lab: str) -> str:
    return f"{lab}.{FABRIC}"


def host_netns(lab: str, host: str) -> str:
    return f"{lab}.{host}"


def reflector_netns(lab: str) -> str:
    return f"{lab}.{ROUTE_REFLECTOR}"


def pod_netns(lab: str, namespace: str, pod: str) -> str:
    return f"{lab}.{namespace}.{pod}"


def workload_interface(namespace: str, pod: str) -> str:
    """Calico's host-side veth name: cali + 11 hex chars of SHA-1("<namespace>.<pod>")."""
    digest = hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()
    return f"{WORKLOAD_PREFIX}{digest[:11]}"


def fabric_port(host: str) -> str:
    """The bridge port of a host in the fabric netns: ``p-<host>``, hashed if too long."""
    name = f"p-{host}"
    if len(name) <= MAX_INTERFACE:
        return name
    return "p-" + hashlib.sha1(host.encode()).hexdigest()[: MAX_INTERFACE - 2]


def workload_endpoint_name(node: str, namespace: str, pod: str) -> str:
    """Calico's WorkloadEndpoint name: ``<node>-k8s-<pod>-eth0``, dashes in parts doubled."""
    parts = (node, "k8s", pod, POD_INTERFACE)
    return "-".join(p.replace("-", "--") for p in parts)


def ipam_handle(namespace: str, pod: str) -> str:
    """The IPAM handle of a pod's address (Calico: k8s-pod-network.<container id>)."""
    return f"k8s-pod-network.{namespace}.{pod}"


def state_dir(lab: str, root: Path = STATE_ROOT) -> Path:
    return root / lab


def check_length(kind: str, name: str) -> None:
    """Raise ValueError when a name exceeds the kernel's or Calico's limit for its kind."""
    limits = {"interface": MAX_INTERFACE, "chain": MAX_CHAIN, "ipset": MAX_IPSET}
    if len(name) > limits[kind]:
        raise ValueError(f"{kind} name {name!r} is longer than {limits[kind]} characters")
