"""`testbed kubectl apply` with several -f and a directory, --dry-run=server and a
contradicting -n on a real lab (netpol-model, real etcd); and `verify` on a lab with a
Service, whose cluster DNS pod in kube-system is left out of the matrix."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from testbed import api
from testbed.datastore import keys
from testbed.kube.objects import policy_key
from testbed.runtime import policy_agents
from tests.integration.labs import running_lab, testbed

pytestmark = pytest.mark.root

# Keys the agents rewrite on their own (each sync, each BGP event): not the command's writes.
# What the lab itself keeps writing: agents' status, kubelets' heartbeats, the controllers' note.
AGENT_STATUS = (keys.FELIX_STATUS, keys.BGP_STATUS, keys.LEASES, keys.K8S_NODES, keys.CONTROLLER_MANAGER)


def policy(name: str, namespace: str, selector: str = "{}") -> str:
    return (
        f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  podSelector: {selector}\n  policyTypes: [Ingress]\n"
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with running_lab("netpol-model", "itfiles") as name:
        yield name


def kubectl(lab: str, *args: str, check: bool = True) -> tuple[int, str, str]:
    proc = testbed("kubectl", "--lab", lab, *args, check=check)
    return proc.returncode, proc.stdout, proc.stderr


def policy_names(lab: str) -> set[str]:
    listed = json.loads(testbed("kubectl", "--lab", lab, "get", "netpol", "-A", "-o", "json").stdout)["items"]
    return {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in listed}


@contextmanager
def etcd_writes(lab: str) -> Iterator[list[str]]:
    """The keys written to the lab's etcd during the block (the agents' status keys
    aside), seen by a watch on every key; and the etcd revision of none of them."""
    seen: queue.SimpleQueue[str] = queue.SimpleQueue()
    written: list[str] = []
    with api.datastore(lab) as store:
        cancel = store.watch_prefix("/", lambda event: seen.put(event.key))
        try:
            yield written
            policy_agents.barrier(store)  # every write before this one has reached the watch
            while (key := seen.get(timeout=10)) != keys.BARRIER:
                if not key.startswith(AGENT_STATUS):
                    written.append(key)
        finally:
            cancel()


def test_several_files_and_a_directory_dry_runs_and_a_contradicting_namespace(lab: str, tmp_path: Path) -> None:
    first = tmp_path / "x-deny.yaml"
    first.write_text(policy("deny", "x"))
    second = tmp_path / "y-deny.json"
    second.write_text(json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": "y"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }))  # fmt: skip
    folder = tmp_path / "z"
    folder.mkdir()
    (folder / "b.yml").write_text(policy("only-b", "z", "{matchLabels: {pod: b}}"))
    (folder / "a.yaml").write_text(policy("only-a", "z", "{matchLabels: {pod: a}}"))
    (folder / "README.md").write_text("not a manifest\n")

    code, out, err = kubectl(lab, "apply", "-f", str(first), "-f", str(second), "-f", str(folder))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        'networkpolicy.networking.k8s.io "deny" created',
        'networkpolicy.networking.k8s.io "deny" created',
        'networkpolicy.networking.k8s.io "only-a" created',
        'networkpolicy.networking.k8s.io "only-b" created',
    ]
    assert policy_names(lab) == {"x/deny", "y/deny", "z/only-a", "z/only-b"}
    # Enforced, not only stored: y is closed to everyone, z/c (no policy) stays open.
    verdict = json.loads(testbed("verify", "--lab", lab, "--port", "80", "-o", "json", check=False).stdout)
    assert verdict["wrong"] == []
    matrix = verdict["matrix"]
    pods = verdict["pods"]
    assert not matrix[pods.index("x/a")][pods.index("y/b")] and matrix[pods.index("x/a")][pods.index("z/c")]

    # --dry-run=server: the real lines (unchanged, configured, created), and no write to etcd.
    (folder / "a.yaml").write_text(policy("only-a", "z", "{matchLabels: {pod: c}}"))
    new = tmp_path / "new.yaml"
    new.write_text(policy("fresh", "x"))
    with etcd_writes(lab) as written:
        code, out, err = kubectl(lab, "apply", "-f", str(folder), "-f", str(new), "--dry-run=server")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "networkpolicy.networking.k8s.io/only-a configured (server dry run)",
        "networkpolicy.networking.k8s.io/only-b unchanged (server dry run)",
        "networkpolicy.networking.k8s.io/fresh created (server dry run)",
    ]
    assert written == []
    assert policy_names(lab) == {"x/deny", "y/deny", "z/only-a", "z/only-b"}
    stored = json.loads(testbed("kubectl", "--lab", lab, "get", "netpol", "only-a", "-n", "z", "-o", "json").stdout)
    assert stored["spec"]["podSelector"] == {"matchLabels": {"pod": "a"}}

    # -n that contradicts a document: refused before anything is written.
    with etcd_writes(lab) as written:
        code, out, err = kubectl(lab, "apply", "-n", "z", "-f", str(new), "-f", str(folder), check=False)
    assert (code, out) == (1, "")
    assert err == (
        'error: the namespace from the provided object "x" does not match the namespace "z". '
        "You must pass '--namespace=x' to perform this operation.\n"
    )
    assert written == []
    assert "x/fresh" not in policy_names(lab)

    # The real run writes, and the watch sees it (the check above can fail).
    with etcd_writes(lab) as written:
        kubectl(lab, "apply", "-f", str(folder), "--wait=false")
    assert written == [policy_key("z", "only-a")]

    code, out, _ = kubectl(lab, "delete", "-f", str(first), "-f", str(second), "-f", str(folder))
    assert code == 0 and len(out.splitlines()) == 4
    assert policy_names(lab) == set()


def test_verify_leaves_out_the_cluster_dns_of_a_lab_with_a_service(lab: str) -> None:
    service = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: x}\n"
        "spec:\n  selector: {pod: a}\n  ports: [{port: 80, targetPort: 80}]\n"
    )
    out = testbed("kubectl", "--lab", lab, "apply", "-f", "-", input=service).stdout
    assert out == 'service "web" created\n'
    dns_pods = testbed("kubectl", "--lab", lab, "get", "pods", "-n", "kube-system", "-o", "name").stdout.split()
    assert len(dns_pods) == 1, "every lab has the cluster DNS add-on"

    proc = testbed("verify", "--lab", lab, "--port", "80", "-o", "json", check=False)
    result = json.loads(proc.stdout)
    assert (proc.returncode, result["wrong"]) == (0, [])
    assert len(result["pods"]) == 9 and not any(p.startswith("kube-system/") for p in result["pods"])
    assert "0 wrong cells" in testbed("verify", "--lab", lab, "--port", "80").stdout

    # Asked for, it is there, and shows why it is left out: it serves port 53, not 80.
    every = json.loads(testbed("verify", "--lab", lab, "--port", "80", "-A", "-o", "json", check=False).stdout)
    assert len(every["pods"]) == 10 and every["wrong"]
    assert all(cell["dst"].startswith("kube-system/") for cell in every["wrong"])
    only = json.loads(testbed("matrix", "--lab", lab, "--port", "53", "--protocol", "udp", "-n", "kube-system", "-o", "json").stdout)
    assert only["pods"] == [f"kube-system/{dns_pods[0].removeprefix('pod/')}"]
    testbed("kubectl", "--lab", lab, "delete", "svc", "web", "-n", "x")
