"""How lab state is shown: rich tables for people, JSON for scripts, progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from testbed.api import BgpStatus, LabStatus, RouteRow

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STEP_TITLES = {"fabric": "fabric and etcd", "hosts": "hosts", "pods": "pods", "etcd": "etcd records", "bgp": "BGP converged"}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def status_tables(status: LabStatus) -> None:
    etcd = status.etcd
    health = "healthy" if etcd.get("healthy") else f"UNHEALTHY ({etcd.get('error', 'no answer')})"
    out.print(f"lab {status.lab}  topology {status.topology}  phase {status.phase}")
    out.print(f"etcd {etcd['endpoint']}  pid {etcd.get('pid')}  {health}")
    if status.api:
        out.print(f"api {status.api['server']}  context {status.api['context']}")
    if status.failed:  # `testbed fail` targets not healed yet
        out.print("FAILED  " + ", ".join(str(f["target"]) for f in status.failed))
    hosts = Table(title="hosts", title_justify="left", box=None, pad_edge=False)
    for column in ("HOST", "IP", "BLOCKS", "NETNS"):
        hosts.add_column(column)
    for h in status.hosts:
        hosts.add_row(h.name, h.ip, ", ".join(h.blocks), h.netns)
    out.print(hosts)
    pods = Table(title="pods", title_justify="left", box=None, pad_edge=False)
    for column in ("POD", "IP", "HOST", "INTERFACE", "NETNS"):
        pods.add_column(column)
    for p in status.pods:
        pods.add_row(f"{p.namespace}/{p.name}", p.ip, p.host, p.interface, p.netns)
    out.print(pods)


def up_summary(status: LabStatus) -> None:
    status_tables(status)
    out.print(
        f"lab {status.lab} is up: {len(status.hosts)} hosts, {len(status.pods)} pods in {status.seconds:.2f} s. "
        f"Try: sudo testbed exec --lab {status.lab} "
        + (f"{status.pods[0].namespace}/{status.pods[0].name} -- ip route" if status.pods else "--host ... -- ip route")
    )
    if status.api:
        where = f'context "{status.api["context"]}" set in {status.api["kubeconfig"]}' if status.api.get("kubeconfig") \
            else f"sudo testbed kubeconfig --lab {status.lab} > lab.kubeconfig"
        out.print(f"Kubernetes API: {status.api['server']} ({where})")


@contextmanager
def progress_reporter() -> Iterator[Any]:
    """A progress callback: a live bar on a terminal, one line per finished step otherwise."""
    if err.is_terminal:
        with Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            tasks: dict[str, Any] = {}

            def show(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(STEP_TITLES.get(step, step), total=max(total, 1))
                bar.update(tasks[step], completed=done if total else 1)

            yield show
        return

    def log(step: str, done: int, total: int) -> None:
        if done == total:
            err.print(f"{STEP_TITLES.get(step, step)}: {done}/{total} done")

    yield log


def route_line(row: RouteRow) -> str:
    """A route as `ip route` prints it (protocol boot, the default, is not shown)."""
    if row.kind.startswith("own block"):
        text = f"blackhole {row.destination}"
    else:
        text = row.destination
        if row.via:
            text += f" via {row.via}"
        if row.dev:
            text += f" dev {row.dev}"
    if row.proto != "boot":
        text += f" proto {row.proto}"
    if not row.via and row.dev and row.destination != "default":
        text += " scope link"
    return text


def routes_table(host: str, rows: list[RouteRow]) -> None:
    lines = [route_line(r) for r in rows]
    width = max((len(line) for line in lines), default=0)
    out.print(f"routing table of {host}:")
    for line, row in zip(lines, rows):
        out.print(f"{line:<{width}}   # {row.kind}" if row.kind else line)


def bgp_tables(statuses: list[BgpStatus], several: bool) -> None:
    """What `calicoctl node status` prints, per host."""
    for i, status in enumerate(statuses):
        if several:
            out.print(("\n" if i else "") + f"host {status.host} ({status.ip})")
        if not status.running:
            out.print("Calico process is not running.")
            continue
        out.print("Calico process is running.\n")
        out.print("IPv4 BGP status")
        if not status.peers:
            out.print("No IPv4 peers found.\n")
        else:
            header = ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"]
            rows = [[str(p.get(k, "")) for k in ("address", "type", "state", "since", "info")] for p in status.peers]
            out.print(bordered(header, rows) + "\n")
        out.print("IPv6 BGP status\nNo IPv6 peers found.")


def bordered(header: list[str], rows: list[list[str]]) -> str:
    """An ASCII table with +---+ borders and centred headers, as calicoctl draws it."""
    widths = [max(len(c) for c in column) for column in zip(header, *rows)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    head = "|" + "|".join(f" {h:^{w}} " for h, w in zip(header, widths)) + "|"
    body = ["|" + "|".join(f" {c:<{w}} " for c, w in zip(row, widths)) + "|" for row in rows]
    return "\n".join([rule, head, rule, *body, rule])
