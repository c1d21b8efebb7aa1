"""A pod's status from what the kubelet knows of it (pure): phase, addresses, conditions,
container statuses, in Kubernetes' shapes.

The same inputs give the same status: times come from the local record (when a
container started, when it exited) and a condition keeps its ``lastTransitionTime``
until its status changes, so the kubelet writes only when something changed.
Fields and conditions it does not own (the scheduler's ``PodScheduled``, anything
another writer added) are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.kubelet.lifecycle import container_id, timestamp
from agents.kubelet.local import ContainerRun, LocalPod
from agents.kubelet.podspec import PodView

OWN_CONDITIONS = ("Initialized", "ContainersReady", "Ready")
CONDITION_ORDER = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


def phase(pod: PodView, local: LocalPod) -> str:
    """Pending until the network is up and every container ran once; Succeeded / Failed
    when every container terminated for good; else Running."""
    runs = [local.container(c.name) for c in pod.containers]
    if not local.networked or any(r is None or (r.runs == 0 and r.state != "terminated") for r in runs):
        return "Pending"
    if all(r is not None and r.state == "terminated" for r in runs):
        return "Succeeded" if all(r is not None and r.exit_code == 0 for r in runs) else "Failed"
    return "Running"


def container_status(image: str, run: ContainerRun) -> dict[str, Any]:
    state: dict[str, Any]
    if run.state == "running":
        state = {"running": {"startedAt": timestamp(run.started_at or 0.0)}}
    elif run.state == "terminated":
        term: dict[str, Any] = {"exitCode": run.exit_code if run.exit_code is not None else 0, "reason": run.reason}
        if run.started_at is not None:
            term["startedAt"] = timestamp(run.started_at)
        if run.finished_at is not None:
            term["finishedAt"] = timestamp(run.finished_at)
        if (cid := container_id(run)) is not None:
            term["containerID"] = cid
        state = {"terminated": term}
    else:
        state = {"waiting": {"reason": run.reason, **({"message": run.message} if run.message else {})}}
    result: dict[str, Any] = {
        "name": run.name,
        "image": image,
        "imageID": "",
        "ready": run.ready,
        "started": run.state == "running",
        "restartCount": run.restart_count,
        "state": state,
        "lastState": dict(run.last_state),
    }
    if run.state != "waiting" and (cid := container_id(run)) is not None:
        result["containerID"] = cid
    elif run.state == "waiting" and (last := run.last_state.get("terminated")) and last.get("containerID"):
        result["containerID"] = last["containerID"]
    return result


def conditions(
    pod: PodView, local: LocalPod, pod_phase: str, previous: Sequence[Mapping[str, Any]], now: float
) -> list[dict[str, Any]]:
    """PodScheduled (kept if the scheduler wrote it), Initialized, ContainersReady, Ready;
    a condition whose status did not change keeps its lastTransitionTime."""
    before = {str(c.get("type")): c for c in previous if isinstance(c, Mapping)}
    unready = [c.name for c in pod.containers if not ((r := local.container(c.name)) and r.ready)]
    wanted: dict[str, tuple[str, str | None, str | None]] = {"Initialized": ("True", None, None)}
    if pod_phase in ("Succeeded", "Failed"):
        ready = ("False", "PodCompleted", None)
    elif unready:
        ready = ("False", "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready = ("True", None, None)
    wanted["ContainersReady"] = ready
    wanted["Ready"] = ready
    if "PodScheduled" not in before:
        wanted["PodScheduled"] = ("True", None, None)
    result = {t: dict(c) for t, c in before.items() if t not in wanted}
    for kind, (status, reason, message) in wanted.items():
        old = before.get(kind)
        same = old is not None and old.get("status") == status
        condition: dict[str, Any] = {"type": kind, "status": status}
        condition["lastTransitionTime"] = old.get("lastTransitionTime") if same and old else timestamp(now)
        if old is not None and "lastProbeTime" in old:
            condition["lastProbeTime"] = old["lastProbeTime"]
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        result[kind] = condition
    order = {t: i for i, t in enumerate(CONDITION_ORDER)}
    return [result[t] for t in sorted(result, key=lambda t: (order.get(t, len(order)), t))]


def pod_status(
    pod: PodView, local: LocalPod, host_ip: str | None, previous: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """The whole status the kubelet writes for ``pod`` (``previous``: the stored one)."""
    status = {k: v for k, v in previous.items() if k not in ("message", "reason")}
    status["phase"] = phase(pod, local)
    status["conditions"] = conditions(pod, local, status["phase"], previous.get("conditions") or [], now)
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if local.ip:
        status["podIP"] = local.ip
        status["podIPs"] = [{"ip": local.ip}]
    status["startTime"] = timestamp(local.seen_at)
    images = {c.name: c.image for c in pod.containers}
    status["containerStatuses"] = [
        container_status(images[c.name], local.container(c.name) or ContainerRun(c.name)) for c in pod.containers
    ]
    status.setdefault("qosClass", "BestEffort")
    return status


def rejected_status(previous: Mapping[str, Any], reason: str, message: str) -> dict[str, Any]:
    """A pod the kubelet will not run (its spec does not parse): Failed, with why."""
    return {**previous, "phase": "Failed", "reason": reason, "message": message}
