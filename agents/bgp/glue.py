"""ExaBGP's API process on one host: what BIRD and confd do for Calico, in one small program.

ExaBGP runs it inside the host netns (``process glue { run python -m agents.bgp.glue ...;
encoder json; }``): stdin carries ExaBGP's JSON events, stdout our commands, stderr ends
in ExaBGP's log. Three threads (``runner.py``): one reads stdin, one keeps an etcd watch,
the main one handles their events in order; ``Glue`` here is that main part, with no
threads and no I/O of its own beyond the datastore, the kernel adapter and ``out``.

- Announce: the host's blocks (its block affinities) and a /32 per local pod outside them,
  recomputed on every change under those keys; a respawned glue announces everything.
- Learn: routes from peers go to the kernel (``kernel.py``); a session that drops takes its
  routes with it (ExaBGP sends no withdraws then); stopping removes every route we made.
- Restart, gracefully (as BIRD's graceful restart keeps forwarding): a glue that starts
  and finds routes of a previous glue in the kernel keeps them, asks its peers to resend
  theirs, and removes only those no peer re-announced within ``stale_seconds``.
- Status: each session's state goes to ``keys.bgp_status(host)`` (``status.py``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from agents.bgp import messages
from agents.bgp.config import Peer
from agents.bgp.kernel import Kernel, KernelError
from agents.bgp.rib import Rib, RouteDiff, desired_announcements
from agents.bgp.status import BgpStatus
from testbed.addressing import AS_NUMBER
from testbed.datastore import keys
from testbed.datastore.base import Datastore, DatastoreError
from testbed.datastore.readback import RecordError, endpoint_summary

LOG = logging.getLogger("agents.bgp.glue")
# Asks established peers to send their routes again: a respawned glue starts with an empty
# RIB while the sessions stay up (ExaBGP replays nothing to a new helper). Peers only get
# it when the neighbour has ``capability { route-refresh; }``; else ExaBGP keeps it queued.
REFRESH_COMMAND = "announce route-refresh ipv4 unicast"
# How long a restarted glue keeps the routes it found before peers re-announce them: the
# peers answer the route refresh within milliseconds; this only bounds a stale route.
STALE_SECONDS = 20.0


class Glue:
    """The glue's state and reactions; the caller feeds it lines and "changed" signals."""

    def __init__(
        self,
        datastore: Datastore,
        kernel: Kernel,
        out: TextIO,
        host: str,
        local_ip: str,
        peers: Sequence[Peer],
        *,
        asn: int = AS_NUMBER,
        clock: Callable[[], float] = time.time,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] = LOG,
        stale_seconds: float = STALE_SECONDS,
    ) -> None:
        self.datastore = datastore
        self.kernel = kernel
        self.out = out
        self.host = host
        self.local_ip = local_ip
        self.rib = Rib(local_ip)
        self.status = BgpStatus(host, local_ip, peers, asn=asn, clock=clock)
        self.announced: set[str] = set()
        self.installed: dict[str, str] = {}  # prefix -> next hop, as we put them in the kernel
        self.stopping = False  # ExaBGP said it shuts down, or our stdout is gone
        self.clock = clock
        self.stale: dict[str, str] = {}  # prefix -> next hop: found at start, not re-learned yet
        self.stale_seconds = stale_seconds
        self.stale_until = 0.0
        self.log = log
        self._unacked: deque[str] = deque(maxlen=1000)  # ExaBGP answers each command in order
        self._status_dirty = False

    # -- start and stop --------------------------------------------------------------------
    def start(self) -> None:
        """Keep a previous glue's routes (stale until re-learned: traffic keeps flowing),
        publish the status, ask peers to resend, announce what we own."""
        try:
            self.stale = self.kernel.learned()
        except KernelError as exc:
            self.log.error("%s", exc)
        if self.stale:
            self.stale_until = self.clock() + self.stale_seconds
            self.log.info(
                "kept %d routes of a previous glue until peers resend them: %s",
                len(self.stale), " ".join(sorted(self.stale)),
            )  # fmt: skip
        self.write_status()
        self._send([REFRESH_COMMAND])
        self.on_datastore_change()

    def expire_stale(self) -> None:
        """Remove the routes found at start that no peer re-announced in time."""
        if not self.stale or self.clock() < self.stale_until:
            return
        for prefix, next_hop in sorted(self.stale.items()):
            try:
                self.kernel.remove(prefix)
            except KernelError as exc:
                self.log.error("%s", exc)
                continue
            self.log.info("stale route %s removed (was via %s; no peer re-announced it)", prefix, next_hop)
        self.stale = {}

    def stop(self) -> None:
        """ExaBGP is stopping: take our routes out of the kernel, say the speaker is gone."""
        self.rib.flush()
        for prefix in sorted(self.installed):
            self._remove(prefix)
        self.stale_until = 0.0
        self.expire_stale()
        self.status.stopped()
        self.write_status()

    # -- ExaBGP ----------------------------------------------------------------------------
    def on_line(self, raw: str) -> None:
        """One line from ExaBGP. Never raises on odd input."""
        self.log.debug("from ExaBGP: %s", raw.rstrip("\n"))
        event = messages.parse_line(raw)
        if isinstance(event, messages.Ack):
            command = self._unacked.popleft() if self._unacked else "a command"
            if not event.ok and command == REFRESH_COMMAND:
                self.log.info("no session up yet: no route refresh needed")
            elif not event.ok:
                self.log.warning("ExaBGP refused: %s", command)
        elif isinstance(event, messages.StateChange):
            self.log.info("peer %s %s%s", event.peer, event.state, f" ({event.reason})" if event.reason else "")
            self._status_dirty |= self.status.apply(event)
            self.program(self.rib.apply(event))
        elif isinstance(event, messages.RouteUpdate):
            self._status_dirty |= self.status.heard_from(event.peer)
            self.program(self.rib.apply(event))
        elif isinstance(event, messages.EndOfRib):
            self._status_dirty |= self.status.heard_from(event.peer)
            self.log.info("peer %s: end of RIB", event.peer)
        elif _is_shutdown(raw):
            self.log.info("ExaBGP is shutting down")
            self.stopping = True

    def program(self, diff: RouteDiff) -> None:
        """Kernel work for a change of the chosen routes; errors are logged, not raised."""
        for prefix in sorted(diff.remove):
            if prefix in self.installed:
                self._remove(prefix)
        for prefix, next_hop in diff.add.items():
            if prefix in self.announced:
                self.log.warning("%s is ours (announced here): not routing it via %s", prefix, next_hop)
                continue
            try:
                self.kernel.replace(prefix, next_hop)
            except KernelError as exc:
                self.log.error("%s", exc)
                continue
            self.installed[prefix] = next_hop
            self.stale.pop(prefix, None)
            self.log.info("route %s via %s", prefix, next_hop)

    def _remove(self, prefix: str) -> None:
        try:
            self.kernel.remove(prefix)
        except KernelError as exc:
            self.log.error("%s", exc)
            return
        self.log.info("route %s removed (was via %s)", prefix, self.installed.pop(prefix))

    # -- the datastore ---------------------------------------------------------------------
    def desired(self) -> set[str]:
        """What this host announces now (DatastoreError when etcd cannot be read)."""
        blocks = []
        for key in self.datastore.list(keys.affinities_of(self.host)):
            try:
                blocks.append(keys.parse_block_affinity(key)[1])
            except keys.KeyFormatError as exc:
                self.log.warning("skipped: %s", exc)
        pod_ips = []
        for key, value in self.datastore.list(keys.WORKLOAD_ENDPOINTS).items():
            try:
                endpoint = endpoint_summary(value)
            except RecordError as exc:
                self.log.warning("skipped %s: %s", key, exc)
                continue
            if endpoint.node == self.host:
                pod_ips.append(endpoint.ip)
        return desired_announcements(blocks, pod_ips)

    def on_datastore_change(self) -> bool:
        """Re-read what we own and announce or withdraw the difference; False if etcd failed."""
        try:
            desired = self.desired()
        except DatastoreError as exc:
            self.log.warning("cannot read what to announce: %s", exc)
            return False
        gone, new = sorted(self.announced - desired), sorted(desired - self.announced)
        commands = [messages.withdraw_command(p, self.local_ip) for p in gone]
        commands += [messages.announce_command(p, self.local_ip) for p in new]
        if commands and self._send(commands):
            self.announced = desired
            self.log.info("announced %s; withdrew %s", " ".join(new) or "-", " ".join(gone) or "-")
        return True

    def _send(self, commands: list[str]) -> bool:
        try:
            self.out.write("".join(f"{c}\n" for c in commands))
            self.out.flush()
        except (OSError, ValueError) as exc:  # a closed pipe: ExaBGP is gone
            self.log.error("cannot write to ExaBGP (%s); stopping", exc)
            self.stopping = True
            return False
        self._unacked.extend(commands)
        self.log.debug("to ExaBGP: %s", " | ".join(commands))
        return True

    def flush_status(self) -> None:
        """Write the status if a state event changed it: once per batch of events, since a
        peer that cannot connect makes ExaBGP report connected/down several times a second."""
        if self._status_dirty:
            self.write_status()

    def write_status(self) -> None:
        self._status_dirty = False
        try:
            self.datastore.put(keys.bgp_status(self.host), self.status.value())
        except Exception as exc:  # noqa: BLE001 - a status must never stop the glue
            self.log.warning("cannot write the BGP status: %s", exc)


def _is_shutdown(raw: str) -> bool:
    """ExaBGP's last words to its helpers: ``{"type": "notification", ... "shutdown"}``."""
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "notification" and "shutdown" in raw


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.bgp.glue --lab L --host H --local-ip IP --etcd H:P --peer IP:KIND``."""
    from agents.bgp.runner import main as run_main  # threads, signals, CLI: see runner.py

    return run_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
