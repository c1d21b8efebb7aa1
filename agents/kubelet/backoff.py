"""When an exited container starts again (pure): the restart policy and the back-off.

The contract's numbers (docs/control-plane.md): the first restart 1 s after the exit,
each next one twice as late, at most 30 s; a container that ran 60 s or more before
exiting starts again from 1 s (Kubernetes: 10 s doubling to 5 min, reset after 10 min).
"""

from __future__ import annotations

INITIAL_SECONDS = 1.0
MAX_SECONDS = 30.0
RESET_AFTER_SECONDS = 60.0


def restarts(policy: str, exit_code: int) -> bool:
    """Always: any exit; OnFailure: a non-zero one; Never: none."""
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def next_delay(previous: float | None, ran_for: float) -> float:
    """The wait before the next start, given the last wait (None: never restarted) and how
    long the container ran this time."""
    if previous is None or ran_for >= RESET_AFTER_SECONDS:
        return INITIAL_SECONDS
    return min(previous * 2, MAX_SECONDS)
