"""Reconcile the ipsets whose names carry our prefix (``cali40``) with the desired sets.

Like Felix, it trusts what it last wrote: after each successful session it remembers our
sets (metadata and members) as the kernel now holds them, and a normal apply diffs the
desired sets against that memory, running nothing at all when no set changed. The kernel
is read back (``ipset save``, ``ipset list -n``) on ``resync=True`` (the agent's timed
resync), on the first apply and after any failed session. Two verbs, because the order
is a contract (ipsets, then tables, then ipset deletes):

* `apply_creates_and_updates()`: one ``ipset restore -exist`` session that creates missing
  sets and adds/deletes members. A set whose metadata changed (maxelem) is rebuilt in a
  temporary set (``cali4t<n>``), swapped in and the temporary destroyed, so rules using
  it never see it missing. The kernel swaps only sets of the same type and family; a set
  whose *type* changed is destroyed and re-created, which the kernel allows only while no
  rule uses it (otherwise `IPSetError` names the set: fail closed, rules left as they were).
* `apply_deletes()`: destroys our sets (and leftover temporaries) that are no longer
  desired. Run it only after the tables no longer reference them.

A failed session forgets the memory (`invalidate()` does the same from outside), so the
next apply starts from a read-back.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from agents.felix.apply.runner import CommandError, Runner, first_lines
from agents.felix.render.rules import IPSet

log = logging.getLogger(__name__)

IPSET = "ipset"
MAX_IPSET = 31
MAXELEM = 1048576
FAMILY = "inet"
KINDS = ("hash:net", "hash:ip,port")


class IPSetError(RuntimeError):
    def __init__(self, what: str, error: CommandError, session: str = "") -> None:
        self.stderr = error.stderr
        self.session = session
        super().__init__(f"ipset {what} failed: {first_lines(error.stderr, 4)}")


@dataclass(frozen=True)
class SetMeta:
    kind: str
    family: str = FAMILY
    maxelem: int = MAXELEM


@dataclass
class ActualSet:
    meta: SetMeta
    members: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class IPSetReport:
    created: tuple[str, ...] = ()
    swapped: tuple[str, ...] = ()
    recreated: tuple[str, ...] = ()
    members_added: int = 0
    members_removed: int = 0
    destroyed: tuple[str, ...] = ()
    session_lines: int = 0  # lines sent to ipset restore; 0 = nothing written
    read_back: bool = False  # planned from the kernel's sets (False: from memory)
    seconds: float = 0.0

    @property
    def wrote(self) -> bool:
        return self.session_lines > 0


def normalise_member(kind: str, member: str) -> str:
    """The member as ``ipset save`` prints it (``10.0.0.1/32`` -> ``10.0.0.1``)."""
    if kind == "hash:net":
        net = ipaddress.ip_network(member.strip(), strict=False)
        return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
    if kind == "hash:ip,port":
        ip, _, port = member.strip().partition(",")
        proto, _, number = port.partition(":")
        return f"{ipaddress.ip_address(ip)},{proto.lower()}:{int(number)}"
    return member.strip()


def parse_save(text: str) -> dict[str, ActualSet]:
    sets: dict[str, ActualSet] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "create":
            opts = dict(zip(words[3::2], words[4::2]))
            meta = SetMeta(words[2], opts.get("family", FAMILY), int(opts.get("maxelem", MAXELEM)))
            sets[words[1]] = ActualSet(meta)
        elif len(words) >= 3 and words[0] == "add" and words[1] in sets:
            sets[words[1]].members.add(words[2])
    return sets


def _create(name: str, meta: SetMeta) -> str:
    return f"create {name} {meta.kind} family {meta.family} maxelem {meta.maxelem}"


class IPSets:
    def __init__(self, runner: Runner, prefix: str = "cali40", temp_prefix: str = "cali4t") -> None:
        self.runner = runner
        self.prefix = prefix
        self.temp_prefix = temp_prefix
        self._desired: dict[str, tuple[SetMeta, frozenset[str]]] | None = None
        self._written: dict[str, ActualSet] | None = None  # our sets since our last session; None: unknown
        self._normalised: dict[str, tuple[frozenset[str], frozenset[str]]] = {}  # name -> (given, normalised)

    def desired(self, sets: Sequence[IPSet]) -> None:
        """Replace the desired sets. Cheap: no kernel I/O. Raises ValueError on bad input."""
        desired: dict[str, tuple[SetMeta, frozenset[str]]] = {}
        normalised: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        for s in sets:
            if not s.name.startswith(self.prefix):
                raise ValueError(f"ipset {s.name!r}: name must start with {self.prefix!r}")
            if len(s.name) > MAX_IPSET:
                raise ValueError(f"ipset {s.name!r}: name is longer than {MAX_IPSET} characters")
            if s.kind not in KINDS:
                raise ValueError(f"ipset {s.name!r}: kind {s.kind!r} is not one of {', '.join(KINDS)}")
            if s.name in desired:
                raise ValueError(f"ipset {s.name!r}: given twice")
            meta = SetMeta(s.kind)
            cached = self._normalised.get(s.name)
            if cached is not None and cached[0] == s.members and self._desired_meta(s.name) == meta:
                members = cached[1]  # the same members as last time: no re-parsing
            else:
                try:
                    members = frozenset(normalise_member(s.kind, m) for m in s.members)
                except ValueError as exc:
                    raise ValueError(f"ipset {s.name!r}: bad member: {exc}") from None
            desired[s.name] = (meta, members)
            normalised[s.name] = (s.members, members)
        self._desired = desired
        self._normalised = normalised

    def invalidate(self) -> None:
        """Forget what we wrote: the next apply reads the sets back (after any error)."""
        self._written = None

    def _desired_meta(self, name: str) -> SetMeta | None:
        found = (self._desired or {}).get(name)
        return found[0] if found else None

    def _ours(self, name: str) -> bool:
        return name.startswith(self.prefix) or name.startswith(self.temp_prefix)

    def plan_creates_and_updates(self, saved: str) -> tuple[str, IPSetReport]:
        """Pure: the ``ipset restore`` session (empty when in sync) and the report."""
        return self.plan_against(parse_save(saved))

    def plan_against(self, actual: Mapping[str, ActualSet]) -> tuple[str, IPSetReport]:
        """Pure: the session that makes ``actual`` hold the desired sets and members."""
        if self._desired is None:
            raise RuntimeError("ipsets: apply before desired()")
        taken = set(actual)
        lines: list[str] = []
        created, swapped, recreated = [], [], []
        added = removed = 0
        for name in sorted(self._desired):
            meta, members = self._desired[name]
            have = actual.get(name)
            if have is None:
                created.append(name)
                lines.append(_create(name, meta))
                lines += [f"add {name} {m}" for m in sorted(members)]
                added += len(members)
            elif have.meta == meta:
                if have.members == members:
                    continue
                lines += [f"del {name} {m}" for m in sorted(have.members - members)]
                lines += [f"add {name} {m}" for m in sorted(members - have.members)]
                removed += len(have.members - members)
                added += len(members - have.members)
            elif (have.meta.kind, have.meta.family) == (meta.kind, meta.family):
                temp = self._temp_name(taken)
                taken.add(temp)
                swapped.append(name)
                lines.append(_create(temp, meta))
                lines += [f"add {temp} {m}" for m in sorted(members)]
                lines += [f"swap {temp} {name}", f"destroy {temp}"]
                added += len(members)
            else:
                recreated.append(name)
                lines += [f"destroy {name}", _create(name, meta)]
                lines += [f"add {name} {m}" for m in sorted(members)]
                added += len(members)
        report = IPSetReport(
            created=tuple(created), swapped=tuple(swapped), recreated=tuple(recreated),
            members_added=added, members_removed=removed,
            session_lines=len(lines) + 1 if lines else 0,
        )
        return ("\n".join([*lines, "COMMIT", ""]) if lines else ""), report

    def apply_creates_and_updates(self, resync: bool = False) -> IPSetReport:
        """Create missing sets and fix members: against memory, or a read-back (``resync``,
        first apply, after an error). Runs nothing when memory says every set is in sync."""
        start = time.perf_counter()
        remembered = None if resync else self._written
        read_back = remembered is None
        actual = self._read_back() if remembered is None else remembered
        text, report = self.plan_against(actual)
        if text:
            try:
                self.runner.run([IPSET, "restore", "-exist"], input=text)
            except CommandError as exc:
                self._written = None
                raise IPSetError("restore", exc, text) from exc
            log.info(
                "ipsets: created %d, swapped %d, recreated %d, +%d -%d members%s",
                len(report.created), len(report.swapped), len(report.recreated),
                report.members_added, report.members_removed, " (after read-back)" if read_back else "",
            )
            log.debug("ipset restore:\n%s", text)
        # Ours as the kernel now holds them: the desired sets, plus the stale ones that
        # apply_deletes() will destroy once the tables no longer use them.
        assert self._desired is not None
        written = {name: have for name, have in actual.items() if self._ours(name) and name not in self._desired}
        written.update((name, ActualSet(meta, set(members))) for name, (meta, members) in self._desired.items())
        self._written = written
        return _timed(replace(report, read_back=read_back), start)

    def _read_back(self) -> dict[str, ActualSet]:
        return parse_save(self.runner.run([IPSET, "save"]))

    def plan_deletes(self, names: str) -> tuple[str, IPSetReport]:
        """Pure: the destroy session for ``ipset list -n`` output."""
        return self._plan_deletes(names.split())

    def _plan_deletes(self, names: Iterable[str]) -> tuple[str, IPSetReport]:
        if self._desired is None:
            raise RuntimeError("ipsets: apply before desired()")
        stale = sorted(n for n in names if self._ours(n) and n not in self._desired)
        lines = [f"destroy {n}" for n in stale]
        report = IPSetReport(destroyed=tuple(stale), session_lines=len(lines) + 1 if lines else 0)
        return ("\n".join([*lines, "COMMIT", ""]) if lines else ""), report

    def apply_deletes(self) -> IPSetReport:
        """Destroy our sets no longer desired: known from memory (just refreshed by
        `apply_creates_and_updates`), else from ``ipset list -n``."""
        start = time.perf_counter()
        remembered = self._written
        read_back = remembered is None
        names = self.runner.run([IPSET, "list", "-n"]).split() if remembered is None else list(remembered)
        text, report = self._plan_deletes(names)
        if text:
            try:
                self.runner.run([IPSET, "restore"], input=text)
            except CommandError as exc:
                self._written = None
                raise IPSetError("destroy", exc, text) from exc
            log.info("ipsets: destroyed %d", len(report.destroyed))
        if self._written is not None:
            for name in report.destroyed:
                self._written.pop(name, None)
        return _timed(replace(report, read_back=read_back), start)

    def _temp_name(self, taken: set[str]) -> str:
        n = 0
        while f"{self.temp_prefix}{n}" in taken:
            n += 1
        return f"{self.temp_prefix}{n}"


def _timed(report: IPSetReport, start: float) -> IPSetReport:
    return replace(report, seconds=time.perf_counter() - start)
