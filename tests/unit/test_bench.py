"""scripts/bench.py, its pure parts: statistics, linearity, targets, rendering. No root, no labs."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

BENCH_PATH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bench = load_bench()
Run = bench.Run
BASE = {"namespaces": 20, "netns_add_s": 0.002, "netns_delete_s": 0.0015, "veth_pairs": 10, "veth_s": 0.003}
MACHINE = {"cores": 2, "kernel": "6.1.0-test"}


def runs(pods: int, namespaces: int, ups: list[float], down: float = 0.5) -> list:
    return [Run(up, up / 2, down, pods, namespaces) for up in ups]


def fake_results(at_500: float = 26.0) -> dict[str, list]:
    return {
        "two-hosts": runs(4, 7, [1.2, 1.0, 1.4], down=0.8),
        "pods-10": runs(10, 13, [1.5]),
        "pods-100": runs(100, 103, [6.0, 6.2, 5.8]),  # all pod cases on up = 1 s + 50 ms/pod
        "pods-500": runs(500, 503, [at_500]),
    }


def test_the_registry_holds_the_issue_cases_in_order() -> None:
    assert list(bench.CASES) == ["two-hosts", "stars", "pods-10", "pods-100", "pods-500", "route-latency", "bgp-scale", "bgp-quick",
                                 "policy", "policy-quick", "trace", "control"]
    assert all(callable(fn) for fn in bench.CASES.values())


def test_summary_takes_median_min_max_and_per_pod_cost() -> None:
    s = bench.summarize("two-hosts", runs(4, 7, [1.2, 1.0, 1.4], down=0.8), netns_add_s=0.002)
    assert (s["up_median_s"], s["up_min_s"], s["up_max_s"]) == (1.2, 1.0, 1.4)
    assert s["up_internal_median_s"] == pytest.approx(0.6)
    assert s["down_median_s"] == 0.8
    assert s["ms_per_pod"] == pytest.approx(300.0)
    assert s["baseline_ratio"] == pytest.approx(1.2 / (7 * 0.002))
    assert (s["runs"], s["pods"], s["namespaces"], len(s["samples"])) == (3, 4, 7, 3)


def test_summary_of_an_even_number_of_runs_averages_the_middle_two() -> None:
    s = bench.summarize("x", runs(10, 13, [1.0, 4.0, 2.0, 3.0]), netns_add_s=0.001)
    assert s["up_median_s"] == 2.5


def test_a_lab_without_pods_has_no_per_pod_cost() -> None:
    assert bench.summarize("empty", runs(0, 3, [0.5]), netns_add_s=0.001)["ms_per_pod"] is None


def test_fit_line_is_exact_on_a_line_and_needs_two_distinct_x() -> None:
    slope, intercept = bench.fit_line([(10, 1.5), (100, 6.0), (500, 26.0)])
    assert slope == pytest.approx(0.05)
    assert intercept == pytest.approx(1.0)
    assert bench.fit_line([(10, 1.0)]) is None
    assert bench.fit_line([(10, 1.0), (10, 2.0)]) is None


def test_linearity_compares_per_pod_cost_at_100_and_500() -> None:
    cases = [bench.summarize(n, r, 0.002) for n, r in fake_results().items()]
    lin = bench.linearity(cases)
    assert lin["ms_per_pod_100"] == pytest.approx(60.0)
    assert lin["ms_per_pod_500"] == pytest.approx(52.0)
    assert lin["ratio_500_to_100"] == pytest.approx(52 / 60)
    assert lin["fit_cases"] == ["pods-10", "pods-100", "pods-500"]  # two-hosts is not a pod case
    assert lin["slope_ms_per_pod"] == pytest.approx(50.0)
    assert lin["intercept_s"] == pytest.approx(1.0)
    assert lin["marginal_ms_10_to_100"] == pytest.approx(50.0)
    assert lin["marginal_ms_100_to_500"] == pytest.approx(50.0)
    assert lin["marginal_ratio"] == pytest.approx(1.0)


def test_linearity_without_the_big_cases_is_empty_not_an_error() -> None:
    lin = bench.linearity([bench.summarize("two-hosts", runs(4, 7, [1.0]), 0.002)])
    assert lin["ratio_500_to_100"] is None and lin["slope_ms_per_pod"] is None and lin["fit_cases"] == []
    assert lin["marginal_ratio"] is None


def test_targets_pass_fail_and_skip() -> None:
    report = bench.build_report(MACHINE, BASE, fake_results(at_500=100.0))  # 200 ms/pod at 500 vs 60 at 100
    status = {t["target"]: t["status"] for t in report["targets"]}
    assert status == {"two-hosts up": "pass", "two-hosts down": "pass", "linear growth (ms per added pod, 100->500 / 10->100)": "fail"}
    slow = {"two-hosts": runs(4, 7, [2.5], down=1.2)}
    report = bench.build_report(MACHINE, BASE, slow)
    assert [t["status"] for t in report["targets"]] == ["fail", "fail", "skipped"]


def test_a_figure_equal_to_its_limit_passes() -> None:
    assert bench.target("t", 2.0, 2.0, "s")["status"] == "pass"
    assert bench.target("t", None, 2.0, "s")["status"] == "skipped"


def test_json_report_has_exactly_the_documented_keys_and_round_trips() -> None:
    report = bench.build_report(MACHINE, BASE, fake_results())
    assert list(report) == ["machine", "baseline", "cases", "linearity", "targets"]
    data = json.loads(json.dumps(bench.rounded(report)))
    assert [c["case"] for c in data["cases"]] == list(fake_results())
    assert data["machine"] == MACHINE


def test_rounded_rounds_floats_only_at_every_depth() -> None:
    assert bench.rounded({"a": [1.234567, {"b": 2.000049}], "c": 3, "d": None, "e": "x"}) == {
        "a": [1.2346, {"b": 2.0}], "c": 3, "d": None, "e": "x"}


def render(report: dict) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(bench.render_table(report))
    for line in bench.summary_lines(report):
        console.print(line)
    return console.file.getvalue()


def test_table_and_verdicts_show_the_figures() -> None:
    text = render(bench.build_report(MACHINE, BASE, fake_results()))
    for expected in ("two-hosts", "pods-500", "1.20", "0.80", "300.0", "85.7x", "2 cores, kernel 6.1.0-test",
                     "ip netns add 2.0 ms", "veth pair 3.0 ms", "ratio 0.87", "50.0 ms/pod + 1.00 s",
                     "PASS    two-hosts up: 1.20 s (target <= 2 s)",
                     "PASS    linear growth (ms per added pod, 100->500 / 10->100): 1.00x (target <= 1.5x)",
                     "each added pod costs 50.0 ms from 10 to 100 pods, 50.0 ms from 100 to 500"):
        assert expected in text, expected


def test_missing_figures_render_as_dashes() -> None:
    text = render(bench.build_report(MACHINE, BASE, {"two-hosts": runs(4, 7, [1.0])}))
    assert "SKIPPED linear growth (ms per added pod, 100->500 / 10->100): - (target <= 1.5x)" in text
    assert "least squares over none: up = - ms/pod + - s" in text


@pytest.mark.parametrize(
    ("argv", "cases", "repeat"),
    [
        ([], ["two-hosts", "stars", "pods-10", "pods-100", "pods-500", "route-latency", "bgp-scale", "policy", "trace", "control"], 3),
        (["--quick"], ["two-hosts", "pods-10", "bgp-quick", "policy-quick"], 1),
        (["--cases", "pods-100,two-hosts", "--repeat", "1"], ["pods-100", "two-hosts"], 1),
    ],
)
def test_arguments(argv: list[str], cases: list[str], repeat: int) -> None:
    args = bench.parse_args(argv)
    assert (args.cases, args.repeat) == (cases, repeat)


@pytest.mark.parametrize("argv", [["--cases", "pods-7"], ["--repeat", "0"], ["--quick", "--repeat", "2"]])
def test_bad_arguments_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == 2


def test_progress_lines_of_up_name_their_step() -> None:
    assert bench.step_of("pods: 4/4 done\n") == "pods"
    assert bench.step_of("fabric and etcd: 1/1 done") == "fabric and etcd"
    assert bench.step_of("BGP converged: 1/1 done") == "BGP converged"
    assert bench.step_of("pods: 3/4 done") is None  # only finished steps print
    assert bench.step_of("testbed: error: BGP did not converge in 21 s (...)") is None


def test_step_medians_keep_the_order_steps_came_in() -> None:
    steps = [{"fabric and etcd": 0.40, "hosts": 0.50, "pods": 0.90}, {"fabric and etcd": 0.44, "hosts": 0.52, "pods": 0.80},
             {"fabric and etcd": 0.42, "hosts": 0.56, "pods": 1.00}]  # fmt: skip
    medians = bench.step_medians([Run(1.2, 0.8, 0.4, 4, 7, s) for s in steps])
    assert list(medians) == ["fabric and etcd", "hosts", "pods"]
    assert medians == {"fabric and etcd": 0.42, "hosts": 0.52, "pods": 0.9}
    assert bench.step_medians(runs(4, 7, [1.0])) == {}


def test_the_summary_says_when_each_step_of_up_was_done() -> None:
    results = {"two-hosts": [Run(1.3, 0.9, 0.4, 4, 7, {"fabric and etcd": 0.45, "pods": 0.8, "BGP converged": 1.2})]}
    lines = bench.summary_lines(bench.build_report(MACHINE, BASE, results))
    assert "two-hosts up, s from start (median) when done: fabric and etcd 0.45, pods 0.80, BGP converged 1.20, exit 1.30" in lines
