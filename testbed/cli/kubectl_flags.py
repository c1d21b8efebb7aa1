"""The flags `testbed kubectl apply`, `create` and `delete` share, with kubectl's meaning.

``-f/--filename`` (repeatable: files, directories, ``-``), ``-R/--recursive`` and
``--dry-run=none|client|server``. As in kubectl (cobra's ``NoOptDefVal``), a bare
``--dry-run`` takes no value from the next word: ``--dry-run ns x`` is a client dry run of
``ns x``, deprecated but accepted, with kubectl's warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from testbed.kube.errors import ManifestError

F = TypeVar("F", bound=Callable[..., Any])

DRY_RUN_STRATEGIES = ("none", "client", "server")
BARE = "unchanged"  # what kubectl's --dry-run holds when given without a value
# strconv.ParseBool's words, which kubectl still takes (deprecated) for --dry-run=BOOL
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def dry_run_strategy(value: str, warn: Callable[[str], None]) -> str:
    """``none``, ``client`` or ``server`` for a --dry-run value, as kubectl decides it;
    ``warn`` gets kubectl's deprecation line; ManifestError for any other value."""
    if value in DRY_RUN_STRATEGIES:
        return value
    if value == BARE:
        warn("--dry-run is deprecated and can be replaced with --dry-run=client.")
        return "client"
    if value in _TRUE or value in _FALSE:
        strategy = "client" if value in _TRUE else "none"
        warn(f"--dry-run={value} is deprecated (boolean value) and can be replaced with --dry-run={strategy}.")
        return strategy
    raise ManifestError([f'error: Invalid dry-run value ({value}). Must be "none", "server", or "client".'])


class DryRunCommand(click.Command):
    """A command whose bare ``--dry-run`` never swallows the next argument (cobra's way)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                rewritten += args[i:]
                break
            rewritten.append(f"--dry-run={BARE}" if arg == "--dry-run" else arg)
        return super().parse_args(ctx, rewritten)


def file_options(what: str) -> Callable[[F], F]:
    """-f/--filename (repeatable), -R/--recursive and --dry-run, for ``what`` (apply, ...)."""

    def decorate(command: F) -> F:
        command = click.option(
            "--dry-run", "dry_run", default="none", show_default=True, metavar="none|client|server",
            help='"client": check the manifests, print what would happen, store nothing (no lab needed). '
                 '"server": also check against the lab\'s objects; nothing is written either.',
        )(command)  # fmt: skip
        command = click.option(
            "-R", "--recursive", is_flag=True, help="With -f DIR: the manifests of its subdirectories too.",
        )(command)  # fmt: skip
        return click.option(
            "-f", "--filename", "filenames", multiple=True, metavar="PATH",
            help=f"A manifest to {what}: a file, a directory (its .json, .yaml, .yml files in name order) "
                 "or - for stdin. Repeatable.",
        )(command)  # fmt: skip

    return decorate
