"""Where a pod's programs start: the one place that turns an image and a command into a
running container in the pod's sandbox (`testbed up` and each host's kubelet use it).

A pod's sandbox (``testbed.netns.sandbox``: a pause process holding its UTS, IPC, PID and
mount namespaces, beside its netns) is made once, when its first program starts, or
ahead of time with ``launch_sandbox``; each container is then its own program in it. Its
files go to the pod's own folder, /run/testbed/<lab>/pods/<ns>.<pod>/ (per container,
``.../<container>/``, for a pod of several), which `down` removes with the lab's folder
and which the sandbox shows at the same path.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed import images
from testbed.netns import sandbox, security
from testbed.runtime import state


def pod_folder(lab: str, namespace: str, pod: str, container: str | None = None) -> Path:
    folder = state.folder(lab) / "pods" / f"{namespace}.{pod}"
    return folder / container if container else folder


def log_path(lab: str, namespace: str, pod: str) -> Path:
    """Every program of a pod writes here (what `kubectl logs` prints)."""
    return state.folder(lab) / "logs" / f"{namespace}.{pod}.log"


def sandbox_record(lab: str, netns: str) -> Path:
    """Where the pod's pause is noted (``sandbox.find``): in the lab's folder, which no pod sees."""
    return state.folder(lab) / "sandboxes" / netns


def launch_sandbox(lab: str, namespace: str, pod: str, netns: str, ip: str, image: str) -> sandbox.Launch:
    """Start making the pod's sandbox (in the background: ``.wait()`` for its pause's PID).
    An image that reads the lab's etcd (coredns, star-collect) sees the lab's folder, read-only."""
    read_only = (state.folder(lab),) if images.lookup(image).sees_lab else ()
    return sandbox.launch_sandbox(
        lab, namespace, pod, netns, ip, pod_folder(lab, namespace, pod),
        log=log_path(lab, namespace, pod), read_only=read_only, state_root=state.root(),
        record=sandbox_record(lab, netns),
    )  # fmt: skip


def ensure_sandbox(lab: str, namespace: str, pod: str, netns: str, ip: str | None, image: str) -> int:
    """The pause PID of the pod's sandbox, made now if it has none (needs ``ip``)."""
    found = sandbox.find(netns, sandbox_record(lab, netns))
    if found is not None:
        return found
    if ip is None:
        raise sandbox.SandboxError(f"pod {namespace}/{pod} has no sandbox and no address to make one with")
    return launch_sandbox(lab, namespace, pod, netns, ip, image).wait()


def spawn_program(
    lab: str, netns: str, namespace: str, pod: str, image: str, command: tuple[str, ...],
    container: str | None = None, *, ip: str | None = None, context: Mapping[str, Any] | None = None,
    pod_context: Mapping[str, Any] | None = None,
) -> subprocess.Popen[bytes] | None:
    """Start the pod's command, else its image's default program, as a container in the
    pod's sandbox (made if missing); None when the image runs nothing (an idle busybox:
    the sandbox alone, for `kubectl exec`). UnknownImage for an image we do not have.
    ``container`` names the folder of one container of several (None: the pod's own);
    ``context`` and ``pod_context`` are the container's and the pod's securityContext."""
    pause = ensure_sandbox(lab, namespace, pod, netns, ip, image)
    folder = pod_folder(lab, namespace, pod, container)
    program = images.program_for(image, command, images.PodContext(lab=lab, namespace=namespace, pod=pod, folder=folder))
    if program is None:
        return None
    for path in (folder, *program.folders):
        path.mkdir(parents=True, exist_ok=True)
    for path, text in program.files:
        path.write_text(text)
    env = None if program.env is None else dict(program.env)
    rights = security.resolve(pod_context or {}, context or {})
    return sandbox.start_container(pause, program.argv, log_path(lab, namespace, pod), cwd=program.cwd, env=env, security=rights)


def exec_argv(netns: str, image: str, command: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """argv and environment (to lay over the caller's) of ``command`` run in the pod's
    sandbox, as `kubectl exec` runs it: an exec probe's command."""
    argv, env = images.interactive_argv(image, command)
    pause = sandbox.find(netns)
    if pause is None:
        from testbed.netns import processes  # noqa: PLC0415

        return processes.netns_exec_argv(netns, argv), env
    return sandbox.exec_argv(pause, argv), env
