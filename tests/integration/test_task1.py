"""The network policy lab's Task 1, command for command, through `testbed kubectl`.

Replays ../shared/lab/network-policy-lab.md on `testbed up policy-demo`: the nginx page from
`access`, a 5 s `wget: download timed out` after default-deny, the page again for `access`
only after access-nginx, and `delete ns` taking everything with it. One session runs under
a real pseudo-terminal, as a user types it; the others feed the shell on stdin.
Also: Services spread over their endpoints, NodePorts on every host, bad manifests.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.labs import REPO, in_netns, lab_netns, running_lab, status_json, testbed

pytestmark = pytest.mark.root

CURSOR_QUERY = b"\x1b[6n"
NGINX_TITLE = "<title>Welcome to nginx!</title>"
PAGE_END = "</html>"

CLUSTER_IMAGE_POLICY = """\
apiVersion: securityenforcement.admission.cloud.ibm.com/v1beta1
kind: ClusterImagePolicy
metadata:
  name: nginx-cluster-image-policy
spec:
  repositories:
  - name: docker.io/nginx*
"""

DEFAULT_DENY = """\
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata:
  name: default-deny
  namespace: policy-demo
spec:
  podSelector:
    matchLabels: {}
"""

ACCESS_NGINX = """\
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata:
  name: access-nginx
  namespace: policy-demo
spec:
  podSelector:
    matchLabels:
      run: nginx
  ingress:
    - from:
      - podSelector:
          matchLabels:
            run: access
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with running_lab("policy-demo", "task1") as name:
        yield name


def kubectl(lab: str, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return testbed("kubectl", "--lab", lab, *args, input=input, check=check)


def busybox_session(lab: str, pod: str, typed: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`kubectl run ... --rm -ti --image busybox /bin/sh` with ``typed`` on its stdin."""
    started = time.monotonic()
    proc = kubectl(lab, "run", "--namespace=policy-demo", pod, "--rm", "-ti", "--image", "busybox", "/bin/sh", input=typed, check=False)
    return proc, time.monotonic() - started


def tty_session(lab: str, pod: str, lines: list[str], timeout: float = 60) -> tuple[str, int]:
    """The same under a pseudo-terminal: type each line after the prompt; all output, exit code."""
    argv = [sys.executable, "-m", "testbed.cli.main", "kubectl", "--lab", lab, "run", "--namespace=policy-demo", pod,
            "--rm", "-ti", "--image", "busybox", "/bin/sh"]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI, on the terminal
        os.chdir(REPO)
        os.execv(argv[0], argv)
    output = b""
    deadline = time.monotonic() + timeout
    pending = list(lines)
    typed = 0
    last_output = time.monotonic()
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break  # the session ended
                if not chunk:
                    break
                if CURSOR_QUERY in chunk:  # busybox's line editor asks where the cursor is
                    os.write(fd, b"\x1b[1;5R")  # as a terminal answers
                    chunk = chunk.replace(CURSOR_QUERY, b"")
                output += chunk
                last_output = time.monotonic()
            quiet = time.monotonic() - last_output > 0.3
            if pending and quiet and output.count(b"/ # ") > typed:  # a new prompt, and it settled
                os.write(fd, (pending.pop(0) + "\n").encode())
                typed += 1
    finally:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:  # still running at the deadline
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    return output.decode(errors="replace").replace("\r\n", "\n"), os.waitstatus_to_exitcode(status)


def test_task1_command_for_command(lab: str) -> None:
    created = kubectl(lab, "create", "-f", "-", input=CLUSTER_IMAGE_POLICY)
    assert created.stdout.strip() == "clusterimagepolicy.securityenforcement.admission.cloud.ibm.com/nginx-cluster-image-policy created"
    assert kubectl(lab, "create", "ns", "policy-demo").stdout.strip() == 'namespace "policy-demo" created'
    assert kubectl(lab, "run", "--namespace=policy-demo", "nginx", "--replicas=2", "--image=nginx").stdout.strip() == 'deployment.apps "nginx" created'
    assert kubectl(lab, "expose", "--namespace=policy-demo", "deployment", "nginx", "--port=80").stdout.strip() == 'service "nginx" exposed'

    pods = json.loads(kubectl(lab, "get", "pods", "-n", "policy-demo", "-o", "json").stdout)["items"]
    assert len(pods) == 2 and {p["metadata"]["labels"]["run"] for p in pods} == {"nginx"}
    assert {p["spec"]["nodeName"] for p in pods} == {"host1", "host2"}, "a workload's pods are spread over the hosts"

    # Ensure the nginx service is accessible: typed at the busybox prompt, on a terminal.
    text, code = tty_session(lab, "access", ["wget -q nginx -O -", "exit"])
    assert "If you don't see a command prompt, try pressing enter." in text
    assert "/ # wget -q nginx -O -" in text
    assert NGINX_TITLE in text and PAGE_END in text
    assert 'pod "access" deleted' in text and code == 0

    # Enable isolation: the same request now times out after 5 s.
    assert kubectl(lab, "create", "-f", "-", input=DEFAULT_DENY).stdout.strip() == 'networkpolicy.networking.k8s.io "default-deny" created'
    proc, took = busybox_session(lab, "access", "wget -q --timeout=5 nginx -O -\n")
    assert "wget: download timed out" in proc.stderr and NGINX_TITLE not in proc.stdout
    assert 4.5 <= took <= 12, f"the timeout took {took:.1f} s"

    # Allow access from pods labelled run=access only.
    assert kubectl(lab, "create", "-f", "-", input=ACCESS_NGINX).stdout.strip() == 'networkpolicy.networking.k8s.io "access-nginx" created'
    proc, _ = busybox_session(lab, "access", "wget -q --timeout=5 nginx -O -\n")
    assert NGINX_TITLE in proc.stdout and proc.returncode == 0, proc.stderr
    proc, _ = busybox_session(lab, "cant-access", "wget -q --timeout=5 nginx -O -\n")
    assert "wget: download timed out" in proc.stderr and proc.returncode == 1
    logs = "".join(kubectl(lab, "logs", "-n", "policy-demo", p["metadata"]["name"]).stdout for p in pods)
    assert '"GET / HTTP/1.1" 200' in logs, "nginx logged the requests that reached it"

    # Clean up by deleting the namespace: pods (netns included), service, policies, deployment.
    assert kubectl(lab, "delete", "ns", "policy-demo").stdout.strip() == 'namespace "policy-demo" deleted'
    assert not [n for n in lab_netns(lab) if n.startswith(f"{lab}.policy-demo.")]
    assert not os.path.exists(f"/etc/netns/{lab}.policy-demo.access")
    for kind in ("pods", "svc", "deploy", "rs", "netpol"):
        listed = kubectl(lab, "get", kind, "-n", "policy-demo")
        assert listed.stdout == "" and "No resources found in policy-demo namespace." in listed.stderr


def test_service_spreads_and_node_port_answers_on_every_host(lab: str) -> None:
    manifest = """\
apiVersion: v1
kind: Namespace
metadata: {name: spread}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: spread}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers: [{name: echo, image: agnhost, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: spread}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 8080, targetPort: http, nodePort: 30080}]
"""
    try:
        lines = kubectl(lab, "apply", "-f", "-", input=manifest).stdout.split("\n")
        assert 'service "echo" created' in lines and 'deployment.apps "echo" created' in lines
        wide = kubectl(lab, "get", "svc", "echo", "-n", "spread", "-o", "wide").stdout.splitlines()
        assert wide[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
        name, kind, cluster_ip, _external, ports, _age, selector = wide[1].split()
        assert (name, kind, ports, selector) == ("echo", "NodePort", "8080:30080/TCP", "app=echo")
        pods = {p["metadata"]["name"] for p in json.loads(kubectl(lab, "get", "pods", "-n", "spread", "-o", "json").stdout)["items"]}
        client = f"{lab}.spread.client"
        kubectl(lab, "run", "client", "-n", "spread", "--image", "busybox", "--restart=Never")
        answers = [in_netns(client, sys.executable, "-m", "agents.apps.connect", cluster_ip, "8080", "--timeout", "2").stdout.strip() for _ in range(24)]
        assert {a.split("/", 1)[1] for a in answers if a} == pods, f"24 connections reached {set(answers)}"
        assert kubectl(lab, "exec", "-n", "spread", "client", "--", "sh", "-c", "echo $PWD; exit 3", check=False).returncode == 3
        both = kubectl(lab, "get", "deploy,svc", "-n", "spread").stdout.split()
        assert "deployment.apps/echo" in both and "service/echo" in both
        replica_sets = kubectl(lab, "get", "rs", "-n", "spread").stdout.splitlines()
        assert replica_sets[1].split()[:4] == [f"echo-{replica_sets[1].split()[0].rsplit('-', 1)[1]}", "2", "2", "2"]
        for host in status_json(lab)["hosts"]:
            answer = in_netns(client, sys.executable, "-m", "agents.apps.connect", host["ip"], "30080", "--timeout", "2")
            assert answer.stdout.strip().split("/", 1)[-1] in pods, f"NodePort on {host['name']}: {answer.stdout!r}"
        # kubectl get pods --watch prints a row for a pod as it appears.
        watcher = subprocess.Popen(
            [sys.executable, "-m", "testbed", "kubectl", "--lab", lab, "get", "pods", "-n", "spread", "--watch", "--request-timeout", "8"],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )
        time.sleep(1.5)
        kubectl(lab, "run", "late", "-n", "spread", "--image", "busybox", "--restart=Never")
        out, _ = watcher.communicate(timeout=30)
        assert any(line.split()[:3] == ["late", "1/1", "Running"] for line in out.splitlines()), out
    finally:
        kubectl(lab, "delete", "ns", "spread", check=False)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("apiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n", 'no matches for kind "Gadget" in version "v1"'),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 70000}]}\n", "spec.ports[0].port: Invalid value: 70000"),
        ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: two}\n", "spec.replicas"),
        ("kind: Service\n  bad: [yaml\n", "error parsing STDIN"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: redis}]}\n", "unknown image"),
    ],
)
def test_bad_manifests_are_refused_and_store_nothing(lab: str, manifest: str, expected: str) -> None:
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: refused}\n---\n"
    proc = kubectl(lab, "create", "-f", "-", input=namespace + manifest, check=False)
    assert proc.returncode != 0 and expected in proc.stderr, proc.stderr
    assert proc.stdout == ""
    assert "refused" not in kubectl(lab, "get", "ns").stdout, "the valid namespace of a bad file must not be stored either"
