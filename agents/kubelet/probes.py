"""Probe scheduling and results (pure): when a container's probe runs next, and what its
consecutive successes and failures make of it.

Kubernetes' rules: the first run ``initialDelaySeconds`` after the container started,
then every ``periodSeconds``; a result flips to passing after ``successThreshold``
successes in a row and to failing after ``failureThreshold`` failures in a row. A
readiness probe starts failing (not Ready until it passed), a liveness probe passing
(a container is alive until proven dead). A new run of the container starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from agents.kubelet.podspec import Probe

Purpose = Literal["readiness", "liveness"]


@dataclass(frozen=True)
class ProbeState:
    next_due: float
    passing: bool
    successes: int = 0  # in a row
    failures: int = 0  # in a row
    in_flight: bool = False


def initial(purpose: Purpose, probe: Probe, started_at: float) -> ProbeState:
    return ProbeState(next_due=started_at + probe.initial_delay, passing=purpose == "liveness")


def due(state: ProbeState, now: float) -> bool:
    return not state.in_flight and now >= state.next_due


def launched(state: ProbeState) -> ProbeState:
    return replace(state, in_flight=True)


def record(state: ProbeState, probe: Probe, ok: bool, now: float) -> ProbeState:
    """The state after one result; the next run is a period after this one ended."""
    if ok:
        successes, failures = state.successes + 1, 0
        passing = state.passing or successes >= probe.success_threshold
    else:
        successes, failures = 0, state.failures + 1
        passing = state.passing and failures < probe.failure_threshold
    return ProbeState(next_due=now + probe.period, passing=passing, successes=successes, failures=failures)
