"""kube-proxy's rules for real, in two scratch namespaces joined by a veth pair.

``host`` plays a lab host (the rules go there, rendered from the Endpoints the endpoints
controller would store, applied by ``KubeProxyTables`` through
``ip netns exec``), ``pod`` plays a pod serving TCP 8080 on 10.65.0.2. Connections to the
ClusterIP and the NodePort must reach the pod's server; the applier must not write twice,
must sweep what it no longer renders and repair drift; Felix's applier in the same filter
table must not fight it. The root namespace must be the same afterwards.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agents.felix.apply import IptablesTable, SubprocessRunner
from agents.felix.render.rules import Chain, Rule
from agents.kubeproxy import KubeProxyTables, desired_rules
from agents.kubeproxy.render import endpoint_chain, service_chain
from testbed.kube.endpoints import desired_endpoints
from testbed.kube.services import ContainerPort, PodInfo, Service, ServicePort
from tests.integration.labs import REPO, in_netns, unique

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("root_unchanged")]

_counter = itertools.count()
CLUSTER_IP, NODE_PORT = "10.96.0.5", 30080
HOST_IP, HOST_LOOPBACK_IP, POD_IP = "10.65.0.1", "172.18.203.250", "10.65.0.2"
WEB = Service(
    "demo", "web", "NodePort", (("app", "web"),),
    (ServicePort("http", "TCP", 80, "http", NODE_PORT),), CLUSTER_IP,
)  # fmt: skip
EMPTY = Service("demo", "empty", "ClusterIP", (("app", "nobody"),), (ServicePort("", "TCP", 81, 81),), "10.96.0.6")
BACKEND = PodInfo("demo", "backend", POD_IP, (("app", "web"),), (ContainerPort("http", 8080),))
# What the endpoints controller stores for the two Services given the backend pod:
# kube-proxy reads these, never pods.
ENDPOINTS = [desired_endpoints(WEB, [BACKEND]), desired_endpoints(EMPTY, [BACKEND])]


@dataclass(frozen=True)
class Pair:
    host: str
    pod: str
    runner: SubprocessRunner

    def save(self, table: str = "nat", counters: bool = False) -> str:
        """The table as iptables-save prints it; without ``counters`` even the kernel
        chains' packet counts (which any traffic changes) are left out."""
        text = self.runner.run(["iptables-legacy-save", "-t", table, *(["-c"] if counters else [])])
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        if not counters:
            lines = [re.sub(r" \[\d+:\d+\]$", "", line) if line.startswith(":") else line for line in lines]
        return "\n".join(lines)


def run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, timeout=30, capture_output=True)


@pytest.fixture
def pair() -> Iterator[Pair]:
    n = next(_counter)
    host, pod = unique(f"zzkp{n}-host"), unique(f"zzkp{n}-pod")
    server: subprocess.Popen[str] | None = None
    try:
        run("ip", "netns", "add", host)
        run("ip", "netns", "add", pod)
        h, p = ("ip", "netns", "exec", host), ("ip", "netns", "exec", pod)
        run(*h, "ip", "link", "add", "vh", "type", "veth", "peer", "name", "vp", "netns", pod)
        run(*h, "ip", "addr", "add", f"{HOST_IP}/24", "dev", "vh")
        run(*h, "ip", "addr", "add", f"{HOST_LOOPBACK_IP}/32", "dev", "lo")
        run(*h, "ip", "link", "set", "lo", "up")
        run(*h, "ip", "link", "set", "vh", "up")
        run(*h, "ip", "route", "add", "10.96.0.0/16", "dev", "vh")  # a lab host's default route covers it
        run(*h, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        run(*p, "ip", "addr", "add", f"{POD_IP}/24", "dev", "vp")  # no default route: replies need SNAT
        run(*p, "ip", "link", "set", "lo", "up")
        run(*p, "ip", "link", "set", "vp", "up")
        server = subprocess.Popen(
            [*p, sys.executable, "-m", "agents.apps.serve", "--tcp", "8080", "--name", "backend"],
            cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        assert server.stdout is not None and "serving 'backend'" in server.stdout.readline()
        yield Pair(host, pod, SubprocessRunner(prefix=h))
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        for name in (host, pod):
            subprocess.run(["ip", "netns", "delete", name], check=False, timeout=30, capture_output=True)
    assert not {host, pod} & set(os.listdir("/run/netns"))


def connect(netns: str, ip: str, port: int, source: str | None = None, timeout: float = 2.0) -> tuple[str, float]:
    """What the server answered (or the error's name) and how long it took, from ``netns``."""
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(); s.settimeout(float(sys.argv[4])); t = time.monotonic()\n"
        "try:\n"
        "    s.bind((sys.argv[3], 0)) if sys.argv[3] else None\n"
        "    s.connect((sys.argv[1], int(sys.argv[2]))); print(s.recv(64).decode().strip())\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
        "print(time.monotonic() - t)\n"
    )
    proc = in_netns(netns, sys.executable, "-c", code, ip, str(port), source or "", str(timeout))
    answer, took = proc.stdout.split()
    return answer, float(took)


def test_cluster_ip_and_node_port_reach_the_endpoint(pair: Pair) -> None:
    nat, filter_text = desired_rules([WEB], ENDPOINTS)
    report = KubeProxyTables(pair.runner).apply(nat, filter_text)
    assert report.tables_written == ("nat", "filter") and report.hooks_added == 7
    saved = pair.save()
    svc = service_chain("demo/web:http", "tcp")
    sep = endpoint_chain("demo/web:http", "tcp", f"{POD_IP}:8080")
    for line in (
        f":{svc} -",
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        f'-A KUBE-SERVICES -d {CLUSTER_IP}/32 -p tcp -m comment --comment "demo/web:http cluster IP" '
        f"-m tcp --dport 80 -j {svc}",
        f'-A {sep} -p tcp -m comment --comment "demo/web:http" -m tcp -j DNAT --to-destination {POD_IP}:8080',
    ):
        assert line in saved.splitlines(), line
    # The host itself, from its pod-network address and from an address outside the pod
    # CIDR: the latter only works because it is masqueraded (the pod has no route back).
    assert connect(pair.host, CLUSTER_IP, 80)[0] == "backend"
    assert connect(pair.host, CLUSTER_IP, 80, source=HOST_LOOPBACK_IP)[0] == "backend"
    # NodePort: on the host's own address from the host (OUTPUT), and from the pod (PREROUTING).
    assert connect(pair.host, HOST_LOOPBACK_IP, NODE_PORT)[0] == "backend"
    assert connect(pair.pod, HOST_IP, NODE_PORT)[0] == "backend"
    assert connect(pair.host, CLUSTER_IP, 81, timeout=1.0)[0] == "TimeoutError"  # no such service port


def test_applying_twice_changes_nothing_and_resync_repairs_drift(pair: Pair) -> None:
    tables = KubeProxyTables(pair.runner)
    nat, filter_text = desired_rules([WEB], ENDPOINTS)
    tables.apply(nat, filter_text)
    assert connect(pair.host, CLUSTER_IP, 80)[0] == "backend"
    before = pair.save(counters=True), pair.save("filter", counters=True)
    assert re.search(r"\[1:\d+\] -A KUBE-SERVICES -d 10\.96\.0\.5/32", before[0])  # the SYN went through it
    assert not tables.apply(nat, filter_text).wrote
    assert not tables.apply(nat, filter_text, resync=True).wrote
    assert (pair.save(counters=True), pair.save("filter", counters=True)) == before  # counters kept
    # Drift: a DNAT rule and a hook deleted by hand come back on the next resync.
    good = pair.save(), pair.save("filter")
    sep = endpoint_chain("demo/web:http", "tcp", f"{POD_IP}:8080")
    pair.runner.run(["iptables-legacy", "-t", "nat", "-D", sep, "2"])
    pair.runner.run(["iptables-legacy", "-D", "OUTPUT", "1"])
    assert connect(pair.host, CLUSTER_IP, 80, timeout=1.0)[0] != "backend"
    report = tables.apply(nat, filter_text, resync=True)
    assert report.tables_written == ("nat", "filter") and report.hooks_added == 1
    assert (pair.save(), pair.save("filter")) == good
    assert connect(pair.host, CLUSTER_IP, 80)[0] == "backend"


def test_stale_chains_are_deleted_and_a_service_without_endpoints_refuses(pair: Pair) -> None:
    tables = KubeProxyTables(pair.runner)
    tables.apply(*desired_rules([WEB], ENDPOINTS))
    svc = service_chain("demo/web:http", "tcp")
    assert f":{svc} " in pair.save()
    report = tables.apply(*desired_rules([EMPTY], ENDPOINTS))
    assert set(report.chains_deleted) == {
        svc, svc.replace("SVC", "EXT"), endpoint_chain("demo/web:http", "tcp", f"{POD_IP}:8080")
    }
    assert not [line for line in pair.save().splitlines() if line.startswith((":KUBE-SVC-", ":KUBE-SEP-", ":KUBE-EXT-"))]
    assert '--comment "demo/empty has no endpoints"' in pair.save("filter")
    assert connect(pair.host, CLUSTER_IP, 80, timeout=1.0)[0] == "TimeoutError"  # gone
    answer, took = connect(pair.host, "10.96.0.6", 81, timeout=3.0)
    assert answer == "ConnectionRefusedError" and took < 1.0  # REJECT, not a timeout
    # A fresh process (an agent restart) sweeps what an earlier one left behind.
    tables.apply(*desired_rules([WEB], ENDPOINTS))
    fresh = KubeProxyTables(pair.runner).apply(*desired_rules([], []))
    assert svc in fresh.chains_deleted and not fresh.hooks_added
    assert "KUBE-SVC-" not in pair.save() and "REJECT" not in pair.save("filter")


def test_felix_and_kube_proxy_share_the_filter_table_without_fighting(pair: Pair) -> None:
    felix = IptablesTable("filter", pair.runner)
    felix.desired([Chain("cali-FORWARD", (Rule("-i cali+", "-j DROP"),))], [("FORWARD", Rule("", "-j cali-FORWARD"))])
    kube = KubeProxyTables(pair.runner)
    texts = desired_rules([WEB, EMPTY], ENDPOINTS)
    assert kube.apply(*texts).wrote
    assert felix.apply().wrote
    assert kube.apply(*texts, resync=True).hooks_added == 0
    assert not felix.apply().wrote
    assert not kube.apply(*texts, resync=True).wrote
    forward = [line for line in pair.save("filter").splitlines() if line.startswith("-A FORWARD")]
    assert forward[0].endswith("-j cali-FORWARD")
    assert [line.split()[-1] for line in forward[1:]] == ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"]
    # Felix starting first changes nothing either: kube-proxy appends after it.
    kube2 = KubeProxyTables(pair.runner)
    assert not kube2.apply(*texts).hooks_added and not felix.apply().wrote
