"""The Felix-like agent of one host: etcd -> policy model -> rendered rules -> kernel.

Runs inside its host's netns (`ip netns exec <lab>.<host> python -m agents.felix.agent`).
Cheap updates mark it dirty (an etcd watch on endpoints, namespaces and policies); one
apply per burst; a timed resync repairs drift (a rule or route deleted by hand comes
back). After each apply it records in etcd which revision it enforces, so `testbed
kubectl` can wait until a change is enforced on every host. Like Felix it also owns the
routes to its local workloads and their interfaces' sysctls.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.felix.apply import IPSets, IptablesTable, SubprocessRunner, apply_all
from agents.felix.render.host import HostRules, render_host
from testbed import naming
from testbed.netns import namespaces
from testbed.datastore import keys
from testbed.datastore.base import Datastore, DatastoreError
from testbed.kube.objects import NETWORK_POLICIES
from testbed.kube.view import read_view
from testbed.model.policy import Endpoint

LOG = logging.getLogger("agents.felix")
RESYNC_SECONDS = 10.0  # Felix v3.28 resyncs ipsets every 10 s; we resync everything
DEBOUNCE_SECONDS = 0.01
WATCHED = (keys.WORKLOAD_ENDPOINTS, keys.K8S_NAMESPACES, NETWORK_POLICIES)


class Dataplane:
    """The kernel side: tables, ipsets, local workload routes and sysctls."""

    def __init__(self) -> None:
        runner = SubprocessRunner()
        self.filter = IptablesTable("filter", runner)
        self.raw = IptablesTable("raw", runner)
        self.ipsets = IPSets(runner)

    def apply(self, rules: HostRules, local: Sequence[Endpoint], repair_workloads: bool) -> bool:
        self.ipsets.desired(rules.ipsets)
        self.filter.desired(rules.chains, [(h.chain, h.rule) for h in rules.hooks if h.table == "filter"])
        self.raw.desired(rules.raw_chains, [(h.chain, h.rule) for h in rules.hooks if h.table == "raw"])
        report = apply_all([self.raw, self.filter], self.ipsets)
        if repair_workloads:
            self.ensure_workloads(local)
        return report.wrote

    @staticmethod
    def ensure_workloads(local: Sequence[Endpoint]) -> None:
        """`<pod IP> dev caliX scope link` and the cali sysctls, for every local workload."""
        from pyroute2 import IPRoute  # here: unit tests of the agent's logic never need it

        with IPRoute() as ipr:
            for ep in local:
                interface = naming.workload_interface(ep.namespace, ep.name)
                found = ipr.link_lookup(ifname=interface)
                if not found:
                    continue  # the pod is being created or deleted
                ipr.route("replace", dst=f"{ep.ip}/32", oif=found[0], scope="link", proto=3)
                for key, value in (("proxy_arp", "1"), ("forwarding", "1"), ("route_localnet", "1")):
                    path = Path(f"/proc/sys/net/ipv4/conf/{interface}/{key}")
                    if path.exists() and path.read_text().strip() != value:
                        path.write_text(value)


class Agent:
    def __init__(self, store: Datastore, host: str, dataplane: Dataplane) -> None:
        self.store, self.host, self.dataplane = store, host, dataplane
        self.enforced = 0
        self._local: tuple[Endpoint, ...] | None = None

    def sync(self, full: bool = True) -> None:
        """Render and apply; workload routes and sysctls are checked when the local
        endpoints changed and on every full (timed) resync, not on each policy change."""
        started = time.monotonic()
        if self.enforced == 0 and self.store.get(keys.LAB) is None:
            return  # like Felix: no kernel writes before the first complete snapshot
        view = read_view(self.store)
        rules = render_host(self.host, view.endpoints, view.namespaces, view.policies)
        local = tuple(ep for ep in view.endpoints if ep.host == self.host)
        wrote = self.dataplane.apply(rules, local, repair_workloads=full or local != self._local)
        self._local = local
        self.enforced = view.revision
        took = 1000 * (time.monotonic() - started)
        if wrote:
            LOG.info(
                "applied revision %d in %.0f ms: %d chains, %d ipsets%s",
                view.revision, took, len(rules.chains), len(rules.ipsets), " (full resync)" if full else "",
            )
        else:
            LOG.debug("revision %d unchanged, checked in %.0f ms", view.revision, took)
        self.store.put(keys.felix_status(self.host), {"host": self.host, "revision": view.revision, "updated": time.time()})


def run(agent: Agent, store: Datastore, events: queue.SimpleQueue[str], resync: float = RESYNC_SECONDS) -> None:
    """Sync, then wait for a change (debounced), a lost watch, "stop" or the resync timer."""
    cancels: list[Any] = []
    full = True
    while True:
        if not cancels:
            try:
                cancels = [
                    store.watch_prefix(p, lambda _e: events.put("change"), on_error=lambda _e: events.put("lost"))
                    for p in WATCHED
                ]
            except DatastoreError as exc:
                LOG.warning("%s; retrying", exc)
                time.sleep(0.5)
                continue
        try:
            agent.sync(full=full)
            wait = resync
        except Exception as exc:  # noqa: BLE001 - fail closed: the last rules stay; retry soon
            LOG.error("sync failed: %s", exc)
            wait = 0.5
        items: list[str] = []
        try:
            items.append(events.get(timeout=wait))
            time.sleep(DEBOUNCE_SECONDS)
            while True:
                items.append(events.get_nowait())
        except queue.Empty:
            pass
        full = not items  # woken by the timer: a full resync
        if "stop" in items:
            break
        if "lost" in items:
            for cancel in cancels:
                cancel()
            cancels = []
    for cancel in cancels:
        cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="felix", description=__doc__)
    parser.add_argument("--lab", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--etcd", required=True, help="HOST:PORT of the lab's etcd")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=f"%(asctime)s felix lab={args.lab} host={args.host} %(levelname)s %(message)s")
    if not namespaces.is_current(naming.host_netns(args.lab, args.host)):
        LOG.error("refusing to run outside netns %s", naming.host_netns(args.lab, args.host))
        return 2
    from testbed.datastore.etcd import EtcdDatastore

    host, _, port = args.etcd.rpartition(":")
    events: queue.SimpleQueue[str] = queue.SimpleQueue()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: events.put("stop"))
    with EtcdDatastore.over_tcp(host, int(port)) as store:
        run(Agent(store, args.host, Dataplane()), store, events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
