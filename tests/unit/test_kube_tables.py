"""`kubectl get` tables and `kubectl run`'s object, as kubectl prints and makes them."""

from __future__ import annotations

from testbed.kube import tables as kube_tables
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
    from testbed.kube.tables import pod_ready, pod_restarts, pod_status

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
    from testbed.kube.tables import node_status

    assert node_status({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}) == "Ready"
    assert node_status({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}) == "NotReady"


def test_ages_are_apimachinerys_human_durations() -> None:
    from testbed.kube.tables import human_duration, since

    cases = {0: "0s", 59: "59s", 119: "119s", 120: "2m", 330: "5m30s", 600: "10m", 3 * 3600 + 600: "3h10m",
             9 * 3600: "9h", 2 * 86400 + 6 * 3600: "2d6h", 30 * 86400: "30d", 800 * 86400: "2y70d",
             -5: "<invalid>"}  # fmt: skip
    assert {s: human_duration(s) for s in cases} == cases
    assert since("2026-01-01T00:00:00.123456Z", now=1767225610.2) == "10s", "fractions and Z parse"
    assert since(None) == "<unknown>"


def test_selectors_services_and_endpoints_as_upstream_prints_them() -> None:
    from testbed.kube.tables import endpoints_text, format_label_selector, selector_text, service_external_ip

    selector = {"matchLabels": {"b": "2"}, "matchExpressions": [
        {"key": "a", "operator": "NotIn", "values": ["y", "x"]}, {"key": "c", "operator": "Exists"}]}  # fmt: skip
    assert selector_text(selector) == "a notin (x,y),b=2,c"
    assert (selector_text({}), format_label_selector({})) == ("", "<none>")
    balancer = {"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}}
    assert service_external_ip(balancer) == "<pending>"
    balancer["status"]["loadBalancer"] = {"ingress": [{"ip": "192.0.2.1"}]}
    assert service_external_ip(balancer) == "192.0.2.1"
    assert service_external_ip({"spec": {"type": "ExternalName", "externalName": "example.com"}}) == "example.com"
    headless = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}]}
    assert endpoints_text(headless) == "10.0.0.1,fd00::1", "a subset without ports lists bare IPs"
    assert endpoints_text({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]}) == "[fd00::1]:80"
