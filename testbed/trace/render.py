"""A trace as text, in the style of `ovs-appctl ofproto/trace`: a numbered walk with each
host's route, NAT and deciding rule under the hop where the packet enters it, one verdict
line at the end (pure)."""

from __future__ import annotations

from testbed.trace.model import TraceResult


def render(result: TraceResult) -> str:
    target = f"{result.dst}:{result.port}" if result.port is not None else result.dst
    mode = " (what-if: computed, nothing sent)" if result.what_if else ""
    lines = [f"trace {result.src} -> {target} {result.protocol}{mode}"]
    width = max((len(h.point) for h in result.hops), default=0)
    leg = None
    for hop in result.hops:
        if hop.leg != leg:
            leg = hop.leg
            lines += ["", leg]
        state = hop.packet if hop.seen else ("(predicted not to reach)" if result.what_if else "not seen")
        lines.append(f"{hop.number:3d}. {hop.point:<{width}}  {state}")
        lines += [f"       {note}" for note in hop.notes]
    if result.differences:
        lines += ["", "differences from the what-if:"] + [f"  ! {d}" for d in result.differences]
    lines += ["", result.verdict_line]
    return "\n".join(lines)
