"""Benchmark `testbed up` / `testbed down` against a bare `ip netns` baseline from the same run.

Cases are named functions in CASES; each builds and removes labs called bench-<case> and
returns one Run per repetition. The BGP cases (route-latency, bgp-scale, bgp-quick) live
in bench_bgp.py and return a dict of their own figures instead; they fill the report's
"bgp" part. The NetworkPolicy cases (policy, policy-quick) live in bench_policy.py; their
dicts (a "policy" key) fill the report's "policy" part. Statistics, linearity, targets and rendering are small pure functions
(tests/unit/test_bench.py, test_bench_bgp.py). Progress goes to stderr; with --json,
stdout holds one JSON object and nothing else. Every report is also saved in bench-results/.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

if str(Path(__file__).resolve().parent) not in sys.path:  # bench_bgp.py, next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_bgp  # noqa: E402
import bench_control  # noqa: E402
import bench_policy  # noqa: E402
import bench_trace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench-results"
NETNS_DIR = Path("/run/netns")
PREFIX = "bench-"
BASE_NETNS = 20  # namespaces in the baseline; veth pairs join them two by two
QUICK = ("two-hosts", "pods-10", "bgp-quick", "policy-quick")
SMOKE_ONLY = ("bgp-quick", "policy-quick")  # left out of the default run: the full cases cover them
UP_LIMIT_S, DOWN_LIMIT_S, LINEAR_LIMIT = 2.0, 1.0, 1.5  # targets from the issue
STARS_LIMIT_S = 5.0  # `up stars` ready, all probes reporting (the stars issue)


class BenchError(RuntimeError):
    """A step failed; shown as one line."""


@dataclass(frozen=True)
class Run:
    up_wall: float  # s, the whole `testbed up` process
    up_internal: float  # s, "seconds" in up's JSON
    down: float  # s, the whole `testbed down` process
    pods: int
    namespaces: int  # 1 fabric + hosts + pods
    steps: dict[str, float] = field(default_factory=dict)  # step title -> s from the start of `up` to its line


# The line `up` prints on stderr (not a terminal) when a step is done: "pods: 4/4 done".
STEP_LINE = re.compile(r"(?P<step>[A-Za-z][A-Za-z ]*): (?P<done>\d+)/(?P=done) done")


def progress(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Hold Ctrl-C until the block ends; run children with shielded=True so they miss it too."""
    hit: list[int] = []
    old = signal.signal(signal.SIGINT, lambda *_: hit.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if hit:
        raise KeyboardInterrupt


def timed(argv: list[str], shielded: bool = False, timeout: float = 900) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, start_new_session=shielded)
    return time.perf_counter() - start, proc


def step_of(line: str) -> str | None:
    """The step a progress line of `up` says is done ("pods: 4/4 done" -> "pods"), else None."""
    match = STEP_LINE.fullmatch(line.strip())
    return match.group("step") if match else None


def timed_steps(argv: list[str], timeout: float = 900) -> tuple[float, subprocess.CompletedProcess[str], dict[str, float]]:
    """``timed``, plus when each progress line of `up` came (seconds from the start): where
    the time of `up` goes, as the user watching it sees it."""
    steps: dict[str, float] = {}
    errors: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:  # a file: a large JSON summary cannot fill a pipe
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                errors.append(line)
                step = step_of(line)
                if step is not None:
                    steps[step] = time.perf_counter() - start
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        wall = time.perf_counter() - start
        out.seek(0)
        stdout = out.read()
    return wall, subprocess.CompletedProcess(argv, proc.returncode, stdout, "".join(errors)), steps


def testbed(*args: str) -> list[str]:
    return [sys.executable, "-m", "testbed", *args]  # this checkout's code (cwd=REPO)


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def bench_netns(prefix: str = PREFIX) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def lab_down(lab: str, must: bool) -> float:
    """Remove LAB, Ctrl-C or not; an error if it was up (or left namespaces) and is not gone."""
    with deferred_sigint():
        seconds, proc = timed(testbed("down", lab), shielded=True)
    if proc.returncode != 0 and (must or bench_netns(f"{lab}.")):
        raise BenchError(f"testbed down {lab} failed: {last_line(proc.stderr)}")
    return seconds


def lab_runs(case: str, topology: list[str], repeat: int) -> list[Run]:
    lab, runs = PREFIX + case, []
    for i in range(1, repeat + 1):
        built = False
        try:
            wall, proc, steps = timed_steps(testbed("up", *topology, "--name", lab, "-o", "json"))
            if proc.returncode != 0:
                raise BenchError(f"testbed up {lab} failed: {last_line(proc.stderr)}")
            built, data = True, json.loads(proc.stdout)
        finally:
            down = lab_down(lab, must=built)
        pods, hosts = len(data["pods"]), len(data["hosts"])
        runs.append(Run(wall, float(data["seconds"]), down, pods, 1 + hosts + pods, steps))
        progress(f"{case} {i}/{repeat}: up {wall:.2f} s (internal {data['seconds']:.2f} s), down {down:.2f} s")
    return runs


CaseFn = Callable[[int], Any]  # list[Run], or a BGP case's dict (bench_bgp)
CASES: dict[str, CaseFn] = {}


def case(name: str) -> Callable[[CaseFn], CaseFn]:
    """Register a case: a function of the repeat count returning one Run per repetition
    (or, for a BGP case, the dict bench_bgp.bgp_section reads)."""
    def register(fn: CaseFn) -> CaseFn:
        assert name not in CASES, f"case {name} registered twice"
        CASES[name] = fn
        return fn

    return register


@case("two-hosts")
def two_hosts(repeat: int) -> list[Run]:
    return lab_runs("two-hosts", ["two-hosts"], repeat)


STARS_UI_PORT = 30092  # not the default 30002, which a user's own stars lab may hold


def ui_listening(port: int) -> bool:
    """Whether something accepts on 127.0.0.1:PORT (the lab's forwarder; localhost only)."""
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@case("stars")
def stars(repeat: int) -> list[Run]:
    """up stars until every probe reports, with the UI forwarded; down must stop the forwarder."""
    runs = lab_runs("stars", ["stars", "--ui-port", str(STARS_UI_PORT)], repeat)
    if ui_listening(STARS_UI_PORT):
        raise BenchError(f"testbed down left the UI forwarder on 127.0.0.1:{STARS_UI_PORT}")
    return runs


def scale_case(pods: int) -> CaseFn:
    """pods-PODS: the scale topology, 2 hosts with PODS/2 pods each."""
    return lambda repeat: lab_runs(f"pods-{pods}", ["scale", "--hosts", "2", "--pods-per-host", str(pods // 2)], repeat)


for _pods in (10, 100, 500):
    case(f"pods-{_pods}")(scale_case(_pods))

# The BGP cases use this module's helpers (timed, testbed, lab_down, BenchError, ...).
for _name, _fn in (("route-latency", bench_bgp.route_latency), ("bgp-scale", bench_bgp.bgp_scale),
                   ("bgp-quick", bench_bgp.bgp_quick)):  # fmt: skip
    case(_name)(partial(_fn, sys.modules[__name__]))
for _name, _fn in (("policy", bench_policy.policy), ("policy-quick", bench_policy.policy_quick),
                   ("trace", bench_trace.trace), ("control", bench_control.control)):  # fmt: skip
    case(_name)(partial(_fn, sys.modules[__name__]))


def case_labs(name: str) -> list[str]:
    """The labs a case builds."""
    return bench_bgp.lab_names(name) or bench_policy.lab_names(name) or [PREFIX + name]  # control: bench-control


def ip(*args: str) -> float:
    seconds, proc = timed(["ip", *args], timeout=60)
    if proc.returncode != 0:
        raise BenchError(f"ip {' '.join(args)} failed: {last_line(proc.stderr)}")
    return seconds


def baseline(count: int = BASE_NETNS) -> dict[str, Any]:
    """Median seconds of `ip netns add`, `ip netns delete`, and a veth pair between two namespaces."""
    names, made, adds, veths, deletes = [f"{PREFIX}base-{i}" for i in range(count)], [], [], [], []
    try:
        for name in names:
            adds.append(ip("netns", "add", name))
            made.append(name)
        for a, b in zip(names[::2], names[1::2]):
            veths.append(ip("link", "add", "bench0", "netns", a, "type", "veth", "peer", "name", "bench1", "netns", b))
        while made:
            deletes.append(ip("netns", "delete", made[-1]))
            made.pop()
    finally:
        with deferred_sigint():
            for name in made:
                subprocess.run(["ip", "netns", "delete", name], capture_output=True, start_new_session=True)
    return {"namespaces": count, "netns_add_s": statistics.median(adds), "netns_delete_s": statistics.median(deletes),
            "veth_pairs": len(veths), "veth_s": statistics.median(veths)}


def step_medians(runs: Iterable[Run]) -> dict[str, float]:
    """Per step of `up`, the median second its line came, in the order the steps came."""
    seen: dict[str, list[float]] = {}
    for run in runs:
        for step, at in sorted(run.steps.items(), key=lambda item: item[1]):
            seen.setdefault(step, []).append(at)
    medians = {step: statistics.median(times) for step, times in seen.items()}
    return dict(sorted(medians.items(), key=lambda item: item[1]))


def summarize(name: str, runs: list[Run], netns_add_s: float) -> dict[str, Any]:
    ups = [r.up_wall for r in runs]
    up, pods, namespaces = statistics.median(ups), runs[0].pods, runs[0].namespaces
    return {
        "case": name, "runs": len(runs), "pods": pods, "namespaces": namespaces,
        "up_median_s": up, "up_min_s": min(ups), "up_max_s": max(ups),
        "up_steps_median_s": step_medians(runs),
        "up_internal_median_s": statistics.median(r.up_internal for r in runs),
        "down_median_s": statistics.median(r.down for r in runs),
        "ms_per_pod": 1000 * up / pods if pods else None,
        "baseline_ratio": up / (namespaces * netns_add_s) if netns_add_s > 0 else None,
        "samples": [asdict(r) for r in runs],
    }


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope and intercept of y over x; None without two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    mx, my = statistics.fmean(x for x, _ in points), statistics.fmean(y for _, y in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return slope, my - slope * mx


def marginal_ms(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """Milliseconds each pod adds between two cases (slope of up time over pods)."""
    if not a or not b or b["pods"] == a["pods"]:
        return None
    return 1000 * (b["up_median_s"] - a["up_median_s"]) / (b["pods"] - a["pods"])


def linearity(cases: list[dict[str, Any]]) -> dict[str, Any]:
    by_name = {c["case"]: c for c in cases}
    at_100 = by_name.get("pods-100", {}).get("ms_per_pod")
    at_500 = by_name.get("pods-500", {}).get("ms_per_pod")
    pod_cases = [c for c in cases if re.fullmatch(r"pods-\d+", c["case"])]
    fit = fit_line([(c["pods"], c["up_median_s"]) for c in pod_cases])
    # Cost of each added pod, which leaves out the fixed start-up cost that ms/pod includes.
    low, high = marginal_ms(by_name.get("pods-10"), by_name.get("pods-100")), marginal_ms(
        by_name.get("pods-100"), by_name.get("pods-500")
    )
    return {
        "ms_per_pod_100": at_100, "ms_per_pod_500": at_500,
        "ratio_500_to_100": at_500 / at_100 if at_100 and at_500 else None,
        "marginal_ms_10_to_100": low, "marginal_ms_100_to_500": high,
        "marginal_ratio": high / low if low and high else None,
        "fit_cases": [c["case"] for c in pod_cases],
        "slope_ms_per_pod": 1000 * fit[0] if fit else None, "intercept_s": fit[1] if fit else None,
    }


def target(name: str, figure: float | None, limit: float, unit: str) -> dict[str, Any]:
    status = "skipped" if figure is None else "pass" if figure <= limit else "fail"
    return {"target": name, "figure": figure, "limit": limit, "unit": unit, "status": status}


def targets(cases: list[dict[str, Any]], lin: dict[str, Any]) -> list[dict[str, Any]]:
    two = next((c for c in cases if c["case"] == "two-hosts"), {})
    stars = next((c for c in cases if c["case"] == "stars"), None)
    extra = [target("stars up, all probes reporting", stars.get("up_median_s"), STARS_LIMIT_S, "s")] if stars else []
    return extra + [
        target("two-hosts up", two.get("up_median_s"), UP_LIMIT_S, "s"),
        target("two-hosts down", two.get("down_median_s"), DOWN_LIMIT_S, "s"),
        target("linear growth (ms per added pod, 100->500 / 10->100)", lin["marginal_ratio"], LINEAR_LIMIT, "x"),
    ]


def build_report(machine: dict[str, Any], base: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """The report; "bgp" / "policy" (and their targets) only when such a case ran, the
    up/down targets only when an up/down case ran."""
    runs = {name: r for name, r in results.items() if isinstance(r, list)}
    policy = {name: r for name, r in results.items() if isinstance(r, dict) and "policy" in r}
    traces = {name: r for name, r in results.items() if isinstance(r, dict) and "trace" in r}
    control = {name: r for name, r in results.items() if isinstance(r, dict) and "control" in r}
    bgp = {name: r for name, r in results.items()
           if not isinstance(r, list) and name not in policy and name not in traces and name not in control}
    cases = [summarize(name, r, base["netns_add_s"]) for name, r in runs.items()]
    lin = linearity(cases)
    report = {"machine": machine, "baseline": base, "cases": cases, "linearity": lin,
              "targets": targets(cases, lin) if cases or not (bgp or policy or traces or control) else []}
    if control:
        report["control"] = bench_control.control_section(control)
    if bgp:
        report["bgp"] = bench_bgp.bgp_section(bgp, base["netns_add_s"])
        report["targets"] += bench_bgp.bgp_targets(report["bgp"], target)
    if policy:
        report["policy"] = bench_policy.policy_section(policy)
        report["targets"] += bench_policy.policy_targets(report["policy"], target)
    if traces:
        report["trace"] = bench_trace.trace_section(traces)
        report["targets"] += bench_trace.trace_targets(report["trace"], target)
    return report


def rounded(obj: Any, digits: int = 4) -> Any:
    """OBJ with every float rounded, for JSON people read."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    return [rounded(v, digits) for v in obj] if isinstance(obj, list) else obj


def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def render_table(report: dict[str, Any]) -> Table:
    table = Table(title="testbed up/down (seconds; x baseline = up / (netns x ip netns add))")
    for col in ("case", "pods", "netns", "up med", "up min", "up max", "up internal", "down med", "ms/pod", "x baseline"):
        table.add_column(col, justify="left" if col == "case" else "right", no_wrap=col == "case")
    for c in report["cases"]:
        table.add_row(c["case"], str(c["pods"]), str(c["namespaces"]), fmt(c["up_median_s"]), fmt(c["up_min_s"]),
                      fmt(c["up_max_s"]), fmt(c["up_internal_median_s"]), fmt(c["down_median_s"]),
                      fmt(c["ms_per_pod"], ".1f"), fmt(c["baseline_ratio"], ".1f", "x"))
    return table


def verdict(t: dict[str, Any]) -> str:
    unit = {"s": " s", "ms": " ms", "rules": " rules"}.get(t["unit"], "x")
    spec = ".0f" if t["unit"] in ("ms", "rules") else ".2f"
    return f"{t['status'].upper():7} {t['target']}: {fmt(t['figure'], spec, unit)} (target <= {t['limit']:g}{unit})"


def step_line(case: dict[str, Any]) -> str | None:
    """Where a case's `up` went: the median second each step was done, and the exit."""
    steps = case.get("up_steps_median_s") or {}
    if not steps:
        return None
    parts = [f"{step} {at:.2f}" for step, at in steps.items()] + [f"exit {case['up_median_s']:.2f}"]
    return f"{case['case']} up, s from start (median) when done: " + ", ".join(parts)


def summary_lines(report: dict[str, Any]) -> list[str]:
    b, lin, m = report["baseline"], report["linearity"], report["machine"]
    head = [
        f"machine: {m['cores']} cores, kernel {m['kernel']}",
        f"baseline: ip netns add {1000 * b['netns_add_s']:.1f} ms, delete {1000 * b['netns_delete_s']:.1f} ms "
        f"(median of {b['namespaces']}); veth pair {1000 * b['veth_s']:.1f} ms (median of {b['veth_pairs']})",
    ]
    extra = (bench_bgp.summary_lines(report["bgp"]) if "bgp" in report else []) + (
        bench_policy.summary_lines(report["policy"]) if "policy" in report else []) + (
        bench_control.render_lines(report["control"]) if "control" in report else [])
    if ("bgp" in report or "policy" in report or "trace" in report or "control" in report) and not report["cases"]:  # no up/down figures to discuss
        return head + extra + [verdict(t) for t in report["targets"]]
    return head + [
        f"linearity: {fmt(lin['ms_per_pod_100'], '.1f')} ms/pod at 100, {fmt(lin['ms_per_pod_500'], '.1f')} at 500, "
        f"ratio {fmt(lin['ratio_500_to_100'])}; each added pod costs {fmt(lin['marginal_ms_10_to_100'], '.1f')} ms "
        f"from 10 to 100 pods, {fmt(lin['marginal_ms_100_to_500'], '.1f')} ms from 100 to 500",
        f"least squares over {', '.join(lin['fit_cases']) or 'none'}: up = "
        f"{fmt(lin['slope_ms_per_pod'], '.1f')} ms/pod + {fmt(lin['intercept_s'])} s",
    ] + [line for c in report["cases"] if (line := step_line(c))] + extra + [verdict(t) for t in report["targets"]]


def render(report: dict[str, Any]) -> list[Table]:
    """The tables of the report: up/down when such cases ran, then the BGP and policy ones."""
    others = ("bgp", "policy", "trace", "control")
    tables = [render_table(report)] if report["cases"] or not any(k in report for k in others) else []
    if "bgp" in report and report["bgp"]["route_latency"]:
        tables.append(bench_bgp.render_latency_table(report["bgp"]))
    if "bgp" in report and report["bgp"]["scale"]:
        tables.append(bench_bgp.render_scale_table(report["bgp"]))
    if "policy" in report and report["policy"]["sizes"]:
        tables.append(bench_policy.render_policy_table(report["policy"]))
    if "trace" in report:
        tables.append(bench_trace.render_trace_table(report["trace"]))
    return tables


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help=f"comma-separated, from {','.join(CASES)} "
                        f"(default: all but {','.join(SMOKE_ONLY)})")
    parser.add_argument("--repeat", type=int, help="runs per case (default: 3)")
    parser.add_argument("--json", action="store_true", help="print only the JSON report on stdout")
    parser.add_argument("--quick", action="store_true", help=f"smoke test: {', '.join(QUICK)}, one run each")
    args = parser.parse_args(argv)
    if args.quick and (args.cases or args.repeat is not None):
        parser.error("--quick picks its own cases and repeat; give --quick or --cases/--repeat")
    default = [c for c in CASES if c not in SMOKE_ONLY]
    args.cases = list(QUICK) if args.quick else args.cases.split(",") if args.cases else default
    args.repeat = 1 if args.quick else 3 if args.repeat is None else args.repeat
    if unknown := [c for c in args.cases if c not in CASES]:
        parser.error(f"unknown case {','.join(unknown)}; known: {','.join(CASES)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def preflight(cases: list[str]) -> None:
    """Refuse to touch a bench lab or baseline namespace that is already there."""
    _, proc = timed(testbed("labs", "-o", "json"))
    if proc.returncode != 0:
        raise BenchError(f"testbed labs failed: {last_line(proc.stderr)}")
    up, present = set(json.loads(proc.stdout)["labs"]), bench_netns()
    for lab in (lab for name in cases for lab in case_labs(name)):
        if lab in up or any(n.startswith(f"{lab}.") for n in present):
            raise BenchError(f"lab {lab} already exists (remove it first: sudo testbed down {lab})")
    if base := [n for n in present if n.startswith(f"{PREFIX}base-")]:
        raise BenchError(f"baseline namespace {base[0]} already exists (remove it: sudo ip netns delete {base[0]})")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        progress("error: must run as root (try: sudo scripts/bench)")
        return 1
    # `up` merges each lab into the invoking user's kubeconfig: the bench's labs go into a
    # file of the run's own (the merge is timed as any user's `up` pays it), never the user's.
    kube_folder = tempfile.mkdtemp(prefix="testbed-bench-kube-")
    os.environ["KUBECONFIG"] = os.path.join(kube_folder, "config")
    atexit.register(shutil.rmtree, kube_folder, True)
    try:
        preflight(args.cases)
        progress(f"baseline: {BASE_NETNS} x ip netns add/delete, {BASE_NETNS // 2} veth pairs")
        base = baseline()
        results = {name: CASES[name](args.repeat) for name in args.cases}
    except BenchError as exc:
        progress(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        progress("interrupted (bench labs removed)")
        return 130
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    try:
        report = build_report({"cores": os.cpu_count(), "kernel": platform.release()}, base, results)
    except Exception:  # keep what the labs measured, then show the bug
        raw = path.with_name(path.stem + "-raw.json")
        raw.write_text(json.dumps({"baseline": base, "results": results}, default=asdict, indent=2) + "\n")
        progress(f"error: building the report failed; raw results saved in {raw.relative_to(REPO)}")
        raise
    path.write_text(json.dumps(rounded(report), indent=2) + "\n")
    if args.json:
        print(json.dumps(rounded(report), indent=2))
    else:
        console = Console(soft_wrap=True)
        if not console.is_terminal:  # a file or pipe: no 80-column squeeze (the BGP tables are wide)
            console.width = 200
        for table in render(report):
            console.print(table)
        for line in summary_lines(report):
            console.print(line, highlight=False)
    progress(f"saved {path.relative_to(REPO)}")
    if left := bench_netns():
        progress(f"error: namespaces left behind: {' '.join(left)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
