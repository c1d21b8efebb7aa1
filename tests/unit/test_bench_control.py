"""The control-plane bench's pure parts: what counts as rolled out, the summary."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import bench_control  # noqa: E402


def test_a_rollout_counts_once_the_controllers_report_every_replica_available() -> None:
    value = bench_control.deployment("web", 3)
    assert not bench_control.available(None, 3)
    value["metadata"]["generation"] = 2
    value["status"] = {"observedGeneration": 1, "availableReplicas": 3, "updatedReplicas": 3}
    assert not bench_control.available(value, 3)  # an older generation's status
    value["status"]["observedGeneration"] = 2
    assert bench_control.available(value, 3)
    value["status"]["availableReplicas"] = 2
    assert not bench_control.available(value, 3)


def test_rss_is_read_from_proc(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "status").write_text("Name:\tx\nVmRSS:\t  1234 kB\n")
    assert bench_control.rss_kb(42, tmp_path) == 1234
    assert bench_control.rss_kb(43, tmp_path) == 0


def test_the_section_has_medians_per_size_and_says_them() -> None:
    mem = {"per_host_mb": {"host1": 80.0, "host2": 82.0}, "per_host_median_mb": 81.0, "per_host_max_mb": 82.0,
           "controller_manager_mb": 26.0, "apiserver_mb": 53.0, "supervisor_mb": 12.0, "etcd_mb": 30.0}  # fmt: skip
    kubectl = {"get_pods": [0.09, 0.08, 0.10], "version_client": [0.04, 0.05, 0.06], "exec_true": [0.06, 0.07, 0.08],
               "watch_delay": [0.004, 0.005, 0.006]}  # fmt: skip
    results = {"control": {"control": {"memory": mem, "memory_after_rollouts": mem, "kubectl_s": kubectl,
                                       "rollout_s": {"1": [0.5, 0.7, 0.6], "10": [1.0, 3.0, 2.0]}}}}  # fmt: skip
    section = bench_control.control_section(results)
    assert section["rollout_median_s"] == {"1": 0.6, "10": 2.0}
    lines = bench_control.render_lines(section)
    assert "median 81.0 MB, max 82.0 MB" in lines[0] and "controller manager 26.0 MB" in lines[0]
    assert lines[2].endswith("Deployment of 10 nginx replica(s), apply -> all available: median 2.00 s")
    assert "API server 53.0 MB" in lines[0]
    assert lines[3] == ("API server: kubectl get pods -A median 90 ms, against kubectl version --client 50 ms in the "
                        "same run (1.80x): the round trip costs 40 ms")
    assert lines[4] == "API server: kubectl exec -- true median 70 ms (1.40x kubectl version --client)"
    assert lines[5] == "API server: a Pod's create sent -> its ADDED watch event: median 5.0 ms"
