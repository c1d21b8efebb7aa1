"""`testbed fail|heal`, agent supervision and etcd restarts, on a real two-hosts lab.

two-hosts: host1 (172.18.203.11, block 10.65.0.0/26, pods a and b), host2 (.12, block
10.65.0.64/26, pods c and d). BGP hold time 9 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.labs import REPO, in_netns, running_lab, status_json, testbed

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="namespaces")

HOST2_BLOCK = "10.65.0.64/26"
POD_C = "10.65.0.64"  # on host2
PORT = 7070
HOLD_TIME = 9.0

DENY_DEMO_INGRESS = """\
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: deny-ingress, namespace: demo}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""

# A TCP echo server (it greets first, as probes expect), and a client that keeps one connection busy (one byte out, one back,
# every 50 ms) until a stop file appears; it prints how many round trips it made.
SERVER = """
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port})); s.listen(16)
def echo(c):
    with c:
        c.sendall(b"hello\\n")  # what agents.apps.connect waits for
        while (d := c.recv(64)):
            c.sendall(d)
while True:
    threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
"""
CLIENT = """
import os, socket, sys, time
c = socket.create_connection(("{ip}", {port}), timeout=2)
c.settimeout(5)
greeting = b""
while not greeting.endswith(b"\\n"):
    greeting += c.recv(1)
print("connected", flush=True)
n = 0
while not os.path.exists("{stop}"):
    c.sendall(b"x")
    if c.recv(1) != b"x":
        sys.exit("connection closed")
    n += 1
    time.sleep(0.05)
print("round trips", n, flush=True)
"""


def netns(lab: str, name: str) -> str:
    return f"{lab}.{name}"


def wait_for(what: str, check: Callable[[], bool], timeout: float, poll: float = 0.2) -> float:
    """Seconds until ``check()``; fails the test after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(poll)
    return time.monotonic() - started


def host_routes(lab: str, host: str) -> str:
    return in_netns(netns(lab, host), "ip", "route").stdout


def bgp_peer_info(lab: str, host: str) -> list[str]:
    data = json.loads(testbed("bgp", "status", "--lab", lab, "--host", host, "-o", "json", check=False).stdout)
    return [str(p["info"]) for h in data["hosts"] for p in h["peers"]]


def connects(lab: str, pod: str, ip: str, port: int = PORT) -> bool:
    probe = in_netns(
        netns(lab, f"demo.{pod}"), sys.executable, "-m", "agents.apps.connect", ip, str(port), "--timeout", "1"
    )
    return probe.returncode == 0


def failed_targets(lab: str) -> list[str]:
    return [f["target"] for f in status_json(lab)["failed"]]


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with running_lab("two-hosts", "jflt") as name:
        yield name


@pytest.fixture
def echo_server(lab: str) -> Iterator[None]:
    """An echo server in pod-c (host2)."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns(lab, "demo.pod-c"), sys.executable, "-c", SERVER.format(port=PORT)],
        cwd=REPO,
    )
    try:
        wait_for("echo server listening", lambda: connects(lab, "pod-a", POD_C), 10)
        yield
    finally:
        proc.kill()
        proc.wait()


def test_bad_targets_get_one_line_and_change_nothing(lab: str) -> None:
    for args, message in (
        (["host", "host9"], "host 'host9' is not a host of this lab (hosts: host1, host2)"),
        (["agent", "host1", "kubelet"], "unknown agent 'kubelet' (agents: felix, bgp)"),
        (["switch"], "unknown target 'switch'"),
        (["etcd", "now"], "etcd takes no arguments"),
    ):
        done = testbed("fail", "--lab", lab, *args, check=False)
        assert done.returncode == 1, done
        assert done.stderr.startswith(f"testbed: error: {message}") and done.stderr.count("\n") == 1, done.stderr
    healed = testbed("heal", "--lab", lab, "link", "host1", check=False)
    assert (healed.returncode, healed.stderr) == (1, "testbed: error: link host1 is not failed (failed: nothing)\n")
    unknown = testbed("fail", "--lab", "no-such-lab", "etcd", check=False)
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert failed_targets(lab) == []


def test_host_failure_withdraws_its_routes_within_the_hold_time_and_heal_restores_them(lab: str) -> None:
    assert HOST2_BLOCK in host_routes(lab, "host1")
    testbed("fail", "--lab", lab, "host", "host2")
    try:
        assert failed_targets(lab) == ["host host2"]
        assert "FAILED  host host2" in testbed("status", lab).stdout
        took = wait_for("host2's block gone from host1", lambda: HOST2_BLOCK not in host_routes(lab, "host1"), 15)
        assert took <= HOLD_TIME + 1.0, took
        assert "Established" not in bgp_peer_info(lab, "host1")
        # Its pods stay, unreachable.
        assert in_netns(netns(lab, "demo.pod-c"), "ip", "-4", "addr").stdout.count(POD_C) == 1
        assert in_netns(netns(lab, "demo.pod-a"), "ping", "-c", "1", "-W", "1", POD_C).returncode != 0
    finally:
        testbed("heal", "--lab", lab, "host", "host2")
    wait_for("host2's block back on host1", lambda: HOST2_BLOCK in host_routes(lab, "host1"), 10)
    wait_for("sessions Established", lambda: bgp_peer_info(lab, "host1") == ["Established"], 10)
    assert bgp_peer_info(lab, "host2") == ["Established"]
    assert failed_targets(lab) == []
    assert in_netns(netns(lab, "demo.pod-a"), "ping", "-c", "1", "-W", "2", POD_C).returncode == 0


def test_link_failure_takes_the_port_down_and_heal_brings_it_up(lab: str) -> None:
    testbed("fail", "--lab", lab, "link", "host2")
    try:
        assert in_netns(netns(lab, "demo.pod-a"), "ping", "-c", "1", "-W", "1", POD_C).returncode != 0
    finally:
        testbed("heal", "--lab", lab, "link", "host2")
    wait_for("pod-c reachable again", lambda: connects_icmp(lab), 10)


def connects_icmp(lab: str) -> bool:
    return in_netns(netns(lab, "demo.pod-a"), "ping", "-c", "1", "-W", "1", POD_C).returncode == 0


def felix_pid(lab: str, host: str) -> int:
    from testbed.runtime import state

    recorded = state.load(lab)
    assert recorded is not None
    return [p.pid for p in recorded.processes if p.name == f"felix {host}"][-1]


def test_a_killed_policy_agent_is_restarted_by_the_supervisor(lab: str) -> None:
    before = felix_pid(lab, "host1")
    subprocess.run(["kill", "-9", str(before)], check=True)
    wait_for("felix host1 restarted", lambda: felix_pid(lab, "host1") != before, 10)
    after = felix_pid(lab, "host1")
    assert Path(f"/proc/{after}").exists()
    assert failed_targets(lab) == []


def forward_hook_packets(lab: str, host: str) -> int:
    """Packets counted by the filter FORWARD chain's jump to cali-FORWARD: a counter that
    only survives if the agent never flushed or re-created the hook."""
    table = in_netns(netns(lab, host), "iptables-legacy", "-t", "filter", "-nvxL", "FORWARD").stdout
    return next(int(line.split()[0]) for line in table.splitlines() if "cali-FORWARD" in line)


def test_established_connection_survives_a_felix_restart_while_new_ones_are_refused(
    lab: str, echo_server: None, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    client = subprocess.Popen(
        ["ip", "netns", "exec", netns(lab, "demo.pod-a"), sys.executable, "-c",
         CLIENT.format(ip=POD_C, port=PORT, stop=stop)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "connected"
        time.sleep(0.5)
        counted = forward_hook_packets(lab, "host2")
        assert counted > 0
        testbed("fail", "--lab", lab, "agent", "host2", "felix")
        assert failed_targets(lab) == ["agent host2 felix"]
        time.sleep(1.0)  # failed on purpose: the supervisor leaves it down
        assert failed_targets(lab) == ["agent host2 felix"]
        # The policy arrives while host2's agent is down; the restarted agent must enforce it.
        testbed("kubectl", "--lab", lab, "apply", "-f", "-", "--wait", "false", input=DENY_DEMO_INGRESS)
        assert connects(lab, "pod-b", POD_C)  # nobody enforces it on host2 yet
        testbed("heal", "--lab", lab, "agent", "host2", "felix")
        wait_for("new connections to pod-c refused", lambda: not connects(lab, "pod-b", POD_C), 10)
        assert not connects(lab, "pod-d", POD_C)
        assert forward_hook_packets(lab, "host2") > counted  # no flush: the hook kept counting
        time.sleep(0.5)
        assert client.poll() is None, client.communicate()
        stop.touch()
        out, err = client.communicate(timeout=15)
        assert client.returncode == 0, err
        assert int(out.split()[-1]) > 20, out
    finally:
        stop.touch()
        if client.poll() is None:
            client.kill()
        client.wait()
        testbed("heal", "--lab", lab, "agent", "host2", "felix", check=False)
        testbed("kubectl", "--lab", lab, "delete", "netpol", "deny-ingress", "-n", "demo", check=False)


def test_bgp_agent_failure_and_heal_keep_the_hosts_own_routes(lab: str) -> None:
    testbed("fail", "--lab", lab, "agent", "host2", "bgp")
    try:
        assert failed_targets(lab) == ["agent host2 bgp"]
        assert testbed("bgp", "status", "--lab", lab, "--host", "host2", check=False).returncode == 1
        time.sleep(1.0)
        assert testbed("bgp", "status", "--lab", lab, "--host", "host2", check=False).returncode == 1
        # The killed speaker's learned routes stay in host2's kernel (as a crashed BIRD's).
        assert "10.65.0.0/26 via 172.18.203.11" in host_routes(lab, "host2")
    finally:
        testbed("heal", "--lab", lab, "agent", "host2", "bgp")
    wait_for("sessions Established", lambda: bgp_peer_info(lab, "host2") == ["Established"], 15)
    assert "10.65.0.0/26 via 172.18.203.11" in host_routes(lab, "host2")
    assert HOST2_BLOCK in host_routes(lab, "host1")


def glue_pid(lab: str, host: str) -> int:
    """The PID of the host's BGP glue, 0 while there is none."""
    listed = subprocess.run(["ip", "netns", "pids", netns(lab, host)], capture_output=True, text=True).stdout.split()
    for pid in map(int, listed):
        try:
            if b"agents.bgp.glue" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return 0


def test_a_killed_glue_is_respawned_and_its_routes_never_leave(lab: str) -> None:
    before = glue_pid(lab, "host1")
    assert before
    monitor = subprocess.Popen(
        ["ip", "-n", netns(lab, "host1"), "monitor", "route"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.3)  # the monitor listens
        subprocess.run(["kill", "-9", str(before)], check=True)
        wait_for("a new glue", lambda: glue_pid(lab, "host1") not in (0, before), 10)
        time.sleep(2.0)  # it has asked its peers to resend and re-installed what they sent
    finally:
        monitor.terminate()
        seen, _ = monitor.communicate(timeout=5)
    assert HOST2_BLOCK in host_routes(lab, "host1")
    assert not [line for line in seen.splitlines() if line.startswith("Deleted") and HOST2_BLOCK in line], seen


def test_etcd_restart_then_policy_and_pod_are_enforced_everywhere(lab: str, echo_server: None) -> None:
    testbed("fail", "--lab", lab, "etcd")
    try:
        assert testbed("status", lab, check=False).returncode == 1
        time.sleep(10)
    finally:
        testbed("heal", "--lab", lab, "etcd")
    assert failed_targets(lab) == []
    # A borrowed address: host1 can only reach it once host2's glue announces it.
    testbed("pod", "add", "--lab", lab, "demo/pod-e", "--host", "host2", "--ip", "10.65.0.30", "--",
            sys.executable, "-c", SERVER.format(port=PORT))  # fmt: skip
    try:
        wait_for("host1 routes pod-e to host2", lambda: "10.65.0.30 via 172.18.203.12" in host_routes(lab, "host1"), 5)
        wait_for("pod-e answers", lambda: connects(lab, "pod-a", "10.65.0.30"), 10)
        testbed("kubectl", "--lab", lab, "apply", "-f", "-", input=DENY_DEMO_INGRESS)
        assert not connects(lab, "pod-a", "10.65.0.30")
        assert not connects(lab, "pod-b", POD_C)
        assert not connects(lab, "pod-d", "10.65.0.30")
    finally:
        testbed("kubectl", "--lab", lab, "delete", "netpol", "deny-ingress", "-n", "demo", check=False)
        testbed("pod", "delete", "--lab", lab, "demo/pod-e", check=False)
