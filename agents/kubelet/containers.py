"""The container runtime seam: start a container's program, learn when it exits, signal it.

``ProcessRuntime`` is the real one. A container is a program started in the pod's netns
(``start_container``: the one place, which sandboxes will replace), in a session of its
own, so signals go to its whole process group, as a container runtime signals every
process of a container. The kubelet's own containers are its children: their exit
codes come from waitpid (Popen). Containers it adopted after a restart of its process
are someone else's children: it watches them through /proc, by PID and start time, and
reads an exit code only if it catches the zombie (else UNKNOWN_EXIT, as Kubernetes
reports a container it lost: 137, ContainerStatusUnknown).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Protocol

from agents.kubelet.lifecycle import UNKNOWN_EXIT
from agents.kubelet.podspec import Container, PodView
from testbed import naming
from testbed.netns import processes
from testbed.runtime import programs, state


class Process(Protocol):
    pid: int
    start_ticks: int | None
    unknown_exit: bool  # the exit code reported was not seen (UNKNOWN_EXIT)

    def poll(self) -> int | None:
        """The exit code once it exited (128 + N for signal N), else None."""
        ...

    def signal(self, sig: int) -> None:
        """To every process of the container (its process group)."""
        ...


class Runtime(Protocol):
    def start(self, pod: PodView, container: Container, ip: str | None = None) -> Process | None:
        """Start it (in the pod's sandbox, made for address ``ip`` if it has none yet); None
        when its image runs nothing. UnknownImage, OSError, SandboxError."""
        ...

    def adopt(self, pid: int, start_ticks: int | None) -> Process:
        """Watch a container started by an earlier kubelet process."""
        ...


# What a container with ``stdin`` runs until it is attached: the API server's attach runs its
# real command with the client's terminal, then stops this and leaves the exit code
# (``attach_exit``). A program started here has no terminal of its own to attach to.
STDIN_PLACEHOLDER = ("busybox", ("sleep", "2147483647"))
ATTACHED_DIR = "attached"


def attached_file(lab: str, namespace: str, pod: str, container: str) -> Path:
    """Where the API server leaves the exit code of an attached container's command."""
    return state.folder(lab) / ATTACHED_DIR / f"{namespace}.{pod}.{container}"


def attach_exit(lab: str, namespace: str, pod: str, container: str) -> int | None:
    """The exit code an attach left for this container (taken: read once), or None."""
    path = attached_file(lab, namespace, pod, container)
    try:
        code = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    path.unlink(missing_ok=True)
    return code


def start_container(lab: str, pod: PodView, container: Container, ip: str | None = None) -> subprocess.Popen[bytes] | None:
    """The one place the kubelet starts a container's program (in the pod's netns, as
    `testbed up` starts a topology pod's); a pod of several containers gives each its
    own folder. A container with ``stdin`` (`kubectl run -i`) starts the placeholder."""
    folder = container.name if len(pod.containers) > 1 else None
    netns = naming.pod_netns(lab, pod.namespace, pod.name)
    image, command = STDIN_PLACEHOLDER if container.stdin else (container.image, container.command)
    return programs.spawn_program(
        lab, netns, pod.namespace, pod.name, image, command, folder, ip=ip,
        context=json.loads(container.security), pod_context=json.loads(pod.security),
    )


def exit_code(returncode: int) -> int:
    """Popen's returncode (-N for signal N) as Kubernetes reports it (128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ChildProcess:
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.start_ticks = processes.start_time(popen.pid)
        self.unknown_exit = False

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is None:
            return None
        _signal_group(self.pid, signal.SIGKILL)  # what it left behind goes with it
        return exit_code(code)

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            _signal_group(self.pid, sig)


def zombie_exit(pid: int, start_ticks: int | None) -> int | None:
    """The exit code of ``pid`` if it is a zombie that is still this process (stat field 52)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] != "Z" or start_ticks is None or int(fields[19]) != start_ticks or len(fields) < 50:
        return None
    status = int(fields[49])
    return 128 + (status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF


class AdoptedProcess:
    def __init__(self, pid: int, start_ticks: int | None) -> None:
        self.pid, self.start_ticks = pid, start_ticks
        self.unknown_exit = False
        self._code: int | None = None

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        if processes.is_ours(self.pid, self.start_ticks):
            return None
        code = zombie_exit(self.pid, self.start_ticks)
        self.unknown_exit = code is None
        self._code = UNKNOWN_EXIT if code is None else code
        return self._code

    def signal(self, sig: int) -> None:
        if processes.is_ours(self.pid, self.start_ticks):
            _signal_group(self.pid, sig)


class ProcessRuntime:
    def __init__(self, lab: str) -> None:
        self.lab = lab

    def start(self, pod: PodView, container: Container, ip: str | None = None) -> Process | None:
        popen = start_container(self.lab, pod, container, ip)
        return ChildProcess(popen) if popen is not None else None

    def adopt(self, pid: int, start_ticks: int | None) -> Process:
        return AdoptedProcess(pid, start_ticks)
