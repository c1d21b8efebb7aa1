"""The trace case's pure parts: summary, target, table."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import bench_trace  # noqa: E402


def target(name: str, figure: float | None, limit: float, unit: str) -> dict:
    return {"target": name, "figure": figure, "limit": limit, "status": "pass" if figure is not None and figure <= limit else "fail"}


def test_the_target_reads_the_slower_median_of_allowed_and_dropped() -> None:
    results = {"trace": {"trace": {
        "allowed": [{"wall": 0.8, "inside": 0.4}, {"wall": 0.9, "inside": 0.5}, {"wall": 3.0, "inside": 2.0}],
        "dropped": [{"wall": 1.1, "inside": 0.7}, {"wall": 1.2, "inside": 0.8}],
    }}}  # fmt: skip
    section = bench_trace.trace_section(results)
    assert section["allowed"]["wall_median_s"] == 0.9 and section["allowed"]["wall_max_s"] == 3.0
    [verdict] = bench_trace.trace_targets(section, target)
    assert verdict["figure"] == 1.15 and verdict["status"] == "fail"
    assert bench_trace.render_trace_table(section).row_count == 2
