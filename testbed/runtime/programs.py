"""Where a pod's programs start: the one place that turns an image and a command into a
running process inside the pod's netns (`testbed up` and each host's kubelet use it).

No containers: a program runs through `ip netns exec <pod netns>`, which gives it the
pod's network and /etc/netns/<pod netns>/resolv.conf; its files go to the pod's own
folder, /run/testbed/<lab>/pods/<ns>.<pod>/ (per container, ``.../<container>/``, for
a pod of several), which `down` removes with the lab's folder. Sandboxes (a pause
process per pod) replace the two functions here, and nothing else.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from testbed import images
from testbed.netns import processes
from testbed.runtime import state


def pod_folder(lab: str, namespace: str, pod: str, container: str | None = None) -> Path:
    folder = state.folder(lab) / "pods" / f"{namespace}.{pod}"
    return folder / container if container else folder


def log_path(lab: str, namespace: str, pod: str) -> Path:
    """Every program of a pod writes here (what `kubectl logs` prints)."""
    return state.folder(lab) / "logs" / f"{namespace}.{pod}.log"


def spawn_program(
    lab: str, netns: str, namespace: str, pod: str, image: str, command: tuple[str, ...], container: str | None = None
) -> subprocess.Popen[bytes] | None:
    """Start the pod's command, else its image's default program, in ``netns``; None when
    the image runs nothing (an idle busybox). UnknownImage for an image we do not have.
    ``container`` names the folder of one container of several (None: the pod's own)."""
    folder = pod_folder(lab, namespace, pod, container)
    context = images.PodContext(lab=lab, namespace=namespace, pod=pod, folder=folder)
    program = images.program_for(image, command, context)
    if program is None:
        return None
    for path in (folder, *program.folders):
        path.mkdir(parents=True, exist_ok=True)
    for path, text in program.files:
        path.write_text(text)
    env = None if program.env is None else dict(program.env)
    return processes.spawn(netns, program.argv, log_path(lab, namespace, pod), cwd=Path(program.cwd), env=env)


def exec_argv(netns: str, image: str, command: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """argv and environment (to lay over the caller's) of ``command`` run in the pod, as
    `kubectl exec` runs it: an exec probe's command."""
    argv, env = images.interactive_argv(image, command)
    return processes.netns_exec_argv(netns, argv), env
