"""Processes inside a lab's namespaces: start them as daemons, stop them by PID.

Daemons start with `ip netns exec NS argv...`: it execs, so the PID we get is the
daemon's own. Each runs in a new session, its output in a log file. Processes are
only ever stopped by PID (recorded at spawn, or found living in the lab's netns),
never by name pattern.

`ip netns exec` also gives the process a mount namespace of its own, a *slave* of the
machine's: it bind-mounts /etc/netns/NS/* over /etc (a pod's resolv.conf) and mounts a
/sys of NS. Mounts made inside never reach the machine, and pyroute2 makes a named
netns by bind-mounting it on /run/netns/<name>: one created from there is an empty file
to every other process (`ip netns exec` of it fails with "Invalid argument"). A process
that creates namespaces (the host agent, whose kubelet makes pod netns) starts with
``machine_mounts``: `nsenter --net=/run/netns/NS`, which joins the netns only (it execs
too), so the process keeps its spawner's mount namespace; whoever spawns such a process
(the lab's supervisor restarts agents) must have started that way too. It then sees the
machine's /sys, not NS's; nothing of ours reads /sys (interfaces and sysctls go through
netlink and /proc/sys, which follow the netns).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

IP = "ip"
NSENTER = "nsenter"
NETNS_DIR = Path("/run/netns")


def netns_exec_argv(netns: str, argv: Sequence[str]) -> list[str]:
    return [IP, "netns", "exec", netns, *argv]


def nsenter_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """``argv`` in netns ``netns`` and nothing else: the machine's mount namespace."""
    return [NSENTER, f"--net={NETNS_DIR / netns}", "--", *argv]


def spawn(
    netns: str,
    argv: Sequence[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    machine_mounts: bool = False,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a daemon inside ``netns``; stdout and stderr go to ``log``.
    ``machine_mounts``: keep the machine's mount namespace (see the module docstring).
    ``pass_fds``: descriptors the daemon inherits (the rest are closed)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    wrapped = nsenter_argv(netns, argv) if machine_mounts else netns_exec_argv(netns, argv)
    with open(log, "ab") as out:
        return subprocess.Popen(
            wrapped,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )


def start_time(pid: int) -> int | None:
    """The kernel's start time of a process (clock ticks since boot), to tell PIDs apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may hold spaces and parentheses: fields start after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


PF_EXITING = 0x4  # the kernel's task flag: the process is on its way out


def is_exiting(pid: int) -> bool:
    """Killed and on its way out, but not yet gone: e.g. the pause of a pod's PID namespace,
    whose exit waits until every task of its namespace has been reaped by its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return bool(int(stat[stat.rindex(")") + 2 :].split()[6]) & PF_EXITING)


def is_ours(pid: int, recorded_start: int | None) -> bool:
    """A recorded process still running as itself: alive, and not a recycled PID."""
    return recorded_start is not None and start_time(pid) == recorded_start and is_alive(pid)


def stop(pids: Iterable[int], timeout: float = 3.0) -> None:
    """SIGTERM each process, wait up to ``timeout``, then SIGKILL what is left; reap children."""
    targets = [p for p in set(pids) if p > 1 and p != os.getpid()]
    for pid in targets:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(targets)
        if not any(is_alive(p) for p in targets):
            return
        time.sleep(0.02)
    for pid in targets:
        if is_alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(is_alive(p) for p in targets):
        _reap(targets)
        time.sleep(0.02)


def freeze(pids: Iterable[int]) -> None:
    """SIGSTOP each process: a frozen process cannot start another (ExaBGP respawning its
    glue, the supervisor restarting an agent) while the others are being killed."""
    for pid in set(pids):
        if pid > 1 and pid != os.getpid():
            _signal(pid, signal.SIGSTOP)


def kill(pids: Iterable[int], timeout: float = 2.0) -> None:
    """SIGKILL each process and wait until it is gone (or a zombie); reap our children."""
    targets = [p for p in set(pids) if p > 1 and p != os.getpid()]
    for pid in targets:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_alive(p) and not is_exiting(p) for p in targets):
        _reap(targets)
        time.sleep(0.01)
    _reap(targets)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pids: Iterable[int]) -> None:
    """Collect the exit status of our own children so they do not linger as zombies."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
