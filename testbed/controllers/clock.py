"""Kubernetes' timestamps <-> seconds since the epoch, for controllers that compare them
with the ``now`` they are given (never the wall clock: unit tests simulate time)."""

from __future__ import annotations

from datetime import datetime, timezone

from testbed.datastore.records import timestamp

__all__ = ["micro_timestamp", "parse_timestamp", "timestamp"]


def micro_timestamp(t: float) -> str:
    """RFC 3339 with microseconds (a Lease's ``renewTime``, metav1.MicroTime)."""
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: object) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (with or without fraction, ``Z`` or an
    offset); None when it is missing or not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()
