"""The Felix appliers against real iptables-legacy and ipset, in a scratch netns.

Each test makes its own netns ``zzapply-<pid>-<n>``, runs every command through a Runner
that prefixes ``ip netns exec``, and always deletes the netns. The root namespace's
iptables and ipsets must be the same before and after.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator

import pytest

from agents.felix.apply import IPSets, IptablesTable, RestoreError, SubprocessRunner, apply_all
from agents.felix.render.rules import Chain, IPSet, Rule

pytestmark = pytest.mark.root

_counter = itertools.count()

SET = IPSet("cali40s:web", "hash:net", frozenset({"10.65.0.2/32", "10.65.1.0/26"}))
ENDPOINT = Chain(
    "cali-tw-cali0123456789a",
    (
        Rule("-m conntrack --ctstate RELATED,ESTABLISHED", "-j ACCEPT"),
        Rule(f"-m set --match-set {SET.name} src -p tcp --dport 80", "-j ACCEPT", "allow web"),
        Rule("", "-j DROP", "Drop if no policies passed packet"),
    ),
)
DISPATCH = Chain("cali-to-wl-dispatch", (Rule("-o cali0123456789a", f"-g {ENDPOINT.name}"), Rule("", "-j DROP")))
FORWARD = Chain("cali-FORWARD", (Rule("-o cali+", "-j cali-to-wl-dispatch"),))
HOOKS = [("FORWARD", Rule("", "-j cali-FORWARD"))]
RAW = Chain("cali-PREROUTING", (Rule("-i cali+", "-j RETURN"),))


def _root_state() -> tuple[str, str]:
    save = subprocess.run(["iptables-legacy-save"], capture_output=True, text=True, timeout=30).stdout
    sets = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, timeout=30).stdout
    return "\n".join(l for l in save.splitlines() if not l.startswith("#")), sets


@pytest.fixture(scope="module", autouse=True)
def root_untouched() -> Iterator[None]:
    before = _root_state()
    yield
    assert _root_state() == before, "the root namespace's iptables or ipsets changed"


@pytest.fixture
def runner() -> Iterator[SubprocessRunner]:
    name = f"zzapply-{os.getpid()}-{next(_counter)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        yield SubprocessRunner(prefix=("ip", "netns", "exec", name))
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=30)
    assert name not in os.listdir("/run/netns")


def agent(runner: SubprocessRunner) -> tuple[IptablesTable, IptablesTable, IPSets]:
    filter_table, raw_table, sets = IptablesTable("filter", runner), IptablesTable("raw", runner), IPSets(runner)
    filter_table.desired([FORWARD, DISPATCH, ENDPOINT], HOOKS)
    raw_table.desired([RAW], [("PREROUTING", Rule("", "-j cali-PREROUTING"))])
    sets.desired([SET])
    return filter_table, raw_table, sets


def save(runner: SubprocessRunner, table: str = "filter") -> str:
    return runner.run(["iptables-legacy-save", "-t", table])


def test_apply_twice_second_writes_nothing(runner):
    filter_table, raw_table, sets = agent(runner)
    first = apply_all([filter_table, raw_table], sets)
    assert first.tables[0].chains_written == ("cali-FORWARD", "cali-to-wl-dispatch", ENDPOINT.name)
    assert first.tables[1].chains_written == ("cali-PREROUTING",)
    before = save(runner), save(runner, "raw"), runner.run(["ipset", "save"])
    second = apply_all([filter_table, raw_table], sets)
    assert not second.wrote
    assert [len(t.chains_written) for t in second.tables] == [0, 0]
    assert (save(runner), save(runner, "raw"), runner.run(["ipset", "save"])) == before
    assert _rules(save(runner), "FORWARD")[0].startswith('-A FORWARD -m comment --comment "cali:')


def test_rule_deleted_by_hand_comes_back_on_resync(runner):
    filter_table, raw_table, sets = agent(runner)
    apply_all([filter_table, raw_table], sets)
    good = save(runner)
    runner.run(["iptables-legacy", "-D", ENDPOINT.name, "2"])
    runner.run(["iptables-legacy", "-D", "FORWARD", "1"])
    runner.run(["iptables-legacy", "-I", "FORWARD", "1", "-j", "ACCEPT"])
    runner.run(["ipset", "del", SET.name, "10.65.0.2"])
    # Between resyncs the appliers trust what they wrote: the drift is not seen...
    assert not apply_all([filter_table, raw_table], sets).wrote
    # ...until the timed resync reads the kernel back and repairs it.
    report = apply_all([filter_table, raw_table], sets, resync=True)
    assert report.tables[0].chains_written == (ENDPOINT.name,)
    assert report.tables[0].hooks_inserted == 1
    assert report.ipset_updates.members_added == 1
    repaired = save(runner)
    assert _rules(repaired, ENDPOINT.name) == _rules(good, ENDPOINT.name)
    forward = _rules(repaired, "FORWARD")
    assert forward[0].endswith("-j cali-FORWARD") and forward[1] == "-A FORWARD -j ACCEPT"
    assert "add cali40s:web 10.65.0.2" in runner.run(["ipset", "save", SET.name])
    assert not apply_all([filter_table, raw_table], sets, resync=True).wrote


def test_a_change_is_written_without_reading_the_kernel_back(runner):
    """Felix's memory: after the first apply, a change is diffed against what was written."""
    calls: list[tuple[str, ...]] = []

    class Recording(SubprocessRunner):
        def run(self, argv, input=None):
            calls.append(tuple(argv))
            return super().run(argv, input)

    recording = Recording(prefix=runner.prefix)
    filter_table, raw_table, sets = agent(recording)
    apply_all([filter_table, raw_table], sets)
    calls.clear()
    wider = IPSet(SET.name, SET.kind, SET.members | {"10.65.0.3/32"})
    changed = Chain(ENDPOINT.name, (ENDPOINT.rules[0], Rule(ENDPOINT.rules[1].match.replace("80", "81"), "-j ACCEPT"), ENDPOINT.rules[2]))
    sets.desired([wider])
    filter_table.desired([FORWARD, DISPATCH, changed], HOOKS)
    report = apply_all([filter_table, raw_table], sets)
    programs = [argv[0] for argv in calls]
    assert programs == ["ipset", "iptables-legacy-restore"]  # no save, no list; raw untouched
    assert report.tables[0].chains_written == (ENDPOINT.name,) and not report.read_back
    assert "--dport 81" in save(runner) and "10.65.0.3" in runner.run(["ipset", "save", SET.name])
    # What a read-back finds is exactly what memory said: a resync writes nothing.
    assert not apply_all([filter_table, raw_table], sets, resync=True).wrote


def test_after_a_failed_write_the_next_apply_reads_back(runner):
    filter_table, raw_table, sets = agent(runner)
    apply_all([filter_table, raw_table], sets)
    broken = Chain("cali-broken", (Rule("-m set --match-set cali40s:missing src", "-j ACCEPT"),))
    filter_table.desired([FORWARD, DISPATCH, ENDPOINT, broken], HOOKS)
    with pytest.raises(RestoreError):
        apply_all([filter_table, raw_table], sets)
    runner.run(["iptables-legacy", "-D", ENDPOINT.name, "2"])  # drift while out of sync
    filter_table.desired([FORWARD, DISPATCH, ENDPOINT], HOOKS)
    report = apply_all([filter_table, raw_table], sets)  # not a resync, yet read back
    assert report.read_back and report.tables[0].chains_written == (ENDPOINT.name,)
    assert len(_rules(save(runner), ENDPOINT.name)) == 3


def test_ipsets_exist_before_the_rules_that_use_them(runner):
    filter_table, raw_table, sets = agent(runner)
    # Tables first: the restore names a set that does not exist, is refused whole.
    with pytest.raises(RestoreError, match="cali40s:web doesn't exist"):
        filter_table.apply()
    assert "cali-" not in save(runner)
    # The contract order creates the set first, and the same tables then apply.
    report = apply_all([filter_table, raw_table], sets)
    assert report.ipset_updates.created == (SET.name,)
    assert f"--match-set {SET.name} src" in save(runner)
    members = {l.split()[2] for l in runner.run(["ipset", "save", SET.name]).splitlines() if l.startswith("add ")}
    assert members == {"10.65.0.2", "10.65.1.0/26"}


def test_stale_chain_and_set_are_removed(runner):
    filter_table, raw_table, sets = agent(runner)
    apply_all([filter_table, raw_table], sets)
    # A foreign chain and set must survive; ours that are no longer desired must go.
    runner.run(["iptables-legacy", "-N", "FOREIGN"])
    runner.run(["ipset", "create", "foreign", "hash:ip"])
    filter_table.desired([FORWARD, Chain("cali-to-wl-dispatch", (Rule("", "-j DROP"),))], HOOKS)
    sets.desired([])
    report = apply_all([filter_table, raw_table], sets)
    assert report.tables[0].chains_deleted == (ENDPOINT.name,)
    assert report.ipset_deletes.destroyed == (SET.name,)
    after = save(runner)
    assert ENDPOINT.name not in after and ":FOREIGN" in after
    assert runner.run(["ipset", "list", "-n"]).split() == ["foreign"]
    # Everything ours removed: hooks too.
    filter_table.desired([], [])
    raw_table.desired([], [])
    apply_all([filter_table, raw_table], sets)
    assert "cali" not in save(runner) and "cali" not in save(runner, "raw")


def test_set_metadata_change_swaps_while_in_use(runner):
    filter_table, raw_table, sets = agent(runner)
    runner.run(["ipset", "create", SET.name, "hash:net", "family", "inet", "maxelem", "1024"])
    runner.run(["ipset", "add", SET.name, "192.0.2.1"])
    filter_table.apply()  # the rules now use the old set
    report = apply_all([filter_table, raw_table], sets)
    assert report.ipset_updates.swapped == (SET.name,)
    assert report.tables[0].chains_written == ()
    assert not apply_all([filter_table, raw_table], sets).wrote
    assert runner.run(["ipset", "list", "-n"]).split() == [SET.name]
    assert "maxelem 1048576" in runner.run(["ipset", "save", SET.name])


def _rules(saved: str, chain: str) -> list[str]:
    return [l for l in saved.splitlines() if l.startswith(f"-A {chain} ")]
