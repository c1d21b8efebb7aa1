"""The Felix-like agent of one host: etcd -> policy model -> rendered rules -> kernel.

Runs inside its host's netns (`nsenter --net=/run/netns/<lab>.<host> python -m
agents.felix.agent`), with the host's kubelet as threads of the same process
(``agents.kubelet``).
Cheap updates mark it dirty (an etcd watch on endpoints, namespaces and policies); one
apply per burst; a timed resync repairs drift (a rule or route deleted by hand comes
back). After each apply it records in etcd which revision it enforces, so `testbed
kubectl` can wait until a change is enforced on every host. Like Felix it also owns the
routes to its local workloads and their interfaces' sysctls.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from agents.felix.apply import IPSets, IptablesTable, Runner, SubprocessRunner, apply_all
from agents.felix.render.host import HostRules, render_host
from agents.kubeproxy import KubeProxyTables, desired_rules
from testbed import naming
from testbed.netns import namespaces, rtnetlink
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore, DatastoreError, WatchCallback, WatchEvent
from testbed.kube.view import PREFIXES as VIEW_PREFIXES, ViewCache
from testbed.model.policy import Endpoint

LOG = logging.getLogger("agents.felix")
RESYNC_SECONDS = 10.0  # Felix v3.28 resyncs ipsets every 10 s; we resync everything
DEBOUNCE_SECONDS = 0.01
STATUS_REFRESH_SECONDS = 5.0  # an unchanged enforced revision is rewritten this often (a heartbeat)
# kube-proxy's inputs, cached like the view. Endpoints, not pods: pods' status changes
# often, and turning it into endpoints is the controller manager's work.
SERVICE_PREFIXES = (keys.SERVICES, keys.ENDPOINTS)
CACHED = (*VIEW_PREFIXES, *SERVICE_PREFIXES)  # what a sync may take from memory
WATCHED = (*CACHED, keys.BARRIER)

# Workload routes, as Felix programs them: main table, scope link, protocol boot (3, Felix's
# DeviceRouteProtocol default, which `ip route` does not print).
MAIN_TABLE = 254
SCOPE_LINK = 253
PROTO_BOOT = 3


class Dataplane:
    """The kernel side: tables, ipsets, local workload routes and sysctls.

    The tables and ipsets remember what they last wrote: a normal apply diffs against that
    memory; ``resync`` (the timed full sync) reads the kernel back and repairs drift.
    """

    def __init__(self, runner: Runner | None = None) -> None:
        runner = runner or SubprocessRunner()
        self.filter = IptablesTable("filter", runner)
        self.raw = IptablesTable("raw", runner)
        self.ipsets = IPSets(runner)
        self.kube_proxy = KubeProxyTables(runner)  # kube-proxy's nat (and reject) rules, same thread

    def apply_services(self, nat_text: str, filter_text: str, resync: bool) -> bool:
        """kube-proxy's part, after Felix's: its filter hooks are appended after Felix's."""
        return self.kube_proxy.apply(nat_text, filter_text, resync=resync).wrote

    def apply(self, rules: HostRules, local: Sequence[Endpoint], repair_workloads: bool, resync: bool = True) -> bool:
        self.ipsets.desired(rules.ipsets)
        self.filter.desired(rules.chains, [(h.chain, h.rule) for h in rules.hooks if h.table == "filter"])
        self.raw.desired(rules.raw_chains, [(h.chain, h.rule) for h in rules.hooks if h.table == "raw"])
        report = apply_all([self.raw, self.filter], self.ipsets, resync=resync)
        if repair_workloads:
            self.ensure_workloads(local)
        return report.wrote

    @staticmethod
    def ensure_workloads(local: Sequence[Endpoint]) -> None:
        """`<pod IP> dev caliX scope link` and the cali sysctls, for every local workload.

        One dump of the routes, interface indexes from if_nametoindex, and only missing
        routes are replaced: a lookup per pod dumped every link each time (quadratic: over
        a second at 250 pods per host, on every timed resync). The socket is
        ``testbed.netns.rtnetlink``'s: the agent imported pyroute2 for this alone."""
        with contextlib.closing(rtnetlink.RouteSocket()) as sock:
            present = {
                (route.dst, route.oif)
                for route in sock.routes(MAIN_TABLE)
                if route.dst.endswith("/32") and route.scope == SCOPE_LINK and route.proto == PROTO_BOOT
            }
            for ep in local:
                interface = naming.workload_interface(ep.namespace, ep.name)
                try:
                    oif = socket.if_nametoindex(interface)
                except OSError:
                    continue  # the pod is being created or deleted
                if (f"{ep.ip}/32", oif) not in present:
                    sock.request(partial(
                        rtnetlink.encode_route, prefix=f"{ep.ip}/32", oif=oif, scope=SCOPE_LINK, proto=PROTO_BOOT, replace=True
                    ))  # fmt: skip
                for key, value in (("proxy_arp", "1"), ("forwarding", "1"), ("route_localnet", "1")):
                    path = Path(f"/proc/sys/net/ipv4/conf/{interface}/{key}")
                    try:
                        if path.read_text().strip() != value:
                            path.write_text(value)
                    except FileNotFoundError:
                        break  # the interface went away meanwhile


class Changes:
    """Which watched prefixes changed since the agent last looked, and the lowest revision
    of each change: filled by the watch threads, taken by the sync (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: dict[str, int] = {}  # prefix -> lowest revision not yet read

    def note(self, prefix: str, revision: int) -> None:
        with self._lock:
            self._first[prefix] = min(self._first.get(prefix, revision), revision)

    def take(self) -> dict[str, int]:
        with self._lock:
            taken, self._first = self._first, {}
        return taken

    def pending(self) -> dict[str, int]:
        with self._lock:
            return dict(self._first)


class Agent:
    def __init__(self, store: Datastore, host: str, dataplane: Dataplane) -> None:
        self.store, self.host, self.dataplane = store, host, dataplane
        self.enforced = 0
        self.changes = Changes()  # noted by the watches (see `run`)
        self.view = ViewCache()
        self._local: tuple[Endpoint, ...] | None = None
        self._host_ip: object | None = None
        self._reported, self._reported_at = -1, 0.0  # the last status written, and when
        self._listed: dict[str, list[Any]] = {}  # service prefix -> its stored values, as last listed
        self._service_text: tuple[str, str] | None = None  # rendered from `_listed`

    def sync(self, full: bool = True, relist: bool | None = None) -> None:
        """Render and apply; workload routes and sysctls are checked when the local
        endpoints changed and on every full (timed) resync, not on each policy change.

        Felix's way, so that the cost of a change follows the change, not the size of the
        host: only the prefixes the watches saw change are re-listed (``relist``, by
        default as ``full``: everything, when the watches may have missed something), and
        the tables and ipsets are diffed against what they last wrote; a ``full`` sync
        reads the kernel back instead and repairs drift (a rule deleted by hand)."""
        started = time.monotonic()
        if self.enforced == 0 and self.store.get(keys.LAB) is None:
            return  # like Felix: no kernel writes before the first complete snapshot
        changed = self.changes.take()
        reread = set(CACHED) if (full if relist is None else relist) else set(changed) & set(CACHED)
        view = self.view.read(self.store, reread & set(VIEW_PREFIXES))
        rules = render_host(self.host, view.endpoints, view.namespaces, view.policies)
        local = tuple(ep for ep in view.endpoints if ep.host == self.host)
        nat_text, service_filter = self._service_rules(reread)
        wrote = self.dataplane.apply(rules, local, repair_workloads=full or local != self._local, resync=full)
        wrote = self.dataplane.apply_services(nat_text, service_filter, resync=full) or wrote
        self._local = local
        self.enforced = max(self.enforced, claimable(view.revision, self.changes.pending(), reread))
        took = 1000 * (time.monotonic() - started)
        if wrote:
            LOG.info(
                "applied revision %d in %.0f ms: %d chains, %d ipsets%s",
                view.revision, took, len(rules.chains), len(rules.ipsets), " (full resync)" if full else "",
            )
        else:
            LOG.debug("revision %d unchanged, checked in %.0f ms", view.revision, took)
        self._report()

    def _report(self) -> None:
        """The revision this host enforces, for everyone who waits on it; rewritten only when
        it moved, or as a heartbeat every STATUS_REFRESH_SECONDS (each write wakes every
        waiter and every watch of the lab, so an unchanged one is not sent on each sync)."""
        now = time.time()
        if self.enforced == self._reported and now - self._reported_at < STATUS_REFRESH_SECONDS:
            return
        self.store.put(keys.felix_status(self.host), {"host": self.host, "revision": self.enforced, "updated": now})
        self._reported, self._reported_at = self.enforced, now


    def _service_rules(self, reread: set[str]) -> tuple[str, str]:
        """kube-proxy's rules for every Service, from the Endpoints the controller manager
        writes (kube-proxy never reads pods). NodePorts answer on this host's own
        address, as kube-proxy's --nodeport-addresses.

        Services and Endpoints are listed (and the rules rendered) again only when the
        watches saw them change, as the view's prefixes: a policy change lists neither.
        Endpoints are not listed while there is no Service."""
        for prefix in SERVICE_PREFIXES:
            if prefix in reread and self._listed.pop(prefix, None) is not None:
                self._service_text = None
        services = self._listing(keys.SERVICES)
        endpoints = self._listing(keys.ENDPOINTS) if services else []
        if self._host_ip is None and (node := self.store.get(keys.node(self.host))):
            self._host_ip = records.node_summary(node).ip
            self._service_text = None
        if self._service_text is None:
            self._service_text = desired_rules(services, endpoints, [str(self._host_ip)] if self._host_ip else [])
        return self._service_text

    def _listing(self, prefix: str) -> list[Any]:
        """The prefix's stored values: from memory, or listed now (dropping the rendered rules)."""
        if prefix not in self._listed:
            self._listed[prefix] = list(self.store.list(prefix).values())
            self._service_text = None
        return self._listed[prefix]


def claimable(revision: int, pending: dict[str, int], reread: set[str]) -> int:
    """The revision a sync may report as enforced. Its view holds every change up to
    ``revision`` for the prefixes it re-listed; a prefix it took from the cache is only
    known up to the changes the watches had delivered when it started. A change that a
    watch delivered since (``pending``) at or below ``revision`` was missed: report less,
    so that no one waiting for it is told it is enforced (the next sync, which that
    change has already triggered, reports it)."""
    missed = [first for prefix, first in pending.items() if prefix in CACHED and prefix not in reread]
    return min([revision, *(first - 1 for first in missed)])


def run(agent: Agent, store: Datastore, events: queue.SimpleQueue[str], resync: float = RESYNC_SECONDS) -> None:
    """Sync, then wait for a change (debounced), a lost watch, "stop" or the resync timer."""
    cancels: list[Any] = []
    full = relist = True
    while True:
        if not cancels:
            try:
                cancels = [
                    store.watch_prefix(p, _noting(agent.changes, p, events), on_error=lambda _e: events.put("lost"))
                    for p in WATCHED
                ]
            except DatastoreError as exc:
                LOG.warning("%s; retrying", exc)
                time.sleep(0.5)
                continue
        failed = False
        try:
            agent.sync(full=full, relist=relist)
            wait = resync
        except Exception as exc:  # noqa: BLE001 - fail closed: the last rules stay; retry soon
            LOG.error("sync failed: %s", exc)
            wait, failed = 0.5, True
        items: list[str] = []
        try:
            items.append(events.get(timeout=wait))
            time.sleep(DEBOUNCE_SECONDS)
            while True:
                items.append(events.get_nowait())
        except queue.Empty:
            pass
        # Re-list the view when a lost watch may have missed changes, or a failed sync
        # left it half read; resync the kernel then too, and on the timer. Between, the
        # watches say what changed (the view) and memory what the kernel holds.
        relist = "lost" in items or failed
        full = not items or relist
        if "stop" in items:
            break
        if "lost" in items:
            for cancel in cancels:
                cancel()
            cancels = []
    for cancel in cancels:
        cancel()


def _noting(changes: Changes, prefix: str, events: queue.SimpleQueue[str]) -> WatchCallback:
    def callback(event: WatchEvent) -> None:
        changes.note(prefix, event.revision)
        events.put("change")

    return callback


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="felix", description=__doc__)
    parser.add_argument("--lab", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--etcd", required=True, help="HOST:PORT of the lab's etcd")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=f"%(asctime)s %(name)s lab={args.lab} host={args.host} %(levelname)s %(message)s")
    if not namespaces.is_current(naming.host_netns(args.lab, args.host)):
        LOG.error("refusing to run outside netns %s", naming.host_netns(args.lab, args.host))
        return 2
    from testbed.datastore.etcd import EtcdDatastore

    host, _, port = args.etcd.rpartition(":")
    events: queue.SimpleQueue[str] = queue.SimpleQueue()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: events.put("stop"))
    from agents.kubelet import service  # the host's kubelet: threads of this process
    from testbed.kube import events as recorded_events

    recording = EtcdDatastore.over_tcp(host, int(port))  # the kubelet's events, written by a thread of their own
    recorded_events.configure(recording.put_many, "kubelet", host=args.host)
    kubelet = service.start(args.lab, args.host, host, int(port))
    try:
        with EtcdDatastore.over_tcp(host, int(port)) as store:
            run(Agent(store, args.host, Dataplane()), store, events)
    finally:
        kubelet.stop()
    from testbed.runtime.supervisor import note_clean_exit  # stopped on request: stay down

    note_clean_exit(args.lab, f"felix {args.host}", os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
