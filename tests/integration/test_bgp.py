"""BGP as a user sees it: routes between hosts, sessions, the reflector, the lab's figure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.integration.labs import unique, RootSnapshot, in_netns, lab_netns, status_json, testbed

pytestmark = pytest.mark.root


@pytest.fixture
def lab_factory(root_before: RootSnapshot) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for lab in made:
        testbed("down", lab, check=False)
        assert lab_netns(lab) == []
    assert RootSnapshot.take() == root_before


def up(made: list[str], *args: str) -> str:
    lab = unique(f"bgp{len(made)}")
    made.append(lab)
    testbed("up", *args, "--name", lab)
    return lab


def routes_json(lab: str, host: str) -> list[dict]:
    return json.loads(testbed("routes", host, "--lab", lab, "-o", "json").stdout)["routes"]


def bgp_json(lab: str, host: str | None = None, check: bool = True) -> list[dict]:
    args = ["bgp", "status", "--lab", lab, "-o", "json"] + (["--host", host] if host else [])
    return json.loads(testbed(*args, check=check).stdout)["hosts"]


def bird_routes(lab: str, host: str) -> dict[str, str]:
    """prefix -> next hop of the BGP-learned routes in a host's kernel."""
    out = in_netns(f"{lab}.{host}", "ip", "-j", "route", "show", "proto", "bird").stdout
    return {
        (r["dst"] if "/" in r["dst"] else f"{r['dst']}/32"): r["gateway"]
        for r in json.loads(out or "[]")
        if "gateway" in r
    }


def wait_for(predicate, timeout: float, step: float = 0.05) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def speaker_pid(lab: str, host: str) -> int:
    state = json.loads(open(f"/run/testbed/{lab}/lab.json").read())
    return next(p["pid"] for p in state["processes"] if p["name"] == f"bgp {host}")


def ping_all(lab: str, status: dict) -> list[str]:
    """Every pod pings every pod on another host; returns the failures."""
    failures = []
    for src in status["pods"]:
        targets = [p["ip"] for p in status["pods"] if p["host"] != src["host"]]
        script = "; ".join(f"ping -c 1 -W 2 {ip} >/dev/null || echo FAIL {ip}" for ip in targets)
        out = in_netns(src["netns"], "sh", "-c", script, timeout=120).stdout
        failures += [f"{src['name']} -> {line.split()[1]}" for line in out.splitlines() if line.startswith("FAIL")]
    return failures


def test_two_hosts_mesh(lab_factory: list[str]) -> None:
    lab = up(lab_factory, "two-hosts")
    status = status_json(lab)
    hosts = {h["name"]: h for h in status["hosts"]}
    assert ping_all(lab, status) == []
    learned = [r for r in routes_json(lab, "host1") if r["proto"] == "bird" and r["via"]]
    assert [(r["destination"], r["via"], r["dev"]) for r in learned] == [
        (hosts["host2"]["blocks"][0], hosts["host2"]["ip"], "eth0")
    ]
    text = testbed("routes", "host1", "--lab", lab).stdout
    assert f"{hosts['host2']['blocks'][0]} via {hosts['host2']['ip']} dev eth0 proto bird" in text
    (host1,) = bgp_json(lab, "host1")
    assert host1["running"] is True
    assert [(p["address"], p["type"], p["info"]) for p in host1["peers"]] == [
        (hosts["host2"]["ip"], "node-to-node mesh", "Established")
    ]
    table = testbed("bgp", "status", "--host", "host1", "--lab", lab).stdout
    assert "Calico process is running." in table and "IPv4 BGP status" in table
    assert "| node-to-node mesh |" in table and "Established" in table


def test_pod_addresses_cross_the_fabric_unencapsulated(lab_factory: list[str]) -> None:
    lab = up(lab_factory, "two-hosts")
    status = status_json(lab)
    src = next(p for p in status["pods"] if p["host"] == "host1")
    dst = next(p for p in status["pods"] if p["host"] == "host2")
    capture = subprocess.Popen(
        ["ip", "netns", "exec", f"{lab}.fabric", "tcpdump", "-i", "br0", "-n", "-l", "-c", "1",
         f"icmp and src host {src['ip']} and dst host {dst['ip']}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        time.sleep(0.5)  # tcpdump attaches
        for _ in range(5):
            in_netns(src["netns"], "ping", "-c", "1", "-W", "1", dst["ip"])
            if capture.poll() is not None:
                break
        out, _ = capture.communicate(timeout=5)
    finally:
        capture.kill()
    assert f"IP {src['ip']} > {dst['ip']}: ICMP echo request" in out


def test_route_reflector_one_session_per_host(lab_factory: list[str]) -> None:
    lab = up(lab_factory, "scale", "--hosts", "4", "--pods-per-host", "2", "--route-reflector")
    for host in bgp_json(lab):
        assert [(p["address"], p["type"], p["info"]) for p in host["peers"]] == [
            ("172.18.203.254", "global", "Established")
        ]
    status = status_json(lab)
    assert ping_all(lab, status) == []
    # Next hops are preserved: host1 reaches host2's block via host2 itself, not the reflector.
    hosts = {h["name"]: h for h in status["hosts"]}
    assert bird_routes(lab, "host1")[hosts["host2"]["blocks"][0]] == hosts["host2"]["ip"]


def test_routing_figure(lab_factory: list[str]) -> None:
    lab = up(lab_factory, "routing")
    rows = {r["destination"]: r for r in routes_json(lab, "host3")}
    assert rows["10.65.0.24"]["dev"].startswith("cali") and rows["10.65.0.24"]["via"] is None
    assert rows["10.65.0.0/26"]["via"] == "172.18.203.126"  # .21 and .22, in host1's block
    assert rows["10.65.0.23"]["via"] == "172.18.203.129"  # borrowed by host2: its own /32
    text = testbed("routes", "host3", "--lab", lab).stdout
    assert "10.65.0.23 via 172.18.203.129 dev eth0 proto bird" in text
    assert "blackhole 10.65.0.128/26 proto bird" in text
    failures = ping_all(lab, status_json(lab))
    assert failures == []


def test_a_frozen_speaker_loses_its_routes_within_the_hold_time(lab_factory: list[str]) -> None:
    lab = up(lab_factory, "scale", "--hosts", "3", "--pods-per-host", "1")
    hosts = {h["name"]: h for h in status_json(lab)["hosts"]}
    block = hosts["host3"]["blocks"][0]
    assert block in bird_routes(lab, "host1")
    pid = speaker_pid(lab, "host3")
    os.kill(pid, signal.SIGSTOP)
    try:
        # Each peer's own hold timer expires: both within the 9 s hold time (plus polling).
        waited = wait_for(
            lambda: block not in bird_routes(lab, "host1") and block not in bird_routes(lab, "host2"), timeout=9 + 2
        )
        assert waited <= 9 + 1
        peers = {p["address"]: p for p in bgp_json(lab, "host1")[0]["peers"]}
        assert peers[hosts["host3"]["ip"]]["info"] != "Established"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: block in bird_routes(lab, "host1") and block in bird_routes(lab, "host2"), timeout=30)


def test_pods_added_after_up_are_announced_and_withdrawn(lab_factory: list[str]) -> None:
    lab = up(lab_factory, "two-hosts")
    # An address from host1's block, on host2: host2 must announce a /32 for it.
    added = json.loads(
        testbed("pod", "add", "demo/late", "--host", "host2", "--ip", "10.65.0.40", "--lab", lab, "-o", "json").stdout
    )
    assert added["ip"] == "10.65.0.40" and added["host"] == "host2"
    waited = wait_for(lambda: bird_routes(lab, "host1").get("10.65.0.40/32") == "172.18.203.12", timeout=1.0)
    assert waited < 1.0
    src = next(p for p in status_json(lab)["pods"] if p["name"] == "pod-a")
    assert in_netns(src["netns"], "ping", "-c", "1", "-W", "2", "10.65.0.40").returncode == 0
    testbed("pod", "delete", "demo/late", "--lab", lab)
    wait_for(lambda: "10.65.0.40/32" not in bird_routes(lab, "host1"), timeout=1.0)
    assert f"{lab}.demo.late" not in lab_netns(lab)


def test_a_stopped_speaker_is_withdrawn_and_restored_when_started(lab_factory: list[str]) -> None:
    from testbed import api

    lab = up(lab_factory, "scale", "--hosts", "3", "--pods-per-host", "1")
    hosts = {h["name"]: h for h in status_json(lab)["hosts"]}
    block = hosts["host2"]["blocks"][0]
    os.kill(speaker_pid(lab, "host2"), signal.SIGTERM)
    wait_for(lambda: block not in bird_routes(lab, "host1") and block not in bird_routes(lab, "host3"), timeout=9)
    assert bird_routes(lab, "host2") == {}  # its glue removed what it had learned
    stopped = testbed("bgp", "status", "--host", "host2", "--lab", lab, check=False)
    assert stopped.returncode == 1 and "Calico process is not running." in stopped.stdout
    api.start_speaker(lab, "host2")
    wait_for(lambda: block in bird_routes(lab, "host1") and block in bird_routes(lab, "host3"), timeout=30)
    wait_for(lambda: len(bird_routes(lab, "host2")) == 2, timeout=30)


def test_a_mesh_too_big_for_the_neighbour_table_is_refused_before_anything_exists(root_before: RootSnapshot) -> None:
    lab = unique("bgpbig")
    proc = testbed("up", "scale", "--hosts", "40", "--pods-per-host", "0", "--name", lab, check=False)
    assert proc.returncode == 1
    assert "ARP entries" in proc.stderr and "--route-reflector" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert lab_netns(lab) == []
    assert RootSnapshot.take() == root_before
