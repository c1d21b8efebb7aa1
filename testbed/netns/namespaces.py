"""Named network namespaces: create, list, remove, find the processes inside, set sysctls.

The running process never changes its own namespace. A namespace is made as `ip netns
add` makes it, from a short-lived thread (unshare acts per thread), and sysctls are
written from a short-lived thread that joins the target namespace, so the caller's
threads stay where they are. No child process: pyroute2's ``netns.create`` forks one per
namespace, which a kubelet's CNI ADD paid for every pod.
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
MS_BIND, MS_REC, MS_SHARED = 4096, 16384, 1 << 20
MNT_DETACH = 2

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


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _share_folder() -> None:
    """/run/netns a shared mount, as iproute2 leaves it (bind-mounted onto itself first if
    it is not a mount point), so that a namespace mounted there shows in every mount
    namespace that copied it."""
    NETNS_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder = str(NETNS_DIR).encode()
    if _libc.mount(b"none", folder, None, ctypes.c_ulong(MS_SHARED | MS_REC), None) == 0:
        return
    _check(_libc.mount(folder, folder, b"none", ctypes.c_ulong(MS_BIND | MS_REC), None), f"bind {NETNS_DIR}")
    _check(_libc.mount(b"none", folder, None, ctypes.c_ulong(MS_SHARED | MS_REC), None), f"share {NETNS_DIR}")


def create(name: str) -> None:
    """Create a named netns (as `ip netns add`): fails if the name is taken. A thread of
    its own unshares its netns and bind-mounts it on /run/netns/<name>, then ends."""
    if exists(name):
        raise FileExistsError(f"network namespace {name} already exists")
    _share_folder()
    target = path_of(name)
    os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    box: dict[str, BaseException] = {}

    def work() -> None:
        try:
            _check(_libc.unshare(CLONE_NEWNET), f"unshare for netns {name}")
            source = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            _check(_libc.mount(source, str(target).encode(), b"none", ctypes.c_ulong(MS_BIND), None), f"mount netns {name}")
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=work, name=f"netns-create:{name}")
    thread.start()
    thread.join()
    if "error" in box:
        target.unlink(missing_ok=True)
        raise box["error"]


def remove(name: str) -> None:
    """Unmount and delete a named netns; a missing one is not an error."""
    target = path_of(name)
    if target.exists():
        _libc.umount2(str(target).encode(), MNT_DETACH)  # not mounted (a creation that died): just the file
        target.unlink(missing_ok=True)


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
