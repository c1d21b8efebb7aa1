"""`kubectl get` tables and `kubectl run`'s object, as kubectl prints and makes them."""

from __future__ import annotations

from testbed.cli import kube_tables
from testbed.cli.kubectl import run_manifest
from testbed.kube import workloads

NOW_STAMP = "2026-01-01T00:00:00Z"


def meta(name: str, namespace: str = "policy-demo") -> dict:
    return {"name": name, "namespace": namespace, "creationTimestamp": NOW_STAMP}


def test_services_wide_show_cluster_ip_ports_and_selector() -> None:
    svc = {"metadata": meta("ui"), "spec": {"type": "NodePort", "clusterIP": "10.96.0.3", "selector": {"role": "ui"},
                                            "ports": [{"port": 9001, "nodePort": 30002, "protocol": "TCP"}]}}  # fmt: skip
    table = kube_tables.rows("services", [svc], wide=True)
    assert table[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    assert table[1][:5] == ["ui", "NodePort", "10.96.0.3", "<none>", "9001:30002/TCP"] and table[1][6] == "role=ui"


def test_deployments_show_ready_over_desired_and_all_namespaces_adds_a_column() -> None:
    dep = {"metadata": meta("nginx"), "spec": {"replicas": 2, "selector": {"matchLabels": {"run": "nginx"}},
                                               "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
           "status": {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1}}  # the controller's report
    table = kube_tables.with_namespace(kube_tables.rows("deployments", [dep], wide=True), [dep])
    assert table[0][:3] == ["NAMESPACE", "NAME", "READY"]
    assert table[1][:3] == ["policy-demo", "nginx", "1/2"] and table[1][-3:] == ["nginx", "nginx", "run=nginx"]
    lines = kube_tables.render(table)
    assert lines[0].index("READY") == lines[1].index("1/2"), "columns line up"


def test_kubectl_run_makes_the_labs_deployment_and_an_interactive_pod() -> None:
    dep = run_manifest("nginx", "policy-demo", "nginx", {"run": "nginx"}, [], 2, False, None, False)
    parsed = workloads.parse_workload(dep)
    assert (parsed.kind, parsed.replicas, parsed.selector) == ("Deployment", 2, (("run", "nginx"),))
    pod = run_manifest("access", "policy-demo", "busybox", {"run": "access"}, ["/bin/sh"], 1, True, None, False)
    parsed = workloads.parse_workload(pod)
    assert parsed.kind == "Pod" and parsed.template.labels == (("run", "access"),) and parsed.template.command == ("/bin/sh",)


def _pod(status: dict, deleting: bool = False, containers: int = 1) -> dict:
    metadata = {"name": "web-abcde", "creationTimestamp": "2026-01-01T00:00:00Z"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    return {"metadata": metadata, "spec": {"containers": [{"name": f"c{i}"} for i in range(containers)]}, "status": status}


def test_pod_columns_follow_the_kubelet_s_status() -> None:
    from testbed.cli.kube_tables import pod_ready, pod_restarts, pod_status

    creating = _pod({"phase": "Pending", "containerStatuses": [{"ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}]})
    assert (pod_ready(creating), pod_status(creating), pod_restarts(creating)) == ("0/1", "ContainerCreating", "0")
    crashed = _pod({"phase": "Running", "containerStatuses": [{
        "ready": False, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 137, "finishedAt": "2026-01-01T00:00:50Z"}}}]})  # fmt: skip
    assert pod_status(crashed) == "CrashLoopBackOff"
    assert pod_restarts(crashed, now=1767225660.0) == "1 (10s ago)"
    two = _pod({"phase": "Running", "containerStatuses": [
        {"ready": True, "state": {"running": {}}}, {"ready": False, "state": {"running": {}}}]}, containers=2)  # fmt: skip
    assert (pod_ready(two), pod_status(two)) == ("1/2", "Running")
    assert pod_status(_pod({"phase": "Running"}, deleting=True)) == "Terminating"
    done = _pod({"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
    assert pod_status(done) == "Completed"


def test_node_status_from_the_ready_condition() -> None:
    from testbed.cli.kube_tables import node_status

    assert node_status({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}) == "Ready"
    assert node_status({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}) == "NotReady"
