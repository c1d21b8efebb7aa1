"""`testbed kubectl apply/create/delete` with several -f, -n and --dry-run, on the
in-memory datastore: what the user sees (stdout, stderr, exit code) and what is stored."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from testbed import api
from testbed.cli.kubectl import kubectl
from testbed.datastore import keys
from testbed.datastore.memory import MemoryDatastore
from testbed.kube import objects, sources
from testbed.kube.errors import ManifestError

NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"
DENY = """\
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: default-deny, namespace: demo}
spec:
  podSelector: {}
"""
ALLOW = DENY.replace("default-deny", "allow").replace("podSelector: {}", "podSelector: {matchLabels: {app: web}}")
CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryDatastore:
    """The lab's datastore, as the kubectl commands open it."""
    memory = MemoryDatastore()
    monkeypatch.setattr(api, "resolve_lab", lambda lab: "lab")
    monkeypatch.setattr(api, "datastore", lambda lab: nullcontext(memory))
    return memory


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(kubectl, [*args, "--wait=false"], input=stdin)


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def policies(store: MemoryDatastore) -> list[str]:
    return sorted(keys.name_of(k) for k in store.list(objects.policy_key("demo", "")))


def test_every_f_is_applied_in_file_order_then_document_order(store: MemoryDatastore, tmp_path: Path) -> None:
    first = write(tmp_path, "policies/deny.yaml", DENY)
    write(tmp_path, "policies/allow.yml", ALLOW)
    ns = write(tmp_path, "ns.yaml", NAMESPACE)
    result = run("apply", "-f", first, "-f", ns)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        'networkpolicy.networking.k8s.io "default-deny" created',
        'namespace "demo" created',
    ]
    result = run("apply", "-f", ns, "-f", str(tmp_path / "policies"))
    assert result.stdout.splitlines() == [
        'namespace "demo" unchanged',
        'networkpolicy.networking.k8s.io "allow" created',  # allow.yml sorts before deny.yaml
        'networkpolicy.networking.k8s.io "default-deny" unchanged',
    ]
    assert policies(store) == ["allow", "default-deny"]


def test_a_bad_file_among_good_ones_stores_nothing_and_names_the_file(store: MemoryDatastore, tmp_path: Path) -> None:
    good = write(tmp_path, "a.yaml", NAMESPACE)
    bad = write(tmp_path, "b.yaml", DENY.replace("podSelector: {}", "podSelector: {matchLabels: {'bad key!': x}}"))
    result = run("apply", "-f", good, "-f", bad)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(
        f'error: error validating "{bad}": The NetworkPolicy "default-deny" is invalid: '
        'spec.podSelector.matchLabels: Invalid value: "bad key!": '
    )
    assert len(result.stderr.splitlines()) == 1
    assert store.revision() == 1 and store.list("") == {}


def test_a_missing_path_and_a_second_stdin_are_kubectls_errors(store: MemoryDatastore, tmp_path: Path) -> None:
    result = run("apply", "-f", write(tmp_path, "ns.yaml", NAMESPACE), "-f", "nope.yaml")
    assert (result.exit_code, result.stderr) == (1, 'error: the path "nope.yaml" does not exist\n')
    result = run("create", "-f", "-", "-f", "-", stdin=NAMESPACE)
    assert result.stderr == "error: standard input cannot be used for multiple arguments\n"
    assert run("apply").stderr == "error: must specify one of -f and -k\n"
    assert store.list("") == {}


def test_recursive_applies_subdirectories(store: MemoryDatastore, tmp_path: Path) -> None:
    write(tmp_path, "00-ns.yaml", NAMESPACE)
    write(tmp_path, "demo/deny.yaml", DENY)
    assert run("apply", "-f", str(tmp_path)).stdout == 'namespace "demo" created\n'
    assert run("apply", "-R", "-f", str(tmp_path)).stdout.splitlines() == [
        'namespace "demo" unchanged',
        'networkpolicy.networking.k8s.io "default-deny" created',
    ]


def test_a_namespace_flag_contradicting_a_document_is_refused_before_any_write(store: MemoryDatastore, tmp_path: Path) -> None:
    run("apply", "-f", "-", stdin=NAMESPACE)
    before = store.revision()
    path = write(tmp_path, "deny.yaml", DENY)
    result = run("apply", "-n", "other", "-f", write(tmp_path, "cm.yaml", CONFIG), "-f", path)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        'error: the namespace from the provided object "demo" does not match the namespace "other". '
        "You must pass '--namespace=demo' to perform this operation.\n"
    )
    assert store.revision() == before
    # The namespace it names, a Namespace (cluster-scoped), and objects without one are fine.
    result = run("apply", "-n", "demo", "-f", "-", stdin=NAMESPACE + "---\n" + DENY + "---\n" + CONFIG)
    assert result.exit_code == 0, result.output
    assert store.get(f"{keys.OTHER_OBJECTS}configmaps/demo/settings") is not None


def test_client_dry_run_checks_the_files_only_and_needs_no_lab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_lab(lab: str | None) -> str:
        raise api.LabError("no lab is up")

    monkeypatch.setattr(api, "resolve_lab", no_lab)
    result = run("apply", "-f", write(tmp_path, "all.yaml", NAMESPACE + "---\n" + DENY + "---\n" + CONFIG), "--dry-run=client")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "namespace/demo created (dry run)",
        "networkpolicy.networking.k8s.io/default-deny created (dry run)",
        "configmap/settings created (dry run)",
    ]
    bad = run("create", "-f", "-", "--dry-run=client", stdin="apiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n")
    assert bad.exit_code == 1 and bad.stderr.startswith('error: unable to recognize "STDIN": no matches for kind "Gadget"')


def test_server_dry_run_computes_the_real_lines_and_writes_nothing(store: MemoryDatastore, tmp_path: Path) -> None:
    both = write(tmp_path, "both.yaml", NAMESPACE + "---\n" + DENY)
    result = run("apply", "-f", both, "--dry-run=server")
    assert result.stdout.splitlines() == [
        "namespace/demo created (server dry run)",
        "networkpolicy.networking.k8s.io/default-deny created (server dry run)",
    ]
    assert store.revision() == 1 and store.list("") == {}
    assert run("apply", "-f", both).exit_code == 0
    revision = store.revision()
    changed = write(tmp_path, "changed.yaml", DENY.replace("podSelector: {}", "podSelector: {matchLabels: {a: b}}"))
    assert run("apply", "-f", both, "-f", changed, "--dry-run=server").stdout.splitlines() == [
        "namespace/demo unchanged (server dry run)",
        "networkpolicy.networking.k8s.io/default-deny unchanged (server dry run)",
        "networkpolicy.networking.k8s.io/default-deny configured (server dry run)",
    ]
    exists = run("create", "-f", both, "--dry-run=server")
    assert exists.exit_code == 1
    assert f'Error from server (AlreadyExists): error when creating "{both}": namespaces "demo" already exists' in exists.stderr
    missing = run("apply", "-f", "-", "--dry-run=server", stdin=DENY.replace("namespace: demo", "namespace: gone"))
    assert missing.stderr == 'Error from server (NotFound): error when creating "STDIN": namespaces "gone" not found\n'
    assert store.revision() == revision


def test_dry_run_and_real_run_share_the_lines() -> None:
    """One code path: store_objects with dry_run says exactly what the real run then does."""
    store = MemoryDatastore()
    parsed = objects.parse_documents(sources.text_documents(NAMESPACE + "---\n" + CONFIG + "---\n" + DENY), "demo")
    planned = objects.store_objects(store, "lab", parsed, create_only=False, dry_run=True)
    assert store.revision() == 1
    assert objects.store_objects(store, "lab", parsed, create_only=False) == planned
    assert store.revision() > 1


def test_bare_dry_run_is_client_with_kubectls_warning_and_takes_no_value(store: MemoryDatastore) -> None:
    result = run("create", "--dry-run", "ns", "demo")
    assert result.exit_code == 0, result.output
    assert result.stdout == "namespace/demo created (dry run)\n"
    assert result.stderr == "--dry-run is deprecated and can be replaced with --dry-run=client.\n"
    invalid = run("create", "ns", "demo", "--dry-run=maybe")
    assert invalid.exit_code == 1
    assert invalid.stderr == 'error: Invalid dry-run value (maybe). Must be "none", "server", or "client".\n'
    assert store.list("") == {}


def test_delete_dry_runs(store: MemoryDatastore, tmp_path: Path) -> None:
    both = write(tmp_path, "both.yaml", NAMESPACE + "---\n" + DENY)
    run("apply", "-f", both)
    revision = store.revision()
    assert run("delete", "-f", both, "--dry-run=server").stdout.splitlines() == [
        'namespace "demo" deleted (server dry run)',
        'networkpolicy.networking.k8s.io "default-deny" deleted (server dry run)',
    ]
    assert run("delete", "netpol", "nope", "-n", "demo", "--dry-run=client").stdout == (
        'networkpolicy.networking.k8s.io "nope" deleted (dry run)\n'
    )
    missing = run("delete", "netpol", "nope", "-n", "demo", "--dry-run=server")
    assert missing.exit_code == 1 and "NotFound" in missing.stderr
    assert store.revision() == revision
    assert policies(store) == ["default-deny"]


def test_the_namespace_check_is_pure() -> None:
    documents = sources.text_documents(CONFIG + "---\n" + DENY, "f.yaml")
    assert len(objects.parse_documents(documents, "demo", enforce_namespace=True)) == 2
    assert len(objects.parse_documents(documents, "x", enforce_namespace=False)) == 2
    with pytest.raises(ManifestError) as caught:
        objects.parse_documents(documents, "x", enforce_namespace=True)
    assert len(caught.value.lines) == 1 and '"demo" does not match the namespace "x"' in caught.value.lines[0]


def test_an_object_in_two_files_is_created_then_configured(store: MemoryDatastore, tmp_path: Path) -> None:
    first = write(tmp_path, "1.yaml", NAMESPACE + "---\n" + DENY)
    changed = DENY.replace("podSelector: {}", "podSelector: {matchLabels: {a: b}}")
    result = run("apply", "-f", first, "-f", write(tmp_path, "2.yaml", changed), "-f", first)
    assert result.stdout.splitlines() == [
        'namespace "demo" created',
        'networkpolicy.networking.k8s.io "default-deny" created',
        'networkpolicy.networking.k8s.io "default-deny" configured',
        'namespace "demo" unchanged',
        'networkpolicy.networking.k8s.io "default-deny" configured',
    ]
    stored = store.get(objects.policy_key("demo", "default-deny"))
    assert stored is not None and stored["spec"]["podSelector"] == {}
