"""Named network namespaces: create, list, remove, find the processes inside, set sysctls.

The running process never changes its own namespace. Namespaces are created by
pyroute2 (in a child process); sysctls are written from a short-lived thread that
joins the target namespace, so the caller's threads stay where they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar


NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000

T = TypeVar("T")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def path_of(name: str) -> Path:
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return path_of(name).exists()


def is_netns(name: str) -> bool:
    """Is /run/netns/<name> a mounted netns (not an empty file left by a creation that died
    half-way, which no process can enter)?"""
    try:
        return os.stat(path_of(name)).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def create(name: str) -> None:
    """Create a named netns (as `ip netns add`): fails if the name is taken."""
    if exists(name):
        raise FileExistsError(f"network namespace {name} already exists")
    from pyroute2 import netns  # here: processes that only check where they are skip its import

    netns.create(name)


def remove(name: str) -> None:
    """Unmount and delete a named netns; a missing one is not an error."""
    if exists(name):
        from pyroute2 import netns

        netns.remove(name)


def is_current(name: str) -> bool:
    """True when the calling process lives in netns ``name`` (agents check this before they
    touch routes or reach for the lab's etcd: from elsewhere, 172.18.203.1 is not the lab)."""
    try:
        here, there = os.stat("/proc/self/ns/net"), os.stat(path_of(name))
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def names_with_prefix(prefix: str) -> list[str]:
    """Named namespaces whose name starts with ``prefix``, sorted."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def pids_by_netns(names: Iterable[str]) -> dict[str, list[int]]:
    """The processes living in each of the given named namespaces (as `ip netns pids`)."""
    wanted: dict[tuple[int, int], str] = {}
    for name in names:
        try:
            st = os.stat(path_of(name))
        except FileNotFoundError:
            continue
        wanted[(st.st_dev, st.st_ino)] = name
    result: dict[str, list[int]] = {name: [] for name in wanted.values()}
    if not wanted:
        return result
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        owner = wanted.get((st.st_dev, st.st_ino))
        if owner is not None:
            result[owner].append(int(entry))
    return result


def run_inside(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that has joined netns ``name``; return its result.

    Only that thread changes namespace (setns acts per thread), and it ends afterwards.
    Use it for what has no netlink API: /proc/sys writes, sockets bound to a namespace.
    """
    box: dict[str, object] = {}

    def work() -> None:
        try:
            fd = os.open(path_of(name), os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {name}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["result"] = fn()
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=work, name=f"netns:{name}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]


def sysctl_path(key: str) -> Path:
    """/proc/sys path of a dotted sysctl key; interface names with dots are not used here."""
    return Path("/proc/sys") / key.replace(".", "/")


def write_sysctls(name: str, values: Mapping[str, str | int]) -> None:
    """Set sysctls inside netns ``name`` (keys as in `sysctl`, e.g. net.ipv4.ip_forward)."""

    def write() -> None:
        for key, value in values.items():
            sysctl_path(key).write_text(f"{value}\n")

    run_inside(name, write)
