"""`testbed up`: turn a LabPlan into namespaces, links, routes, a running etcd and its records.

Order: state folder -> fabric netns (bridge, 172.18.203.1) -> etcd starts (in the
background) -> route reflector (if asked) -> supervisor, controller manager and API server -> each
host, then at once its BGP speaker and its policy agent with the kubelet (they start in
the background) -> etcd healthy -> records written, the topology's pods as Pod objects
bound to their hosts, and the add-ons -> wait until BGP converged, every agent enforces
the records and every kubelet reports its pods Ready (it makes them: netns, veth,
sandbox, containers).
Any failure tears the half-built lab down again before the error reaches the caller.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from testbed import addressing, naming
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.datastore.etcd import EtcdDatastore
from testbed.netns import namespaces, processes
from testbed.netns.links import PROTO_BIRD, NetnsLinks
from testbed.runtime import apiserver, control_plane, etcd_server, policy_agents, speakers, state, supervisor
from testbed.runtime.plan import HostPlan, LabPlan
from testbed.runtime.teardown import teardown

# (step, done, total): how far `up` has come, for progress bars and logs.
Progress = Callable[[str, int, int], None]

ETCD_START_TIMEOUT = 20.0
BGP_TIMEOUT_BASE = 20.0  # seconds for BGP to converge, plus a little per host
BGP_TIMEOUT_PER_HOST = 0.5
ENFORCE_TIMEOUT = 20.0  # the agents' first sync at up
PODS_TIMEOUT_BASE = 20.0  # seconds for the kubelets to make the topology's pods Ready, plus
PODS_TIMEOUT_PER_POD = 0.4  # a little per pod (each host's kubelet makes its pods one by one today)
FABRIC_PREFIXLEN = addressing.FABRIC.prefixlen


def _quiet(_step: str, _done: int, _total: int) -> None:
    pass


def host_sysctls() -> dict[str, str]:
    """A host forwards, like every Calico node."""
    return {"net.ipv4.ip_forward": "1"}


def fabric_sysctls() -> dict[str, str]:
    """The fabric only bridges: keep bridged frames out of its iptables (br_netfilter)."""
    keys = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables")
    return {k: "0" for k in keys if namespaces.sysctl_path(k).exists()}


def build_fabric(plan: LabPlan) -> None:
    namespaces.create(plan.fabric_netns)
    with NetnsLinks(plan.fabric_netns) as fab:
        fab.set_up("lo")
        fab.add_bridge(naming.FABRIC_BRIDGE)
        fab.add_address(naming.FABRIC_BRIDGE, str(addressing.FABRIC_GATEWAY), FABRIC_PREFIXLEN)
        fab.set_up(naming.FABRIC_BRIDGE)
    sysctls = fabric_sysctls()
    if sysctls:
        namespaces.write_sysctls(plan.fabric_netns, sysctls)


def build_host(plan: LabPlan, host: HostPlan, fab: NetnsLinks) -> NetnsLinks:
    """A host netns: eth0 on the fabric bridge, default route via the gateway, block blackholes.

    ``fab`` is an open handle on the fabric netns, shared by all hosts; returns an open
    handle on the new host netns for its pods (the caller closes it): opening a handle
    forks a child, so each netns gets one for the whole build.
    """
    namespaces.create(host.netns)
    h = NetnsLinks(host.netns)
    try:
        h.set_up("lo")
        h.add_veth(naming.HOST_INTERFACE, host.fabric_port, plan.fabric_netns)
        h.add_address(naming.HOST_INTERFACE, str(host.ip), FABRIC_PREFIXLEN)
        h.set_up(naming.HOST_INTERFACE)
        # Proxy-ARP for 169.254.1.1 needs the host to have a route out; the gateway is it.
        h.add_route("0.0.0.0/0", via=str(addressing.FABRIC_GATEWAY), dev=naming.HOST_INTERFACE)
        for block in host.blocks:
            h.add_route(str(block), blackhole=True, proto=PROTO_BIRD)
        fab.set_master(host.fabric_port, naming.FABRIC_BRIDGE)
        namespaces.write_sysctls(host.netns, host_sysctls())
    except BaseException:
        h.close()
        raise
    return h


def start_etcd(plan: LabPlan, lab_state: state.LabState) -> subprocess.Popen[bytes]:
    folder = state.folder(plan.lab)
    argv = etcd_server.etcd_command(etcd_server.data_dir(folder), str(addressing.FABRIC_GATEWAY))
    # etcd makes its unix socket relative to its working directory: the state folder.
    proc = processes.spawn(plan.fabric_netns, argv, etcd_server.log_path(folder), cwd=folder)
    state.record_process(lab_state, "etcd", plan.fabric_netns, proc.pid)
    return proc


def runs_bgp(plan: LabPlan) -> bool:
    return plan.options.route_reflector or len(plan.hosts) > 1  # a lone host has no one to talk to


def start_reflector(plan: LabPlan, lab_state: state.LabState) -> None:
    """BIRD as route reflector, when asked: before the hosts, so that it listens when their
    speakers dial."""
    if plan.options.route_reflector:
        speakers.build_reflector(plan, lab_state)


def start_host_daemons(plan: LabPlan, host: HostPlan, lab_state: state.LabState) -> None:
    """The host's BGP speaker (with its glue) and policy agent, right after its netns is
    built: their start-up (imports, ExaBGP's config) is most of `up`'s critical path, so
    it overlaps with building the other hosts and the pods. Each daemon waits for etcd
    and follows its records through a watch."""
    if runs_bgp(plan):
        speakers.start_speaker(plan, host, lab_state)
    policy_agents.start_agent(plan.lab, host.name, lab_state)


def wait_bgp(plan: LabPlan, progress: Progress, store: Datastore) -> None:
    """Until every host has every route and every session is Established."""
    if not runs_bgp(plan):
        return
    progress("bgp", 0, 1)
    speakers.wait_converged(plan, store, BGP_TIMEOUT_BASE + BGP_TIMEOUT_PER_HOST * len(plan.hosts))
    progress("bgp", 1, 1)


def etcd_socket(lab: str) -> Path:
    return etcd_server.socket_path(state.folder(lab))


def build_lab(plan: LabPlan, progress: Progress = _quiet) -> float:
    """Build the whole lab; returns the seconds it took. Tears down on any failure."""
    started = time.monotonic()
    lab_state = state.LabState(lab=plan.lab, topology=plan.topology, source=plan.source, created=time.time())
    state.claim(lab_state)
    try:
        _build(plan, lab_state, progress)
    except BaseException:
        teardown(plan.lab)
        raise
    return time.monotonic() - started


def _build(plan: LabPlan, lab_state: state.LabState, progress: Progress) -> None:
    total_hosts = len(plan.hosts)
    progress("fabric", 0, 1)
    build_fabric(plan)
    etcd = start_etcd(plan, lab_state)
    progress("fabric", 1, 1)
    start_reflector(plan, lab_state)
    supervisor.ensure(plan.lab, lab_state)  # idle until the lab is up; then keeps its agents alive
    control_plane.start_manager(plan.lab, lab_state)  # waits for etcd, then reconciles for the lab's life
    apiserver.start(plan.lab, lab_state)  # 127.0.0.1:6443 (or the next free port); makes the lab's CA itself
    with contextlib.ExitStack() as handles:
        fab = handles.enter_context(NetnsLinks(plan.fabric_netns))
        for i, host in enumerate(plan.hosts, 1):
            handles.enter_context(build_host(plan, host, fab))
            start_host_daemons(plan, host, lab_state)  # its speaker, and its agent with the kubelet
            progress("hosts", i, total_hosts)
    progress("etcd", 0, 1)
    with EtcdDatastore.over_unix_socket(etcd_socket(plan.lab)) as store:
        etcd_server.wait_healthy(
            store, ETCD_START_TIMEOUT, log=etcd_server.log_path(state.folder(plan.lab)), process=etcd
        )
        # The topology's pods are Pod objects bound to their hosts, with the addresses the
        # plan gave them (IPAM written alongside): each host's kubelet makes them.
        store.put_many(records.lab_records(plan, lab_state.created))
        apply_addons(plan.lab, store)  # api.up waits for them before a topology's manifests
        progress("etcd", 1, 1)
        written = store.last_write_revision
        # BGP and the policy agents come up side by side: wait for both, slower one first.
        wait_bgp(plan, progress, store)
        policy_agents.wait_enforced(store, [h.name for h in plan.hosts], written, ENFORCE_TIMEOUT)
        # The add-ons come up beside the pods; `up` waits for them only before a topology's
        # manifests (whose programs may look names up at once: see api.up).
        wait_pods(plan, progress, store)
    apiserver.wait_ready(plan.lab)  # long up by now: it started before the hosts
    lab_state.phase = "up"
    state.save(lab_state)


def apply_addons(lab: str, store: Datastore) -> list[str]:
    """The cluster's add-ons, applied as any manifest is: the cluster DNS (kube-system's
    coredns Deployment and the kube-dns Service). The keys to wait on."""
    from testbed.kube import cluster_dns, objects  # noqa: PLC0415

    changes = objects.store_objects(store, lab, objects.parse_objects(cluster_dns.manifests(), None), create_only=False)
    return [c.key for c in changes if c.key]


def wait_pods(plan: LabPlan, progress: Progress, store: Datastore) -> None:
    """Until every topology pod is Ready, as its kubelet reports it: one listing of the
    pods per look, whatever their number (not one read per pod)."""
    from testbed.kube import waits  # noqa: PLC0415

    pending = {keys.pod(p.namespace, p.name) for p in plan.pods}
    total = len(pending)
    deadline = time.monotonic() + PODS_TIMEOUT_BASE + PODS_TIMEOUT_PER_POD * total
    progress("pods", 0, total)
    while pending:
        listed = store.list(keys.PODS)
        pending = {k for k in pending if not ((v := listed.get(k)) is not None and waits.is_ready(v))}
        progress("pods", total - len(pending), total)
        if not pending:
            return
        if time.monotonic() > deadline:
            first = min(pending).removeprefix(keys.PODS)
            raise TimeoutError(
                f"{len(pending)} of {total} pods not Ready in time (first: {first}; "
                "see logs/felix-<host>.log, which holds each host's kubelet)"
            )
        time.sleep(0.05)
