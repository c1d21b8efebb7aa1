"""The kubelet in each host agent, on a real two-hosts lab: Pods written straight into etcd
(as a controller or the API server would) become running pods, restarted, probed,
deleted, and survive a restart of the agent.

two-hosts: host1 (172.18.203.11, block 10.65.0.0/26, pods a and b), host2 (.12, block
10.65.0.64/26, pods c and d). Pods here go in namespace demo (its profiles exist).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration import labs
from tests.integration.labs import in_netns, running_lab

pytestmark = [pytest.mark.root, pytest.mark.skipif(sys.platform != "linux", reason="namespaces")]

TIMEOUT = 15.0
TRAP = "trap 'echo got-TERM; exit 0' TERM; echo started; while true; do sleep 0.1; done"


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with running_lab("two-hosts", "kubelet") as name:
        yield name


def store(lab: str) -> Any:
    from testbed import api

    return api.datastore(lab)


def pod_key(name: str) -> str:
    return f"/registry/pods/demo/{name}"


def create(lab: str, name: str, host: str, containers: list[dict[str, Any]], **extra: Any) -> None:
    from testbed.datastore.base import put_if

    meta = {"name": name, "namespace": "demo", "uid": str(uuid.uuid4()), "labels": {"app": name}, **extra.pop("meta", {})}
    value = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
             "spec": {"nodeName": host, "containers": containers, **extra}, "status": {"phase": "Pending"}}  # fmt: skip
    with store(lab) as s:
        assert put_if(s, pod_key(name), value, 0)


def get(lab: str, name: str) -> dict[str, Any] | None:
    with store(lab) as s:
        return s.get(pod_key(name))  # type: ignore[no-any-return]


def ready(value: dict[str, Any] | None) -> bool:
    conditions = ((value or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pid_of(value: dict[str, Any] | None, index: int = 0) -> int:
    assert value is not None
    return int(value["status"]["containerStatuses"][index]["containerID"].removeprefix("testbed://"))


def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    return labs.wait_for(what, check, timeout)


def wait_running(lab: str, name: str) -> dict[str, Any]:
    return wait_for(f"pod {name} Running and Ready", lambda: (v := get(lab, name)) and ready(v) and v)  # type: ignore[no-any-return]


def delete(lab: str, name: str, grace: int) -> None:
    from testbed.datastore.base import put_if

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with store(lab) as s:
        got = s.get_versioned(pod_key(name))
        meta = {**got.value["metadata"], "deletionTimestamp": stamp, "deletionGracePeriodSeconds": grace}
        assert put_if(s, pod_key(name), {**got.value, "metadata": meta}, got.revision)


def allocated(lab: str) -> dict[str, str]:
    """Every allocated address -> its IPAM handle."""
    from testbed.datastore import blocks, keys

    with store(lab) as s:
        found: dict[str, str] = {}
        for value in s.list(keys.BLOCKS).values():
            found.update({str(ip): h for ip, h in blocks.block_addresses(value).items()})
        return found


def felix_pid(lab: str, host: str) -> int:
    from testbed.runtime import state

    recorded = state.load(lab)
    assert recorded is not None
    return [p.pid for p in recorded.processes if p.name == f"felix {host}"][-1]


def alive(pid: int) -> bool:
    from testbed.netns import processes

    return processes.is_alive(pid)


def test_a_pod_written_to_etcd_runs_answers_and_reports_running_ready(lab: str) -> None:
    probe = {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": 2, "periodSeconds": 1}
    create(lab, "web", "host1", [{"name": "nginx", "image": "nginx", "ports": [{"name": "http", "containerPort": 80}],
                                  "readinessProbe": probe}])  # fmt: skip
    running = wait_for("nginx started", lambda: (v := get(lab, "web")) and v["status"]["phase"] == "Running" and v)
    assert not ready(running)  # its readiness probe has not run yet (initialDelaySeconds 2)
    value = wait_running(lab, "web")
    status = value["status"]
    assert (status["phase"], status["hostIP"]) == ("Running", "172.18.203.11")
    ip = status["podIP"]
    assert status["podIPs"] == [{"ip": ip}] and ip in allocated(lab) and ip.startswith("10.65.0.")
    assert [c["type"] for c in status["conditions"]] == ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
    container = status["containerStatuses"][0]
    assert (container["ready"], container["started"], container["restartCount"]) == (True, True, 0)
    assert os.path.exists(f"/run/netns/{lab}.demo.web")
    # From the root namespace's view: the kubelet made the netns in the machine's mount namespace.
    assert in_netns(f"{lab}.demo.web", "ip", "-o", "addr", "show", "eth0").stdout.count(ip) == 1
    ping = in_netns(f"{lab}.demo.pod-c", "ping", "-c", "1", "-W", "2", ip)  # from host2
    assert ping.returncode == 0, ping.stdout
    page = in_netns(f"{lab}.demo.pod-c", sys.executable, "-c",
                    f"import urllib.request; print(urllib.request.urlopen('http://{ip}/', timeout=3).read().decode())")  # fmt: skip
    assert "Welcome to nginx!" in page.stdout


def test_a_killed_program_is_restarted_counted_and_unready_meanwhile(lab: str) -> None:
    create(lab, "crash", "host2", [{"name": "main", "image": "busybox", "command": ["sh", "-c", TRAP]}])
    first = pid_of(wait_running(lab, "crash"))
    os.kill(first, signal.SIGKILL)
    seen_unready = wait_for("not Ready after the kill", lambda: not ready(get(lab, "crash")))
    assert seen_unready
    value = wait_for("restarted", lambda: (v := get(lab, "crash")) and ready(v) and pid_of(v) != first and v)
    container = value["status"]["containerStatuses"][0]
    assert container["restartCount"] == 1
    assert container["lastState"]["terminated"]["exitCode"] == 137
    assert not alive(first) and alive(pid_of(value))


def test_deletion_sends_sigterm_then_removes_pod_netns_and_address(lab: str) -> None:
    from testbed.datastore import keys
    from testbed.runtime import state

    create(lab, "trap", "host1", [{"name": "main", "image": "busybox", "command": ["sh", "-c", TRAP]}],
           terminationGracePeriodSeconds=10)  # fmt: skip
    value = wait_running(lab, "trap")
    pid, ip = pid_of(value), value["status"]["podIP"]
    assert allocated(lab)[ip] == "k8s-pod-network.demo.trap"
    delete(lab, "trap", grace=10)
    wait_for("pod key removed", lambda: get(lab, "trap") is None)
    log = (state.folder(lab) / "logs" / "demo.trap.log").read_text()
    assert "got-TERM" in log  # SIGTERM, caught: the program ended on its own, well within the grace
    assert not alive(pid)
    assert not os.path.exists(f"/run/netns/{lab}.demo.trap") and not os.path.exists(f"/etc/netns/{lab}.demo.trap")
    assert ip not in allocated(lab)
    with store(lab) as s:
        assert s.get(keys.pod_handle("demo", "trap")) is None
        assert s.get(keys.workload_endpoint_of("host1", "demo", "trap")) is None


def test_an_agent_restart_keeps_the_running_container_and_its_status(lab: str) -> None:
    create(lab, "steady", "host1", [{"name": "main", "image": "busybox", "command": ["sh", "-c", TRAP]}])
    before = wait_running(lab, "steady")
    time.sleep(1.5)  # a pass or two after it turned Ready
    before = get(lab, "steady")
    agent = felix_pid(lab, "host1")
    os.kill(agent, signal.SIGKILL)
    wait_for("felix host1 restarted by the supervisor", lambda: felix_pid(lab, "host1") != agent)
    time.sleep(3.0)  # the new agent has adopted and synced several times
    after = get(lab, "steady")
    assert pid_of(after) == pid_of(before) and alive(pid_of(after))
    assert after is not None and before is not None and after["status"] == before["status"]
    file = json.loads(open(f"/run/testbed/{lab}/kubelet/host1.json").read())
    assert file["pods"][pod_key("steady")]["containers"][0]["pid"] == pid_of(after)


def test_each_container_is_its_own_program_and_the_annotated_address_is_used(lab: str) -> None:
    annotations = {"cni.projectcalico.org/ipAddrs": '["10.65.0.77"]'}  # in host2's block: borrowed
    sleeper = {"image": "busybox", "command": ["sh", "-c", "while true; do sleep 1; done"]}
    create(lab, "pair", "host1", [{"name": "one", **sleeper}, {"name": "two", **sleeper}], meta={"annotations": annotations})
    value = wait_running(lab, "pair")
    assert value["status"]["podIP"] == "10.65.0.77"
    assert allocated(lab)["10.65.0.77"] == "k8s-pod-network.demo.pair"
    pids = {pid_of(value, 0), pid_of(value, 1)}
    assert len(pids) == 2
    pod_netns = os.stat(f"/run/netns/{lab}.demo.pair")
    for pid in pids:
        ns = os.stat(f"/proc/{pid}/ns/net")
        assert (ns.st_dev, ns.st_ino) == (pod_netns.st_dev, pod_netns.st_ino)
    ping = in_netns(f"{lab}.demo.pod-c", "ping", "-c", "1", "-W", "2", "10.65.0.77")
    assert ping.returncode == 0, ping.stdout


def test_a_half_made_pod_is_finished_not_refused(lab: str) -> None:
    import subprocess

    netns = f"{lab}.demo.half"  # as a kubelet killed during its CNI ADD leaves it: a netns, no veth
    subprocess.run(["ip", "netns", "add", netns], check=True)
    create(lab, "half", "host2", [{"name": "main", "image": "busybox", "command": ["sh", "-c", TRAP]}])
    ip = wait_running(lab, "half")["status"]["podIP"]
    assert in_netns(f"{lab}.demo.pod-a", "ping", "-c", "1", "-W", "2", ip).returncode == 0  # from host1


def test_pods_gone_while_the_agent_was_down_are_torn_down_when_it_is_healed(lab: str) -> None:
    from tests.integration.labs import testbed

    sleeper = [{"name": "main", "image": "busybox", "command": ["sh", "-c", TRAP]}]
    create(lab, "gone1", "host1", sleeper)
    create(lab, "gone2", "host1", sleeper)
    pids = [pid_of(wait_running(lab, "gone1")), pid_of(wait_running(lab, "gone2"))]
    ips = [get(lab, n)["status"]["podIP"] for n in ("gone1", "gone2")]  # type: ignore[index]
    testbed("fail", "--lab", lab, "agent", "host1", "felix")
    try:
        with store(lab) as s:  # force deletions (as the node lifecycle controller's), nobody to see them
            assert s.delete(pod_key("gone1")) and s.delete(pod_key("gone2"))
        file = f"/run/testbed/{lab}/kubelet/host1.json"
        held = json.loads(open(file).read())
        del held["pods"][pod_key("gone2")]  # known by its endpoint only, as after a lost kubelet file
        open(file, "w").write(json.dumps(held))
        assert all(alive(pid) for pid in pids)  # the containers outlive their kubelet
    finally:
        testbed("heal", "--lab", lab, "agent", "host1", "felix")
    wait_for("both torn down", lambda: not any(os.path.exists(f"/run/netns/{lab}.demo.gone{i}") for i in (1, 2)))
    wait_for("their programs stopped", lambda: not any(alive(pid) for pid in pids), timeout=5)
    wait_for("their addresses released", lambda: not set(ips) & set(allocated(lab)), timeout=5)


def test_the_node_objects_and_leases_are_kept_fresh(lab: str) -> None:
    from agents.kubelet.node import parse_time
    from testbed.datastore import keys

    with store(lab) as s:
        for host, ip in (("host1", "172.18.203.11"), ("host2", "172.18.203.12")):
            node = s.get(keys.k8s_node(host))
            assert node is not None and node["kind"] == "Node"
            assert {"type": "InternalIP", "address": ip} in node["status"]["addresses"]
            assert [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
            lease = s.get(keys.node_lease(host))
            assert lease is not None and lease["spec"]["holderIdentity"] == host
            renewed = parse_time(lease["spec"]["renewTime"])
            assert renewed is not None and time.time() - renewed < 3.0


def test_topology_pods_are_made_by_their_host_s_kubelet_at_their_planned_address(lab: str) -> None:
    value = get(lab, "pod-a")
    assert value is not None and ready(value) and value["status"]["containerStatuses"]  # the kubelet's report
    assert (value["spec"]["nodeName"], value["status"]["podIP"]) == ("host1", "10.65.0.0")
    assert in_netns(f"{lab}.demo.pod-a", "ping", "-c", "1", "-W", "2", "10.65.0.64").returncode == 0


def test_deleting_every_test_pod_leaves_nothing_behind(lab: str) -> None:
    names = ["web", "crash", "steady", "pair", "half"]
    pids = [pid_of(v, i) for n in names if (v := get(lab, n)) for i in range(len(v["status"]["containerStatuses"]))]
    for name in names:
        if get(lab, name) is not None:
            delete(lab, name, grace=2)
    wait_for("every test pod removed", lambda: all(get(lab, n) is None for n in names), timeout=20)
    assert not any(alive(pid) for pid in pids)
    assert sorted(n for n in os.listdir("/run/netns") if n.startswith(f"{lab}.demo.")) == [
        f"{lab}.demo.pod-{x}" for x in "abcd"
    ]
    from testbed.datastore import keys

    with store(lab) as s:  # the cluster DNS add-on's pod holds one address too
        dns = [v["status"]["podIP"] for v in s.list(keys.pods_in("kube-system")).values()]
    assert sorted(allocated(lab)) == sorted(["10.65.0.0", "10.65.0.1", "10.65.0.64", "10.65.0.65", *dns])
