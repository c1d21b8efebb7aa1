"""One small supervisor per lab: restarts a policy agent or BGP speaker that died.

Calico's node container runs Felix and BIRD under a process supervisor (runit); this is
ours. It runs in the lab's fabric netns (so `down` finds it like any lab process) and
polls the lab's state file: every recorded ``felix <host>`` and ``bgp <host>`` whose
process is gone is started again, unless `testbed fail` recorded that it is down on
purpose (``faults.json``) or stopped cleanly: a process that exits on SIGTERM leaves a
note (``exited/<name>`` holding its PID), and is left down, as systemd's
``Restart=on-failure`` would (a crash, a SIGKILL, leaves no note). The BGP glue alone needs nothing from here: ExaBGP respawns
its API process itself. A restarted agent resyncs from etcd and the kernel without
flushing (the policy agent diffs against what the kernel holds; the glue adopts the
routes it finds).

It imports nothing heavy (no etcd client, no netlink): it wakes a few times a second
for the whole life of the lab.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from testbed import addressing, naming
from testbed.netns import processes
from testbed.runtime import state

LOG = logging.getLogger("testbed.supervisor")
NAME = "supervisor"
POLL_SECONDS = 0.25
BACKOFF_SECONDS = 2.0  # at most one restart of a process per this many seconds
SUPERVISED = ("felix", "bgp")  # one per host: "felix host1"
SUPERVISED_LAB = ("controller-manager", "apiserver")  # one per lab
LOCK_FILE = "lab.lock"
EXITED_DIR = "exited"
# The machine's network namespace, as a descriptor `up` hands the supervisor: the API server
# it restarts listens there (the supervisor itself sits in the lab's fabric netns, and
# /proc/1/ns/net is not readable on every machine). None: this process is in it already.
machine_netns_fd: int | None = None


def supervised(names: Sequence[str]) -> list[str]:
    """The recorded process names the supervisor keeps running (pure): each host's agents,
    not the route reflector (``bgp rr``, BIRD: started another way)."""
    return sorted(
        {n for n in names if n.split(" ", 1)[0] in SUPERVISED and " " in n and n != f"bgp {naming.ROUTE_REFLECTOR}"}
        | {n for n in names if n in SUPERVISED_LAB}
    )


def to_restart(
    names: Sequence[str], alive: set[str], off: set[str], last: dict[str, float], now: float
) -> list[str]:
    """Supervised names with no live process, not failed on purpose or stopped cleanly
    (``off``), not restarted too recently (pure)."""
    return [
        n
        for n in supervised(names)
        if n not in alive and n not in off and now - last.get(n, float("-inf")) >= BACKOFF_SECONDS
    ]


def note_clean_exit(lab: str, name: str, pid: int) -> None:
    """Called by an agent that stops on request: the supervisor leaves process ``pid`` of
    ``name`` down. Never raises (an agent's exit path must not fail on this)."""
    try:
        folder = state.folder(lab) / EXITED_DIR
        folder.mkdir(exist_ok=True)
        (folder / name.replace(" ", "_")).write_text(f"{pid}\n")
    except OSError:
        pass


def exited_cleanly(lab: str, record: state.ProcessRecord) -> bool:
    """Did the recorded process leave a clean-exit note (with its own PID)?"""
    try:
        text = (state.folder(lab) / EXITED_DIR / record.name.replace(" ", "_")).read_text().strip()
    except OSError:
        return False
    return text == str(record.pid)


def router_id(config: str) -> str | None:
    """The ``router-id`` of an ExaBGP config (pure): the host's IP, without asking etcd."""
    found = re.search(r"router-id\s+([0-9.]+);", config)
    return found.group(1) if found else None


@contextmanager
def locked(lab: str) -> Iterator[None]:
    """Serialise the supervisor's and `testbed fail|heal`'s edits of the lab's state file."""
    with open(state.folder(lab) / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def restart(lab: str, name: str) -> int:
    """Start the recorded process ``name`` (``felix H``, ``bgp H`` or ``etcd``) again,
    replacing its dead records; returns the new PID. RuntimeError if it is running."""
    with locked(lab):
        recorded = state.load(lab)
        if recorded is None:
            raise RuntimeError(f"no lab named {lab!r} is up")
        if any(p.name == name and processes.is_ours(p.pid, p.start_time) for p in recorded.processes):
            raise RuntimeError(f"{name} of lab {lab!r} is already running")
        recorded.processes = [p for p in recorded.processes if p.name != name]
        kind, _, host = name.partition(" ")
        if kind == "felix":
            return _felix(lab, host, recorded)
        if kind == "bgp":
            return _bgp(lab, host, recorded)
        if kind == "etcd":
            return _etcd(lab, recorded)
        if name == "apiserver":
            from testbed.runtime import apiserver

            return apiserver.restart(lab, recorded, machine_netns_fd)
        if kind in SUPERVISED_LAB:
            from testbed.runtime import control_plane

            return control_plane.start_manager(lab, recorded)
        raise RuntimeError(f"{name!r} is not a process the supervisor can start")


def _felix(lab: str, host: str, recorded: state.LabState) -> int:
    from testbed.runtime.policy_agents import start_agent

    return start_agent(lab, host, recorded)


def _bgp(lab: str, host: str, recorded: state.LabState) -> int:
    from testbed.runtime import speakers

    config = state.folder(lab) / speakers.BGP_DIR / f"exabgp-{host}.conf"
    ip = router_id(config.read_text()) if config.exists() else None
    if ip is None:
        raise RuntimeError(f"host {host} has no BGP speaker config ({config})")
    return speakers.spawn_speaker(lab, host, ip, recorded)


def _etcd(lab: str, recorded: state.LabState) -> int:
    """etcd on the same data dir: every key, and the revision, as they were."""
    from testbed.runtime import etcd_server

    folder = state.folder(lab)
    etcd_server.clear_stale_socket(folder)
    argv = etcd_server.etcd_command(etcd_server.data_dir(folder), str(addressing.FABRIC_GATEWAY))
    proc = processes.spawn(naming.fabric_netns(lab), argv, etcd_server.log_path(folder), cwd=folder)
    state.record_process(recorded, "etcd", naming.fabric_netns(lab), proc.pid)
    etcd_server.wait_healthy(etcd_server.socket_path(folder), 10.0, log=etcd_server.log_path(folder), process=proc)
    return proc.pid


def ensure(lab: str, lab_state: state.LabState) -> int | None:
    """Start the lab's supervisor unless one runs; its PID (None if one ran already)."""
    if any(p.name == NAME and processes.is_ours(p.pid, p.start_time) for p in lab_state.processes):
        return None
    netns = naming.fabric_netns(lab)
    machine = os.open("/proc/self/ns/net", os.O_RDONLY)  # this process's netns: the machine's (`up`, `heal`)
    try:
        argv = [sys.executable, "-m", "testbed.runtime.supervisor", "--lab", lab, "--machine-netns-fd", str(machine)]
        # In the machine's mount namespace: the host agents it restarts inherit it, and their
        # kubelets' pod netns must be visible to every process (see processes.spawn).
        proc = processes.spawn(netns, argv, state.folder(lab) / "logs" / "supervisor.log", machine_mounts=True,
                               pass_fds=(machine,))  # fmt: skip
    finally:
        os.close(machine)
    state.record_process(lab_state, NAME, netns, proc.pid)
    return proc.pid


def tick(lab: str, last: dict[str, float], now: float) -> bool:
    """One look at the lab; False once the lab is gone."""
    from testbed import faults

    recorded = state.load(lab)
    if recorded is None:
        return False
    if recorded.phase != "up":
        return True  # `up` is still writing the state file: not ours to touch yet
    names = [p.name for p in recorded.processes]
    alive = {p.name for p in recorded.processes if processes.is_ours(p.pid, p.start_time)}
    off = faults.supervised_off(faults.load(lab))
    latest = {p.name: p for p in recorded.processes}  # the last record of each name
    off |= {n for n in supervised(names) if n not in alive and exited_cleanly(lab, latest[n])}
    for name in to_restart(names, alive, off, last, now):
        last[name] = now
        try:
            pid = restart(lab, name)
        except Exception as exc:  # noqa: BLE001 - log, retry after the backoff
            LOG.error("cannot restart %s: %s", name, exc)
            continue
        LOG.info("%s had died: restarted as pid %d", name, pid)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testbed.runtime.supervisor", description=__doc__)
    parser.add_argument("--lab", required=True)
    parser.add_argument("--machine-netns-fd", type=int, help="the machine's netns, open (from `up`)")
    args = parser.parse_args(argv)
    global machine_netns_fd  # noqa: PLW0603 - one per process, set once before the loop
    machine_netns_fd = args.machine_netns_fd
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format=f"%(asctime)s supervisor lab={args.lab} %(levelname)s %(message)s"
    )
    if not Path(state.folder(args.lab)).exists():
        LOG.error("no lab named %s", args.lab)
        return 2
    last: dict[str, float] = {}
    while tick(args.lab, last, time.monotonic()):
        _reap()
        time.sleep(POLL_SECONDS)
    return 0


def _reap() -> None:
    """Collect the processes this supervisor started and that exited (no zombies)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == "__main__":
    sys.exit(main())
