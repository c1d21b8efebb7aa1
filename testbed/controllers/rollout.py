"""A Deployment's rollout arithmetic, pure: how many pods each ReplicaSet may have now
(Kubernetes' rolling.go: surge rounds up, unavailable down), the revision annotation, and
the status and conditions the Deployment controller writes. No store access here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.controllers import objects as obj
from testbed.datastore import keys, records
from testbed.datastore.base import Versioned

REVISION = "deployment.kubernetes.io/revision"
DEFAULT_HISTORY = 10
DEFAULT_DEADLINE = 600  # spec.progressDeadlineSeconds
DEFAULT_SURGE = DEFAULT_UNAVAILABLE = "25%"


def scaled(value: object, total: int, round_up: bool, default: str) -> int:
    """An IntOrString of a rolling update (``2`` or ``"25%"``) as a number of pods."""
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    text = value if isinstance(value, str) else default
    if not text.endswith("%") or not text[:-1].isdigit():
        text = default
    exact = int(text[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def rolling_limits(deployment: Mapping[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; both 0 is not allowed: unavailable becomes 1."""
    replicas = obj.int_field(obj.spec(deployment), "replicas", 1)
    if strategy_of(deployment) != "RollingUpdate":
        return 0, 0
    rolling = (obj.spec(deployment).get("strategy") or {}).get("rollingUpdate") or {}
    surge = scaled(rolling.get("maxSurge"), replicas, True, DEFAULT_SURGE)
    unavailable = scaled(rolling.get("maxUnavailable"), replicas, False, DEFAULT_UNAVAILABLE)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def strategy_of(deployment: Mapping[str, Any]) -> str:
    kind = (obj.spec(deployment).get("strategy") or {}).get("type")
    return "Recreate" if kind == "Recreate" else "RollingUpdate"


def revision_of(rs: Mapping[str, Any]) -> int:
    text = (obj.metadata(rs).get("annotations") or {}).get(REVISION, "0")
    return int(text) if isinstance(text, str) and text.isdigit() else 0


def replicas_of(rs: Mapping[str, Any]) -> int:
    return obj.int_field(obj.spec(rs), "replicas", 1)


def _pods(rs: Mapping[str, Any]) -> int:
    """Pods an RS may have: its target, or more while it has not deleted the extra ones."""
    return max(replicas_of(rs), obj.int_field(obj.status(rs), "replicas", 0))


def _available(rs: Mapping[str, Any]) -> int:
    """Available pods, never more than the RS keeps (a scaled-down one is about to lose some)."""
    return min(obj.int_field(obj.status(rs), "availableReplicas", 0), replicas_of(rs))


def oldest_first(olds: Iterable[Versioned]) -> list[Versioned]:
    return sorted(olds, key=lambda v: (revision_of(v.value), obj.metadata(v.value).get("creationTimestamp", ""), obj.metadata(v.value).get("name", "")))


def new_rs_target(replicas: int, surge: int, new: Mapping[str, Any], everything: Iterable[Mapping[str, Any]]) -> int:
    """How many replicas the new RS may have now (rolling.go NewRSNewReplicas)."""
    current = replicas_of(new)
    if current >= replicas:
        return replicas
    room = replicas + surge - sum(_pods(rs) for rs in everything)
    return current + max(0, min(room, replicas - current))


def old_scale_down(
    replicas: int, unavailable: int, new: Mapping[str, Any] | None, olds: list[Versioned]
) -> dict[str, int]:
    """Old RS key -> its new replicas (rolling.go reconcileOldReplicaSets): first the old
    pods that are not available anyway, then available ones while enough stay available."""
    everything = [v.value for v in olds] + ([new] if new is not None else [])
    if sum(replicas_of(v.value) for v in olds) == 0:
        return {}
    min_available = replicas - unavailable
    new_unavailable = (replicas_of(new) - _available(new)) if new is not None else 0
    budget = sum(replicas_of(rs) for rs in everything) - min_available - new_unavailable
    if budget <= 0:
        return {}
    targets = {v.value["metadata"]["name"]: replicas_of(v.value) for v in olds}
    for v in oldest_first(olds):  # cleanupUnhealthyReplicas
        name = v.value["metadata"]["name"]
        unhealthy = targets[name] - _available(v.value)
        cut = min(max(unhealthy, 0), budget)
        targets[name] -= cut
        budget -= cut
        if budget <= 0:
            break
    available = sum(min(_available(v.value), targets[v.value["metadata"]["name"]]) for v in olds)
    available += _available(new) if new is not None else 0
    spare = available - min_available
    for v in oldest_first(olds):  # scaleDownOldReplicaSetsForRollingUpdate
        if spare <= 0:
            break
        name = v.value["metadata"]["name"]
        cut = min(targets[name], spare)
        targets[name] -= cut
        spare -= cut
    by_name = {v.value["metadata"]["name"]: v for v in olds}
    return {
        keys.namespaced(keys.REPLICASETS, by_name[n].value["metadata"].get("namespace", ""), n): t
        for n, t in targets.items() if t != replicas_of(by_name[n].value)
    }  # fmt: skip


@dataclass
class Rollout:
    """What one reconcile did (across its passes), for the Progressing condition."""

    created: str | None = None
    acted: bool = False
    logs: list[str] = field(default_factory=list)


# --- status ---------------------------------------------------------------------------------


def _condition(
    previous: Mapping[str, Any] | None, kind: str, state: str, reason: str, message: str, now: float
) -> dict[str, Any]:
    """A condition; its times move only when what it says changes (status: lastTransitionTime)."""
    if previous is not None and (previous.get("status"), previous.get("reason"), previous.get("message")) == (state, reason, message):
        return dict(previous)
    stamp = records.timestamp(now)
    moved = previous is None or previous.get("status") != state
    return {
        "type": kind,
        "status": state,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp if moved else previous.get("lastTransitionTime", stamp),  # type: ignore[union-attr]
    }


def deployment_status(
    d: Mapping[str, Any], new: Mapping[str, Any] | None, olds: list[Mapping[str, Any]], rollout: Rollout, now: float
) -> tuple[dict[str, Any], float | None]:
    """The status Kubernetes' calculateStatus + syncRolloutStatus would write, and the
    seconds until the progress deadline runs out (if the rollout is still going)."""
    replicas = obj.int_field(obj.spec(d), "replicas", 1)
    everything = [*olds, *([new] if new is not None else [])]

    def total(field_name: str, of: Iterable[Mapping[str, Any]]) -> int:
        return sum(obj.int_field(obj.status(rs), field_name, 0) for rs in of)

    available = total("availableReplicas", everything)
    counts: dict[str, Any] = {
        "observedGeneration": obj.generation_of(d),
        "replicas": total("replicas", everything),
        "updatedReplicas": total("replicas", [new] if new is not None else []),
        "readyReplicas": total("readyReplicas", everything),
        "availableReplicas": available,
        "unavailableReplicas": max(replicas - available, 0),
    }
    old = obj.status(d)
    previous = {c.get("type"): c for c in old.get("conditions") or () if isinstance(c, dict)}
    unavailable = rolling_limits(d)[1]
    conditions = [
        _condition(previous.get("Available"), "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now)
        if available >= replicas - unavailable else
        _condition(previous.get("Available"), "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", now)
    ]  # fmt: skip
    rs_name = obj.metadata(new).get("name", "") if new is not None else ""
    deadline = obj.int_field(obj.spec(d), "progressDeadlineSeconds", DEFAULT_DEADLINE)
    complete = (
        new is not None and counts["updatedReplicas"] == replicas and available == replicas
        and counts["replicas"] == replicas and total("replicas", olds) == 0
    )  # fmt: skip
    progressed = (
        counts["updatedReplicas"] > obj.int_field(old, "updatedReplicas", 0)
        or counts["readyReplicas"] > obj.int_field(old, "readyReplicas", 0)
        or available > obj.int_field(old, "availableReplicas", 0)
        or total("replicas", olds) < obj.int_field(old, "replicas", 0) - obj.int_field(old, "updatedReplicas", 0)
    )  # fmt: skip
    before = previous.get("Progressing")
    wait: float | None = None
    if obj.spec(d).get("paused"):
        progressing = _condition(before, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now)
    elif complete:
        progressing = _condition(before, "Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.', now)
    elif rollout.created:
        progressing = _condition(before, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"', now)
    elif rollout.acted or progressed or before is None or before.get("reason") == "NewReplicaSetAvailable":
        progressing = _condition(None, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', now)
        if before is not None and before.get("status") == "True":
            progressing["lastTransitionTime"] = before.get("lastTransitionTime", progressing["lastTransitionTime"])
    else:
        progressing = dict(before)
    if progressing.get("status") == "True" and progressing.get("reason") != "NewReplicaSetAvailable":
        since = obj.parse_time(progressing.get("lastUpdateTime")) or now
        if now >= since + deadline:
            progressing = _condition(before, "Progressing", "False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.', now)
        else:
            wait = since + deadline - now
    conditions.append(progressing)
    return {**counts, "conditions": conditions}, wait
