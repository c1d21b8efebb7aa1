"""Felix's appliers: make the kernel (iptables legacy, ipsets) match the rendered state.

The only part of the agent that runs commands, always through a `Runner`. Order is a
contract: ipsets created/updated, then the tables, then stale ipsets destroyed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.felix.apply.iptables import ApplyReport, IptablesTable, RestoreError, rule_ids
from agents.felix.apply.ipsets import IPSetError, IPSetReport, IPSets
from agents.felix.apply.runner import CommandError, FakeRunner, Runner, SubprocessRunner


@dataclass(frozen=True)
class AllReport:
    ipset_updates: IPSetReport
    tables: tuple[ApplyReport, ...]
    ipset_deletes: IPSetReport

    @property
    def wrote(self) -> bool:
        return self.ipset_updates.wrote or self.ipset_deletes.wrote or any(t.wrote for t in self.tables)

    @property
    def read_back(self) -> bool:
        """True when any part read the kernel back instead of trusting its memory."""
        return self.ipset_updates.read_back or any(t.read_back for t in self.tables)


def apply_all(tables: Sequence[IptablesTable], ipsets: IPSets, resync: bool = False) -> AllReport:
    """ipsets created/updated -> each table (filter, raw, ...) -> stale ipsets destroyed.

    Each part diffs against what it last wrote; ``resync`` (the agent's timed resync)
    reads the kernel back instead, so drift is repaired. An error stops the sequence
    where it happens: a failed table leaves the old sets in place for the old rules (fail
    closed), and every part forgets its memory, so the next apply starts from a read-back
    (Felix marks its dataplane out of sync the same way).
    """
    try:
        updates = ipsets.apply_creates_and_updates(resync)
        reports = tuple(table.apply(resync) for table in tables)
        deletes = ipsets.apply_deletes()
    except Exception:
        ipsets.invalidate()
        for table in tables:
            table.invalidate()
        raise
    return AllReport(updates, reports, deletes)


__all__ = [
    "AllReport", "ApplyReport", "CommandError", "FakeRunner", "IPSetError", "IPSetReport",
    "IPSets", "IptablesTable", "RestoreError", "Runner", "SubprocessRunner", "apply_all", "rule_ids",
]
