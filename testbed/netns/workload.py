"""A workload's plumbing, as Calico's CNI plugin and Felix leave it: the pod netns, its
veth, address, routes and neighbours, the host end's sysctls, route and neighbour.

Used by `testbed up` (every topology pod), the CLI's pods and each host's kubelet (CNI
ADD). ``build_pod`` is idempotent, so a kubelet restarted half-way through a CNI ADD
finishes it: an existing netns, veth, address or route is kept, a missing one added.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Protocol

from testbed import addressing, naming
from testbed.netns import etc_files, namespaces
from testbed.netns.rtnetlink import RtnlLinks


class PodNetwork(Protocol):
    """What plumbing needs to know of a pod (``testbed.runtime.plan.PodPlan`` is one)."""

    @property
    def netns(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def interface(self) -> str: ...  # host-side cali veth
    @property
    def ip(self) -> IPv4Address: ...


class Links(Protocol):
    """A netlink handle in one netns: ``testbed.netns.rtnetlink.RtnlLinks`` (the CNI ADD's,
    no fork) or ``testbed.netns.links.NetnsLinks`` (pyroute2's, `testbed migrate`'s)."""

    netns: str

    def has(self, ifname: str) -> bool: ...
    def delete_link(self, ifname: str) -> None: ...
    def add_veth(self, ifname: str, peer: str, peer_netns: str, mac: str | None = None) -> None: ...
    def set_up(self, ifname: str) -> None: ...
    def mac(self, ifname: str) -> str: ...
    def add_address(self, ifname: str, address: str, prefixlen: int, replace: bool = False) -> None: ...
    def add_route(
        self, dst: str, *, dev: str | None = None, via: str | None = None, scope: str | None = None,
        blackhole: bool = False, proto: int = ..., replace: bool = False,
    ) -> None: ...  # fmt: skip
    def add_neighbour(self, ip: str, mac: str, dev: str) -> None: ...


def workload_sysctls(interface: str) -> dict[str, str]:
    """What Calico's CNI plugin and Felix set on every host-side cali interface."""
    return {
        f"net.ipv4.conf.{interface}.proxy_arp": "1",
        f"net.ipv4.conf.{interface}.forwarding": "1",
        f"net.ipv4.conf.{interface}.route_localnet": "1",
        f"net.ipv4.neigh.{interface}.proxy_delay": "0",
        f"net.ipv6.conf.{interface}.accept_ra": "0",
    }


def build_pod(pod: PodNetwork, host: Links) -> str:
    """A pod netns plumbed as Calico's CNI plugin does, plus Felix's route and neighbour;
    returns the MAC of the pod's eth0.

    ``host`` is an open handle on the pod's host netns, shared by all its pods. What
    exists already is kept (idempotent); a host end whose peer is not in the pod's netns
    (left by a netns removed under it) is replaced.
    """
    if namespaces.exists(pod.netns) and not namespaces.is_netns(pod.netns):
        namespaces.remove(pod.netns)  # the file of a creation that died half-way
    if not namespaces.exists(pod.netns):
        namespaces.create(pod.netns)
    gateway = str(addressing.WORKLOAD_GATEWAY)
    with RtnlLinks(pod.netns) as p:
        if not p.has(naming.POD_INTERFACE):
            host.delete_link(pod.interface)
            host.add_veth(pod.interface, naming.POD_INTERFACE, pod.netns, mac=naming.WORKLOAD_MAC)
        p.set_up("lo")
        p.add_address(naming.POD_INTERFACE, str(pod.ip), 32, replace=True)
        p.set_up(naming.POD_INTERFACE)
        p.add_route(f"{gateway}/32", dev=naming.POD_INTERFACE, scope="link", replace=True)
        p.add_route("0.0.0.0/0", via=gateway, dev=naming.POD_INTERFACE, replace=True)
        # Permanent, so it does not count against the neighbour table every namespace shares
        # (see plan.neighbour_entries); the host side still answers ARP for it (proxy_arp=1).
        p.add_neighbour(gateway, naming.WORKLOAD_MAC, naming.POD_INTERFACE)
        pod_mac = p.mac(naming.POD_INTERFACE)
    plug_workload(host, pod.interface, str(pod.ip), pod_mac, replace=True)
    # The kubelet's resolv.conf (cluster DNS, the namespace's search list), which
    # `ip netns exec` bind-mounts over /etc/resolv.conf for the pod's programs.
    etc_files.write(pod.netns, "resolv.conf", etc_files.resolv_conf(pod.namespace, str(addressing.CLUSTER_DNS)))
    return pod_mac


def plug_workload(host: Links, interface: str, ip: str, mac: str, replace: bool = False) -> None:
    """The host end of a workload's veth as the CNI plugin and Felix leave it: sysctls, link
    up, the /32 route and the permanent neighbour. Also used when a pod migrates
    (``replace``: the host may hold a BGP /32 that pointed at the pod's previous home)."""
    namespaces.write_sysctls(host.netns, workload_sysctls(interface))
    host.set_up(interface)
    host.add_route(f"{ip}/32", dev=interface, scope="link", replace=replace)
    host.add_neighbour(ip, mac, interface)


def remove_pod(netns: str) -> None:
    """The pod's netns (its veth and the host's route go with it) and /etc/netns files;
    nothing missing is an error. The caller stops the processes living in it first."""
    namespaces.remove(netns)
    etc_files.remove(netns)
