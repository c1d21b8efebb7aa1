"""The values of a lab's etcd, built from its plan: shapes, and IPAM consistent with it."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from testbed import addressing, naming
from testbed.datastore import blocks, keys, records
from testbed.model.topology import HostSpec, NamespaceSpec, PodSpec, Topology
from testbed.runtime.plan import LabPlan, plan_lab

CREATED = 1_700_000_000.0
Values = dict[str, dict[str, Any]]


def demo_plan() -> LabPlan:
    topology = Topology(
        name="demo",
        hosts=(HostSpec("node-1"), HostSpec("node-2", "172.18.203.129")),
        namespaces=(NamespaceSpec("stars", (("role", "stars"),)),),
        pods=(
            PodSpec("fe", "stars", (("role", "frontend"),), host="node-1", image="nginx"),
            PodSpec(
                "be",
                "stars",
                (("role", "backend"),),
                host="node-2",
                command=("probe", "-p", "80"),
                ip="10.65.0.66",
            ),
            PodSpec("client", "client", (("role", "client"),), host="node-1"),
            # pinned into node-2's block (claimed for be) while on node-1: a borrowed address
            PodSpec("borrow", "client", host="node-1", ip="10.65.0.70"),
        ),
        source="builtin:demo",
    )
    return plan_lab(topology, "lab1")


@pytest.fixture
def plan() -> LabPlan:
    return demo_plan()


@pytest.fixture
def values(plan: LabPlan) -> Values:
    return records.lab_records(plan, CREATED)


def test_every_value_is_plain_json_and_keys_are_sorted(values: Values) -> None:
    assert list(values) == sorted(values)
    assert json.loads(json.dumps(values)) == values


def test_the_lab_has_exactly_these_keys(plan: LabPlan, values: Values) -> None:
    expected = {keys.LAB, keys.ip_pool(addressing.POOL_NAME)}
    expected |= {keys.node(h.name) for h in plan.hosts}
    for ns in ("stars", "client", "default"):  # default: every cluster has it
        expected |= {keys.k8s_namespace(ns), keys.namespace_profile(ns), keys.service_account_profile(ns)}
    for cidr, host in plan.affinity:
        expected |= {keys.block(cidr), keys.block_affinity(host, cidr)}
    for pod in plan.pods:
        expected |= {  # no WorkloadEndpoint: the pod's kubelet writes it once it made the pod
            keys.pod(pod.namespace, pod.name),
            keys.pod_handle(pod.namespace, pod.name),
        }
    assert set(values) == expected


def test_lab_record(values: Values) -> None:
    assert values[keys.LAB] == {
        "name": "lab1",
        "topology": "demo",
        "source": "builtin:demo",
        "options": {"route_reflector": False, "bgp_hold_time": 9, "pod_eviction_timeout": 10.0},
        "created": CREATED,
    }
    info = records.lab_summary(values[keys.LAB])
    assert (info.name, info.topology, info.created) == ("lab1", "demo", CREATED)


def test_node(values: Values) -> None:
    node = values[keys.node("node-2")]
    assert node["apiVersion"] == "projectcalico.org/v3" and node["kind"] == "Node"
    assert node["metadata"]["name"] == "node-2"
    assert node["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert node["spec"]["bgp"] == {"ipv4Address": "172.18.203.129/24", "asNumber": addressing.AS_NUMBER}
    assert node["spec"]["orchRefs"] == [{"nodeName": "node-2", "orchestrator": "k8s"}]
    assert records.node_summary(node) == records.NodeInfo("node-2", IPv4Address("172.18.203.129"))


def test_ip_pool(values: Values) -> None:
    pool = values[keys.ip_pool(addressing.POOL_NAME)]
    assert pool["kind"] == "IPPool"
    assert pool["spec"]["cidr"] == "10.65.0.0/16" and pool["spec"]["blockSize"] == 26
    assert (pool["spec"]["ipipMode"], pool["spec"]["vxlanMode"], pool["spec"]["natOutgoing"]) == (
        "Never",
        "Never",
        True,
    )


def test_workload_endpoint(plan: LabPlan, values: Values) -> None:
    fe = next(p for p in plan.pods if p.name == "fe")
    wep = records.workload_endpoint_record(plan.lab, fe, CREATED)  # as the kubelet writes it
    assert wep["kind"] == "WorkloadEndpoint"
    assert wep["metadata"]["name"] == "node--1-k8s-fe-eth0"
    assert wep["metadata"]["namespace"] == "stars"
    assert wep["metadata"]["labels"] == {
        "role": "frontend",
        naming.LABEL_NAMESPACE: "stars",
        naming.LABEL_ORCHESTRATOR: "k8s",
        naming.LABEL_SERVICE_ACCOUNT: "default",
    }
    spec = wep["spec"]
    assert (spec["orchestrator"], spec["node"], spec["pod"], spec["endpoint"]) == (
        "k8s",
        "node-1",
        "fe",
        "eth0",
    )
    assert spec["ipNetworks"] == [f"{fe.ip}/32"]
    assert spec["interfaceName"] == fe.interface
    assert spec["profiles"] == ["kns.stars", "ksa.stars.default"]
    assert spec["serviceAccountName"] == "default"
    assert "mac" not in spec
    info = records.endpoint_summary(wep)
    assert (info.namespace, info.pod, info.node, info.ip, info.interface) == (
        "stars",
        "fe",
        "node-1",
        fe.ip,
        fe.interface,
    )
    assert info.label_dict["role"] == "frontend"


def test_the_mac_is_written_once_known(plan: LabPlan) -> None:
    pod = plan.pods[0]
    wep = records.workload_endpoint_record(plan.lab, pod, CREATED, mac="0a:58:0a:41:00:00")
    assert wep["spec"]["mac"] == "0a:58:0a:41:00:00"


def test_profiles_apply_namespace_labels(values: Values) -> None:
    kns = values[keys.namespace_profile("stars")]
    assert kns["metadata"]["name"] == "kns.stars"
    assert kns["spec"]["labelsToApply"] == {
        "pcns.role": "stars",
        "pcns.kubernetes.io/metadata.name": "stars",
        "pcns.projectcalico.org/name": "stars",
    }
    assert kns["spec"]["ingress"] == [{"action": "Allow"}] == kns["spec"]["egress"]
    ksa = values[keys.service_account_profile("stars")]
    assert ksa["spec"] == {"labelsToApply": {"pcsa.projectcalico.org/name": "default"}}


def test_kubernetes_namespace_and_pod(plan: LabPlan, values: Values) -> None:
    ns = values[keys.k8s_namespace("client")]
    assert (ns["apiVersion"], ns["kind"]) == ("v1", "Namespace")
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "client"}
    be = next(p for p in plan.pods if p.name == "be")
    pod = values[keys.pod("stars", "be")]
    assert (pod["kind"], pod["metadata"]["name"], pod["metadata"]["namespace"]) == ("Pod", "be", "stars")
    assert pod["metadata"]["labels"] == {"role": "backend"}
    assert pod["spec"]["nodeName"] == "node-2"
    assert pod["spec"]["containers"] == [
        {"name": "busybox", "image": "busybox", "command": ["probe", "-p", "80"]}
    ]
    # Pending until node-2's kubelet has made it, at the address the plan gave it
    assert pod["status"] == {"phase": "Pending"}
    assert pod["metadata"]["annotations"] == {records.ANNOTATION_IP_ADDRS: json.dumps([str(be.ip)])}
    assert pod["spec"]["restartPolicy"] == "Always"
    fe = values[keys.pod("stars", "fe")]
    assert fe["spec"]["containers"] == [{"name": "nginx", "image": "nginx"}]


def test_uids_are_stable_and_distinct(plan: LabPlan, values: Values) -> None:
    assert records.lab_records(plan, CREATED) == values
    uids = [v["metadata"]["uid"] for v in values.values() if "metadata" in v]
    assert len(uids) == len(set(uids))
    later = records.pod_object(plan.lab, plan.pods[0], CREATED + 60)
    key = keys.pod(plan.pods[0].namespace, plan.pods[0].name)
    assert later["metadata"]["uid"] != values[key]["metadata"]["uid"]


def test_blocks_match_the_plan(plan: LabPlan, values: Values) -> None:
    allocated: dict[IPv4Address, str] = {}
    for cidr, host in plan.affinity:
        block = values[keys.block(cidr)]
        assert block["cidr"] == str(cidr)
        assert block["affinity"] == f"host:{host}"
        assert block["strictAffinity"] is False and block["deleted"] is False
        assert len(block["allocations"]) == 64
        used = {o for o, a in enumerate(block["allocations"]) if a is not None}
        assert sorted(block["unallocated"]) == sorted(set(range(64)) - used)
        assert len(block["attributes"]) == len(used)
        allocated.update(blocks.block_addresses(block))
        assert values[keys.block_affinity(host, cidr)] == {"state": "confirmed", "deleted": False}
    assert allocated == {p.ip: naming.ipam_handle(p.namespace, p.name) for p in plan.pods}


def test_attributes_say_who_holds_each_address(plan: LabPlan, values: Values) -> None:
    borrowed = next(p for p in plan.pods if p.name == "borrow")
    assert borrowed.borrowed and borrowed.ip == IPv4Address("10.65.0.70")
    block = values[keys.block(borrowed.block)]
    assert block["affinity"] == "host:node-2"
    index = block["allocations"][70 - 64]
    assert block["attributes"][index] == {
        "handle_id": "k8s-pod-network.client.borrow",
        "secondary": {
            "namespace": "client",
            "node": "node-1",
            "pod": "borrow",
            "timestamp": "2023-11-14T22:13:20Z",
        },
    }
    handle = values[keys.pod_handle("client", "borrow")]
    assert handle == {
        "handleID": "k8s-pod-network.client.borrow",
        "block": {"10.65.0.64/26": 1},
        "deleted": False,
    }


def test_every_host_block_exists_even_without_pods() -> None:
    plan = plan_lab(Topology(name="t", hosts=(HostSpec("a"), HostSpec("b"))), "l")
    values = records.lab_records(plan, CREATED)
    assert values[keys.block(IPv4Network("10.65.0.64/26"))]["unallocated"] == list(range(64))
    assert not any(k.startswith(keys.WORKLOAD_ENDPOINTS) for k in values)


def test_summaries_name_the_missing_field(plan: LabPlan) -> None:
    fe = next(p for p in plan.pods if p.name == "fe")
    wep = records.workload_endpoint_record(plan.lab, fe, CREATED)
    del wep["spec"]["node"]
    with pytest.raises(
        records.RecordError, match=r"^WorkloadEndpoint node--1-k8s-fe-eth0: missing field spec.node$"
    ):
        records.endpoint_summary(wep)
    node = {"metadata": {"name": "n1"}, "spec": {"bgp": {"ipv4Address": "nope"}}}
    with pytest.raises(records.RecordError, match="Node n1: field spec.bgp.ipv4Address"):
        records.node_summary(node)
