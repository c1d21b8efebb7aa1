"""A container's life as the kubelet records it (pure): started, exited, waiting to be
restarted, being killed. The kubelet's loop calls these with what it saw (a PID, an exit
code) and carries out what they say (start it now, send SIGKILL now).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from agents.kubelet import backoff
from agents.kubelet.local import ContainerRun

MIN_GRACE_SECONDS = 2.0  # Kubernetes' kubelet never kills with less (minimumGracePeriodInSeconds)
UNKNOWN_EXIT = 137  # an exit we could not see (the container died while the kubelet was away)
CONTAINER_ID_SCHEME = "testbed://"


def timestamp(t: float) -> str:
    """RFC 3339, seconds, UTC: Kubernetes' format for startedAt, finishedAt, startTime."""
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_id(run: ContainerRun) -> str | None:
    return f"{CONTAINER_ID_SCHEME}{run.pid}" if run.pid is not None else None


def started(run: ContainerRun, pid: int | None, start_ticks: int | None, now: float) -> ContainerRun:
    """Running from ``now``: a process ``pid``, or none (``pid`` None: the image runs nothing)."""
    return replace(
        run,
        state="running",
        reason="",
        message="",
        pid=pid,
        start_ticks=start_ticks,
        idle=pid is None,
        started_at=now,
        finished_at=None,
        exit_code=None,
        restart_count=run.restart_count + (1 if run.runs else 0),
        restart_at=None,
        kill_at=None,
        ready=False,
        runs=run.runs + 1,
    )


def cannot_start(run: ContainerRun, reason: str, message: str) -> ContainerRun:
    """Waiting for good: the image is unknown (ErrImagePull), so nothing can run."""
    return replace(run, state="waiting", reason=reason, message=message, ready=False)


def terminated_state(run: ContainerRun, exit_code: int, now: float, reason: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": timestamp(run.started_at if run.started_at is not None else now),
        "finishedAt": timestamp(now),
    }
    if (cid := container_id(run)) is not None:
        state["containerID"] = cid
    return state


def exited(
    run: ContainerRun, exit_code: int, now: float, policy: str, stopping: bool, reason: str | None = None
) -> ContainerRun:
    """The container's process ended with ``exit_code``: back-off before a restart, as the
    restart policy says, or terminated for good (never while the pod is ``stopping``)."""
    term = terminated_state(run, exit_code, now, reason)
    if stopping or not backoff.restarts(policy, exit_code):
        return replace(
            run, state="terminated", reason=term["reason"], message="", exit_code=exit_code,
            finished_at=now, kill_at=None, ready=False, restart_at=None,
        )  # fmt: skip
    ran_for = now - (run.started_at if run.started_at is not None else now)
    delay = backoff.next_delay(run.delay, ran_for)
    return replace(
        run,
        state="waiting",
        reason="CrashLoopBackOff",
        message=f"back-off {delay:g}s restarting failed container={run.name}",
        last_state={"terminated": term},
        exit_code=None,
        finished_at=now,
        delay=delay,
        restart_at=now + delay,
        kill_at=None,
        ready=False,
    )


def due_to_start(run: ContainerRun, now: float) -> bool:
    """Never started (ContainerCreating), or its back-off is over."""
    if run.state != "waiting":
        return False
    if run.reason == "ContainerCreating":
        return True
    return run.reason == "CrashLoopBackOff" and run.restart_at is not None and now >= run.restart_at


def kill(run: ContainerRun, now: float, grace: float) -> ContainerRun:
    """SIGTERM goes out now; SIGKILL after ``grace`` (at least MIN_GRACE_SECONDS). A kill
    already under way keeps its earlier deadline."""
    deadline = now + max(float(grace), MIN_GRACE_SECONDS)
    if run.kill_at is not None:
        deadline = min(deadline, run.kill_at)
    return replace(run, kill_at=deadline, ready=False)


def stop_waiting(run: ContainerRun) -> ContainerRun:
    """A pod being deleted restarts nothing: a container in back-off stays terminated."""
    if run.state != "waiting":
        return run
    last = dict(run.last_state.get("terminated") or {})
    if last:
        return replace(run, state="terminated", reason=str(last.get("reason", "Error")), exit_code=int(last.get("exitCode", 0)),
                       restart_at=None)  # fmt: skip
    return replace(run, state="terminated", reason="ContainerCannotRun" if run.runs == 0 else run.reason, exit_code=0,
                   restart_at=None)  # fmt: skip


def alive(run: ContainerRun) -> bool:
    """Has a process to wait for (idle containers have none)."""
    return run.state == "running" and not run.idle and run.pid is not None
