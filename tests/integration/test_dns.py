"""The cluster DNS server for real: in a netns of its own, reading Services from a real etcd.

Two namespaces made here and removed afterwards: one runs etcd (UNIX socket only, as the
lab's fabric does for the CLI), the other plays the kube-dns pod and runs
`python -m agents.apps.dns` on port 53, reaching etcd through the socket file as the
lab's pod does. Clients run in the pod netns: glibc (`getent`, with the pod's
resolv.conf bind-mounted by `ip netns exec`, search list and ndots:5) and dnspython
(UDP and TCP, from a thread that joined the netns). Nothing of it is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from testbed.datastore import keys
from testbed.datastore.etcd import EtcdDatastore
from testbed.netns import etc_files, namespaces
from testbed.runtime import etcd_server
from tests.integration.labs import REPO, RootSnapshot, unique

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not Path(etcd_server.ETCD_BINARY).exists(), reason=f"{etcd_server.ETCD_BINARY} is not installed"),
]

T = TypeVar("T")
NGINX = "nginx.policy-demo.svc.cluster.local"
POD_IP = "10.65.255.1"  # the kube-dns pod's address (glibc's AI_ADDRCONFIG wants one besides lo)


def service(ns: str, name: str, ip: str) -> dict:
    """A Service as stored in the registry (what `testbed kubectl` writes)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"run": name}},
    }


def eventually(fn: Callable[[], T], want: T, timeout: float = 5.0) -> float:
    """Poll ``fn`` until it returns ``want``; the seconds it took. AssertionError otherwise."""
    start = time.monotonic()
    got = fn()
    while got != want:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"still {got!r} after {timeout} s, want {want!r}")
        time.sleep(0.02)
        got = fn()
    return time.monotonic() - start


def stop(process: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@dataclass
class DnsUnderTest:
    state: Path
    etcd_netns: str
    pod_netns: str
    lab: str
    etcd: subprocess.Popen[bytes]
    server: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    started_in: float = 0.0  # seconds from launch to the first answer

    @property
    def socket(self) -> Path:
        return etcd_server.socket_path(self.state)

    def start_etcd(self) -> None:
        etcd_server.clear_stale_socket(self.state)
        command = etcd_server.etcd_command(etcd_server.data_dir(self.state), None, loopback=False)
        with etcd_server.log_path(self.state).open("ab") as log:
            self.etcd = subprocess.Popen(["ip", "netns", "exec", self.etcd_netns, *command], cwd=self.state,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)  # fmt: skip
        etcd_server.wait_healthy(self.socket, 10.0, log=etcd_server.log_path(self.state), process=self.etcd)

    def store(self) -> EtcdDatastore:
        return EtcdDatastore.over_unix_socket(self.socket)

    def getent(self, name: str, database: str = "ahostsv4") -> str | None:
        """The first address glibc resolves ``name`` to inside the pod, or None."""
        proc = subprocess.run(["ip", "netns", "exec", self.pod_netns, "getent", database, name],
                              capture_output=True, text=True, timeout=20)  # fmt: skip
        return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else None

    def query(self, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 2.0) -> tuple[str, list[str]]:
        """(rcode, addresses) of one query to the pod's port 53, from inside its netns."""
        import dns.message
        import dns.query
        import dns.rcode

        def ask() -> tuple[str, list[str]]:
            query = dns.message.make_query(name, rdtype)
            send = dns.query.tcp if tcp else dns.query.udp
            response = send(query, POD_IP, timeout=timeout)
            found = [rd.to_text() for rrset in response.answer for rd in rrset]
            return dns.rcode.to_text(response.rcode()), found

        return namespaces.run_inside(self.pod_netns, ask)


@pytest.fixture(scope="module")
def dns_lab() -> Iterator[DnsUnderTest]:
    before = RootSnapshot.take()
    tag = unique("dnst")
    etcd_netns, pod_netns = f"{tag}.fabric", f"{tag}.kube-system.kube-dns"
    state = Path(tempfile.mkdtemp(prefix="testbed-dns-"))  # short: AF_UNIX paths are at most 108 bytes
    made: list[str] = []
    lab = DnsUnderTest(state, etcd_netns, pod_netns, tag, etcd=None)  # type: ignore[arg-type]
    try:
        for name in (etcd_netns, pod_netns):
            namespaces.create(name)
            made.append(name)
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        # eth0 as a pod has one; its peer stays in the same netns (nothing in the root netns)
        for argv in (["link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer"],
                     ["addr", "add", f"{POD_IP}/32", "dev", "eth0"],
                     ["link", "set", "eth0-peer", "up"], ["link", "set", "eth0", "up"]):  # fmt: skip
            subprocess.run(["ip", "-n", pod_netns, *argv], check=True, timeout=10)
        etc_files.write(pod_netns, "resolv.conf", etc_files.resolv_conf("policy-demo", POD_IP))
        lab.start_etcd()
        with lab.store() as store:
            store.put(keys.LAB, {"name": tag})
            store.put(keys.service("kube-system", "kube-dns"), service("kube-system", "kube-dns", "10.96.0.10"))
        yield lab
    finally:
        if lab.server is not None:
            stop(lab.server)
        if lab.etcd is not None:
            stop(lab.etcd)
        for name in made:
            namespaces.remove(name)
        etc_files.remove(pod_netns)
        shutil.rmtree(state, ignore_errors=True)
    assert namespaces.names_with_prefix(f"{tag}.") == []
    assert not (etc_files.ETC_NETNS / pod_netns).exists()
    assert RootSnapshot.take() == before


def start_server(lab: DnsUnderTest) -> None:
    lab.log = lab.state / "dns.log"
    launched = time.monotonic()
    with lab.log.open("ab") as log:
        lab.server = subprocess.Popen(
            ["ip", "netns", "exec", lab.pod_netns, sys.executable, "-m", "agents.apps.dns",
             "--lab", lab.lab, "--etcd-socket", str(lab.socket), "--port", "53"],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
    deadline = launched + 15
    while True:
        assert lab.server.poll() is None, lab.log.read_text()
        try:
            # a short timeout: UDP to a port nobody listens on yet just goes unanswered
            if lab.query("kube-dns.kube-system.svc.cluster.local", timeout=0.05)[0] == "NOERROR":
                break
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        assert time.monotonic() < deadline, lab.log.read_text()
        time.sleep(0.02)
    lab.started_in = time.monotonic() - launched


@pytest.fixture(scope="module")
def server(dns_lab: DnsUnderTest) -> DnsUnderTest:
    start_server(dns_lab)
    return dns_lab


def test_a_pod_resolves_a_service_by_its_short_name(server: DnsUnderTest) -> None:
    with server.store() as store:
        store.put(keys.service("policy-demo", "nginx"), service("policy-demo", "nginx", "10.96.0.20"))
    eventually(lambda: server.getent(NGINX), "10.96.0.20")
    # the pod's search list (namespace policy-demo) and ndots:5 expand these
    assert server.getent("nginx") == "10.96.0.20"
    assert server.getent("nginx.policy-demo") == "10.96.0.20"
    assert server.getent("kube-dns.kube-system") == "10.96.0.10"
    # `getent hosts` asks AAAA first: the empty NOERROR answer makes glibc fall back to A
    assert server.getent("nginx", "hosts") == "10.96.0.20"
    print(f"\nkube-dns answered {server.started_in * 1000:.0f} ms after launch")


def test_answers_over_udp_and_tcp_and_unknown_names_fail(server: DnsUnderTest) -> None:
    assert server.query("kube-dns.kube-system.svc.cluster.local") == ("NOERROR", ["10.96.0.10"])
    assert server.query("KUBE-DNS.kube-system.svc.cluster.local", tcp=True) == ("NOERROR", ["10.96.0.10"])
    assert server.query("kube-dns.kube-system.svc.cluster.local", "AAAA") == ("NOERROR", [])
    assert server.query("nope.kube-system.svc.cluster.local") == ("NXDOMAIN", [])
    assert server.query("10.0.96.10.in-addr.arpa", "PTR") == ("NOERROR", ["kube-dns.kube-system.svc.cluster.local."])
    assert server.query("example.com") == ("REFUSED", [])
    assert server.getent("no-such-service") is None
    started = time.monotonic()
    assert server.getent("example.com") is None  # refused at once: nothing is forwarded, nothing hangs
    assert time.monotonic() - started < 3


def test_answers_follow_the_service_as_it_changes_and_goes(server: DnsUnderTest) -> None:
    with server.store() as store:
        store.put(keys.service("policy-demo", "web"), service("policy-demo", "web", "10.96.5.5"))
        eventually(lambda: server.query("web.policy-demo.svc.cluster.local"), ("NOERROR", ["10.96.5.5"]))
        store.put(keys.service("policy-demo", "web"), service("policy-demo", "web", "10.96.5.6"))
        moved = eventually(lambda: server.query("web.policy-demo.svc.cluster.local"), ("NOERROR", ["10.96.5.6"]))
        assert server.getent("web") == "10.96.5.6"
        store.delete(keys.service("policy-demo", "web"))
        eventually(lambda: server.query("web.policy-demo.svc.cluster.local"), ("NXDOMAIN", []))
    assert server.getent("web") is None
    print(f"\na changed ClusterIP was answered {moved * 1000:.0f} ms after the write")


def test_keeps_answering_across_an_etcd_restart_and_catches_up(server: DnsUnderTest) -> None:
    stop(server.etcd)
    # etcd is down: the last known map is still answered from memory
    assert server.query("kube-dns.kube-system.svc.cluster.local") == ("NOERROR", ["10.96.0.10"])
    server.start_etcd()
    with server.store() as store:
        store.put(keys.service("policy-demo", "late"), service("policy-demo", "late", "10.96.7.7"))
    eventually(lambda: server.query("late.policy-demo.svc.cluster.local"), ("NOERROR", ["10.96.7.7"]), timeout=10)


def test_logs_its_start_and_changes_and_stops_cleanly_on_sigterm(server: DnsUnderTest) -> None:
    assert server.server is not None and server.log is not None
    assert stop(server.server) == 0
    log = server.log.read_text()
    assert "serving cluster.local" in log and ":53 udp+tcp" in log
    assert "+policy-demo/nginx" in log and "-policy-demo/web" in log
    assert "stopped" in log and "Traceback" not in log
    # the etcd restart: one warning for the outage, not one per retry, then the recovery
    assert log.count("answering from memory") <= 1
    assert ("answering from memory" in log) == ("etcd answers again" in log)
    assert namespaces.pids_by_netns([server.pod_netns])[server.pod_netns] == []
    server.server = None


def test_refuses_another_labs_etcd(dns_lab: DnsUnderTest) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", dns_lab.pod_netns, sys.executable, "-m", "agents.apps.dns",
         "--lab", "another-lab", "--etcd-socket", str(dns_lab.socket), "--port", "0", "--address", "127.0.0.1"],
        cwd=REPO, capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"is the etcd of lab {dns_lab.lab}, not another-lab" in proc.stderr


def test_refuses_to_listen_outside_the_labs_namespaces(dns_lab: DnsUnderTest) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agents.apps.dns", "--lab", dns_lab.lab, "--etcd-socket", str(dns_lab.socket)],
        cwd=REPO, capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"refusing to listen on 0.0.0.0 outside the lab's namespaces ({dns_lab.lab}.*)" in proc.stderr
