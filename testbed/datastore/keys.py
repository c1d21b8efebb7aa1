"""The key layout of a lab's etcd, in one place: Calico's etcd v3 layout, Kubernetes'
registry layout and the testbed's own lab record.

Every function here is pure. Prefixes for listing end with ``/`` so that a namespace
``a`` never matches the keys of a namespace ``ab``.
"""

from __future__ import annotations

from ipaddress import IPv4Network, ip_network

from testbed import naming

# Calico resources (projectcalico.org/v3 objects, one key each).
CALICO_RESOURCES = "/calico/resources/v3/projectcalico.org/"
NODES = CALICO_RESOURCES + "nodes/"
WORKLOAD_ENDPOINTS = CALICO_RESOURCES + "workloadendpoints/"
IP_POOLS = CALICO_RESOURCES + "ippools/"
PROFILES = CALICO_RESOURCES + "profiles/"

# Calico IPAM (libcalico-go's model, not v3 resources).
IPAM = "/calico/ipam/v2/"
BLOCKS = IPAM + "assignment/ipv4/block/"
AFFINITIES = IPAM + "host/"  # <node>/ipv4/block/<block>
HANDLES = IPAM + "handle/"

# Kubernetes (the API server's etcd registry layout).
REGISTRY = "/registry/"
K8S_NAMESPACES = REGISTRY + "namespaces/"
PODS = REGISTRY + "pods/"
SERVICES = REGISTRY + "services/specs/"  # <ns>/<name>: Kubernetes Service
DEPLOYMENTS = REGISTRY + "deployments/"  # <ns>/<name>
REPLICASETS = REGISTRY + "replicasets/"  # <ns>/<name>
CONTROLLERS = REGISTRY + "controllers/"  # <ns>/<name>: ReplicationController
K8S_NODES = REGISTRY + "minions/"  # <host>: Kubernetes Node (v1), written by the kubelet
LEASES = REGISTRY + "leases/"  # kube-node-lease/<host>: the kubelet's heartbeat
OTHER_OBJECTS = REGISTRY + "other/"  # <kind plural>.<group>/<ns or _cluster>/<name>: stored only

# The testbed's own record of the lab (name, topology, source, options, created).
TESTBED = "/testbed/"
LAB = TESTBED + "lab"
BGP_STATUS = TESTBED + "bgp/"  # <host>: its speaker's sessions, as `calicoctl node status` shows
FELIX_STATUS = TESTBED + "felix/"  # <host>: the etcd revision its policy agent enforces
# Written last by a command that waits for enforcement: every policy agent watches it, so a
# command whose own last write was to a key no agent watches (an IPAM handle, a profile,
# a ClusterRole) still gets a sync that reports a revision at or past its writes.
BARRIER = TESTBED + "barrier"

# Names Calico gives the profiles it derives from Kubernetes objects.
NAMESPACE_PROFILE_PREFIX = "kns."
SERVICE_ACCOUNT_PROFILE_PREFIX = "ksa."
DEFAULT_SERVICE_ACCOUNT = "default"


class KeyFormatError(ValueError):
    """A key that does not have the shape this module gives it."""


def namespace_profile_name(namespace: str) -> str:
    """``kns.<namespace>``: the profile Calico makes for a Kubernetes namespace."""
    return f"{NAMESPACE_PROFILE_PREFIX}{namespace}"


def service_account_profile_name(namespace: str, account: str = DEFAULT_SERVICE_ACCOUNT) -> str:
    """``ksa.<namespace>.<account>``: the profile Calico makes for a service account."""
    return f"{SERVICE_ACCOUNT_PROFILE_PREFIX}{namespace}.{account}"


def block_name(block: IPv4Network) -> str:
    """A block as it appears in IPAM keys: ``10.65.0.0-26``."""
    return f"{block.network_address}-{block.prefixlen}"


def parse_block_name(name: str) -> IPv4Network:
    """``10.65.0.0-26`` -> IPv4Network('10.65.0.0/26'); KeyFormatError if it is not one."""
    address, sep, prefix = name.rpartition("-")
    try:
        if not sep:
            raise ValueError(name)
        network = ip_network(f"{address}/{prefix}")
    except ValueError as exc:
        raise KeyFormatError(f"{name!r} is not an IPAM block name (like 10.65.0.0-26)") from exc
    if not isinstance(network, IPv4Network):
        raise KeyFormatError(f"{name!r} is not an IPv4 block")
    return network


# --- Calico resources -------------------------------------------------------------


def node(name: str) -> str:
    return NODES + name


def workload_endpoint(namespace: str, endpoint_name: str) -> str:
    return f"{WORKLOAD_ENDPOINTS}{namespace}/{endpoint_name}"


def workload_endpoint_of(node_name: str, namespace: str, pod: str) -> str:
    """The WorkloadEndpoint key of a pod on a node (name from naming.workload_endpoint_name)."""
    return workload_endpoint(namespace, naming.workload_endpoint_name(node_name, namespace, pod))


def workload_endpoints_in(namespace: str) -> str:
    """Prefix of every WorkloadEndpoint of one namespace."""
    return f"{WORKLOAD_ENDPOINTS}{namespace}/"


def ip_pool(name: str) -> str:
    return IP_POOLS + name


def profile(name: str) -> str:
    return PROFILES + name


def namespace_profile(namespace: str) -> str:
    return profile(namespace_profile_name(namespace))


def service_account_profile(namespace: str, account: str = DEFAULT_SERVICE_ACCOUNT) -> str:
    return profile(service_account_profile_name(namespace, account))


# --- Calico IPAM --------------------------------------------------------------------


def block(cidr: IPv4Network) -> str:
    return BLOCKS + block_name(cidr)


def block_affinity(node_name: str, cidr: IPv4Network) -> str:
    return f"{AFFINITIES}{node_name}/ipv4/block/{block_name(cidr)}"


def affinities_of(node_name: str) -> str:
    """Prefix of every block affinity of one node."""
    return f"{AFFINITIES}{node_name}/ipv4/block/"


def handle(handle_id: str) -> str:
    return HANDLES + handle_id


def pod_handle(namespace: str, pod: str) -> str:
    return handle(naming.ipam_handle(namespace, pod))


def block_of_key(key: str) -> IPv4Network:
    """The block named by a block key or a block affinity key."""
    if key.startswith(BLOCKS) or (key.startswith(AFFINITIES) and "/ipv4/block/" in key):
        return parse_block_name(key.rsplit("/", 1)[1])
    raise KeyFormatError(f"{key!r} is not an IPAM block or block affinity key")


def parse_block_affinity(key: str) -> tuple[str, IPv4Network]:
    """``/calico/ipam/v2/host/<node>/ipv4/block/<block>`` -> (node, block)."""
    rest = key[len(AFFINITIES) :] if key.startswith(AFFINITIES) else ""
    node_name, sep, tail = rest.partition("/ipv4/block/")
    if not sep or not node_name or "/" in node_name or "/" in tail:
        raise KeyFormatError(f"{key!r} is not a block affinity key")
    return node_name, parse_block_name(tail)


# --- the testbed's own ------------------------------------------------------------------


def bgp_status(host: str) -> str:
    """Where a host's BGP glue writes the state of its sessions."""
    return BGP_STATUS + host


# --- Kubernetes ---------------------------------------------------------------------


def felix_status(host: str) -> str:
    return FELIX_STATUS + host


def k8s_namespace(name: str) -> str:
    return K8S_NAMESPACES + name


def pod(namespace: str, name: str) -> str:
    return f"{PODS}{namespace}/{name}"


def pods_in(namespace: str) -> str:
    """Prefix of every Pod of one namespace."""
    return f"{PODS}{namespace}/"


def service(namespace: str, name: str) -> str:
    return f"{SERVICES}{namespace}/{name}"


def services_in(namespace: str) -> str:
    return f"{SERVICES}{namespace}/"


def k8s_node(host: str) -> str:
    """The Kubernetes Node of a host (``/registry/minions/<host>``, not Calico's node)."""
    return K8S_NODES + host


def node_lease(host: str) -> str:
    """The host's node Lease (``/registry/leases/kube-node-lease/<host>``)."""
    return f"{LEASES}kube-node-lease/{host}"


def name_of(key: str) -> str:
    """The last path segment of a key (the object's name)."""
    return key.rsplit("/", 1)[-1]


def prefix_end(prefix: str) -> str:
    """The first key after every key that starts with ``prefix`` (etcd's range_end).

    Keys here are ASCII, so bumping the last character is enough; ``""`` means all keys
    and is answered by etcd's ``"\\0"`` range end.
    """
    if not prefix:
        return "\0"
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
