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

from testbed.api import LabStatus

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STEP_TITLES = {"fabric": "fabric and etcd", "hosts": "hosts", "pods": "pods", "etcd": "etcd records"}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def status_tables(status: LabStatus) -> None:
    etcd = status.etcd
    health = "healthy" if etcd.get("healthy") else f"UNHEALTHY ({etcd.get('error', 'no answer')})"
    out.print(f"lab {status.lab}  topology {status.topology}  phase {status.phase}")
    out.print(f"etcd {etcd['endpoint']}  pid {etcd.get('pid')}  {health}")
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
