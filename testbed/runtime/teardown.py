"""`testbed down`: remove exactly one lab, whatever state it was left in.

Everything is found again from names: the lab's state folder and every netns whose
name starts with ``<lab>.``. Processes are stopped by PID: those the state file
recorded (checked against their start time, so a recycled PID is left alone) and any
process still living inside one of the lab's namespaces. Veths and the bridge live
only inside the lab's namespaces and go with them. Safe to run twice, and after a
`kill -9` of `testbed up` at any point.
"""

from __future__ import annotations

from dataclasses import dataclass

from testbed import naming
from testbed.netns import etc_files, namespaces, processes
from testbed.runtime import state

MAX_KILL_ROUNDS = 5  # scans for processes started while the others were being killed


@dataclass(frozen=True)
class TeardownReport:
    lab: str
    namespaces: int
    processes: int
    found: bool  # anything of the lab existed


def lab_namespaces(lab: str) -> list[str]:
    return namespaces.names_with_prefix(naming.netns_prefix(lab))


def _recorded_pids(lab: str) -> list[int]:
    recorded = state.load(lab)
    if recorded is None:
        return []
    return [p.pid for p in recorded.processes if processes.is_ours(p.pid, p.start_time)]


def teardown(lab: str) -> TeardownReport:
    """Stop the lab's processes, delete its namespaces (pods, hosts, fabric), drop its folder."""
    names = lab_namespaces(lab)
    had_folder = state.folder(lab).exists()
    pids = set(_recorded_pids(lab))
    for found in namespaces.pids_by_netns(names).values():
        pids.update(found)
    # The lab is going away: nothing to shut down gracefully. Freeze everything first, so
    # that nothing respawns what is being killed, then kill; a process started meanwhile
    # (before its parent froze) shows up in the next scan of the lab's namespaces.
    # Each round lists the lab's namespaces again: a host's kubelet may have made a pod
    # netns (and started a program there) after the first listing.
    batch = set(pids)
    for _ in range(MAX_KILL_ROUNDS):
        processes.freeze(batch)
        processes.kill(batch)
        names = lab_namespaces(lab)
        batch = {pid for found in namespaces.pids_by_netns(names).values() for pid in found}
        if not batch:
            break
        pids.update(batch)
    # Workloads first, then hosts, then the fabric: the order they were built in, reversed.
    for name in sorted(names, key=lambda n: (-n.count("."), n)):
        namespaces.remove(name)
    # By prefix, not by the names above: a folder whose netns is already gone (a `down`
    # killed between the two) is the lab's too.
    etc_files.remove_with_prefix(naming.netns_prefix(lab))
    state.release(lab)
    return TeardownReport(lab=lab, namespaces=len(names), processes=len(pids), found=had_folder or bool(names))
