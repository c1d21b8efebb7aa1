"""`testbed migrate`: a pod moves host keeping its IP and its processes; the address follows."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.labs import in_netns, running_lab, status_json, testbed

pytestmark = pytest.mark.root

TOPOLOGY = """\
name: migrate
hosts: [host1, host2, host3]
namespaces:
  demo: {}
pods:
  - {name: web, namespace: demo, host: host1, image: agnhost, labels: {app: web}}
  - {name: client, namespace: demo, host: host3, image: busybox}
  - {name: near, namespace: demo, host: host1, image: busybox}
"""

# Connects to IP:80 every 10 ms for SECONDS; prints [[monotonic time, reached], ...].
PROBE = """\
import json, socket, sys, time
ip, seconds = sys.argv[1], float(sys.argv[2])
end, out = time.monotonic() + seconds, []
while time.monotonic() < end:
    t = time.monotonic()
    try:
        with socket.create_connection((ip, 80), timeout=0.2) as s:
            ok = s.recv(64).startswith(b"demo/web")
    except OSError:
        ok = False
    out.append([t, ok])
    time.sleep(0.01)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("migrate") / "migrate.yaml"
    path.write_text(TOPOLOGY)
    with running_lab(str(path), "itmig") as name:
        yield name


def pod(lab: str, key: str) -> dict:
    return next(p for p in status_json(lab)["pods"] if f"{p['namespace']}/{p['name']}" == key)


def netns_pids(netns: str) -> set[int]:
    return {int(p) for p in subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()}


def route_get(lab: str, host: str, ip: str) -> str:
    return in_netns(f"{lab}.{host}", "ip", "-o", "route", "get", ip).stdout


def reaches(lab: str, src: str, ip: str) -> bool:
    probe = in_netns(f"{lab}.demo.{src}", sys.executable, "-c", PROBE, ip, "0.05")
    return any(ok for _, ok in json.loads(probe.stdout))


def migrate(lab: str, key: str, host: str) -> dict:
    return json.loads(testbed("migrate", "--lab", lab, key, host, "-o", "json").stdout)


def test_migrate_keeps_ip_and_processes_and_the_address_follows(lab: str) -> None:
    before = pod(lab, "demo/web")
    pids = netns_pids(before["netns"])
    assert before["host"] == "host1" and pids
    prober = subprocess.Popen(
        ["ip", "netns", "exec", f"{lab}.demo.client", sys.executable, "-c", PROBE, before["ip"], "4"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)
    moved = migrate(lab, "demo/web", "host2")
    returned = time.monotonic()
    samples = json.loads(prober.communicate(timeout=30)[0])

    after = pod(lab, "demo/web")
    assert (after["ip"], after["host"], after["netns"]) == (before["ip"], "host2", before["netns"])
    assert moved["borrowed"] is True and moved["source"] == "host1"
    assert netns_pids(after["netns"]) == pids  # its program was never restarted
    # Reached before, during (at most a short gap) and after the move.
    assert samples[0][1] and samples[-1][1] and samples[-1][0] > returned
    gap, last_ok = 0.0, None
    for t, ok in samples:
        if ok:
            if last_ok is not None:
                gap = max(gap, t - last_ok)
            last_ok = t
    assert gap < 1.0, f"no connection reached the pod for {gap:.3f} s"
    # The /32 via host2 beats host1's block everywhere, host1 (which keeps the blackhole) included.
    assert "via 172.18.203.12" in route_get(lab, "host1", before["ip"])
    assert "via 172.18.203.12" in route_get(lab, "host3", before["ip"])
    assert f"dev {before['interface']}" in route_get(lab, "host2", before["ip"])
    assert "blackhole 10.65.0.0/26" in in_netns(f"{lab}.host1", "ip", "route").stdout
    assert reaches(lab, "near", before["ip"])  # from the pod's old host, now across the fabric


def test_policy_follows_the_pod(lab: str) -> None:
    policy = """\
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: web-from-near, namespace: demo}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {}}}]
    ports: [{port: 81}]
"""
    ip = pod(lab, "demo/web")["ip"]
    testbed("kubectl", "--lab", lab, "apply", "-f", "-", input=policy)
    try:
        assert not reaches(lab, "client", ip)  # port 80 is now denied, on whichever host
        migrate(lab, "demo/web", "host3")
        assert not reaches(lab, "client", ip)
    finally:
        testbed("kubectl", "--lab", lab, "delete", "netpol", "web-from-near", "-n", "demo")
    assert reaches(lab, "client", ip)


def test_back_to_its_block_host_needs_no_more_host_routes(lab: str) -> None:
    ip = pod(lab, "demo/web")["ip"]
    moved = migrate(lab, "demo/web", "host1")
    assert moved["borrowed"] is False and pod(lab, "demo/web")["host"] == "host1"
    for host in ("host2", "host3"):
        table = in_netns(f"{lab}.{host}", "ip", "route").stdout
        assert f"\n{ip} " not in f"\n{table}", table  # only the block route is left
        assert "via 172.18.203.11" in route_get(lab, host, ip)
    assert reaches(lab, "client", ip) and reaches(lab, "near", ip)


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo/nope", "host2"], "pod demo/nope not found"),
        (["demo/web", "host9"], "host 'host9' not found"),
        (["demo/web", "host1"], "already on host1"),
        (["web", "host2"], "expected NAMESPACE/NAME"),
        (["--lab", "no-such-lab", "demo/web", "host2"], "no lab named 'no-such-lab'"),
        (["demo/web"], "Missing argument"),
    ],
)
def test_bad_input_changes_nothing(lab: str, args: list[str], message: str) -> None:
    before = status_json(lab)["pods"]
    full = args if args[0] == "--lab" else ["--lab", lab, *args]
    proc = testbed("migrate", *full, check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "rror:" in line]  # ours, or click's usage error
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert status_json(lab)["pods"] == before
