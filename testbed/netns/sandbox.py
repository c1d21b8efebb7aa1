"""Pods as sandboxes, as a container runtime makes them: a pause process and containers.

Besides its netns, each pod gets a **pause** process (Kubernetes' "pause container"):
PID 1 of the pod's own PID namespace, holding its UTS (hostname = the pod's name), IPC and
mount namespaces. It is ``/bin/sh`` (dash) waiting on a ``sleep``: it reaps orphans and
exits on SIGTERM; when it dies, the kernel kills every process of the pod. It is made by
``sandbox_init`` (per pod: forked from the caller, ~2 ms, then gone; or, the ``exec``
method, run as a fresh interpreter by ``ip netns exec``, ~25 ms), which sets up the mounts
below and execs it. **Containers** join the pause's namespaces (``nsenter``), then ``setpriv``
drops to the container's uid, gid and capabilities (``testbed.netns.security``) and execs
the program.

What a pod can see of the machine's files (its mount namespace, made from the one
``ip netns exec`` gives, all mounts private):

- read-write: its own /tmp (a tmpfs, ``TMP_SIZE``, empty at start, gone with the pod);
  its folder ``/run/testbed/<lab>/pods/<ns>.<pod>/``, bind-mounted at the same path
  (nginx's config, pid and logs are there); /dev/shm (a tmpfs of its own) and /dev/pts
  (a devpts instance of its own). /tmp, the folder and /dev/shm are nosuid and nodev.
- its own: /etc/hostname, /etc/hosts (localhost and ``<pod IP> <pod name>``, as the
  kubelet writes it) and /etc/resolv.conf (cluster DNS): files under /etc/netns/<netns>/
  that ``ip netns exec`` bind-mounts, read-only; /proc of its PID namespace (only its own
  processes), read-only; /sys of its netns (``ip netns exec`` mounts it), read-only;
  /dev: null, zero, full, random, urandom, tty, pts, shm, ptmx and the fd links only.
- hidden: /run/testbed (every lab's state, etcd sockets; an empty read-only tmpfs, with
  only the pod's folder in it), /run/netns (a read-only tmpfs with only the pod's own
  netns file in it, so that a program can tell where it runs, as the cluster DNS does;
  the machine's namespace files are detached first, so that the pod keeps no other netns
  alive; without CAP_SYS_ADMIN no namespace can be entered anyway), and
  the machine's /tmp, /dev and /dev/shm (covered by the pod's own).
- read-only: everything else of the machine's filesystem (/, /usr, /etc, /root, the
  project's checkout and .venv, from which the python images run). Root in a pod holds
  CAP_DAC_OVERRIDE, as in a container, so it can read any of those files.

An image that reads the lab's etcd (the cluster DNS, the stars UI: ``sees_lab``) gets
its lab's state folder /run/testbed/<lab>/ bind-mounted read-only, its etcd socket
included, as kube-dns reads the API server; never another lab's.

Pure: ``setup_plan``, ``hosts_file``, ``pause_argv``, ``container_argv``, ``exec_argv``.
Thin spawners: ``launch_sandbox`` (then ``Launch.wait`` for the pause's PID), ``start_container``, ``find``, ``container_pids``,
``stop``, ``terminate``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testbed.netns import etc_files, namespaces, processes, sandbox_init
from testbed.netns.security import DEFAULT, Security, setpriv_argv

INIT = Path(__file__).with_name("sandbox_init.py")
NSENTER = "nsenter"
ENV = "env"
PAUSE_SLEEP = "2147483647"
# PID 1 of a pod: reaps orphans, exits on SIGTERM. Its $0 follows: "pause <netns>", which
# ps shows, so that a lab's pauses carry the lab's name.
PAUSE = ("/bin/sh", "-c", f"trap 'exit 0' TERM; while :; do sleep {PAUSE_SLEEP} & wait $!; done")
STATE_ROOT = Path("/run/testbed")
NETNS_DIR = Path("/run/netns")
TMP_SIZE = "64m"
STAGE = "/tmp/.sandbox"  # inside the pod's fresh /tmp, while the mounts are made; removed after
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
START_TIMEOUT = 10.0
DEFAULT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# How a sandbox is made: "fork" (from the calling process, sandbox_init.forked) or "exec"
# (ip netns exec + a fresh interpreter running sandbox_init.py); the same steps either way.
METHODS = ("fork", "exec")
METHOD = "fork"
CLONE_NEWPID = 0x20000000
# Namespaces a container and an exec join (the net one is the pod's netns, as the pause's).
JOINED = ("--uts", "--ipc", "--net", "--mount")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class SandboxError(RuntimeError):
    """A sandbox that could not be made or entered: one line naming the pod."""


@dataclass(frozen=True)
class SandboxPlan:
    """What one pod's mount, UTS and PID namespaces hold."""

    name: str  # <lab>: <ns>/<pod>, for messages
    netns: str
    hostname: str
    folder: Path  # the pod's own folder, read-write at the same path
    hidden: tuple[Path, ...] = (STATE_ROOT, NETNS_DIR)  # empty tmpfs over each that exists
    read_only: tuple[Path, ...] = ()  # machine folders shown read-only at the same path (under hidden ones)
    tmp_size: str = TMP_SIZE
    software: tuple[Path, ...] = field(default_factory=lambda: software_under_tmp())  # kept visible (see there)

    @property
    def writable(self) -> tuple[str, ...]:
        """What stays read-write after the read-only pass."""
        return ("/tmp", "/dev/shm", "/dev/pts", str(self.folder))


def hosts_file(pod: str, ip: str) -> str:
    """The pod's /etc/hosts as the kubelet writes it."""
    return (
        "# Kubernetes-managed hosts file.\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n"
        f"{ip}\t{pod}\n"
    )


def software_under_tmp(paths: Sequence[Path] | None = None) -> tuple[Path, ...]:
    """The folders pods' programs run from (this checkout, its virtual environment) that lie
    under /tmp, which each pod gets fresh: a clone in /tmp would otherwise leave every pod
    that runs one of the project's programs without its Python (pure, given ``paths``)."""
    if paths is None:
        paths = [Path(__file__).resolve().parents[2], Path(sys.prefix).resolve()]
    tmp = Path("/tmp")
    return tuple(dict.fromkeys(p for p in paths if tmp in p.parents))


def _bind(source: str, target: str, *flags: str) -> list[list[object]]:
    """A bind mount, then the remount that gives it its flags (a bind takes none itself)."""
    return [
        ["mount", source, target, None, ["bind"], None],
        ["mount", None, target, None, ["remount", "bind", *flags], None],
    ]


def setup_plan(plan: SandboxPlan) -> list[list[object]]:
    """The steps sandbox_init.py runs as PID 1 of the pod, in order (pure).

    The pod's folder, the read-only folders and the new /dev are first mounted under the
    fresh /tmp (still reachable there once /run/testbed is covered), then moved into place.
    """
    folder = str(plan.folder)
    nosuid = ["nosuid", "nodev", "noexec"]
    steps: list[list[object]] = [
        ["mount", "proc", "/proc", "proc", nosuid, None],
        ["hostname", plan.hostname],
        ["detach_nsfs"],
        *(["hold", str(path)] for path in plan.software),
        ["mount", "tmpfs", "/tmp", "tmpfs", ["nosuid", "nodev"], f"mode=1777,size={plan.tmp_size}"],
        ["mkdir", STAGE, 0o700],
        ["mkdir", f"{STAGE}/pod", 0o755],
        *_bind(folder, f"{STAGE}/pod", "nosuid", "nodev"),
    ]
    for i, path in enumerate(plan.read_only):
        steps += [["mkdir", f"{STAGE}/ro{i}", 0o755], *_bind(str(path), f"{STAGE}/ro{i}", "ro", "nosuid", "nodev")]
    dev = f"{STAGE}/dev"
    steps += [
        ["mkdir", dev, 0o755],
        ["mount", "tmpfs", dev, "tmpfs", ["nosuid", "noexec"], "mode=755,size=64k"],
    ]
    for name in DEVICES:
        steps += [["touch", f"{dev}/{name}"], ["mount", f"/dev/{name}", f"{dev}/{name}", None, ["bind"], None]]
    steps += [
        ["mkdir", f"{dev}/pts", 0o755],
        ["mkdir", f"{dev}/shm", 0o1777],
        ["mount", "devpts", f"{dev}/pts", "devpts", ["nosuid", "noexec"], "newinstance,ptmxmode=0666,mode=620"],
        ["mount", "tmpfs", f"{dev}/shm", "tmpfs", nosuid, "mode=1777,size=64m"],
        ["symlink", "pts/ptmx", f"{dev}/ptmx"],
        ["symlink", "/proc/self/fd", f"{dev}/fd"],
        ["symlink", "/proc/self/fd/0", f"{dev}/stdin"],
        ["symlink", "/proc/self/fd/1", f"{dev}/stdout"],
        ["symlink", "/proc/self/fd/2", f"{dev}/stderr"],
    ]
    own_netns = NETNS_DIR in plan.hidden  # then only its own netns file shows there (the cluster DNS checks it)
    if own_netns:
        steps += [["touch", f"{STAGE}/netns"], ["mount", "/proc/self/ns/net", f"{STAGE}/netns", None, ["bind"], None]]
    steps += [["hide", str(path)] for path in plan.hidden]
    if own_netns:
        target = str(NETNS_DIR / plan.netns)
        steps += [["touch", target], ["mount", f"{STAGE}/netns", target, None, ["move"], None], ["unlink", f"{STAGE}/netns"]]
    for i, path in enumerate(plan.read_only):
        steps += [["mkdir", str(path), 0o755], ["mount", f"{STAGE}/ro{i}", str(path), None, ["move"], None]]
    steps += [
        ["mkdir", folder, 0o755],
        ["mount", f"{STAGE}/pod", folder, None, ["move"], None],
        ["mount", dev, "/dev", None, ["move"], None],
    ]
    for path in plan.software:
        steps += [["mkdir", str(path), 0o755], ["bind_held", str(path)]]
    steps += [["rmdir", f"{STAGE}/ro{i}"] for i in range(len(plan.read_only))]
    steps += [["rmdir", f"{STAGE}/pod"], ["rmdir", dev], ["rmdir", STAGE]]
    steps.append(["readonly_except", list(plan.writable)])
    return steps


def init_plan(plan: SandboxPlan) -> dict[str, object]:
    """What sandbox_init.py is given (JSON on its command line)."""
    return {
        "name": plan.name,
        "netns": plan.netns,
        "steps": setup_plan(plan),
        "pause": [*PAUSE, f"pause {plan.netns}"],
        "env": {"PATH": os.environ.get("PATH", DEFAULT_PATH)},  # the pause's whole environment
    }


def pause_argv(netns: str, plan: SandboxPlan, python: str = sys.executable) -> list[str]:
    """argv that makes the pod's sandbox and prints the pause's PID (pure)."""
    return processes.netns_exec_argv(netns, [python, "-I", "-S", str(INIT), json.dumps(init_plan(plan))])


def container_argv(
    sandbox_pid: int, argv: Sequence[str], security: Security = DEFAULT, cwd: str = "/"
) -> list[str]:
    """nsenter (all the pod's namespaces but PID, which the spawner sets) -> setpriv -> program.

    No fork on the way: the PID that starts is the program's. nsenter --mount leaves the
    process in the pod's /; a cwd other than / is entered by ``env -C`` once inside
    (nsenter's own --wd would open the directory in the machine's mount namespace).
    """
    chdir = [] if cwd == "/" else [ENV, "-C", cwd]
    return [NSENTER, f"--target={sandbox_pid}", *JOINED, "--", *setpriv_argv(security), *chdir, *argv]


def exec_argv(sandbox_pid: int, argv: Sequence[str], security: Security = DEFAULT, cwd: str = "/") -> list[str]:
    """A command in the pod, in the foreground (kubectl exec): nsenter also enters the PID
    namespace, so it forks once and waits, passing on the exit status."""
    chdir = [] if cwd == "/" else [ENV, "-C", cwd]
    return [NSENTER, f"--target={sandbox_pid}", *JOINED, "--pid", "--", *setpriv_argv(security), *chdir, *argv]


# --- spawners -----------------------------------------------------------------------


def write_etc_files(netns: str, pod: str, ip: str) -> None:
    """/etc/hostname and /etc/hosts of the pod, beside its resolv.conf (build_pod writes it)."""
    etc_files.write(netns, "hostname", f"{pod}\n")
    etc_files.write(netns, "hosts", hosts_file(pod, ip))


@dataclass
class Launch:
    """A sandbox being made (its setup runs in the background): ``wait()`` for its pause.

    Either ``proc`` (the exec method: its stdout is the PID, its stderr the errors) or
    ``child`` and ``fd`` (the fork method: the forked child and the read end of its pipe)."""

    pod: str  # <ns>/<pod>
    proc: subprocess.Popen[bytes] | None
    log: Path | None
    record: Path | None = None  # where the pause's PID is noted for ``find``
    started: float = field(default_factory=time.monotonic)
    pid: int | None = None
    child: int | None = None
    fd: int | None = None

    def wait(self) -> int:
        """The pause's PID once the sandbox is ready; SandboxError (one line) if it failed."""
        if self.pid is not None:
            return self.pid
        code, out, errors = self._collect() if self.proc is not None else self._collect_forked()
        if self.log is not None and errors:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "a") as handle:
                handle.write(errors + "\n")
        if code != 0 or not out.strip().isdigit():
            last = errors.splitlines()[-1] if errors else f"exit {code}"
            raise SandboxError(f"pod {self.pod}: sandbox failed: {last}")
        self.pid = int(out)
        if self.record is not None:
            write_record(self.record, self.pid)
        return self.pid

    def _timed_out(self) -> SandboxError:
        return SandboxError(f"pod {self.pod}: its sandbox did not start in {START_TIMEOUT:.0f} s")

    def _left(self) -> float:
        return max(0.1, START_TIMEOUT - (time.monotonic() - self.started))

    def _collect(self) -> tuple[int, str, str]:
        assert self.proc is not None
        try:
            out, err = self.proc.communicate(timeout=self._left())
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise self._timed_out() from None
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace").strip()

    def _collect_forked(self) -> tuple[int, str, str]:
        assert self.child is not None and self.fd is not None
        answer = b""
        try:
            while True:
                ready, _, _ = select.select([self.fd], [], [], self._left())
                if not ready:
                    os.kill(self.child, signal.SIGKILL)
                    _reap(self.child)
                    raise self._timed_out()
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    break
                answer += chunk
        finally:
            os.close(self.fd)
        code = _reap(self.child)
        out, errors = "", []
        for line in answer.decode(errors="replace").splitlines():
            kind, _, text = line.partition(" ")
            if kind == "pid":
                out = text
            else:
                errors.append(text)
        return code, out, "\n".join(errors).strip()


def _reap(pid: int) -> int:
    """The exit code of our child ``pid`` (0 if something else reaped it)."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 0
    return os.waitstatus_to_exitcode(status)


def _fork(plan: dict[str, object]) -> tuple[int, int]:
    """Fork the child that makes the sandbox (``sandbox_init.forked``): its PID and the read
    end of its report pipe. Everything it needs is computed here, before the fork."""
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        raise
    if pid == 0:  # the child: sandbox_init's code and syscalls only, then _exit or exec
        try:
            os.close(read)
            sandbox_init.forked(plan, write)
        finally:
            os._exit(1)
    os.close(write)
    return pid, read


def launch_sandbox(
    lab: str,
    namespace: str,
    pod: str,
    netns: str,
    ip: str,
    folder: Path,
    *,
    log: Path | None = None,
    read_only: Sequence[Path] = (),
    state_root: Path = STATE_ROOT,
    method: str | None = None,
    record: Path | None = None,
) -> Launch:
    """Start making the pod's sandbox in ``netns`` (in a child; ``method`` one of
    ``METHODS``, default ``METHOD``: "fork" costs the caller about 2 ms of a core, "exec"
    about 25 ms):
    ``folder`` is made if missing (it must not be under /tmp, which the pod gets fresh),
    /etc/hostname and /etc/hosts are written. Setup errors go to ``log`` and into the
    message of ``Launch.wait``. ``record``: where ``wait`` notes the pause (see ``find``);
    it must lie where no pod can write."""
    method = method or METHOD
    if method not in METHODS:
        raise ValueError(f"sandbox method {method!r}: must be one of {', '.join(METHODS)}")
    folder.mkdir(parents=True, exist_ok=True)
    write_etc_files(netns, pod, ip)
    plan = SandboxPlan(
        name=f"{lab}: {namespace}/{pod}",
        netns=netns,
        hostname=pod,
        folder=folder,
        hidden=(state_root, NETNS_DIR),
        read_only=tuple(read_only),
    )
    if method == "fork":
        child, fd = _fork(init_plan(plan))
        return Launch(f"{namespace}/{pod}", None, log, record, child=child, fd=fd)
    proc = subprocess.Popen(
        pause_argv(netns, plan),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={"PATH": os.environ.get("PATH", DEFAULT_PATH)},
    )
    return Launch(f"{namespace}/{pod}", proc, log, record)


def start_container(
    sandbox_pid: int,
    argv: Sequence[str],
    log_path: Path,
    cwd: str = "/",
    env: Mapping[str, str] | None = None,
    security: Security = DEFAULT,
) -> subprocess.Popen[bytes]:
    """Start a container's program in the pod of ``sandbox_pid``, as a daemon.

    The Popen is the program itself: its PID, its wait() status (an exit code, or -9 when
    SIGKILLed), its send_signal() reach the program, not a wrapper. That needs the child to
    be born in the pod's PID namespace, so it is forked from a short-lived thread that has
    joined it (setns acts per thread; the caller's threads stay where they are); the
    other namespaces are joined by nsenter, which then execs without forking.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full = container_argv(sandbox_pid, argv, security, cwd)
    box: dict[str, object] = {}

    def spawn() -> None:
        try:
            fd = os.open(f"/proc/{sandbox_pid}/ns/pid", os.O_RDONLY)
        except OSError:
            box["error"] = SandboxError(f"sandbox {sandbox_pid} is gone")
            return
        try:
            if _libc.setns(fd, CLONE_NEWPID) != 0:
                err = ctypes.get_errno()
                box["error"] = SandboxError(f"sandbox {sandbox_pid}: setns: {os.strerror(err)}")
                return
        finally:
            os.close(fd)
        try:
            with open(log_path, "ab") as out:
                box["proc"] = subprocess.Popen(
                    full,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:  # ENOMEM: the PID namespace's init has died
            box["error"] = SandboxError(f"sandbox {sandbox_pid}: cannot start {argv[0]}: {exc.strerror}")

    thread = threading.Thread(target=spawn, name=f"sandbox:{sandbox_pid}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["proc"]  # type: ignore[return-value]


def _ns_pids(pid: int) -> list[int]:
    """The PIDs of a process in each PID namespace it is in, outermost first (NSpid)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


def write_record(record: Path, pid: int) -> None:
    """Note the pause ``pid`` (and its start time) at ``record``, for ``find``."""
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = record.with_name(f".{record.name}.tmp")
    temporary.write_text(f"{pid} {processes.start_time(pid)}\n")
    temporary.replace(record)


def _is_pause(pid: int, netns: str, depth: int) -> bool:
    """``pid`` is PID 1 of a PID namespace just below ours, in ``netns``."""
    ids = _ns_pids(pid)
    if len(ids) != depth + 1 or ids[-1] != 1:
        return False
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(namespaces.path_of(netns)).st_ino
    except OSError:
        return False


def find(netns: str, record: Path | None = None) -> int | None:
    """The pause of the pod whose netns is ``netns``: the process there that is PID 1 of a
    PID namespace below ours. None when the pod has no sandbox (any more).

    With ``record`` (what ``launch_sandbox`` was given): only the process noted there, if
    it is still that pause; no record, no sandbox. Without: every process is looked at,
    which costs O(processes) (a kubelet starting 250 pods' first containers spent half
    its time there)."""
    depth = len(_ns_pids(os.getpid()))
    if record is not None:
        try:
            pid_text, _, ticks = record.read_text().partition(" ")
            pid, start = int(pid_text), int(ticks)
        except (OSError, ValueError):
            return None
        return pid if processes.is_ours(pid, start) and _is_pause(pid, netns, depth) else None
    for pid in sorted(namespaces.pids_by_netns([netns]).get(netns, [])):
        if _is_pause(pid, netns, depth) and processes.is_alive(pid):
            return pid
    return None


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def container_pids(netns: str) -> list[int]:
    """The processes of a pod's containers (and execs): every process in its netns but the
    pause and the pause's own sleep."""
    pause = find(netns)
    own = {pause} | {
        p
        for p in namespaces.pids_by_netns([netns]).get(netns, [])
        if pause is not None and _parent(p) == pause and _cmdline(p) == ["sleep", PAUSE_SLEEP]
    }
    return sorted(p for p in namespaces.pids_by_netns([netns]).get(netns, []) if p not in own)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def stop(netns: str, grace: float = 3.0) -> None:
    """Stop a pod: SIGTERM to every process of it but the pause, SIGKILL after ``grace``
    seconds, then SIGKILL the pause, which takes what is left of its PID namespace along.
    (The pause ignores nothing, but as PID 1 it would outlive a SIGTERM sent from inside.)"""
    pause = find(netns)
    others = [p for p in namespaces.pids_by_netns([netns]).get(netns, []) if p != pause]
    processes.stop(others, timeout=grace)
    processes.kill([p for p in namespaces.pids_by_netns([netns]).get(netns, [])])


def terminate(proc: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM the container's program, SIGKILL after ``grace`` seconds; its exit status."""
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
