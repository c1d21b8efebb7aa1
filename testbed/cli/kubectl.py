"""`testbed kubectl`: the kubectl subset for Namespace and NetworkPolicy (more kinds later).

With `alias kubectl='testbed kubectl'` the lab's commands read as in the lab. Output lines
are kubectl's (in the lab's wording: `networkpolicy.networking.k8s.io "x" created`).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import Any

import click
import yaml

from testbed import api
from testbed.kube import edits, objects
from testbed.kube.errors import ManifestError

DEFAULT_NAMESPACE = "default"


def _fail(exc: Exception) -> None:
    for line in str(exc).splitlines():
        click.echo(line if line.startswith(("error", "Error")) else f"error: {line}", err=True)
    sys.exit(1)


def _read(filename: str) -> tuple[str, str]:
    if filename == "-":
        return sys.stdin.read(), "STDIN"
    try:
        with open(filename) as handle:
            return handle.read(), filename
    except OSError as exc:
        raise ManifestError([f'error: the path "{filename}" does not exist' if isinstance(exc, FileNotFoundError) else f"error: {exc}"]) from None


wait_option = click.option(
    "--wait",
    "wait",
    type=click.Choice(["true", "false"]),
    default="true",
    show_default=True,
    help="Return once every host's policy agent enforces the change.",
)


def _enforced(store: Any, wait: str) -> None:
    """Block until every host's agent has enforced what was just written (bounded)."""
    if wait != "true":
        return
    from testbed.datastore import keys, records
    from testbed.runtime.policy_agents import wait_enforced

    if not store.last_write_revision:
        return  # nothing was written
    hosts = [records.node_summary(v).name for v in store.list(keys.NODES).values()]
    try:
        wait_enforced(store, hosts, store.last_write_revision)
    except TimeoutError as exc:
        _fail(exc)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lab", "lab", metavar="LAB", default=None, help="The lab (default: $TESTBED_LAB, or the only lab up).")
@click.pass_context
def kubectl(ctx: click.Context, lab: str | None) -> None:
    """The kubectl subset the network policy lab needs, against the lab's etcd.

    \b
    Examples:
      alias kubectl='sudo testbed kubectl'
      kubectl create ns policy-demo
      kubectl create -f - <<EOF ... EOF
      kubectl get netpol -n policy-demo
      kubectl label ns policy-demo role=demo
    """
    ctx.obj = lab


def _lab(ctx: click.Context) -> str:
    try:
        return api.resolve_lab(ctx.obj)
    except api.LabError as exc:
        _fail(exc)
        raise


def _apply(
    ctx: click.Context, filename: str | None, namespace: str | None, create_only: bool, wait: str,
    documents: list[dict[str, Any]] | None = None,
) -> None:
    """Check every document (from ``filename``, or given), store them, wait for enforcement."""
    try:
        lab = _lab(ctx)
        if documents is None:
            text, source = _read(filename or "-")
            documents = objects.load_documents(text, source)
        parsed = objects.parse_objects(documents, namespace)
        with api.datastore(lab) as store:
            changes = objects.store_objects(store, lab, parsed, create_only=create_only)
            _enforced(store, wait)
    except ManifestError as exc:
        _fail(exc)
        return
    for change in changes:
        click.echo(change.line())


@kubectl.command()
@click.option("-f", "--filename", required=True, help="Manifest file, or - for stdin.")
@click.option("-n", "--namespace", default=None)
@wait_option
@click.pass_context
def apply(ctx: click.Context, filename: str, namespace: str | None, wait: str) -> None:
    """Create or update the objects of a manifest (Namespace, NetworkPolicy)."""
    _apply(ctx, filename, namespace, create_only=False, wait=wait)


@kubectl.command(context_settings={"ignore_unknown_options": False})
@click.argument("what", required=False)
@click.argument("name", required=False)
@click.option("-f", "--filename", default=None, help="Manifest file, or - for stdin.")
@click.option("-n", "--namespace", default=None)
@wait_option
@click.pass_context
def create(
    ctx: click.Context, what: str | None, name: str | None, filename: str | None, namespace: str | None, wait: str
) -> None:
    """Create the objects of a manifest (-f), or a namespace: create ns NAME."""
    if filename:
        _apply(ctx, filename, namespace, create_only=True, wait=wait)
        return
    if what in ("ns", "namespace") and name:
        doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        _apply(ctx, None, None, create_only=True, wait=wait, documents=[doc])
        return
    _fail(ManifestError(["error: must specify -f FILE, or ns NAME"]))


@kubectl.command()
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option("-f", "--filename", default=None)
@click.option("-n", "--namespace", default=None)
@click.option("--all", "everything", is_flag=True, help="Every object of the kind in the namespace.")
@wait_option
@click.pass_context
def delete(
    ctx: click.Context, kind: str | None, names: tuple[str, ...], filename: str | None, namespace: str | None,
    everything: bool, wait: str,
) -> None:
    """Delete network policies (by name, --all, or -f FILE) or namespaces (with their policies)."""
    try:
        lab = _lab(ctx)
        changes: list[objects.Change] = []
        with api.datastore(lab) as store:
            if filename:
                text, source = _read(filename)
                for obj in objects.parse_objects(objects.load_documents(text, source), namespace):
                    if isinstance(obj, objects.NamespaceObject):
                        changes += _delete_namespace(lab, store, obj.name)
                    else:
                        changes += edits.delete_policies(store, obj.namespace, [obj.name], False)  # type: ignore[attr-defined]
            elif kind and edits.resource(kind) == "networkpolicies":
                if not names and not everything:
                    raise ManifestError(["error: resource(s) were provided, but no name was specified"])
                changes = edits.delete_policies(store, namespace or DEFAULT_NAMESPACE, names, everything)
            elif kind and edits.resource(kind) == "namespaces":
                for name in names:
                    changes += _delete_namespace(lab, store, name)
            else:
                raise ManifestError(["error: must specify -f FILE, or networkpolicy NAME|--all, or ns NAME"])
            _enforced(store, wait)
    except ManifestError as exc:
        _fail(exc)
        return
    for change in changes:
        click.echo(change.line())


def _delete_namespace(lab: str, store: Any, name: str) -> list[objects.Change]:
    from testbed.datastore import keys

    if store.get(keys.k8s_namespace(name)) is None:
        raise ManifestError([f'Error from server (NotFound): namespaces "{name}" not found'])
    for pod_key in list(store.list(keys.pods_in(name))):
        api.delete_pod(lab, f"{name}/{pod_key.rsplit('/', 1)[-1]}")
    store.delete_prefix(f"{objects.NETWORK_POLICIES}{name}/")
    for key in (keys.k8s_namespace(name), keys.namespace_profile(name), keys.service_account_profile(name)):
        store.delete(key)
    return [objects.Change("namespace", name, "deleted")]


def _age(value: dict[str, Any]) -> str:
    stamp = value.get("metadata", {}).get("creationTimestamp")
    try:
        seconds = time.time() - datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        return "<unknown>"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def _selector_text(value: dict[str, Any]) -> str:
    selector = value.get("spec", {}).get("podSelector") or {}
    labels = selector.get("matchLabels") or {}
    parts = [f"{k}={v}" for k, v in sorted(labels.items())]
    parts += [f"{e['key']} {e['operator']}" for e in selector.get("matchExpressions") or []]
    return ",".join(parts) or "<none>"


def _table(plural: str, values: list[dict[str, Any]], all_namespaces: bool, wide: bool) -> list[list[str]]:
    if plural == "namespaces":
        rows = [["NAME", "STATUS", "AGE"]]
        rows += [[v["metadata"]["name"], v.get("status", {}).get("phase", "Active"), _age(v)] for v in values]
        return rows
    if plural == "pods":
        header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else [])
        rows = [header]
        for v in values:
            row = [v["metadata"]["name"], "1/1", v.get("status", {}).get("phase", "Running"), "0", _age(v)]
            if wide:
                row += [v.get("status", {}).get("podIP", "<none>"), v.get("spec", {}).get("nodeName", "<none>")]
            rows.append(row)
    else:
        rows = [["NAME", "POD-SELECTOR", "AGE"]] + [[v["metadata"]["name"], _selector_text(v), _age(v)] for v in values]
    if all_namespaces:
        rows = [["NAMESPACE", *rows[0]]] + [[v["metadata"].get("namespace", ""), *r] for v, r in zip(values, rows[1:])]
    return rows


@kubectl.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json", "wide", "name"]), default=None)
@click.pass_context
def get(ctx: click.Context, kind: str, name: str | None, namespace: str | None, all_namespaces: bool, fmt: str | None) -> None:
    """List namespaces, pods or network policies (pods show their IP as status.podIP)."""
    try:
        lab = _lab(ctx)
        plural = edits.resource(kind)
        scope = None if all_namespaces or plural == "namespaces" else (namespace or DEFAULT_NAMESPACE)
        with api.datastore(lab) as store:
            values = edits.get(store, kind, scope, name)
    except ManifestError as exc:
        _fail(exc)
        return
    if fmt in ("yaml", "json"):
        doc: Any = values[0] if name else {"apiVersion": "v1", "kind": "List", "items": values}
        click.echo(json.dumps(doc, indent=4) if fmt == "json" else yaml.safe_dump(doc, sort_keys=False).rstrip())
        return
    if fmt == "name":
        for v in values:
            click.echo(f"{plural[:-1] if plural != 'networkpolicies' else 'networkpolicy.networking.k8s.io'}/{v['metadata']['name']}")
        return
    if not values:
        where = "" if scope is None else f" in {scope} namespace"
        click.echo(f"No resources found{where}.", err=True)
        return
    rows = _table(plural, values, all_namespaces and plural != "namespaces", fmt == "wide")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


@kubectl.command()
@click.argument("kind")
@click.argument("name")
@click.argument("labels", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None)
@click.option("--overwrite", is_flag=True, help="Replace a label's existing value.")
@wait_option
@click.pass_context
def label(
    ctx: click.Context, kind: str, name: str, labels: tuple[str, ...], namespace: str | None, overwrite: bool, wait: str
) -> None:
    """Set (k=v) or remove (k-) labels of a namespace or a pod."""
    try:
        lab = _lab(ctx)
        with api.datastore(lab) as store:
            change = edits.label(store, kind, namespace or DEFAULT_NAMESPACE, name, labels, overwrite)
            _enforced(store, wait)
    except ManifestError as exc:
        _fail(exc)
        return
    click.echo(change.line())
