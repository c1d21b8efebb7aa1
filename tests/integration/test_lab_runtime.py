"""The lab runtime as a user sees it: up, status, exec, etcd contents, down, crash recovery."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.netns import sandbox
from testbed.netns.processes import is_alive
from tests.integration.labs import running_lab, unique, REPO, RootSnapshot, in_netns, lab_netns, status_json, testbed

pytestmark = pytest.mark.root

FABRIC = ipaddress.ip_network("172.18.203.0/24")
POOL = ipaddress.ip_network("10.65.0.0/16")


@pytest.fixture
def two_hosts() -> Iterator[str]:
    with running_lab("two-hosts", "it2h") as lab:
        yield lab


def pods_by_host(status: dict) -> dict[str, list[dict]]:
    result: dict[str, list[dict]] = {}
    for pod in status["pods"]:
        result.setdefault(pod["host"], []).append(pod)
    return result


def test_status_lists_hosts_and_pods(two_hosts: str) -> None:
    status = status_json(two_hosts)
    assert status["etcd"]["healthy"] is True
    assert [h["name"] for h in status["hosts"]] == ["host1", "host2"]
    assert all(ipaddress.ip_address(h["ip"]) in FABRIC for h in status["hosts"])
    assert len(status["pods"]) == 4
    for pod in status["pods"]:
        assert ipaddress.ip_address(pod["ip"]) in POOL
        assert pod["host"] in ("host1", "host2")
        expected = "cali" + hashlib.sha1(f"{pod['namespace']}.{pod['name']}".encode()).hexdigest()[:11]
        assert pod["interface"] == expected


def test_pod_routes_and_pings(two_hosts: str) -> None:
    status = status_json(two_hosts)
    host1 = next(h for h in status["hosts"] if h["name"] == "host1")
    first, second = pods_by_host(status)["host1"][:2]
    target = f"{first['namespace']}/{first['name']}"
    routes = testbed("exec", "--lab", two_hosts, target, "--", "ip", "route").stdout
    assert "default via 169.254.1.1 dev eth0" in routes
    assert "169.254.1.1 dev eth0 scope link" in routes
    testbed("exec", "--lab", two_hosts, target, "--", "ping", "-c", "1", "-W", "2", second["ip"])
    testbed("exec", "--lab", two_hosts, target, "--", "ping", "-c", "1", "-W", "2", host1["ip"])


def test_host_side_plumbing_is_calicos(two_hosts: str) -> None:
    status = status_json(two_hosts)
    pod = pods_by_host(status)["host1"][0]
    netns = f"{two_hosts}.host1"
    link = in_netns(netns, "ip", "-o", "link", "show", pod["interface"]).stdout
    assert "ee:ee:ee:ee:ee:ee" in link
    assert in_netns(netns, "cat", f"/proc/sys/net/ipv4/conf/{pod['interface']}/proxy_arp").stdout.strip() == "1"
    routes = in_netns(netns, "ip", "route").stdout
    assert f"{pod['ip']} dev {pod['interface']} scope link" in routes
    block = status["hosts"][0]["blocks"][0]
    assert f"blackhole {block} proto bird" in routes
    assert "default via 172.18.203.1 dev eth0" in routes
    assert in_netns(netns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"


def test_etcd_holds_the_endpoints(two_hosts: str) -> None:
    fabric = f"{two_hosts}.fabric"
    proc = subprocess.run(
        ["ip", "netns", "exec", fabric, "etcdctl", "get", "--prefix", "--keys-only",
         "/calico/resources/v3/projectcalico.org/workloadendpoints/"],
        capture_output=True, text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"},
    )
    assert proc.returncode == 0, proc.stderr
    keys = [line for line in proc.stdout.splitlines() if line]
    demo = [k for k in keys if k.startswith("/calico/resources/v3/projectcalico.org/workloadendpoints/demo/")]
    system = [k for k in keys if k.startswith("/calico/resources/v3/projectcalico.org/workloadendpoints/kube-system/")]
    assert len(demo) == 4 and len(system) == 1  # the topology's pods and the cluster DNS add-on's
    assert len(keys) == 5


def test_exec_passes_stdin_stdout_and_exit_code(two_hosts: str) -> None:
    pod = status_json(two_hosts)["pods"][0]
    target = f"{pod['namespace']}/{pod['name']}"
    echoed = testbed("exec", "--lab", two_hosts, target, "--", "cat", input="hello from stdin\n")
    assert echoed.stdout == "hello from stdin\n"
    failed = testbed("exec", "--lab", two_hosts, target, "--", "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7
    on_host = testbed("exec", "--lab", two_hosts, "--host", "host2", "--", "ip", "-o", "-4", "addr", "show", "eth0")
    assert "172.18.203." in on_host.stdout


def test_unknown_pod_is_a_clear_error(two_hosts: str) -> None:
    proc = testbed("exec", "--lab", two_hosts, "demo/nope", "--", "true", check=False)
    assert proc.returncode == 1
    assert "pod demo/nope not found" in proc.stderr


def test_two_labs_side_by_side(root_before: RootSnapshot) -> None:
    first, second = unique("ita"), unique("itb")
    try:
        testbed("up", "two-hosts", "--name", first)
        testbed("up", "two-hosts", "--name", second)
        for lab in (first, second):
            status = status_json(lab)
            assert status["etcd"]["healthy"] is True
            a, b = pods_by_host(status)["host1"][:2]
            testbed("exec", "--lab", lab, f"{a['namespace']}/{a['name']}", "--", "ping", "-c", "1", "-W", "2", b["ip"])
        ambiguous = testbed("status", check=False)
        assert ambiguous.returncode == 1
        assert "several labs are up" in ambiguous.stderr and first in ambiguous.stderr and second in ambiguous.stderr
    finally:
        testbed("down", first, check=False)
        testbed("down", second, check=False)
    assert lab_netns(first) == [] and lab_netns(second) == []
    assert RootSnapshot.take() == root_before


def test_invalid_topology_changes_nothing(tmp_path: Path, root_before: RootSnapshot) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: [host1]\npods:\n  - name: p\n    host: host9\n")
    lab = unique("itbad")
    proc = testbed("up", str(bad), "--name", lab, check=False)
    assert proc.returncode == 1
    assert "host9" in proc.stderr and "bad.yaml" in proc.stderr
    assert lab_netns(lab) == []
    assert not Path(f"/run/testbed/{lab}").exists()
    assert RootSnapshot.take() == root_before


def test_down_after_kill_9_of_up(root_before: RootSnapshot) -> None:
    lab = unique("itkill")
    up = subprocess.Popen(
        [sys.executable, "-m", "testbed", "up", "scale", "--hosts", "3", "--pods-per-host", "40", "--name", lab],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(lab_netns(lab)) < 10 and time.monotonic() < deadline and up.poll() is None:
            time.sleep(0.01)
        assert up.poll() is None, "up finished before it could be killed; make the lab bigger"
        up.send_signal(signal.SIGKILL)
        up.wait()
        assert lab_netns(lab), "the killed up left nothing to clean: the test proves nothing"
    finally:
        down = testbed("down", lab, check=False)
    assert down.returncode == 0, down.stderr
    assert lab_netns(lab) == []
    assert not Path(f"/run/testbed/{lab}").exists()
    leftovers = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    assert f"/run/testbed/{lab}/" not in leftovers
    assert RootSnapshot.take() == root_before


def test_down_of_unknown_lab_fails_cleanly() -> None:
    proc = testbed("down", "no-such-lab-here", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "testbed: error: no lab named 'no-such-lab-here' is up"


def test_up_json_reports_time_and_counts(root_before: RootSnapshot) -> None:
    lab = unique("itjson")
    try:
        proc = testbed("up", "scale", "--hosts", "2", "--pods-per-host", "3", "--name", lab, "-o", "json")
        data = json.loads(proc.stdout)
        assert len(data["hosts"]) == 2 and len(data["pods"]) == 6
        assert data["seconds"] > 0
    finally:
        testbed("down", lab, check=False)
    assert RootSnapshot.take() == root_before


def test_up_from_a_mininet_topo_file(root_before: RootSnapshot) -> None:
    lab = unique("itmn")
    topo = REPO / "tests" / "data" / "topologies" / "mininet_two_hosts.py"
    try:
        testbed("up", str(topo), "--name", lab)
        status = status_json(lab)
        assert {h["name"]: h["ip"] for h in status["hosts"]}["h1"] == "172.18.203.21"
        assert sorted(f"{p['namespace']}/{p['name']}@{p['host']}" for p in status["pods"]) == [
            "demo/pod-a@h1",
            "demo/pod-b@h2",
        ]
    finally:
        testbed("down", lab, check=False)
    assert RootSnapshot.take() == root_before


def test_pod_command_runs_inside_and_down_stops_it(tmp_path: Path, root_before: RootSnapshot) -> None:
    topo = tmp_path / "cmd.yaml"
    topo.write_text(
        "hosts: [host1]\n"
        "pods:\n"
        "  - {name: sleeper, command: [sleep, '1000']}\n"
        "  - {name: idle}\n"
    )
    lab = unique("itcmd")
    try:
        testbed("up", str(topo), "--name", lab)
        pids = sandbox.container_pids(f"{lab}.default.sleeper")  # in its netns, but for the pause
        assert len(pids) == 1
        assert Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"1000"]
    finally:
        testbed("down", lab, check=False)
    assert not is_alive(int(pids[0]))  # gone, or a zombie waiting for init to reap it
    assert RootSnapshot.take() == root_before


def test_status_reports_a_dead_etcd_and_down_still_cleans(root_before: RootSnapshot) -> None:
    lab = unique("itetcd")
    try:
        testbed("up", "two-hosts", "--name", lab)
        etcd_pid = status_json(lab)["etcd"]["pid"]
        os.kill(etcd_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{etcd_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc = testbed("status", lab, "-o", "json", check=False)
        assert proc.returncode == 1
        data = json.loads(proc.stdout)
        assert data["etcd"]["healthy"] is False and data["etcd"]["running"] is False
        assert "etcd at unix:" in data["etcd"]["error"]
    finally:
        testbed("down", lab, check=False)
    assert lab_netns(lab) == []
    assert RootSnapshot.take() == root_before


def test_a_second_up_of_the_same_lab_is_refused_and_harmless(two_hosts: str) -> None:
    proc = testbed("up", "two-hosts", "--name", two_hosts, check=False)
    assert proc.returncode == 1
    assert f"lab '{two_hosts}' is already up" in proc.stderr
    status = status_json(two_hosts)
    assert status["etcd"]["healthy"] is True and len(status["pods"]) == 4
    assert len(lab_netns(two_hosts)) == 8  # fabric, 2 hosts, 4 pods, the cluster DNS add-on's pod
