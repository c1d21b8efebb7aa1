"""`testbed up`: turn a LabPlan into namespaces, links, routes, a running etcd and its records.

Order: state folder -> fabric netns (bridge, 172.18.203.1) -> etcd starts (in the
background) -> route reflector (if asked) -> each host, then at once its BGP speaker and
policy agent (they start in the background) -> pods, each with its sandbox made in the
background -> etcd healthy -> records written -> wait until BGP converged and every agent
enforces the records -> pod programs, each as a container in its pod's sandbox.
Any failure tears the half-built lab down again before the error reaches the caller.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from testbed import addressing, images, naming
from testbed.datastore import records
from testbed.datastore.base import Datastore
from testbed.datastore.etcd import EtcdDatastore
from testbed.netns import etc_files, namespaces, processes, sandbox
from testbed.netns.links import PROTO_BIRD, NetnsLinks
from testbed.runtime import etcd_server, policy_agents, speakers, state, supervisor
from testbed.runtime.plan import HostPlan, LabPlan, PodPlan
from testbed.runtime.teardown import teardown

# (step, done, total): how far `up` has come, for progress bars and logs.
Progress = Callable[[str, int, int], None]

ETCD_START_TIMEOUT = 20.0
BGP_TIMEOUT_BASE = 20.0  # seconds for BGP to converge, plus a little per host
BGP_TIMEOUT_PER_HOST = 0.5
ENFORCE_TIMEOUT = 20.0  # the agents' first sync at up
SANDBOXES_IN_FLIGHT = 4  # pods' sandboxes being made at once while `up` builds the next pods
FABRIC_PREFIXLEN = addressing.FABRIC.prefixlen


def _quiet(_step: str, _done: int, _total: int) -> None:
    pass


def host_sysctls() -> dict[str, str]:
    """A host forwards, like every Calico node."""
    return {"net.ipv4.ip_forward": "1"}


def workload_sysctls(interface: str) -> dict[str, str]:
    """What Calico's CNI plugin and Felix set on every host-side cali interface."""
    return {
        f"net.ipv4.conf.{interface}.proxy_arp": "1",
        f"net.ipv4.conf.{interface}.forwarding": "1",
        f"net.ipv4.conf.{interface}.route_localnet": "1",
        f"net.ipv4.neigh.{interface}.proxy_delay": "0",
        f"net.ipv6.conf.{interface}.accept_ra": "0",
    }


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


def build_pod(pod: PodPlan, host: NetnsLinks) -> None:
    """A pod netns plumbed as Calico's CNI plugin does, plus Felix's route and neighbour.

    ``host`` is an open handle on the pod's host netns, shared by all its pods.
    """
    namespaces.create(pod.netns)
    host.add_veth(pod.interface, naming.POD_INTERFACE, pod.netns, mac=naming.WORKLOAD_MAC)
    with NetnsLinks(pod.netns) as p:
        p.set_up("lo")
        p.add_address(naming.POD_INTERFACE, str(pod.ip), 32)
        p.set_up(naming.POD_INTERFACE)
        gateway = str(addressing.WORKLOAD_GATEWAY)
        p.add_route(f"{gateway}/32", dev=naming.POD_INTERFACE, scope="link")
        p.add_route("0.0.0.0/0", via=gateway, dev=naming.POD_INTERFACE)
        # Permanent, so it does not count against the neighbour table every namespace shares
        # (see neighbour_entries); the host side still answers ARP for it (proxy_arp=1).
        p.add_neighbour(gateway, naming.WORKLOAD_MAC, naming.POD_INTERFACE)
        pod_mac = p.mac(naming.POD_INTERFACE)
    plug_workload(host, pod.interface, str(pod.ip), pod_mac)
    # The kubelet's resolv.conf (cluster DNS, the namespace's search list), which
    # `ip netns exec` bind-mounts over /etc/resolv.conf for the pod's programs.
    etc_files.write(pod.netns, "resolv.conf", etc_files.resolv_conf(pod.namespace, str(addressing.CLUSTER_DNS)))


def plug_workload(host: NetnsLinks, interface: str, ip: str, mac: str, replace: bool = False) -> None:
    """The host end of a workload's veth as the CNI plugin and Felix leave it: sysctls, link
    up, the /32 route and the permanent neighbour. Also used when a pod migrates
    (``replace``: the host may hold a BGP /32 that pointed at the pod's previous home)."""
    namespaces.write_sysctls(host.netns, workload_sysctls(interface))
    host.set_up(interface)
    host.add_route(f"{ip}/32", dev=interface, scope="link", replace=replace)
    host.add_neighbour(ip, mac, interface)


def start_etcd(plan: LabPlan, lab_state: state.LabState) -> subprocess.Popen[bytes]:
    folder = state.folder(plan.lab)
    argv = etcd_server.etcd_command(etcd_server.data_dir(folder), str(addressing.FABRIC_GATEWAY))
    # etcd makes its unix socket relative to its working directory: the state folder.
    proc = processes.spawn(plan.fabric_netns, argv, etcd_server.log_path(folder), cwd=folder)
    state.record_process(lab_state, "etcd", plan.fabric_netns, proc.pid)
    return proc


def pod_folder(lab: str, pod: PodPlan) -> Path:
    return state.folder(lab) / "pods" / f"{pod.namespace}.{pod.name}"


def pod_log(lab: str, pod: PodPlan) -> Path:
    return state.folder(lab) / "logs" / f"{pod.namespace}.{pod.name}.log"


def launch_sandbox(lab: str, pod: PodPlan) -> sandbox.Launch:
    """Start making the pod's sandbox (see testbed.netns.sandbox); ``start_pod_program``
    waits for it. An image that reads the lab's etcd sees the lab's folder, read-only."""
    read_only = (state.folder(lab),) if images.lookup(pod.image).sees_lab else ()
    return sandbox.launch_sandbox(
        lab, pod.namespace, pod.name, pod.netns, str(pod.ip), pod_folder(lab, pod),
        log=pod_log(lab, pod), read_only=read_only, state_root=state.root(),
    )  # fmt: skip


def start_pod_program(lab: str, pod: PodPlan, lab_state: state.LabState, launched: sandbox.Launch | None = None) -> None:
    """The pod's sandbox (``launched`` already, or made now), then in it the pod's command,
    else its image's default program (nothing for an idle image: the sandbox alone, for
    `kubectl exec`).

    Files the program needs (nginx's config and page) go to the pod's own folder,
    /run/testbed/<lab>/pods/<ns>.<pod>/, which `down` removes with the lab's folder and
    which the sandbox shows at the same path.
    """
    folder = pod_folder(lab, pod)
    context = images.PodContext(lab=lab, namespace=pod.namespace, pod=pod.name, folder=folder)
    program = images.program_for(pod.image, pod.command, context)
    pause = (launched or launch_sandbox(lab, pod)).wait()
    state.record_process(lab_state, f"sandbox {pod.key}", pod.netns, pause)
    if program is None:
        return
    for path in (folder, *program.folders):
        path.mkdir(parents=True, exist_ok=True)
    for path, text in program.files:
        path.write_text(text)
    env = None if program.env is None else dict(program.env)
    proc = sandbox.start_container(pause, program.argv, pod_log(lab, pod), cwd=program.cwd, env=env)
    state.record_process(lab_state, f"pod {pod.key}", pod.netns, proc.pid)


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
    total_hosts, total_pods = len(plan.hosts), len(plan.pods)
    progress("fabric", 0, 1)
    build_fabric(plan)
    etcd = start_etcd(plan, lab_state)
    progress("fabric", 1, 1)
    start_reflector(plan, lab_state)
    supervisor.ensure(plan.lab, lab_state)  # idle until the lab is up; then keeps its agents alive
    launched: list[sandbox.Launch] = []
    waited = 0
    with contextlib.ExitStack() as handles:
        fab = handles.enter_context(NetnsLinks(plan.fabric_netns))
        hosts: dict[str, NetnsLinks] = {}
        for i, host in enumerate(plan.hosts, 1):
            hosts[host.name] = handles.enter_context(build_host(plan, host, fab))
            start_host_daemons(plan, host, lab_state)
            progress("hosts", i, total_hosts)
        for i, pod in enumerate(plan.pods, 1):
            build_pod(pod, hosts[pod.host])
            # Its sandbox is made in the background, a few at a time, while the other pods
            # are built and BGP converges; its program starts once the network is ready.
            if len(launched) - waited >= SANDBOXES_IN_FLIGHT:
                launched[waited].wait()
                waited += 1
            launched.append(launch_sandbox(plan.lab, pod))
            progress("pods", i, total_pods)
    progress("etcd", 0, 1)
    with EtcdDatastore.over_unix_socket(etcd_socket(plan.lab)) as store:
        etcd_server.wait_healthy(
            store, ETCD_START_TIMEOUT, log=etcd_server.log_path(state.folder(plan.lab)), process=etcd
        )
        store.put_many(records.lab_records(plan, lab_state.created))
        progress("etcd", 1, 1)
        written = store.last_write_revision
        # BGP and the policy agents come up side by side: wait for both, slower one first.
        wait_bgp(plan, progress, store)
        policy_agents.wait_enforced(store, [h.name for h in plan.hosts], written, ENFORCE_TIMEOUT)
    for pod, launch in zip(plan.pods, launched):
        start_pod_program(plan.lab, pod, lab_state, launch)
    lab_state.phase = "up"
    state.save(lab_state)
