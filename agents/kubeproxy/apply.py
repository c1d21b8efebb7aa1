"""Write kube-proxy's rendered nat and filter text into the kernel (legacy iptables).

Runs in the host's netns (the Felix-like agent calls it there). Like kube-proxy, one
``iptables-legacy-restore --noflush --wait`` per change declares every KUBE- chain it
writes (which flushes and refills it, atomic per table), deletes the per-service chains
it no longer renders (KUBE-SVC-, KUBE-SEP-, KUBE-EXT-, ...) and leaves every other chain
and rule of the table alone, Felix's included.

What it last wrote it trusts: an apply whose text equals it does nothing at all (no
command, counters kept). A resync, and the first apply of a process, read the tables back
with ``iptables-legacy-save`` and rewrite a table whose KUBE- chains or hooks differ from
what the kernel showed right after the last write (a rule or chain deleted by hand comes
back). Hooks from the kernel's chains are ensured by existence, never by position:
inserted first in nat (as kube-proxy does), appended in filter, where Felix keeps its own
jumps at the top; the two never move each other's rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agents.felix.apply.iptables import RestoreError
from agents.felix.apply.runner import CommandError, Runner
from agents.kubeproxy.render import HOOKS, Hook, is_service_chain

log = logging.getLogger(__name__)

SAVE = "iptables-legacy-save"
RESTORE = "iptables-legacy-restore"
TABLES = ("nat", "filter")
PREFIX = "KUBE-"


# --- pure: reading save text and planning the restore -------------------------------------


def _table_lines(saved: str, table: str) -> list[str]:
    """The lines of one table's section in iptables-save output (comments dropped)."""
    out: list[str] = []
    inside = False
    for raw in saved.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            inside = line[1:] == table
        elif inside and line == "COMMIT":
            inside = False
        elif inside and line and not line.startswith("#"):
            out.append(line)
    return out


def _target(rule_line: str) -> str:
    words = rule_line.split()
    for flag in ("-j", "-g"):
        if flag in words[:-1]:
            return words[words.index(flag) + 1]
    return ""


def owned_view(saved: str, table: str) -> tuple[str, ...]:
    """Everything of ours in a table as the kernel shows it: the KUBE- chains (names only,
    no counters), their rules, and the rules of other chains that jump to them."""
    out: list[str] = []
    for line in _table_lines(saved, table):
        if line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(PREFIX):
                out.append(f":{name}")
        elif line.startswith("-A "):
            chain = line.split()[1]
            if chain.startswith(PREFIX) or _target(line).startswith(PREFIX):
                out.append(line)
    return tuple(out)


def chains_in(view: Sequence[str]) -> set[str]:
    return {line[1:] for line in view if line.startswith(":")}


def missing_hooks(saved: str, table: str) -> list[Hook]:
    present = {" ".join(line.split()) for line in _table_lines(saved, table)}
    return [hook for hook in HOOKS if hook.table == table and hook.line not in present]


def split_restore(text: str) -> tuple[str, list[str], list[str]]:
    """Rendered restore text -> (table, declared chains, rule lines)."""
    table = ""
    chains: list[str] = []
    rules: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chains.append(line[1:].split()[0])
        elif line and line != "COMMIT" and not line.startswith("#"):
            rules.append(line)
    return table, chains, rules


def plan_table(text: str, existing: set[str], missing: Sequence[Hook]) -> tuple[str, tuple[str, ...]]:
    """One table's part of the restore: the rendered text, plus flush-and-delete of the
    per-service chains that exist but are no longer rendered, plus the missing hooks."""
    table, chains, rules = split_restore(text)
    stale = tuple(sorted(c for c in existing - set(chains) if is_service_chain(c)))
    lines = [f"*{table}"]
    lines += [f":{c} - [0:0]" for c in (*chains, *stale)]
    lines += rules
    lines += [f"-I {h.chain} 1 {h.rule}" if h.prepend else h.line for h in missing]
    lines += [f"-X {c}" for c in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n", stale


# --- the applier --------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeProxyReport:
    tables_written: tuple[str, ...] = ()
    chains_deleted: tuple[str, ...] = ()
    hooks_added: int = 0
    read_back: bool = False  # the tables were read (first apply or resync)
    seconds: float = 0.0

    @property
    def wrote(self) -> bool:
        return bool(self.tables_written)


class KubeProxyTables:
    """kube-proxy's part of a host's nat and filter tables."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._written: dict[str, str] = {}  # table -> rendered text last written
        self._view: dict[str, tuple[str, ...]] = {}  # table -> owned_view right after that
        self._checked = False  # the kernel was read back since this process started

    def apply(self, nat_text: str, filter_text: str, resync: bool = False) -> KubeProxyReport:
        start = time.perf_counter()
        desired = {"nat": nat_text, "filter": filter_text}
        full = resync or not self._checked
        saved = {t: self._save(t) for t in TABLES} if full else {}
        dirty = [t for t in TABLES if self._differs(t, desired[t], saved.get(t))]
        if not dirty:
            return KubeProxyReport(read_back=full, seconds=time.perf_counter() - start)
        parts: list[str] = []
        deleted: list[str] = []
        hooks = 0
        for table in dirty:
            if table in saved:
                existing = chains_in(owned_view(saved[table], table))
                missing = missing_hooks(saved[table], table)
            else:  # trusted: what the kernel showed after our last write
                existing, missing = chains_in(self._view.get(table, ())), []
            text, stale = plan_table(desired[table], existing, missing)
            parts.append(text)
            deleted += stale
            hooks += len(missing)
        restore = "".join(parts)
        try:
            self.runner.run([RESTORE, "--noflush", "--wait"], input=restore)
        except CommandError as exc:
            self._written.clear()
            self._checked = False  # the next apply reads everything back
            raise RestoreError("+".join(dirty), exc, restore) from exc
        for table in dirty:
            self._view[table] = owned_view(self._save(table), table)
            self._written[table] = desired[table]
        self._checked = True
        log.info("kube-proxy: wrote %s, deleted %d chains, hooks +%d", "+".join(dirty), len(deleted), hooks)
        log.debug("kube-proxy restore:\n%s", restore)
        return KubeProxyReport(
            tables_written=tuple(dirty), chains_deleted=tuple(deleted), hooks_added=hooks,
            read_back=full, seconds=time.perf_counter() - start,
        )  # fmt: skip

    def _differs(self, table: str, text: str, saved: str | None) -> bool:
        if text != self._written.get(table):
            return True
        if saved is None:
            return False
        return owned_view(saved, table) != self._view.get(table) or bool(missing_hooks(saved, table))

    def _save(self, table: str) -> str:
        return self.runner.run([SAVE, "-t", table])
