"""The setup half of a pod's pause process: stdlib only, run two ways.

- as a program: ``ip netns exec POD-NETNS python -I -S sandbox_init.py PLAN-JSON`` (the
  ``exec`` method of ``testbed.netns.sandbox``; ``-I -S``: no site, no PYTHONPATH, ~17 ms);
- forked (the ``fork`` method, the default): ``testbed.netns.sandbox`` forks its own
  process and the child calls ``forked``, which first does what ``ip netns exec`` does
  (``join_netns``, ``netns_mounts``). The child of a multi-threaded process: it only
  makes syscalls, runs this module's code (already imported) and exits or execs.

What it does:

1. unshare the UTS, IPC, mount and PID namespaces; make every mount private;
2. fork: the child is PID 1 of the new PID namespace. It carries out the plan's steps
   (a /proc for its PID namespace, the hostname, tmpfs and bind mounts, the read-only
   pass), tells the parent it is ready, then execs the pause (a shell that waits
   forever, reaps orphans, and exits on SIGTERM);
3. the parent reports the child's PID (as the machine sees it), or, if the child failed,
   its error: as a program on stdout / stderr (exit 0 / 1), forked on a pipe.

The plan is data made by ``testbed.netns.sandbox.setup_plan``; this file only executes
it, step by step, failing at the first error.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
ST_RDONLY = 1
NETNS_RUN = "/run/netns"
NETNS_ETC = "/etc/netns"
MNT_DETACH = 2
MAX_FD = 1 << 20
FLAGS = {
    "ro": 1,  # MS_RDONLY
    "nosuid": 2,
    "nodev": 4,
    "noexec": 8,
    "remount": 32,
    "bind": 4096,
    "move": 8192,
    "rec": 16384,
    "private": 1 << 18,
    "slave": 1 << 19,
}

_libc = ctypes.CDLL(None, use_errno=True)


class StepError(Exception):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise StepError(f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: list[str], data: str | None) -> None:
    value = 0
    for name in flags:
        value |= FLAGS[name]
    enc = (lambda s: None if s is None else s.encode())
    _check(
        _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(value), enc(data)),
        f"mount {fstype or source or ''} on {target} ({','.join(flags)})",
    )


def _unescape(field: str) -> str:
    """A mountinfo field with its octal escapes (\\040 for a space...) decoded."""
    parts = field.split("\\")
    out = [parts[0]]
    for part in parts[1:]:
        out.append(chr(int(part[:3], 8)) + part[3:])
    return "".join(out)


def mount_points() -> list[tuple[str, str, set[str]]]:
    """(mount point, filesystem type, per-mount options) of every mount, in mount order."""
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields = left.split()
            point = _unescape(fields[4])
            found.append((point, right.split()[0], set(fields[5].split(","))))
    return found


def detach_nsfs() -> None:
    """Detach every mount of a namespace file (/run/netns/*): our private copy of them
    would keep every other netns alive, and its veths with it, as long as the pod lives.

    /run/netns is itself a mount point (`ip netns add` makes it one): detached at once
    with everything under it. One umount, not one per netns: each umount waits for an
    expedited RCU grace period, so one per netns made a lab's pods cost O(pods²) (500
    pods: 250 umounts per sandbox on average, the machine's CPU mostly in the kernel).
    The files stay on the folder below, empty: `ip netns exec` finds no netns there."""
    if any(point == NETNS_RUN for point, _fstype, _ in mount_points()):
        _check(_libc.umount2(NETNS_RUN.encode(), MNT_DETACH), f"detach {NETNS_RUN}")
    for point, fstype, _ in reversed(mount_points()):  # any left elsewhere
        if fstype == "nsfs":
            _check(_libc.umount2(point.encode(), MNT_DETACH), f"detach {point}")


def readonly_except(writable: list[str]) -> None:
    """Every visible mount read-only, but for ``writable`` (and the bind-mounted device nodes,
    which stay usable read-only)."""
    keep = set(writable)
    done: set[str] = set()
    for point, _fstype, options in mount_points():
        if point in keep or point in done or "ro" in options or not os.path.exists(point):
            continue
        flags = ["remount", "bind", "ro", *(o for o in ("nosuid", "nodev", "noexec") if o in options)]
        mount(None, point, None, flags, None)
        done.add(point)


HELD: dict[str, int] = {}  # path -> an O_PATH descriptor of it, taken before a mount covers it


def run_step(step: list) -> None:
    kind, args = step[0], step[1:]
    if kind == "mount":
        mount(*args)
    elif kind == "hold":  # a folder about to be covered (by the pod's /tmp), to bind back later
        HELD[args[0]] = os.open(args[0], os.O_PATH | os.O_DIRECTORY)
    elif kind == "bind_held":  # the held folder at its own path again, read-only
        source = f"/proc/self/fd/{HELD.pop(args[0])}"
        mount(source, args[0], None, ["bind"], None)
        mount(None, args[0], None, ["remount", "bind", "ro", "nosuid", "nodev"], None)
    elif kind == "mkdir":
        path, mode = args
        if not os.path.isdir(path):
            os.makedirs(path, mode)
    elif kind == "touch":
        os.close(os.open(args[0], os.O_CREAT | os.O_WRONLY, 0o600))
    elif kind == "symlink":
        os.symlink(args[0], args[1])
    elif kind == "rmdir":
        os.rmdir(args[0])
    elif kind == "unlink":
        os.unlink(args[0])
    elif kind == "hostname":
        name = args[0].encode()
        _check(_libc.sethostname(name, len(name)), f"sethostname {args[0]}")
    elif kind == "hide":
        if os.path.isdir(args[0]):
            mount("tmpfs", args[0], "tmpfs", ["nosuid", "nodev", "noexec"], "mode=755,size=64k")
    elif kind == "detach_nsfs":
        detach_nsfs()
    elif kind == "readonly_except":
        readonly_except(args[0])
    else:
        raise StepError(f"unknown step {kind!r}")


def join_netns(netns: str) -> None:
    """Enter the pod's netns (the first thing ``ip netns exec`` does)."""
    fd = os.open(f"{NETNS_RUN}/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {netns}")
    finally:
        os.close(fd)


def netns_mounts(netns: str) -> list[str]:
    """What ``ip netns exec`` mounts once in the netns, in a mount namespace of its own: a
    /sys of the netns, and /etc/netns/<netns>/<file> over /etc/<file> (resolv.conf,
    hosts, hostname). Like it, a failed bind is only reported (returned), not fatal."""
    flags: list[str] = []
    if _libc.umount2(b"/sys", MNT_DETACH) != 0:  # no sysfs there: mount one; a read-only one stays read-only
        try:
            if os.statvfs("/sys").f_flag & ST_RDONLY:
                flags = ["ro"]
        except OSError:
            pass
    mount(netns, "/sys", "sysfs", flags, None)
    warnings = []
    folder = f"{NETNS_ETC}/{netns}"
    try:
        names = os.listdir(folder)
    except OSError:
        names = []
    for name in names:
        try:
            mount(f"{folder}/{name}", f"/etc/{name}", "none", ["bind"], None)
        except StepError as exc:
            warnings.append(f"Bind {folder}/{name} -> /etc/{name} failed: {exc}")
    return warnings


def child(plan: dict, ready: int) -> None:
    """PID 1 of the pod: set up, say so, become the pause."""
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):  # the parent's stdout carries only its PID line; errors go by ``ready``
        os.dup2(devnull, fd)
    for step in plan["steps"]:
        try:
            run_step(step)
        except (OSError, StepError) as exc:
            os.write(ready, f"sandbox {plan['name']}: {exc}".encode())
            os._exit(1)
    os.write(ready, b"ok")
    os.closerange(3, ready)  # the pause keeps only 0, 1, 2 (and ``ready`` closes on exec)
    os.closerange(ready + 1, MAX_FD)
    os.execve(plan["pause"][0], plan["pause"], plan["env"])


def start(plan: dict, join: bool = False) -> tuple[int, list[str]]:
    """Steps 1 and 2 (``join``: first what ``ip netns exec`` does): the pause's PID once it
    is set up, and the warnings of ``netns_mounts``; StepError if it failed."""
    if join:
        join_netns(plan["netns"])
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID), "unshare")
    mount(None, "/", None, ["rec", "private"], None)
    warnings = netns_mounts(plan["netns"]) if join else []
    read, write = os.pipe()  # not inherited across exec: it closes when the pause starts
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            child(plan, write)
        finally:
            os._exit(1)
    os.close(write)
    answer = b""
    while chunk := os.read(read, 4096):
        answer += chunk
    os.close(read)
    if answer != b"ok":
        os.waitpid(pid, 0)
        raise StepError(answer.decode(errors="replace") or f"sandbox {plan['name']}: setup died")
    return pid, warnings


def forked(plan: dict, out: int) -> None:
    """The child of ``os.fork()`` in testbed's own process: ``start`` with ``join``, then
    report on ``out`` ("warn ...", then "pid N" or "error ..." lines) and exit. Never returns."""
    gc.disable()  # no finalizer of the parent's objects runs here
    code, lines = 1, []
    try:
        os.setsid()
        pid, warnings = start(plan, join=True)
        lines = [f"warn {w}" for w in warnings] + [f"pid {pid}"]
        code = 0
    except StepError as exc:
        lines = [f"error {exc}"]
    except BaseException as exc:  # noqa: BLE001 - anything, but never back into the parent's code
        lines = [f"error sandbox {plan.get('name')}: {exc}"]
    try:
        os.write(out, "".join(line.replace("\n", " ") + "\n" for line in lines).encode(errors="replace"))
    finally:
        os._exit(code)


def main() -> int:
    plan = json.loads(sys.argv[1])
    try:
        pid, _ = start(plan)
    except StepError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
