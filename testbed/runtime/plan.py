"""Topology -> LabPlan: every address, block, name and placement of a lab, computed before
anything is created. Pure: no kernel, no datastore.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from testbed import addressing, naming
from testbed.model.policy import NamedPort
from testbed.model.topology import LabOptions, PodSpec, Topology

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class HostPlan:
    name: str
    ip: IPv4Address
    netns: str
    fabric_port: str  # the bridge port for this host in the fabric netns
    blocks: tuple[IPv4Network, ...]  # blocks affine to this host


@dataclass(frozen=True)
class PodPlan:
    name: str
    namespace: str
    host: str
    ip: IPv4Address
    block: IPv4Network
    borrowed: bool  # address from a block affine to another host
    netns: str
    interface: str  # host-side cali veth
    labels: tuple[tuple[str, str], ...]
    image: str
    command: tuple[str, ...]
    ports: tuple[NamedPort, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class NamespacePlan:
    name: str
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LabPlan:
    lab: str
    topology: str  # the topology's name
    source: str  # where the topology came from
    fabric_netns: str
    hosts: tuple[HostPlan, ...]
    namespaces: tuple[NamespacePlan, ...]
    pods: tuple[PodPlan, ...]
    options: LabOptions
    affinity: tuple[tuple[IPv4Network, str], ...]  # every claimed block -> host

    def host(self, name: str) -> HostPlan:
        return next(h for h in self.hosts if h.name == name)


def place_pods(topology: Topology) -> list[tuple[PodSpec, str]]:
    """Pods with a host keep it; the others go round-robin to the host with fewest pods."""
    hosts = topology.host_names()
    counts = {h: 0 for h in hosts}
    for pod in topology.pods:
        if pod.host is not None:
            counts[pod.host] += 1
    placed: list[tuple[PodSpec, str]] = []
    for pod in topology.pods:
        host = pod.host
        if host is None:
            host = min(hosts, key=lambda h: (counts[h], hosts.index(h)))
            counts[host] += 1
        placed.append((pod, host))
    return placed


def plan_lab(topology: Topology, lab: str) -> LabPlan:
    """Everything a lab will be, from a validated topology. Raises AddressError."""
    host_ips = addressing.assign_host_ips([(h.name, h.ip) for h in topology.hosts])
    placed = place_pods(topology)
    ipam = addressing.BlockAllocator()
    allocations: dict[str, addressing.Allocation] = {}
    # Pinned addresses first: their blocks go to the pod's host when nobody holds them yet.
    for pod, host in placed:
        if pod.ip is not None:
            ip = addressing.parse_ipv4(pod.ip)
            allocations[pod.key] = ipam.assign_pinned(host, ip, owner=f"pod {pod.key}")
    # Every host owns a block from the start (its blackhole route exists before any pod).
    for host in topology.host_names():
        ipam.ensure_block(host)
    for pod, host in placed:
        if pod.ip is None:
            allocations[pod.key] = ipam.assign(host)

    namespaces = {ns.name: NamespacePlan(ns.name, ns.labels) for ns in topology.namespaces}
    for pod in topology.pods:
        namespaces.setdefault(pod.namespace, NamespacePlan(pod.namespace, ()))
    namespaces.setdefault(DEFAULT_NAMESPACE, NamespacePlan(DEFAULT_NAMESPACE, ()))  # every cluster has it: kubectl's default

    hosts = tuple(
        HostPlan(
            name=name,
            ip=host_ips[name],
            netns=naming.host_netns(lab, name),
            fabric_port=naming.fabric_port(name),
            blocks=tuple(ipam.blocks_of(name)),
        )
        for name in topology.host_names()
    )
    pods = tuple(
        PodPlan(
            name=pod.name,
            namespace=pod.namespace,
            host=host,
            ip=allocations[pod.key].ip,
            block=allocations[pod.key].block,
            borrowed=allocations[pod.key].borrowed,
            netns=naming.pod_netns(lab, pod.namespace, pod.name),
            interface=naming.workload_interface(pod.namespace, pod.name),
            labels=pod.labels,
            image=pod.image,
            command=pod.command,
            ports=pod.ports,
        )
        for pod, host in placed
    )
    return LabPlan(
        lab=lab,
        topology=topology.name,
        source=topology.source,
        fabric_netns=naming.fabric_netns(lab),
        hosts=hosts,
        namespaces=tuple(namespaces.values()),
        pods=pods,
        options=topology.options,
        affinity=tuple(sorted(ipam.affinity.items())),
    )


def neighbour_entries(plan: LabPlan) -> int:
    """About how many ARP entries the lab needs in the kernel's neighbour table.

    That table is one for the whole machine, every namespace included, and the kernel
    refuses new entries past net.ipv4.neigh.default.gc_thresh3 (1024 by default): then no
    namespace, the root one included, can reach a new neighbour. Counted: each host's BGP
    peers and its gateway, the reflector's clients, the fabric's view of the hosts (etcd).
    Not counted, because they are permanent entries, which the kernel exempts from that
    limit: each pod's entry on its host and each pod's entry for its gateway 169.254.1.1.
    """
    hosts = len(plan.hosts)
    peers = 1 if plan.options.route_reflector else hosts - 1
    reflector = hosts if plan.options.route_reflector else 0
    return hosts * (peers + 1) + reflector + hosts
