"""The API server's Table responses: upstream columns and cells, wide priorities, row objects,
and which Accept headers ask for a Table."""

from __future__ import annotations

import pytest

from testbed.apiserver import status, tables

CREATED = "2026-01-01T00:00:00Z"
NOW = 1767225600.0 + 300  # five minutes after CREATED
KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


def meta(name: str, namespace: str | None = "demo", **more: object) -> dict:
    out = {"name": name, "creationTimestamp": CREATED, "uid": f"uid-{name}", "resourceVersion": "7", **more}
    if namespace:
        out["namespace"] = namespace
    return out


def by_name(table: dict, row: int = 0) -> dict:
    """One row's cells keyed by column name."""
    names = [c["name"] for c in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][row]["cells"]))


def test_a_running_pod_with_one_restart() -> None:
    pod = {
        "metadata": meta("web-abc", labels={"app": "web"}),
        "spec": {"nodeName": "host1", "containers": [{"name": "web", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": "10.65.0.4", "podIPs": [{"ip": "10.65.0.4"}], "containerStatuses": [{
            "name": "web", "ready": True, "restartCount": 1, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 137, "finishedAt": "2026-01-01T00:04:55Z"}}}]},
    }  # fmt: skip
    table = tables.table("pods", [pod], resource_version="42", now=NOW)
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"] == {"resourceVersion": "42"}
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]  # fmt: skip
    assert table["rows"][0]["cells"] == ["web-abc", "1/1", "Running", "1 (5s ago)", "5m", "10.65.0.4", "host1",
                                         "<none>", "<none>"]  # fmt: skip
    name = table["columnDefinitions"][0]
    assert (name["type"], name["format"], name["priority"]) == ("string", "name", 0)
    assert {c["name"]: c["type"] for c in table["columnDefinitions"]}["Restarts"] == "string"
    assert {c["name"]: c["type"] for c in table["columnDefinitions"]}["Age"] == "string"


def test_wide_columns_have_priority_one_and_the_rest_zero() -> None:
    for plural, wide in (
        ("pods", {"IP", "Node", "Nominated Node", "Readiness Gates"}),
        ("services", {"Selector"}),
        ("deployments", {"Containers", "Images", "Selector"}),
        ("daemonsets", {"Containers", "Images", "Selector"}),
        ("nodes", {"Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"}),
        ("events", {"Subobject", "Source", "First Seen", "Count", "Name"}),
    ):
        definitions = tables.table(plural, [], resource_version="1")["columnDefinitions"]
        assert {c["name"] for c in definitions if c["priority"] == 1} == wide, plural
        assert all(c["priority"] in (0, 1) for c in definitions)


def test_a_node_port_service() -> None:
    svc = {"metadata": meta("ui"), "spec": {
        "type": "NodePort", "clusterIP": "10.96.0.3", "clusterIPs": ["10.96.0.3"], "selector": {"role": "ui"},
        "ports": [{"port": 9001, "nodePort": 30002, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}  # fmt: skip
    row = by_name(tables.table("services", [svc], resource_version="1", now=NOW))
    assert row == {"Name": "ui", "Type": "NodePort", "Cluster-IP": "10.96.0.3", "External-IP": "<none>",
                   "Port(s)": "9001:30002/TCP,53/UDP", "Age": "5m", "Selector": "role=ui"}  # fmt: skip


def test_a_deployment_with_status_counts_and_integer_cells() -> None:
    dep = {
        "metadata": meta("nginx"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"run": "nginx"}}, "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx"}, {"name": "side", "image": "busybox"}]}}},
        "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 3},
    }  # fmt: skip
    table = tables.table("deployments", [dep], resource_version="1", now=NOW)
    assert by_name(table) == {"Name": "nginx", "Ready": "2/3", "Up-to-date": 3, "Available": 2, "Age": "5m",
                              "Containers": "nginx,side", "Images": "nginx,busybox",
                              "Selector": "run=nginx"}  # fmt: skip
    rs = dict(dep, metadata=meta("nginx-5d4f"))
    row = by_name(tables.table("replicasets", [rs], resource_version="1", now=NOW))
    assert (row["Desired"], row["Current"], row["Ready"]) == (3, 3, 2)
    types = {c["name"]: c["type"] for c in tables.table("replicasets", [], resource_version="1")["columnDefinitions"]}
    assert (types["Desired"], types["Current"], types["Ready"], types["Containers"]) == ("integer",) * 3 + ("string",)


def test_a_daemonset() -> None:
    template = {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "c", "image": "i"}]}}
    ds = {"metadata": meta("calico-node"), "spec": {"selector": {"matchLabels": {"k8s-app": "calico-node"}},
                                                    "template": template},
          "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                     "updatedNumberScheduled": 2, "numberAvailable": 1}}  # fmt: skip
    table = tables.table("daemonsets", [ds], resource_version="1", now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]][:8] == [
        "Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"]  # fmt: skip
    assert table["rows"][0]["cells"][:8] == ["calico-node", 2, 2, 1, 2, 1, "kubernetes.io/os=linux", "5m"]
    assert table["rows"][0]["cells"][-1] == "k8s-app=calico-node"


def test_a_ready_node_and_a_cordoned_one() -> None:
    node = {"metadata": meta("host1", namespace=None, labels={"node-role.kubernetes.io/control-plane": ""}),
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "testbed", "kernelVersion": "6.8",
                                    "containerRuntimeVersion": "testbed://1"}}}  # fmt: skip
    cordoned = {**node, "metadata": meta("host2", namespace=None), "spec": {"unschedulable": True}}
    table = tables.table("nodes", [node, cordoned], resource_version="1", now=NOW)
    assert by_name(table) == {"Name": "host1", "Status": "Ready", "Roles": "control-plane", "Age": "5m",
                              "Version": "v1.32.4", "Internal-IP": "172.18.0.2", "External-IP": "<none>",
                              "OS-Image": "testbed", "Kernel-Version": "6.8",
                              "Container-Runtime": "testbed://1"}  # fmt: skip
    assert by_name(table, 1)["Status"] == "Ready,SchedulingDisabled" and by_name(table, 1)["Roles"] == "<none>"


def test_namespaces_policies_configmaps_leases_endpoints() -> None:
    ns = {"metadata": meta("demo", namespace=None), "status": {"phase": "Terminating"}}
    cells = tables.table("namespaces", [ns], resource_version="1", now=NOW)["rows"][0]["cells"]
    assert cells == ["demo", "Terminating", "5m"]
    expressions = [{"key": "tier", "operator": "In", "values": ["b", "a"]}, {"key": "x", "operator": "DoesNotExist"}]
    policy = {"metadata": meta("deny"),
              "spec": {"podSelector": {"matchLabels": {"role": "db"}, "matchExpressions": expressions}}}
    assert by_name(tables.table("networkpolicies", [policy], resource_version="1"))["Pod-Selector"] == \
        "role=db,tier in (a,b),!x"  # fmt: skip
    everything = {"metadata": meta("all"), "spec": {"podSelector": {}}}
    assert by_name(tables.table("networkpolicies", [everything], resource_version="1"))["Pod-Selector"] == "<none>"
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert by_name(tables.table("configmaps", [cm], resource_version="1"))["Data"] == 3
    lease = {"metadata": meta("host1"), "spec": {"holderIdentity": "host1"}}
    assert [c["name"] for c in tables.table("leases", [lease], resource_version="1")["columnDefinitions"]] == [
        "Name", "Holder", "Age"]  # fmt: skip
    ep = {"metadata": meta("web"), "subsets": [{"addresses": [{"ip": f"10.65.0.{i}"} for i in range(1, 5)],
                                                "ports": [{"port": 80}]}]}  # fmt: skip
    assert by_name(tables.table("endpoints", [ep], resource_version="1"))["Endpoints"] == \
        "10.65.0.1:80,10.65.0.2:80,10.65.0.3:80 + 1 more..."  # fmt: skip


def test_an_event_row() -> None:
    event = {"metadata": meta("web.17a"), "type": "Normal", "reason": "Scheduled", "message": " Assigned pod ",
             "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
             "source": {"component": "default-scheduler"}, "firstTimestamp": "2026-01-01T00:03:00Z",
             "lastTimestamp": "2026-01-01T00:04:00Z", "count": 2}  # fmt: skip
    row = by_name(tables.table("events", [event], resource_version="1", now=NOW))
    assert row == {"Last Seen": "60s", "Type": "Normal", "Reason": "Scheduled", "Object": "pod/web",
                   "Subobject": "spec.containers{web}", "Source": "default-scheduler", "Message": "Assigned pod",
                   "First Seen": "2m", "Count": 2, "Name": "web.17a"}  # fmt: skip


def test_a_kind_without_a_printer_gets_name_and_created_at() -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": meta("view", namespace=None)}
    table = tables.table("clusterroles", [role], resource_version="9", now=NOW)
    assert [(c["name"], c["type"], c["format"]) for c in table["columnDefinitions"]] == [
        ("Name", "string", "name"), ("Created At", "date", "")]  # fmt: skip
    assert table["rows"][0]["cells"] == ["view", CREATED]


def test_rows_carry_partial_object_metadata_by_default() -> None:
    pod = {"metadata": meta("web", labels={"app": "web"}), "spec": {"containers": [{"name": "c"}]}, "status": {}}
    row = tables.table("pods", [pod], resource_version="1")["rows"][0]
    partial = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pod["metadata"]}
    assert row["object"] == partial
    assert row["object"]["metadata"] is not pod["metadata"], "a copy: the caller's value is not shared"
    whole = tables.table("pods", [pod], resource_version="1", include_object="Object")["rows"][0]["object"]
    assert (whole["kind"], whole["apiVersion"], whole["spec"]) == ("Pod", "v1", pod["spec"])
    assert "object" not in tables.table("pods", [pod], resource_version="1", include_object="None")["rows"][0]
    beta = tables.table("pods", [pod], resource_version="1", group_version="meta.k8s.io/v1beta1")
    assert beta["apiVersion"] == beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


def test_a_finished_pod_row_has_the_completed_condition() -> None:
    done = {"metadata": meta("job"), "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Succeeded"}}
    row = tables.table("pods", [done], resource_version="1")["rows"][0]
    assert row["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                  "message": "The pod has completed successfully."}]  # fmt: skip


def test_watch_events_carry_column_definitions_only_first() -> None:
    pod = {"metadata": meta("web"), "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}}
    first = tables.watch_event_table("pods", pod, first=True)
    later = tables.watch_event_table("pods", pod, first=False)
    assert first["kind"] == later["kind"] == "Table" and first["metadata"] == {"resourceVersion": "7"}
    assert len(first["columnDefinitions"]) == 9 and later["columnDefinitions"] is None
    assert len(first["rows"]) == len(later["rows"]) == 1 and later["rows"][0]["cells"][0] == "web"


@pytest.mark.parametrize(("accept", "version"), [
    (KUBECTL_ACCEPT, "meta.k8s.io/v1"),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json", "meta.k8s.io/v1beta1"),
    ("application/json", None),
    ("", None),
    ("*/*", None),
    ("application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5,application/json", None),  # plain JSON preferred
    ("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", None),  # a version the server lacks: skipped
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io",
     "meta.k8s.io/v1"),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", None),
])  # fmt: skip
def test_accept_headers(accept: str, version: str | None) -> None:
    assert tables.table_version(accept) == version
    assert tables.wants_table(accept) is (version is not None)


def test_include_object_values() -> None:
    assert [tables.include_object(v) for v in (None, "", "Metadata", "Object", "None")] == [
        "Metadata", "Metadata", "Metadata", "Object", "None"]  # fmt: skip
    with pytest.raises(status.ApiError) as caught:
        tables.include_object("Everything")
    assert caught.value.code == 400 and caught.value.message == (
        "Unable to convert to Table as requested: includeObject: Invalid value: \"Everything\": "
        "must be 'Metadata', 'Object', 'None', or empty")  # fmt: skip
