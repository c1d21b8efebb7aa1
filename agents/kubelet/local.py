"""What the kubelet holds for each pod of its node (the actual state), and its file.

``/run/testbed/<lab>/kubelet/<host>.json`` keeps it across restarts of the host's agent:
every pod the kubelet took on (written before its CNI ADD, so a restart half-way finds
it), its address and WorkloadEndpoint revision, and each container's PID with the
kernel's start time of that PID (a recycled PID is never taken for the container) and
restart bookkeeping. A restarted kubelet adopts the containers still running instead of
starting them twice. Everything but ``load`` and ``save`` is pure.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1


@dataclass(frozen=True)
class ContainerRun:
    """One container's actual state; ``state`` as Kubernetes reports it."""

    name: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"  # waiting or terminated reason
    message: str = ""
    pid: int | None = None
    start_ticks: int | None = None  # /proc/<pid>/stat start time of ``pid``
    idle: bool = False  # running, but its image runs no program
    started_at: float | None = None  # this run (running), or the run that ended (terminated)
    finished_at: float | None = None
    exit_code: int | None = None
    restart_count: int = 0
    last_state: Mapping[str, Any] = field(default_factory=dict)  # {} or {"terminated": {...}}
    delay: float | None = None  # the last back-off
    restart_at: float | None = None  # waiting in back-off until then
    kill_at: float | None = None  # SIGTERM sent; SIGKILL at this time
    ready: bool = False  # running and its readiness probe (if any) passing
    runs: int = 0  # starts so far (a probe result of an earlier run is dropped)


@dataclass(frozen=True)
class LocalPod:
    key: str
    uid: str
    namespace: str
    name: str
    seen_at: float  # when the kubelet took it on (status.startTime)
    ip: str | None = None  # set once CNI ADD wrote the WorkloadEndpoint and the status
    endpoint_revision: int | None = None
    enforced: bool = False  # every host's Felix enforces the endpoint: containers may start
    containers: tuple[ContainerRun, ...] = ()
    terminating: bool = False  # deletion begun: containers told to stop, none restarted
    orphan: bool = False  # no Pod for it (found by its endpoint): torn down only

    @property
    def networked(self) -> bool:
        return self.ip is not None

    def container(self, name: str) -> ContainerRun | None:
        return next((c for c in self.containers if c.name == name), None)

    def with_container(self, run: ContainerRun) -> LocalPod:
        """This pod with ``run`` in place of the container of its name (added if new)."""
        if self.container(run.name) is None:
            return dataclasses.replace(self, containers=(*self.containers, run))
        return dataclasses.replace(self, containers=tuple(run if c.name == run.name else c for c in self.containers))


def to_json(pods: Mapping[str, LocalPod]) -> dict[str, Any]:
    return {"format": FORMAT, "pods": {key: dataclasses.asdict(pod) for key, pod in sorted(pods.items())}}


def from_json(data: Mapping[str, Any]) -> dict[str, LocalPod]:
    """The pods of a kubelet file; an unknown format or field reads as no pods (a fresh
    start tears down what the endpoints show as ours, and networks the rest again)."""
    if data.get("format") != FORMAT:
        return {}
    result: dict[str, LocalPod] = {}
    try:
        for key, raw in dict(data.get("pods") or {}).items():
            runs = tuple(ContainerRun(**c) for c in raw.get("containers", ()))
            result[key] = LocalPod(**{**raw, "containers": runs})
    except TypeError:
        return {}
    return result


def path(state_folder: Path, host: str) -> Path:
    return state_folder / "kubelet" / f"{host}.json"


def load(file: Path) -> dict[str, LocalPod]:
    try:
        return from_json(json.loads(file.read_text()))
    except (OSError, ValueError):
        return {}


def save(file: Path, pods: Mapping[str, LocalPod]) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(to_json(pods), indent=1, sort_keys=True) + "\n")
    tmp.replace(file)
