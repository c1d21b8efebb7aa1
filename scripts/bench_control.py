"""The control plane's figures: memory per host and of the controller manager, and how long
a Deployment takes from `kubectl apply` to every pod Ready.

Case ``control`` (scripts/bench.py --cases control): one two-hosts lab; the RSS of every
process living in each host's netns (the Felix agent with its kubelet threads, ExaBGP and
its glue), of the controller manager and the supervisor; then, ``repeat`` times, a
Deployment of 1 and of 10 nginx replicas applied with ``--wait=false`` and timed until its
status says every replica is available (the controllers' and kubelets' own report), then
deleted. Pure summaries are unit-tested (tests/unit/test_bench_control.py).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

LAB = "bench-control"
READY_TIMEOUT = 120.0
SIZES = (1, 10)


def rss_kb(pid: int, proc: Path = Path("/proc")) -> int:
    """VmRSS of a process in kB (0 when it is gone)."""
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "demo"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
    }  # fmt: skip


def available(value: dict[str, Any] | None, replicas: int) -> bool:
    """The Deployment's own status says every replica is up to date and available (pure)."""
    if value is None:
        return False
    status = value.get("status", {})
    observed = int(status.get("observedGeneration", 0)) >= int(value.get("metadata", {}).get("generation", 1))
    return observed and int(status.get("availableReplicas", 0)) == replicas and int(status.get("updatedReplicas", 0)) == replicas


def memory(lab: str) -> dict[str, Any]:
    """RSS per host (every process in its netns) and of the lab-wide processes, in MB."""
    from testbed import naming  # noqa: PLC0415
    from testbed.netns import namespaces  # noqa: PLC0415
    from testbed.runtime import state  # noqa: PLC0415

    recorded = state.load(lab)
    if recorded is None:
        raise RuntimeError(f"lab {lab} is not up")
    hosts = sorted({p.name.split(" ", 1)[1] for p in recorded.processes if p.name.startswith("felix ")})
    netns = [naming.host_netns(lab, h) for h in hosts]
    found = namespaces.pids_by_netns(netns)
    per_host = {h: sum(rss_kb(pid) for pid in found.get(n, [])) / 1024 for h, n in zip(hosts, netns)}
    lab_wide = {
        name: sum(rss_kb(p.pid) for p in recorded.processes if p.name == name) / 1024
        for name in ("controller-manager", "supervisor", "etcd")
    }
    return {
        "per_host_mb": per_host,
        "per_host_median_mb": statistics.median(per_host.values()) if per_host else None,
        "per_host_max_mb": max(per_host.values()) if per_host else None,
        "controller_manager_mb": lab_wide["controller-manager"],
        "supervisor_mb": lab_wide["supervisor"],
        "etcd_mb": lab_wide["etcd"],
    }


def time_rollout(bench: Any, lab: str, replicas: int, index: int) -> float:
    """Seconds from `kubectl apply` of a Deployment to its status saying all are available."""
    from testbed import api  # noqa: PLC0415
    from testbed.datastore import keys  # noqa: PLC0415

    name = f"roll{replicas}-{index}"
    manifest = json.dumps(deployment(name, replicas))
    started = time.perf_counter()
    proc = subprocess.run(
        bench.testbed("kubectl", "--lab", lab, "apply", "-f", "-", "--wait=false"),
        cwd=bench.REPO, input=manifest, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if proc.returncode != 0:
        raise bench.BenchError(f"kubectl apply failed: {bench.last_line(proc.stderr)}")
    with api.datastore(lab) as store:
        while not available(store.get(keys.DEPLOYMENTS + f"demo/{name}"), replicas):
            if time.perf_counter() - started > READY_TIMEOUT:
                raise bench.BenchError(f"deployment {name}: not available within {READY_TIMEOUT:g} s")
            time.sleep(0.01)
    took = time.perf_counter() - started
    subprocess.run(bench.testbed("kubectl", "--lab", lab, "delete", "deploy", name, "-n", "demo", "--cascade=foreground"),
                   cwd=bench.REPO, capture_output=True, text=True, timeout=180)  # fmt: skip
    return took


def control(bench: Any, repeat: int) -> dict[str, Any]:
    built = False
    try:
        seconds, proc = bench.timed(bench.testbed("up", "two-hosts", "--name", LAB, "-o", "json"))
        if proc.returncode != 0:
            raise bench.BenchError(f"testbed up {LAB} failed: {bench.last_line(proc.stderr)}")
        built = True
        time.sleep(2.0)  # past start-up: the resident memory of a lab at rest
        mem = memory(LAB)
        rollouts: dict[str, list[float]] = {str(n): [] for n in SIZES}
        for i in range(1, repeat + 1):
            for size in SIZES:
                took = time_rollout(bench, LAB, size, i)
                rollouts[str(size)].append(took)
                bench.progress(f"control {i}/{repeat}: {size} replica(s) available in {took:.2f} s")
        mem_after = memory(LAB)
    finally:
        bench.lab_down(LAB, must=built)
    return {"control": {"memory": mem, "memory_after_rollouts": mem_after, "rollout_s": rollouts}}


def control_section(results: dict[str, Any]) -> dict[str, Any]:
    """The report's "control" part (pure): memory, and rollout medians per size."""
    found = next(iter(results.values()))["control"]
    return {
        "memory": found["memory"],
        "memory_after_rollouts": found["memory_after_rollouts"],
        "rollout_median_s": {size: statistics.median(times) for size, times in found["rollout_s"].items() if times},
        "rollout_s": found["rollout_s"],
    }


def render_lines(section: dict[str, Any]) -> list[str]:
    mem = section["memory"]
    lines = [
        f"control plane: RSS per host median {mem['per_host_median_mb']:.1f} MB, max {mem['per_host_max_mb']:.1f} MB "
        f"(Felix agent with its kubelet, ExaBGP and glue); controller manager {mem['controller_manager_mb']:.1f} MB, "
        f"supervisor {mem['supervisor_mb']:.1f} MB, etcd {mem['etcd_mb']:.1f} MB",
    ]
    for size, median in section["rollout_median_s"].items():
        lines.append(f"control plane: Deployment of {size} nginx replica(s), apply -> all available: median {median:.2f} s")
    return lines
