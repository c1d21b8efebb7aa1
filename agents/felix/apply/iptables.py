"""Reconcile one iptables table (legacy backend) with the desired chains and hook jumps.

Felix's way: trust what we last wrote, read the kernel back now and then.

* Ours are the chains whose name starts with the prefix (``cali-``) and, in kernel chains
  (INPUT, FORWARD, ...), the rules that carry a ``cali:<id>`` comment or jump to one of
  our chains.
* Every rule we write carries ``-m comment --comment "cali:<id>"``: id = the first 16
  characters of base64url(SHA-224(chain name + previous rule's id + rule text)), chained
  so that a rule's id depends on its position and on every rule before it (Felix's style).
  A chain is in sync when the ids read back equal the desired ids, in order. A rule
  deleted, inserted or re-written without our comment changes the list, so the chain is
  rewritten on the next read-back apply. Unchanged chains are not touched and keep their
  counters.
* After each successful write the table remembers what the kernel now holds (the ids of
  our chains and hooks, as a read-back would show them). A normal `apply()` diffs the
  desired state against that memory: no ``iptables-legacy-save`` of thousands of rules,
  and nothing at all is run when no chain changed. ``apply(resync=True)`` (the agent's
  timed resync), the first apply, and any apply after a failed write read the table back
  with ``iptables-legacy-save -t TABLE`` instead, so drift (a rule deleted by hand) is
  repaired on the next resync. Edits by position (hooks inserted into or deleted from
  kernel chains, which others write too) are only ever planned from a fresh read-back.

One ``iptables-legacy-restore --noflush --wait`` per table and apply, atomic at COMMIT, in
this order: declare (= create or flush) new and changed chains; delete our misplaced or
stale hook rules; append the chains' rules; insert the hooks at the top of their kernel
chains; flush, then delete, stale chains (nothing references them any more by then).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from agents.felix.apply.runner import CommandError, Runner, first_lines
from agents.felix.render.restore import ID_PREFIX, chained_ids, rule_body
from agents.felix.render.rules import Chain, Rule

log = logging.getLogger(__name__)

SAVE = "iptables-legacy-save"
RESTORE = "iptables-legacy-restore"
MAX_CHAIN = 28

_ID_RE = re.compile(r'--comment "?' + re.escape(ID_PREFIX) + r'([A-Za-z0-9_-]+)"?')
_TARGET_RE = re.compile(r"(?:^|\s)-[jg]\s+(\S+)")


class RestoreError(RuntimeError):
    """iptables-legacy-restore refused the transaction; the table is as it was."""

    def __init__(self, table: str, error: CommandError, restore_text: str) -> None:
        self.table = table
        self.stderr = error.stderr
        self.restore_text = restore_text
        super().__init__(f"iptables-legacy-restore failed for table {table}: {first_lines(error.stderr, 4)}")


# --- ids and rendering (pure) ------------------------------------------------------------


# One definition of a rule's text and id, shared with the renderer's restore text.
rule_text = rule_body
rule_ids = chained_ids


def rule_line(head: str, rule_id: str, rule: Rule) -> str:
    """``head`` (``-A chain`` or ``-I chain N``), our id comment, then the rule."""
    body = rule_text(rule)
    line = f'{head} -m comment --comment "{ID_PREFIX}{rule_id}"'
    return f"{line} {body}" if body else line


# --- reading back ------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedRule:
    line: str
    rule_id: str | None
    target: str | None


@dataclass
class ActualTable:
    """One table as iptables-save shows it: chain names with policy, and their rules."""

    policies: dict[str, str] = field(default_factory=dict)  # chain -> "ACCEPT", "-", ...
    rules: dict[str, list[SavedRule]] = field(default_factory=dict)

    def is_builtin(self, chain: str) -> bool:
        return self.policies.get(chain, "-") != "-"


def parse_save(text: str, table: str) -> ActualTable:
    actual = ActualTable()
    in_table = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            in_table = line[1:] == table
            continue
        if not in_table:
            continue
        if line == "COMMIT":
            in_table = False
        elif line.startswith(":"):
            name, policy = (line[1:].split() + ["-"])[:2]
            actual.policies[name] = policy
            actual.rules.setdefault(name, [])
        elif line.startswith("-A "):
            chain = line.split()[1]
            match = _ID_RE.search(line)
            target = _TARGET_RE.search(line)
            actual.rules.setdefault(chain, []).append(
                SavedRule(line, match.group(1) if match else None, target.group(1) if target else None)
            )
    return actual


# --- the reconciler ----------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyReport:
    table: str
    chains_written: tuple[str, ...] = ()
    chains_deleted: tuple[str, ...] = ()
    hooks_inserted: int = 0
    hooks_deleted: int = 0
    restore_lines: int = 0  # lines sent to iptables-legacy-restore; 0 = nothing written
    read_back: bool = False  # planned from iptables-legacy-save (False: from memory)
    seconds: float = 0.0

    @property
    def wrote(self) -> bool:
        return self.restore_lines > 0


@dataclass(frozen=True)
class Plan:
    """What one apply would send, its report, and the table as it will be once sent."""

    text: str  # the restore transaction; empty when in sync
    report: ApplyReport
    after: ActualTable


class IptablesTable:
    """Desired state for one table; `apply()` makes the kernel match it."""

    def __init__(self, table: str, runner: Runner, prefix: str = "cali-") -> None:
        self.table = table
        self.runner = runner
        self.prefix = prefix
        self._chains: dict[str, Chain] | None = None
        self._hooks: dict[str, list[Rule]] = {}
        self._written: ActualTable | None = None  # the kernel since our last write; None: unknown
        self._ids: dict[str, tuple[Chain, list[str]]] = {}  # chain name -> (chain, its rule ids)

    def desired(self, chains: Sequence[Chain], hooks: Sequence[tuple[str, Rule]]) -> None:
        """Replace the desired state. Cheap: no kernel I/O. Raises ValueError on bad names."""
        by_name: dict[str, Chain] = {}
        for chain in chains:
            if not chain.name.startswith(self.prefix):
                raise ValueError(f"chain {chain.name!r}: name must start with {self.prefix!r}")
            if len(chain.name) > MAX_CHAIN:
                raise ValueError(f"chain {chain.name!r}: name is longer than {MAX_CHAIN} characters")
            if chain.name in by_name:
                raise ValueError(f"chain {chain.name!r}: given twice")
            by_name[chain.name] = chain
        hook_map: dict[str, list[Rule]] = {}
        for kernel_chain, rule in hooks:
            if kernel_chain.startswith(self.prefix):
                raise ValueError(f"hook into {kernel_chain!r}: hooks go into kernel chains")
            hook_map.setdefault(kernel_chain, []).append(rule)
        self._chains = by_name
        self._hooks = hook_map
        self._ids = {name: cached for name, cached in self._ids.items() if name in by_name}

    def invalidate(self) -> None:
        """Forget what we wrote: the next apply reads the table back (after any error)."""
        self._written = None

    def plan(self, saved: str) -> tuple[str, ApplyReport]:
        """Pure: the restore text (empty when in sync) and the report, from iptables-save text."""
        found = self.plan_against(parse_save(saved, self.table))
        return found.text, found.report

    def plan_against(self, actual: ActualTable) -> Plan:
        """Pure: the transaction that turns ``actual`` into the desired table."""
        if self._chains is None:
            raise RuntimeError(f"table {self.table}: apply() before desired(): refusing to sweep")
        ours_actual = {name for name in actual.policies if name.startswith(self.prefix)}

        dirty: list[tuple[Chain, list[str]]] = []
        for chain in self._chains.values():
            ids = self._rule_ids(chain)
            have = actual.rules.get(chain.name)
            if chain.name not in actual.policies or have is None or [r.rule_id for r in have] != ids:
                dirty.append((chain, ids))
        stale = sorted(ours_actual - set(self._chains))

        after = ActualTable(dict(actual.policies), dict(actual.rules))
        deletes: list[str] = []
        inserts: list[str] = []
        kernel_chains = sorted(set(self._hooks) | {c for c in actual.policies if actual.is_builtin(c)})
        for kc in kernel_chains:
            want = self._hooks.get(kc, [])
            want_ids = rule_ids(kc, want)
            have = actual.rules.get(kc, [])
            ours = [i for i, r in enumerate(have) if self._owns_kernel_rule(r)]
            in_place = [r.rule_id for r in have[: len(want)]] == want_ids and ours == list(range(len(want)))
            if in_place:
                continue
            deletes += [f"-D {kc} {i + 1}" for i in reversed(ours)]
            inserts += [rule_line(f"-I {kc} {n + 1}", rid, rule) for n, (rid, rule) in enumerate(zip(want_ids, want))]
            mine = [_remembered(rule_line(f"-A {kc}", rid, rule), rid) for rid, rule in zip(want_ids, want)]
            foreign = [r for r in have if not self._owns_kernel_rule(r)]
            after.rules[kc] = mine + foreign

        lines: list[str] = [f":{chain.name} - -" for chain, _ in dirty]
        lines += deletes
        for chain, ids in dirty:
            written = [rule_line(f"-A {chain.name}", rid, rule) for rid, rule in zip(ids, chain.rules)]
            lines += written
            after.policies[chain.name] = "-"
            after.rules[chain.name] = [_remembered(line, rid) for line, rid in zip(written, ids)]
        lines += inserts
        lines += [f"-F {name}" for name in stale]
        lines += [f"-X {name}" for name in stale]
        for name in stale:
            after.policies.pop(name, None)
            after.rules.pop(name, None)

        report = ApplyReport(
            table=self.table,
            chains_written=tuple(chain.name for chain, _ in dirty),
            chains_deleted=tuple(stale),
            hooks_inserted=len(inserts),
            hooks_deleted=len(deletes),
            restore_lines=len(lines) + 2 if lines else 0,
        )
        text = "\n".join([f"*{self.table}", *lines, "COMMIT", ""]) if lines else ""
        return Plan(text, report, after)

    def apply(self, resync: bool = False) -> ApplyReport:
        """Diff against memory (or a read-back: ``resync``, first apply, after an error or
        before moving hooks) and write one restore transaction if anything differs."""
        start = time.perf_counter()
        remembered = None if resync else self._written
        read_back = remembered is None
        found = self.plan_against(self._read_back() if remembered is None else remembered)
        if not read_back and (found.report.hooks_inserted or found.report.hooks_deleted):
            read_back = True  # kernel chains are shared: their positions only from the kernel
            found = self.plan_against(self._read_back())
        if found.text:
            try:
                self.runner.run([RESTORE, "--noflush", "--wait"], input=found.text)
            except CommandError as exc:
                self._written = None
                raise RestoreError(self.table, exc, found.text) from exc
            report = found.report
            log.info(
                "table %s: wrote %d chains, deleted %d, hooks +%d -%d%s",
                self.table, len(report.chains_written), len(report.chains_deleted),
                report.hooks_inserted, report.hooks_deleted, " (after read-back)" if read_back else "",
            )
            log.debug("table %s restore:\n%s", self.table, found.text)
        self._written = found.after
        return replace(found.report, read_back=read_back, seconds=time.perf_counter() - start)

    def _read_back(self) -> ActualTable:
        return parse_save(self.runner.run([SAVE, "-t", self.table]), self.table)

    def _rule_ids(self, chain: Chain) -> list[str]:
        """The chain's rule ids, computed once per distinct content of the chain."""
        cached = self._ids.get(chain.name)
        if cached is not None and cached[0] == chain:
            return cached[1]
        ids = rule_ids(chain.name, chain.rules)
        self._ids[chain.name] = (chain, ids)
        return ids

    def _owns_kernel_rule(self, rule: SavedRule) -> bool:
        return rule.rule_id is not None or (rule.target or "").startswith(self.prefix)


def _remembered(line: str, rule_id: str) -> SavedRule:
    """A rule we wrote, as memory keeps it (what a read-back would find of it)."""
    target = _TARGET_RE.search(line)
    return SavedRule(line, rule_id, target.group(1) if target else None)
