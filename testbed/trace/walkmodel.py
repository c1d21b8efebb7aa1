"""The numbered walk (pure): path points + what was seen + each host's steps -> hops,
the final verdict, and the differences between a real trace and its what-if."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from testbed.trace.model import Hop, HostStep, Leg, Point, Sighting, TraceResult


def packet_text(s: Sighting) -> str:
    src = f"{s.src}:{s.sport}" if s.sport is not None else s.src
    dst = f"{s.dst}:{s.dport}" if s.dport is not None else s.dst
    return f"{src} -> {dst} {s.detail}".rstrip()


def step_notes(step: HostStep) -> tuple[str, ...]:
    notes = []
    if step.nat:
        notes.append(f"nat: {step.nat}")
    if step.route:
        notes.append(f"route: {step.route}")
    notes.append(f"{step.decision.verdict.lower()}: {step.decision.by}")
    if step.decision.rule:
        notes.append(f"  rule {step.decision.rule}")
    return tuple(notes)


def entry_points(path: Sequence[Point]) -> dict[str, int]:
    """Index of the first point of each host (or pod) on the path: where a host's steps show."""
    out: dict[str, int] = {}
    for i, p in enumerate(path):
        out.setdefault(p.where, i)
    return out


def leg_hops(
    leg: Leg, path: Sequence[Point], sightings: Sequence[Sighting], steps: Sequence[HostStep], start: int
) -> list[Hop]:
    seen = {s.point: s for s in sightings if s.leg == leg}
    entries = entry_points(path)
    notes_at: dict[int, list[str]] = {}
    for step in steps:
        if step.leg == leg and step.host in entries:
            notes_at.setdefault(entries[step.host], []).extend(step_notes(step))
    hops = []
    for i, point in enumerate(path):
        s = seen.get(point)
        hops.append(Hop(start + i, leg, point.label, s is not None, packet_text(s) if s else "",
                        tuple(notes_at.get(i, ()))))
    return hops


def verdict(
    request_path: Sequence[Point], sightings: Sequence[Sighting], steps: Sequence[HostStep]
) -> tuple[bool, str | None, str | None]:
    """(allowed, dropped at, dropped by): allowed when the request reached the last point."""
    reached = {s.point for s in sightings if s.leg == "request"}
    drop = next((s for s in steps if s.leg == "request" and s.decision.verdict == "DROP"), None)
    if request_path and request_path[-1] in reached:
        return True, None, None
    if drop is not None:
        return False, drop.host, drop.decision.by
    last = [p for p in request_path if p in reached]
    where = last[-1].where if last else (request_path[0].where if request_path else None)
    after = f"not seen after {last[-1].label}" if last else "never seen"
    return False, where, f"unknown ({after})"


def predicted_sightings(
    path: Sequence[Point], leg: Leg, steps: Sequence[HostStep], make: Callable[[Point], Sighting],
) -> list[Sighting]:
    """What-if: the points a packet reaches; a host that drops it sees it enter, no more."""
    drop_hosts = [s.host for s in steps if s.leg == leg and s.decision.verdict == "DROP"]
    entries = entry_points(path)
    stop = min((entries[h] for h in drop_hosts if h in entries), default=len(path) - 1)
    return [make(p) for p in path[: stop + 1]]


def differences(real: TraceResult, what_if: TraceResult) -> list[str]:
    """Where reality and the what-if disagree: hops seen, host decisions, the verdict."""
    out = []
    predicted = {(h.leg, h.point): h.seen for h in what_if.hops}
    for hop in real.hops:
        expected = predicted.get((hop.leg, hop.point))
        if expected is not None and expected != hop.seen:
            out.append(f"{hop.leg} at {hop.point}: {'seen' if hop.seen else 'not seen'}, what-if says "
                       f"{'seen' if expected else 'not seen'}")
    wanted = {(s.leg, s.host, s.decision.verdict, s.decision.by) for s in what_if.steps if s.decision.verdict != "UNKNOWN"}
    for s in real.steps:
        key = (s.leg, s.host, s.decision.verdict, s.decision.by)
        if s.decision.verdict != "UNKNOWN" and key not in wanted and any(
            w[0] == s.leg and w[1] == s.host for w in wanted
        ):
            out.append(f"{s.leg} at {s.host}: {s.decision.verdict} by {s.decision.by}, what-if says otherwise")
    if real.verdict_line != what_if.verdict_line:
        out.append(f"verdict: {real.verdict_line}, what-if says {what_if.verdict_line}")
    return out
