"""The trace case of scripts/bench.py: how long `testbed trace` takes for one pair.

- trace: netpol-model (3 hosts, 9 pods); cross-host TCP pairs traced with the CLI, as a
  user runs it (`testbed trace SRC DST:80 -o json`), first with no policy (ALLOWED, the
  SYN-ACK followed back), then under tests/data/policies/deny-all-ingress.yaml (DROPPED:
  the trace waits for the packet that never comes). Per trace: the wall time of the whole
  command (Python start-up included) and the time inside it (the JSON's ``seconds``).
  Target (the traces issue): one pair in <= 1 s, read on the wall-time median.

The live part uses bench.py's helpers (``h``: the bench module); the pure parts (summary,
targets, table) are tested in tests/unit/test_bench_trace.py.
"""

from __future__ import annotations

import json
import statistics
from types import ModuleType
from typing import Any

from rich.table import Table

TOPOLOGY = "netpol-model"
PAIRS = (("y/a", "x/b"), ("z/c", "x/a"), ("x/c", "x/b"), ("z/a", "x/b"))  # cross-host; into x, which the policy isolates
POLICY = "tests/data/policies/deny-all-ingress.yaml"
LIMIT_S = 1.0


def run_traces(h: ModuleType, lab: str, verdict: str, rounds: int) -> list[dict[str, float]]:
    samples = []
    for _ in range(rounds):
        for src, dst in PAIRS:
            wall, proc = h.timed(h.testbed("trace", "--lab", lab, src, f"{dst}:80", "-o", "json"), timeout=60)
            if proc.returncode not in (0, 1):
                raise h.BenchError(f"testbed trace {src} {dst}:80 failed: {h.last_line(proc.stderr)}")
            data = json.loads(proc.stdout)
            if data["verdict"].split()[0] != verdict:
                raise h.BenchError(f"trace {src} -> {dst}:80 ended {data['verdict']!r}, expected {verdict}")
            samples.append({"wall": wall, "inside": float(data["seconds"])})
    return samples


def trace(h: ModuleType, repeat: int) -> dict[str, Any]:
    lab, built = h.PREFIX + "trace", False
    try:
        _, proc = h.timed(h.testbed("up", TOPOLOGY, "--name", lab, "-o", "json"))
        if proc.returncode != 0:
            raise h.BenchError(f"testbed up {lab} failed: {h.last_line(proc.stderr)}")
        built = True
        allowed = run_traces(h, lab, "ALLOWED", repeat)
        _, proc = h.timed(h.testbed("kubectl", "--lab", lab, "apply", "-f", str(h.REPO / POLICY)))
        if proc.returncode != 0:
            raise h.BenchError(f"kubectl apply {POLICY} failed: {h.last_line(proc.stderr)}")
        dropped = run_traces(h, lab, "DROPPED", repeat)
    finally:
        h.lab_down(lab, must=built)
    return {"trace": {"allowed": allowed, "dropped": dropped}}


def summarize(samples: list[dict[str, float]]) -> dict[str, Any]:
    walls, inside = [s["wall"] for s in samples], [s["inside"] for s in samples]
    return {
        "traces": len(samples),
        "wall_median_s": statistics.median(walls) if walls else None,
        "wall_max_s": max(walls) if walls else None,
        "inside_median_s": statistics.median(inside) if inside else None,
        "inside_max_s": max(inside) if inside else None,
    }


def trace_section(results: dict[str, Any]) -> dict[str, Any]:
    raw = next(iter(results.values()))["trace"]
    return {kind: summarize(raw[kind]) for kind in ("allowed", "dropped")}


def trace_targets(section: dict[str, Any], target: Any) -> list[dict[str, Any]]:
    medians = [section[k]["wall_median_s"] for k in ("allowed", "dropped") if section[k]["wall_median_s"] is not None]
    return [target("trace of one pair, whole command (median, allowed and dropped)", max(medians) if medians else None, LIMIT_S, "s")]


def render_trace_table(section: dict[str, Any]) -> Table:
    table = Table(title="testbed trace: one cross-host TCP pair (s; wall = the whole command, inside = its own timing)")
    for column in ("verdict", "traces", "wall med", "wall max", "inside med", "inside max"):
        table.add_column(column, justify="left" if column == "verdict" else "right")
    for kind in ("allowed", "dropped"):
        s = section[kind]
        cells = [s[k] for k in ("wall_median_s", "wall_max_s", "inside_median_s", "inside_max_s")]
        table.add_row(kind.upper(), str(s["traces"]), *("-" if c is None else f"{c:.2f}" for c in cells))
    return table
