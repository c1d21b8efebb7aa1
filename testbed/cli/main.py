"""The `testbed` command: parse, call testbed.api, print. Nothing else lives here."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from typing import Any, TypeVar

import click

from testbed import __version__, api
from testbed.addressing import AddressError
from testbed.cli import output
from testbed.matrix import render as render_matrix
from testbed.datastore.base import DatastoreError
from testbed.runtime.etcd_server import EtcdStartError
from testbed.runtime.migrate import PodError
from testbed.runtime.state import LabExists
from testbed.topology import TopologyError, builtin_topologies, pod_spec_from_dict

F = TypeVar("F", bound=Callable[..., Any])

# Errors that are the user's input or the lab's state, shown as one line (a line per problem).
EXPECTED = (api.LabError, PodError, LabExists, TopologyError, AddressError, DatastoreError, EtcdStartError, TimeoutError)


def fails_cleanly(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EXPECTED as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"testbed: error: {line}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def needs_root(command: str) -> None:
    if os.geteuid() != 0:
        click.echo(f"testbed: error: `testbed {command}` needs root: run it with sudo", err=True)
        sys.exit(1)


lab_option = click.option(
    "--lab", "lab", metavar="LAB", default=None, help="The lab to act on (default: $TESTBED_LAB, or the only lab up)."
)
# For commands that also take the lab as their positional argument.
lab_flag = click.option("--lab", "lab_opt", metavar="LAB", default=None, help="Same as the LAB argument.")
output_option = click.option(
    "-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
namespaces_option = click.option(
    "-n", "--namespace", "namespaces", multiple=True, metavar="NS", help="Only these namespaces (repeatable)."
)
all_namespaces_option = click.option(
    "-A", "--all-namespaces", is_flag=True, help="Every namespace, kube-system too (default: all but kube-system)."
)


class LazyGroup(click.Group):
    """A group whose heavy subcommands are imported only when used: `testbed kubectl`
    brings the whole manifest machinery (about 30 ms of CPU), which `up` and the other
    commands never need. ``lazy`` maps a command name to ``module:attribute``."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy={"kubectl": "testbed.cli.kubectl:kubectl"},
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="testbed")
def cli() -> None:
    """Calico's networking, emulated for real on one Linux machine.

    Network namespaces play the hosts (172.18.203.0/24) and the pods (10.65.0.0/16), wired
    as Calico wires them; a real etcd per lab holds the cluster's state.

    \b
    Quick start:
      sudo testbed up two-hosts                # 2 hosts, 4 pods, etcd
      sudo testbed status                      # hosts, pods, IPs, etcd health
      sudo testbed exec demo/pod-a -- ping -c1 10.65.0.1
      sudo testbed down                        # removes every trace
    """


@cli.command()
@click.argument("topology")
@click.option("--name", "name", metavar="LAB", help="Lab name (default: the topology's name).")
@click.option("--hosts", type=int, help="scale topology only: number of hosts (host1..hostN).")
@click.option("--pods-per-host", type=int, help="scale topology only: pods on each host.")
@click.option(
    "--route-reflector", is_flag=True, help="Hosts peer with a BIRD route reflector at 172.18.203.254, not a full mesh."
)
@click.option(
    "--pod-eviction-timeout", type=click.FloatRange(0, 3600), default=None, metavar="SECONDS",
    help="Seconds a failed host stays NotReady before its Deployments' pods are recreated elsewhere [default: 10].",
)
@click.option(
    "--ui-port", type=click.IntRange(1, 65535), default=30002, show_default=True,
    help="Local port on 127.0.0.1 for a topology's NodePort UI (stars).",
)
@click.option(
    "--no-kubeconfig", is_flag=True,
    help="Leave your kubeconfig alone (get one with `testbed kubeconfig`).",
)
@click.option(
    "--no-switch-context", is_flag=True,
    help="Add the lab's context testbed-LAB to your kubeconfig without making it the current one.",
)
@output_option
@fails_cleanly
def up(
    topology: str, name: str | None, hosts: int | None, pods_per_host: int | None, route_reflector: bool,
    pod_eviction_timeout: float | None, ui_port: int, no_kubeconfig: bool, no_switch_context: bool, fmt: str,
) -> None:
    """Build a lab from TOPOLOGY and leave it running.

    TOPOLOGY is a built-in name or a path to a .yaml/.json or Mininet-style .py file.
    Everything is validated before anything is created. Built-in topologies:
    two-hosts, scale (with --hosts N --pods-per-host M), and the others in topologies/.

    Every lab serves the Kubernetes API on https://127.0.0.1:6443 (the next free port for
    a second lab), and `up` adds its context testbed-LAB to your kubeconfig ($KUBECONFIG
    or ~/.kube/config; under sudo, the invoking user's), as the current one: plain
    `kubectl get pods -A` then talks to the lab. `down` removes the entries again.

    \b
    Examples:
      sudo testbed up two-hosts
      sudo testbed up scale --hosts 4 --pods-per-host 25 --name big
      sudo testbed up ./my-lab.yaml
      sudo testbed up stars            # the lab's Task 2, UI on http://127.0.0.1:30002
    """
    needs_root("up")
    with output.progress_reporter() as progress:
        result = api.up(
            topology,
            name=name,
            hosts=hosts,
            pods_per_host=pods_per_host,
            route_reflector=route_reflector,
            pod_eviction_timeout=pod_eviction_timeout,
            progress=progress,
            ui_port=ui_port,
            say=lambda line: click.echo(line, err=True),  # the manifests' kubectl lines, as progress
            kubeconfig=not no_kubeconfig,
            switch_context=not no_switch_context,
        )
    if fmt == "json":
        output.print_json(result.to_json())
    else:
        output.up_summary(result)
        if result.ui:
            click.echo(f"management UI: {result.ui} (forwarded to NodePort 30002 of {result.hosts[0].ip})")


def pick(positional: str | None, option: str | None) -> str | None:
    if positional and option and positional != option:
        raise api.LabError(f"two labs given: {positional!r} and --lab {option!r}")
    return positional or option


@cli.command()
@click.argument("lab", required=False)
@lab_flag
@click.option("--all", "all_labs", is_flag=True, help="Remove every lab.")
@fails_cleanly
def down(lab: str | None, lab_opt: str | None, all_labs: bool) -> None:
    """Remove a lab: its namespaces, links, processes and state. Works after a crash.

    LAB defaults to $TESTBED_LAB or the only lab up.
    """
    needs_root("down")
    lab = pick(lab, lab_opt)
    if all_labs:
        if lab:
            raise api.LabError("give a LAB or --all, not both")
        reports = api.down_all()
        for report in reports:
            click.echo(f"lab {report.lab} removed ({report.namespaces} namespaces, {report.processes} processes)")
        if not reports:
            click.echo("no lab was up")
        return
    report = api.down(lab or api.resolve_lab(None))
    click.echo(f"lab {report.lab} removed ({report.namespaces} namespaces, {report.processes} processes)")


@cli.command()
@lab_option
@fails_cleanly
def kubeconfig(lab: str | None) -> None:
    """Print a kubeconfig for the lab's Kubernetes API (as its admin), on its own.

    The cluster, user and context are named testbed-LAB; the certificates are inline, so
    keep the file private (it is the lab's cluster-admin). `up` already merged the same
    entries into your kubeconfig unless told --no-kubeconfig.

    \b
    Examples:
      sudo testbed kubeconfig > lab.kubeconfig && chmod 600 lab.kubeconfig
      kubectl --kubeconfig lab.kubeconfig get pods -A
      sudo testbed kubeconfig --lab stars | kubectl --kubeconfig /dev/stdin get ns
    """
    needs_root("kubeconfig")
    click.echo(api.kubeconfig_text(api.resolve_lab(lab)), nl=False)


@cli.command()
@lab_option
@click.option("--port", type=click.IntRange(1, 65535), default=30002, show_default=True, help="Local port on 127.0.0.1.")
@fails_cleanly
def ui(lab: str | None, port: int) -> None:
    """Forward the lab's management UI (NodePort 30002) to http://127.0.0.1:PORT.

    A small daemon in the root namespace listens on 127.0.0.1 only and opens each
    connection from inside the lab; `testbed down` stops it. `up stars` starts it already;
    use this when it was stopped, or for another port.

    \b
    Examples:
      sudo testbed ui
      sudo testbed ui --lab stars --port 8080
    """
    needs_root("ui")
    click.echo(f"management UI: {api.ui(api.resolve_lab(lab), port=port)}")


@cli.command()
@click.argument("lab", required=False)
@lab_flag
@output_option
@fails_cleanly
def status(lab: str | None, lab_opt: str | None, fmt: str) -> None:
    """Show a lab's hosts, pods (namespace/name, IP, host, interface) and etcd health.

    Read from the lab's etcd. Exits 1 when etcd does not answer.
    """
    needs_root("status")
    result = api.status(api.resolve_lab(pick(lab, lab_opt)))
    if fmt == "json":
        output.print_json(result.to_json())
    else:
        output.status_tables(result)
    if not result.etcd.get("healthy"):
        sys.exit(1)


@cli.command()
@click.argument("host")
@lab_option
@output_option
@fails_cleanly
def routes(host: str, lab: str | None, fmt: str) -> None:
    """Show HOST's routing table, each route explained: local workloads via their cali
    interfaces, other hosts' workloads via those hosts (learned over BGP), blackholes for
    the host's own blocks.

    \b
    Example:
      sudo testbed routes host1
    """
    needs_root("routes")
    rows = api.routes(api.resolve_lab(lab), host)
    if fmt == "json":
        output.print_json({"host": host, "routes": [asdict(r) for r in rows]})
    else:
        output.routes_table(host, rows)


@cli.group()
def bgp() -> None:
    """BGP between the lab's hosts (ExaBGP speakers, optional BIRD route reflector)."""


@bgp.command("status")
@click.option("--host", "host", metavar="HOST", help="One host (default: every host).")
@lab_option
@output_option
@fails_cleanly
def bgp_status(host: str | None, lab: str | None, fmt: str) -> None:
    """What `calicoctl node status` prints: each BGP peer, its type, state, since, info.

    Exits 1 if a host's BGP speaker is not running.
    """
    needs_root("bgp status")
    statuses = api.bgp_status(api.resolve_lab(lab), host)
    if fmt == "json":
        output.print_json({"hosts": [asdict(s) for s in statuses]})
    else:
        output.bgp_tables(statuses, several=host is None)
    if not all(s.running for s in statuses):
        sys.exit(1)


@cli.command()
@lab_option
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="Destination port.")
@click.option("--protocol", type=click.Choice(["tcp", "udp", "sctp"]), default="tcp", show_default=True)
@namespaces_option
@all_namespaces_option
@output_option
@fails_cleanly
def matrix(
    lab: str | None, port: int, protocol: str, namespaces: tuple[str, ...], all_namespaces: bool, fmt: str
) -> None:
    """Measure real reachability from every pod to every pod: real connections from inside
    each pod's netns, in parallel, 1 s timeout. Rows are sources: '.' allowed, 'X' denied.
    The cluster DNS pod (kube-system) is left out unless -n kube-system or -A asks for it.

    \b
    Example:
      sudo testbed matrix --port 80 -n x -n y
    """
    needs_root("matrix")
    result = api.matrix(api.resolve_lab(lab), port, protocol, () if all_namespaces else namespaces, all_namespaces)
    if fmt == "json":
        output.print_json(result.to_json())
    else:
        click.echo(render_matrix(result))


@cli.command()
@lab_option
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="Destination port.")
@click.option("--protocol", type=click.Choice(["tcp", "udp", "sctp"]), default="tcp", show_default=True)
@namespaces_option
@all_namespaces_option
@output_option
@fails_cleanly
def verify(lab: str | None, port: int, protocol: str, namespaces: tuple[str, ...], all_namespaces: bool, fmt: str) -> None:
    """Measure the reachability matrix and compare it with what the policies mean (the
    oracle); wrong cells are marked '!'. Exits 1 if any cell is wrong. The pods are
    those of `testbed matrix` (kube-system only with -n kube-system or -A)."""
    needs_root("verify")
    chosen = api.resolve_lab(lab)
    measured = api.matrix(chosen, port, protocol, () if all_namespaces else namespaces, all_namespaces)
    expected = api.expected_matrix(chosen, measured)
    wrong = [
        {"src": measured.pods[i], "dst": measured.pods[j], "measured": measured.cells[i][j], "expected": expected.cells[i][j]}
        for i in range(len(measured.pods)) for j in range(len(measured.pods))
        if measured.cells[i][j] != expected.cells[i][j]
    ]  # fmt: skip
    if fmt == "json":
        output.print_json({**measured.to_json(), "expected": expected.to_json()["matrix"], "wrong": wrong})
    else:
        click.echo(render_matrix(measured, expected))
    if wrong:
        sys.exit(1)


@cli.command()
@lab_option
@click.argument("src")
@click.argument("dst")
@fails_cleanly
def explain(lab: str | None, src: str, dst: str) -> None:
    """Why SRC may or may not reach DST:PORT[/PROTO] (pods as NS/POD, or IPs): the deciding
    policy and rule, and the host and chain where the dataplane enforces it.

    \b
    Example:
      sudo testbed explain x/b x/a:80/tcp
    """
    target, _, rest = dst.rpartition(":")
    port_text, _, protocol = rest.partition("/")
    if not target or not port_text.isdigit():
        raise api.LabError(f"{dst!r}: expected DST:PORT or DST:PORT/PROTO")
    verdict, where = api.explain(api.resolve_lab(lab), src, target, int(port_text), protocol or "tcp")
    click.echo(verdict)
    for line in where:
        click.echo(f"  {line}")


@cli.command()
@lab_option
@click.option("--protocol", "protocol", type=click.Choice(["tcp", "udp", "icmp"]), default="tcp", show_default=True,
              help="What to send: a TCP SYN (its SYN-ACK is followed back), a UDP datagram or an ICMP echo.")
@click.option("--what-if", "what_if", is_flag=True, help="Compute the walk from routes, rendered rules and the oracle; send nothing.")
@output_option
@click.argument("src")
@click.argument("dst")
@fails_cleanly
def trace(lab: str | None, protocol: str, what_if: bool, fmt: str, src: str, dst: str) -> None:
    """Send one marked packet from SRC to DST[:PORT] and show it hop by hop: where it was
    seen, each host's route, NAT and the rule that accepted or dropped it, named back to
    the NetworkPolicy. SRC and DST are NS/POD, a host or an address of the lab; DST may be
    a Service (NS/SVC or its ClusterIP). The last line is ALLOWED or DROPPED at HOST by ...;
    differences from the --what-if walk are flagged with '!'.

    \b
    Examples:
      sudo testbed trace x/a x/b:80
      sudo testbed trace x/a x/b:80 --what-if
      sudo testbed trace --protocol icmp host1 y/c
    """
    if not what_if:
        needs_root("trace")
    from testbed.trace import render, run  # lazy: scapy is imported only by traces

    result = run.trace(api.resolve_lab(lab), src, dst, protocol, only_what_if=what_if)
    if fmt == "json":
        output.print_json(result.to_json())
    else:
        click.echo(render.render(result))


@cli.group()
def pod() -> None:
    """Add or delete pods in a running lab, as the CNI plugin and kubelet would."""


@pod.command("add")
@lab_option
@click.option("--host", "host", metavar="HOST", help="Place it on HOST (default: the host with fewest pods).")
@click.option("--ip", "ip", metavar="IP", help="Ask for this address (borrowed if another host owns its block).")
@click.option("--label", "-l", "labels", multiple=True, metavar="KEY=VALUE", help="A pod label (repeatable).")
@output_option
@click.argument("target")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@fails_cleanly
def pod_add(
    lab: str | None, host: str | None, ip: str | None, labels: tuple[str, ...], fmt: str, target: str,
    command: tuple[str, ...],
) -> None:
    """Create pod TARGET (NAMESPACE/NAME), optionally running COMMAND (after --) inside.

    \b
    Examples:
      sudo testbed pod add demo/web --host host2 -l app=web
      sudo testbed pod add demo/borrowed --ip 10.65.0.30 --host host2
      sudo testbed pod add demo/sleeper -- sleep infinity
    """
    needs_root("pod add")
    namespace, sep, name = target.partition("/")
    if not sep or not namespace or not name:
        raise api.LabError(f"pod {target!r}: expected NAMESPACE/NAME")
    pairs = []
    for label in labels:
        key, eq, value = label.partition("=")
        if not eq or not key:
            raise api.LabError(f"--label {label!r}: expected KEY=VALUE")
        pairs.append((key, value))
    argv = list(command)
    spec = pod_spec_from_dict(
        {"name": name, "namespace": namespace, "host": host, "ip": ip, "labels": dict(pairs), "command": argv},
        label=f"pod {target}",
    )
    created = api.add_pod(api.resolve_lab(lab), spec)
    if fmt == "json":
        output.print_json(asdict(created))
    else:
        click.echo(f"pod {created.namespace}/{created.name} created: {created.ip} on {created.host} ({created.interface})")


@pod.command("delete")
@lab_option
@click.argument("target")
@fails_cleanly
def pod_delete(lab: str | None, target: str) -> None:
    """Delete pod TARGET (NAMESPACE/NAME): its netns, address and records."""
    needs_root("pod delete")
    api.delete_pod(api.resolve_lab(lab), target)
    click.echo(f"pod {target} deleted")


@cli.command()
@lab_option
@output_option
@click.argument("target")
@click.argument("host")
@fails_cleanly
def migrate(lab: str | None, fmt: str, target: str, host: str) -> None:
    """Move pod TARGET (NAMESPACE/NAME) to HOST, keeping its IP and its running programs.

    The pod's netns stays; its veth is re-plugged on HOST, which announces the address as
    a borrowed /32 (the block stays with its host). The pod's kubelet hands it over to
    HOST's kubelet, which adopts its running programs. Returns once every host routes the
    address to HOST, every Felix enforces the move and HOST's kubelet holds the pod.

    \b
    Example:
      sudo testbed migrate demo/pod-a host2
    """
    needs_root("migrate")
    from testbed.runtime import migrate as moving  # lazy: only this command needs it

    namespace, sep, name = target.partition("/")
    if not sep or not namespace or not name:
        raise api.LabError(f"pod {target!r}: expected NAMESPACE/NAME")
    chosen = api.resolve_lab(lab)
    with api.datastore(chosen) as store:
        moved = moving.migrate(chosen, namespace, name, host, store)
    if fmt == "json":
        output.print_json(asdict(moved))
    else:
        how = "a borrowed /32" if moved.borrowed else "inside its block"
        click.echo(
            f"pod {target} moved: {moved.source} -> {moved.target}, {moved.ip} ({how}), "
            f"routed everywhere in {moved.seconds:.3f} s"
        )


FAULT_HELP = """TARGET is one of:

\b
  host HOST           freeze HOST's processes (SIGSTOP) and take its fabric port down
  link HOST           take HOST's fabric port down
  agent HOST felix    kill HOST's policy agent (not restarted until heal)
  agent HOST bgp      kill HOST's BGP speaker and glue (not restarted until heal)
  etcd                kill the lab's etcd (heal restarts it on the same data)
"""


def _fault_command(verb: str) -> click.Command:
    @lab_option
    @output_option
    @click.argument("target", nargs=-1, required=True)
    @fails_cleanly
    def command(lab: str | None, fmt: str, target: tuple[str, ...]) -> None:
        needs_root(verb)
        from testbed import faults  # lazy: only fail and heal need it
        from testbed.runtime import state

        chosen = api.resolve_lab(lab)
        recorded = state.load(chosen)
        names = [p.name for p in recorded.processes] if recorded else []
        try:
            fault = faults.parse_target(target, faults.hosts_of(names))
            done = (faults.fail if verb == "fail" else faults.heal)(chosen, fault)
        except faults.FaultError as exc:
            raise api.LabError(str(exc)) from None
        if fmt == "json":
            output.print_json({"lab": chosen, verb: asdict(done)})
        else:
            click.echo(f"{done.target} {'failed' if verb == 'fail' else 'healed'} in lab {chosen}")

    command.__doc__ = (
        f"{'Break' if verb == 'fail' else 'Undo the failure of'} TARGET in the lab; `testbed status` lists what is failed.\n\n"
        + FAULT_HELP
        + f"\n\b\nExample:\n  sudo testbed {verb} host host2"
    )
    return cli.command(verb)(command)


fail = _fault_command("fail")
heal = _fault_command("heal")


@cli.command()
@output_option
def labs(fmt: str) -> None:
    """List the labs that are up."""
    names = api.labs()
    if fmt == "json":
        output.print_json({"labs": names})
    else:
        for name in names:
            click.echo(name)


@cli.command()
@output_option
def topologies(fmt: str) -> None:
    """List the built-in topologies."""
    names = builtin_topologies()
    if fmt == "json":
        output.print_json({"topologies": names})
    else:
        for name in names:
            click.echo(name)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@lab_option
@click.option("--host", "host", metavar="HOST", help="Run on a host instead of in a pod.")
@click.option("-i", "--stdin", "interactive", is_flag=True, help="Accepted for kubectl habits; stdin always passes.")
@click.option("-t", "--tty", "tty", is_flag=True, help="Accepted for kubectl habits; the terminal is inherited.")
@click.argument("target", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@fails_cleanly
def exec(lab: str | None, host: str | None, interactive: bool, tty: bool, target: str | None, command: tuple[str, ...]) -> None:
    """Run a command inside a pod (NS/POD) or a host (--host HOST).

    stdin, stdout, stderr and the exit code pass straight through; with no
    command, an interactive shell starts.

    \b
    Examples:
      sudo testbed exec demo/pod-a -- ip route
      sudo testbed exec --host host1 -- ip route
      sudo testbed exec -ti demo/pod-a
    """
    needs_root("exec")
    chosen = api.resolve_lab(lab)
    if host:
        if target is not None:
            command = (target, *command)
        netns = api.host_netns(chosen, host)
    elif not target:
        raise api.LabError("exec needs NS/POD or --host HOST")
    argv = list(command) or ["/bin/sh"]
    if argv and argv[0] == "--":
        argv = argv[1:] or ["/bin/sh"]
    if host:
        full = ["ip", "netns", "exec", netns, *argv]
    else:  # the pod's sandbox, as its program sees the pod
        how = api.pod_exec(chosen, target, argv)
        if how.warning:
            click.echo(f"warning: {how.warning}", err=True)
        full = how.argv
    sys.stdout.flush()
    os.execvp(full[0], full)


def exit_status(code: object) -> int:
    """The process status ``sys.exit(code)`` gives (None: 0; a message: printed, 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main() -> None:
    """Run the command, then leave without the interpreter's teardown.

    Taking apart what the CLI imported (pyroute2, rich, jsonschema, click: some 50,000
    objects) took 50 to 90 ms of CPU at every exit, as much as `up` spends after BGP has
    converged. Nothing here needs it: netlink handles and files are closed by their
    context managers, and the only exit handler is logging's, called here. Output is
    flushed, and the status is what ``sys.exit`` would give. Python's own exit still
    runs when a command left a thread running (Python waits for it) and for an uncaught
    exception (its traceback).
    """
    try:
        cli(prog_name="testbed")
        code = 0
    except SystemExit as exc:
        code = exit_status(exc.code)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`testbed ... | head`): nothing more to say
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    main()
