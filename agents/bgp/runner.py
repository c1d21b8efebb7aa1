"""The glue as a process (``python -m agents.bgp.glue``): arguments, logging, threads, loop.

- the stdin thread turns ExaBGP's lines into ("line", text) items, then ("eof", ...);
- the watch thread keeps etcd watches on the host's block affinities and on every
  WorkloadEndpoint, and puts ("changed", ...) for each change and after each (re)connect
  (a full re-list: anything may have changed while it was away); it reconnects with
  backoff;
- SIGTERM and SIGINT put ("stop", ...) (``SimpleQueue.put`` is safe in a signal handler);
- the main thread handles items in order, batching: one status write per burst of state
  events, one re-list per burst of changes, and one every ``--resync`` seconds (30)
  whatever happens, as Felix's resync timer does.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO

from agents.bgp.config import Peer
from agents.bgp.glue import Glue
from testbed import naming
from testbed.netns import namespaces
from testbed.addressing import AS_NUMBER
from testbed.datastore import keys
from testbed.datastore.base import Datastore, DatastoreError, WatchEvent

LINE, CHANGED, EOF, STOP = "line", "changed", "eof", "stop"
Item = tuple[str, str]
RESYNC_SECONDS = 30.0
RETRY_SECONDS = 0.5  # after a failed read of what to announce
# The first retries come fast: at `up` the glue may start before etcd answers, and BGP
# convergence waits for this watch. A watch that lived HEALTHY_WATCH resets the backoff.
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 2.0  # short: after an etcd restart, catch up within 2 s
HEALTHY_WATCH = 5.0  # a watch that lived this long resets the backoff
ETCD_TIMEOUT = 3.0
STALE_CHECK_SECONDS = 1.0  # while a restarted glue holds routes it found, look this often

LOG = logging.getLogger("agents.bgp.glue")


class WatchThread:
    """etcd watches on ``prefixes``; ``notify()`` on every event and after every (re)connect."""

    def __init__(self, store: Datastore, prefixes: Sequence[str], notify: Callable[[], None]) -> None:
        self.store = store
        self.prefixes = list(prefixes)
        self.notify = notify
        self.connects = 0
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etcd-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread.ident is not None:  # started
            self._thread.join(10.0)

    def _on_event(self, event: WatchEvent) -> None:
        self.notify()

    def _on_error(self, error: DatastoreError) -> None:
        LOG.warning("%s; reconnecting", error)
        self._wake.set()

    def _run(self) -> None:
        delay = BACKOFF_FIRST
        while not self._stopped.is_set():
            self._wake.clear()
            cancels: list[Callable[[], None]] = []
            began = time.monotonic()
            try:
                for prefix in self.prefixes:
                    cancels.append(self.store.watch_prefix(prefix, self._on_event, on_error=self._on_error))
                self.connects += 1
                if self.connects > 1:
                    LOG.info("etcd watch re-established; re-listing")
                self.notify()
                self._wake.wait()
            except DatastoreError as exc:
                LOG.warning("%s; retrying in %.1f s", exc, delay)
            finally:
                for cancel in cancels:
                    cancel()
            if time.monotonic() - began > HEALTHY_WATCH:
                delay = BACKOFF_FIRST
            self._stopped.wait(delay)
            delay = min(delay * 2, BACKOFF_MAX)


def read_lines(stream: BinaryIO, events: queue.SimpleQueue[Item]) -> None:
    """ExaBGP's lines into the queue; EOF means ExaBGP is stopping (or gone)."""
    try:
        for raw in iter(stream.readline, b""):
            events.put((LINE, raw.decode("utf-8", "replace")))
    except (OSError, ValueError) as exc:
        events.put((EOF, f"stdin failed: {exc}"))
        return
    events.put((EOF, "stdin closed"))


def _guarded(what: str, call: Callable[[], object]) -> object:
    """The call's result, or None when it raised (logged, never re-raised)."""
    try:
        return call()
    except Exception:  # noqa: BLE001 - a crashed helper loses its learned routes: never crash
        LOG.exception("unexpected error while handling %s", what)
        return None


def loop(
    glue: Glue,
    events: queue.SimpleQueue[Item],
    resync: float = RESYNC_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Handle items until EOF, a signal or ExaBGP's shutdown; returns why it stopped."""
    next_resync = clock() + resync
    while True:
        wait = max(0.0, next_resync - clock())
        if glue.stale:
            wait = min(wait, STALE_CHECK_SECONDS)
        try:
            batch = [events.get(timeout=wait)]
        except queue.Empty:
            batch = [(CHANGED, "resync")] if clock() >= next_resync else []
        while True:
            try:
                batch.append(events.get_nowait())
            except queue.Empty:
                break
        dirty = False
        for kind, text in batch:
            if kind == LINE:
                _guarded("a line from ExaBGP", functools.partial(glue.on_line, text))
            elif kind == CHANGED:
                dirty = True
            else:
                return text or kind
            if glue.stopping:
                return "ExaBGP shuts down"
        _guarded("the BGP status", glue.flush_status)
        _guarded("stale routes", glue.expire_stale)
        if dirty:
            read = _guarded("a datastore change", glue.on_datastore_change)
            # etcd did not answer: try again soon, not at the next slow resync.
            next_resync = clock() + (resync if read else min(resync, RETRY_SECONDS))


class _Context(logging.Filter):
    """Puts lab and host on every record (ours and the libraries')."""

    def __init__(self, lab: str, host: str) -> None:
        super().__init__()
        self.lab, self.host = lab, host

    def filter(self, record: logging.LogRecord) -> bool:
        record.lab, record.host = self.lab, self.host
        return True


def setup_logging(lab: str, host: str, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Context(lab, host))
    handler.setFormatter(logging.Formatter("%(asctime)s bgp-glue lab=%(lab)s host=%(host)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)  # libraries (pyroute2) stay at INFO even with -v
    LOG.setLevel(logging.DEBUG if verbose else logging.INFO)


def _peer(text: str) -> Peer:
    ip, _, kind = text.partition(":")
    return Peer(ip, kind or "mesh")  # type: ignore[arg-type]  # Peer checks the kind


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(text)
    return host, int(port)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agents.bgp.glue", description="ExaBGP API process of one host")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--local-ip", required=True, help="the host's fabric address (router id, next hop)")
    parser.add_argument("--etcd", required=True, type=_endpoint, help="HOST:PORT of the lab's etcd")
    parser.add_argument("--peer", action="append", type=_peer, default=[], help="IP:mesh or IP:global")
    parser.add_argument("--hold-time", type=int, default=9, help="the speaker's hold time (logged)")
    parser.add_argument("--asn", type=int, default=AS_NUMBER)
    parser.add_argument("--resync", type=float, default=RESYNC_SECONDS, help="seconds between full re-lists")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.lab, args.host, args.verbose)
    if not namespaces.is_current(naming.host_netns(args.lab, args.host)):
        LOG.error("refusing to run outside netns %s: the glue belongs to that lab host", naming.host_netns(args.lab, args.host))
        return 2
    from agents.bgp.kernel import NetlinkKernel
    from testbed.datastore.etcd import EtcdDatastore

    events: queue.SimpleQueue[Item] = queue.SimpleQueue()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda num, _frame: events.put((STOP, signal.Signals(num).name)))
    etcd_host, etcd_port = args.etcd
    store = EtcdDatastore.over_tcp(etcd_host, etcd_port, timeout=ETCD_TIMEOUT)
    kernel = NetlinkKernel()
    glue = Glue(store, kernel, sys.stdout, args.host, args.local_ip, args.peer, asn=args.asn)
    LOG.info(
        "starting: %s, peers %s, hold time %d s, etcd %s",
        args.local_ip, " ".join(f"{p.ip}:{p.kind}" for p in args.peer) or "-", args.hold_time, store.endpoint,
    )  # fmt: skip
    threading.Thread(target=read_lines, args=(sys.stdin.buffer, events), name="stdin", daemon=True).start()
    watch = WatchThread(
        store, [keys.affinities_of(args.host), keys.WORKLOAD_ENDPOINTS], lambda: events.put((CHANGED, "etcd"))
    )
    try:
        glue.start()
        watch.start()
        why = loop(glue, events, args.resync)
        LOG.info("stopping: %s", why)
        if why == "ExaBGP shuts down" or why in ("SIGTERM", "SIGINT"):
            from testbed.runtime.supervisor import note_clean_exit  # the speaker stays down

            note_clean_exit(args.lab, f"bgp {args.host}", os.getppid())
    finally:  # ExaBGP sends SIGKILL 2 s after SIGTERM: the kernel routes go first
        glue.stop()
        watch.stop()
        kernel.close()
        store.close()
    return 0
