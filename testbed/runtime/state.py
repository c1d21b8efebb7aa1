"""A lab's state folder, /run/testbed/<lab>/: the lab record, the PIDs it started, logs, etcd data.

The folder is made (atomically, so two `up`s of one name cannot both win) before any
kernel object of the lab exists, and removed last by `down`. While it exists the lab
exists, even when `testbed up` was killed half-way.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed import naming

STATE_FILE = "lab.json"


class LabExists(RuntimeError):
    pass


@dataclass(frozen=True)
class ProcessRecord:
    name: str  # e.g. "etcd", "pod demo/pod-a"
    netns: str
    pid: int
    start_time: int | None  # /proc/<pid>/stat field 22: tells a recycled PID apart


@dataclass
class LabState:
    lab: str
    topology: str
    source: str
    created: float
    phase: str = "building"  # building -> up
    processes: list[ProcessRecord] = field(default_factory=list)


def root() -> Path:
    return Path(os.environ.get("TESTBED_STATE_ROOT", str(naming.STATE_ROOT)))


def folder(lab: str) -> Path:
    return naming.state_dir(lab, root())


def claim(state: LabState) -> Path:
    """Create the lab's folder and record; LabExists if the name is taken."""
    path = folder(state.lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        raise LabExists(f"lab {state.lab!r} is already up (remove it with: sudo testbed down {state.lab})") from None
    save(state)
    return path


def save(state: LabState) -> None:
    path = folder(state.lab) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    tmp.replace(path)


def record_process(lab_state: LabState, name: str, netns: str, pid: int) -> None:
    """Remember a process the lab started (with its start time, so a recycled PID is never hit)."""
    from testbed.netns.processes import start_time

    lab_state.processes.append(ProcessRecord(name, netns, pid, start_time(pid)))
    save(lab_state)


def load(lab: str) -> LabState | None:
    try:
        data = json.loads((folder(lab) / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    data["processes"] = [ProcessRecord(**p) for p in data.get("processes", [])]
    return LabState(**data)


def labs() -> list[str]:
    """Every lab with a state folder, sorted."""
    try:
        return sorted(p.name for p in root().iterdir() if p.is_dir() and naming.is_valid_lab_name(p.name))
    except FileNotFoundError:
        return []


def release(lab: str) -> None:
    shutil.rmtree(folder(lab), ignore_errors=True)
