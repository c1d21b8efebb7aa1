"""Probe scheduling and results (pure): when a container's probe runs next, and what its
consecutive successes and failures make of it.

Kubernetes' rules: the first run ``initialDelaySeconds`` after the container started,
then every ``periodSeconds``; a result flips to passing after ``successThreshold``
successes in a row and to failing after ``failureThreshold`` failures in a row. A
readiness probe starts failing (not Ready until it passed), a liveness probe passing
(a container is alive until proven dead). A new run of the container starts afresh.

Until a readiness probe first passes, it runs again every ``UNTIL_READY_SECONDS`` (or its
period, if shorter) instead of every period: the real kubelet, each time it computes a
pod's status while a readiness result is not yet a success, triggers an immediate run
(``UpdatePodStatus`` in kubernetes' pkg/kubelet/prober/prober_manager.go). A program that
listens 0.1 s after it starts is Ready then, not a whole period later. Once it has
passed, its failures are counted a period apart, as Kubernetes counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from agents.kubelet.podspec import Probe

Purpose = Literal["readiness", "liveness"]
UNTIL_READY_SECONDS = 0.2


@dataclass(frozen=True)
class ProbeState:
    next_due: float
    passing: bool
    successes: int = 0  # in a row
    failures: int = 0  # in a row
    in_flight: bool = False
    until_ready: bool = False  # a readiness probe that has not passed yet: retried soon


def initial(purpose: Purpose, probe: Probe, started_at: float) -> ProbeState:
    readiness = purpose == "readiness"
    return ProbeState(next_due=started_at + probe.initial_delay, passing=not readiness, until_ready=readiness)


def due(state: ProbeState, now: float) -> bool:
    return not state.in_flight and now >= state.next_due


def launched(state: ProbeState) -> ProbeState:
    return replace(state, in_flight=True)


def record(state: ProbeState, probe: Probe, ok: bool, now: float) -> ProbeState:
    """The state after one result; the next run is a period after this one ended (sooner
    for a readiness probe that has not passed yet)."""
    if ok:
        successes, failures = state.successes + 1, 0
        passing = state.passing or successes >= probe.success_threshold
    else:
        successes, failures = 0, state.failures + 1
        passing = state.passing and failures < probe.failure_threshold
    until_ready = state.until_ready and not passing
    period = min(probe.period, UNTIL_READY_SECONDS) if until_ready else probe.period
    return ProbeState(
        next_due=now + period, passing=passing, successes=successes, failures=failures, until_ready=until_ready
    )
