"""Running probes: httpGet and tcpSocket from inside the pod's netns (to the pod's IP, or
the probe's host), exec as `kubectl exec` runs a command in the pod.

Each probe runs in a short thread of its own and hands its result to ``deliver``; the
kubelet's loop never waits for one (a probe may take its whole timeoutSeconds). From
inside the pod a probe never crosses the pod's veth, so policy cannot block it (the
kubelet's probes are allowed in Kubernetes too).
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Hashable
from typing import Protocol

from agents.kubelet.podspec import Probe
from testbed.netns import namespaces
from testbed.runtime import programs

LOG = logging.getLogger("agents.kubelet.prober")

Deliver = Callable[[Hashable, bool], None]


class Prober(Protocol):
    def submit(self, token: Hashable, netns: str, pod_ip: str, image: str, probe: Probe, port: int | None) -> None:
        """Run ``probe`` soon; its result goes to the kubelet with ``token``."""
        ...


def http_ok(host: str, port: int, probe: Probe) -> bool:
    """GET ``probe.path``: 200 <= status < 400 is a success (redirects not followed)."""
    conn = http.client.HTTPConnection(host, port, timeout=probe.timeout)
    try:
        headers = {"User-Agent": "kube-probe/testbed", "Accept": "*/*", **dict(probe.headers)}
        conn.request("GET", probe.path, headers=headers)
        return 200 <= conn.getresponse().status < 400
    finally:
        conn.close()


def tcp_ok(host: str, port: int, probe: Probe) -> bool:
    with socket.create_connection((host, port), timeout=probe.timeout):
        return True


def run_probe(netns: str, pod_ip: str, image: str, probe: Probe, port: int | None) -> bool:
    """One run of ``probe``; any error is a failure."""
    try:
        if probe.kind == "exec":
            argv, env = programs.exec_argv(netns, image, probe.command)
            done = subprocess.run(
                argv, env={**os.environ, **env}, timeout=probe.timeout,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            return done.returncode == 0
        if port is None:
            return False
        check = http_ok if probe.kind == "httpGet" else tcp_ok
        host = probe.host or pod_ip
        return namespaces.run_inside(netns, lambda: check(host, port, probe))
    except (OSError, http.client.HTTPException, subprocess.SubprocessError):
        return False


class ThreadProber:
    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver

    def submit(self, token: Hashable, netns: str, pod_ip: str, image: str, probe: Probe, port: int | None) -> None:
        def work() -> None:
            try:
                ok = run_probe(netns, pod_ip, image, probe, port)
            except Exception:  # noqa: BLE001 - a probe that blew up failed
                LOG.exception("probe %s failed to run", token)
                ok = False
            self.deliver(token, ok)

        threading.Thread(target=work, name="kubelet-probe", daemon=True).start()
