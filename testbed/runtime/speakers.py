"""BGP in a lab: an ExaBGP speaker (with our glue as its API process) in every host netns,
and optionally BIRD 2 as route reflector in its own netns at 172.18.203.254.

Full mesh by default (every host peers with every other, "node-to-node mesh"); with a
reflector, hosts peer only with it ("global"), and it keeps next hops, so traffic still
goes host to host.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from agents.bgp.config import Peer, bird_rr_config, exabgp_config, exabgp_environment
from testbed.netns.rtnetlink import RouteSocket
from testbed import addressing, naming
from testbed.netns import namespaces, processes
from testbed.netns.links import PROTO_BIRD, NetnsLinks
from testbed.datastore import keys
from testbed.datastore.base import Datastore
from testbed.runtime import state
from testbed.runtime.plan import HostPlan, LabPlan

BGP_DIR = "bgp"
BIRD_SOCKET = "bird.ctl"
POLL_SECONDS = 0.02  # between checks while waiting for convergence


def exabgp_binary() -> str:
    """ExaBGP from the same environment as this Python (the project's venv)."""
    return str(Path(sys.executable).with_name("exabgp"))


def peers_of(plan: LabPlan, host: HostPlan) -> list[Peer]:
    if plan.options.route_reflector:
        return [Peer(str(addressing.ROUTE_REFLECTOR), "global")]
    return [Peer(str(h.ip), "mesh") for h in plan.hosts if h.name != host.name]


def glue_argv(plan: LabPlan, host: HostPlan, peers: list[Peer]) -> list[str]:
    argv = [
        sys.executable, "-m", "agents.bgp.glue",
        "--lab", plan.lab,
        "--host", host.name,
        "--local-ip", str(host.ip),
        "--etcd", f"{addressing.FABRIC_GATEWAY}:{addressing.ETCD_CLIENT_PORT}",
        "--hold-time", str(plan.options.bgp_hold_time),
    ]  # fmt: skip
    for peer in peers:
        argv += ["--peer", f"{peer.ip}:{peer.kind}"]
    return argv


def start_speaker(plan: LabPlan, host: HostPlan, lab_state: state.LabState) -> int:
    """Write the host's exabgp.conf and start ExaBGP in the host netns; returns its PID."""
    folder = state.folder(plan.lab) / BGP_DIR
    folder.mkdir(parents=True, exist_ok=True)
    peers = peers_of(plan, host)
    config = folder / f"exabgp-{host.name}.conf"
    config.write_text(
        exabgp_config(
            str(host.ip), peers, hold_time=plan.options.bgp_hold_time, process_argv=glue_argv(plan, host, peers)
        )
    )
    return spawn_speaker(plan.lab, host.name, str(host.ip), lab_state)


def spawn_speaker(lab: str, host: str, ip: str, lab_state: state.LabState) -> int:
    """Start ExaBGP for ``host`` from its config in the state folder; returns its PID."""
    folder = state.folder(lab) / BGP_DIR
    config = folder / f"exabgp-{host}.conf"
    if not config.exists():
        raise FileNotFoundError(f"host {host} has no BGP speaker config ({config})")
    netns = naming.host_netns(lab, host)
    proc = processes.spawn(
        netns, [exabgp_binary(), str(config)], folder / f"exabgp-{host}.log", env=speaker_environment(ip)
    )
    state.record_process(lab_state, f"bgp {host}", netns, proc.pid)
    return proc.pid


def speaker_environment(local_ip: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("exabgp_")}
    env.update(exabgp_environment(local_ip))
    return env


def build_reflector(plan: LabPlan, lab_state: state.LabState) -> None:
    """The reflector netns: eth0 on the fabric at .254, BIRD 2 reflecting every host."""
    netns = naming.reflector_netns(plan.lab)
    port = naming.fabric_port(naming.ROUTE_REFLECTOR)
    namespaces.create(netns)
    with NetnsLinks(netns) as rr:
        rr.set_up("lo")
        rr.add_veth(naming.HOST_INTERFACE, port, plan.fabric_netns)
        rr.add_address(naming.HOST_INTERFACE, str(addressing.ROUTE_REFLECTOR), addressing.FABRIC.prefixlen)
        rr.set_up(naming.HOST_INTERFACE)
    with NetnsLinks(plan.fabric_netns) as fab:
        fab.set_master(port, naming.FABRIC_BRIDGE)
    folder = state.folder(plan.lab) / BGP_DIR
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "bird-rr.conf"
    config.write_text(
        bird_rr_config(
            str(addressing.ROUTE_REFLECTOR), [str(h.ip) for h in plan.hosts], hold_time=plan.options.bgp_hold_time
        )
    )
    proc = processes.spawn(
        netns,
        ["bird", "-f", "-c", str(config), "-s", str(folder / BIRD_SOCKET)],
        folder / "bird-rr.log",
    )
    state.record_process(lab_state, "bgp rr", netns, proc.pid)


def expected_routes(plan: LabPlan, host: HostPlan) -> set[str]:
    """What BGP must have installed on ``host``: the other hosts' blocks and borrowed /32s."""
    wanted = {str(b) for h in plan.hosts if h.name != host.name for b in h.blocks}
    wanted |= {f"{p.ip}/32" for p in plan.pods if p.borrowed and p.host != host.name}
    return wanted


def learned_routes(routes: RouteSocket) -> set[str]:
    """The routes BGP installed in the netns of ``routes`` (proto bird, with a gateway)."""
    return {r.dst for r in routes.routes() if r.proto == PROTO_BIRD and r.gateway is not None}


def unestablished(plan: LabPlan, store: Datastore) -> dict[str, list[str]]:
    """Per host, the peers its glue does not (yet) report Established in etcd (one read)."""
    statuses = store.list(keys.BGP_STATUS)
    missing = {}
    for host in plan.hosts:
        reported = statuses.get(keys.bgp_status(host.name)) or {}
        up = {p.get("address") for p in reported.get("peers", []) if p.get("info") == "Established"}
        lacking = [f"session {p.ip}" for p in peers_of(plan, host) if p.ip not in up]
        if lacking:
            missing[host.name] = lacking
    return missing


RouteSource = Callable[[HostPlan], set[str]]


class _KernelRoutes:
    """learned_routes of each host, over one rtnetlink socket per host kept for the whole
    wait. The socket is made by a short-lived thread that joined the host's netns (a
    socket stays in the netns it was made in), which costs far less than a pyroute2
    handle: that forks a child, and decodes every attribute of every link and route."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._sockets: dict[str, RouteSocket] = {}

    def __call__(self, host: HostPlan) -> set[str]:
        sock = self._sockets.get(host.name)
        if sock is None:
            sock = namespaces.run_inside(host.netns, RouteSocket)
            self._stack.callback(sock.close)
            self._sockets[host.name] = sock
        return learned_routes(sock)


def wait_converged(
    plan: LabPlan, store: Datastore, timeout: float, *, routes: RouteSource | None = None, poll: float = POLL_SECONDS
) -> float:
    """Wait until every host reports every session Established (what `bgp status` shows)
    and has a BGP route for every other host's blocks; seconds waited.

    Each poll first reads the sessions from etcd (cheap); the kernels' routes are read
    only once every session is up, and only on hosts that still lack some.
    """
    started = time.monotonic()
    pending = {h.name: expected_routes(plan, h) for h in plan.hosts}
    with contextlib.ExitStack() as stack:
        routes_of = routes or _KernelRoutes(stack)

        def lacking_routes() -> dict[str, list[str]]:
            for host in plan.hosts:
                if pending[host.name]:
                    pending[host.name] -= routes_of(host)
            return {name: sorted(r) for name, r in pending.items() if r}

        while True:
            sessions = unestablished(plan, store)
            missing = sessions or lacking_routes()
            if not missing:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                missing = lacking_routes() or sessions
                lacking = sorted(missing.items())
                detail = "; ".join(f"{name} lacks {', '.join(what[:3])}" for name, what in lacking[:3])
                if len(lacking) > 3:
                    detail += f"; and {len(lacking) - 3} more hosts"
                raise TimeoutError(
                    f"BGP did not converge in {timeout:g} s ({detail}); logs in {state.folder(plan.lab) / BGP_DIR}"
                )
            time.sleep(poll)
