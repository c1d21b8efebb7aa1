"""`testbed fail|heal` targets and the supervisor's choices: the pure parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import faults
from testbed.faults import Fault, FaultError, conflict, hosts_of, parse_target, supervised_off
from testbed.runtime import state, supervisor
from testbed.runtime.supervisor import BACKOFF_SECONDS, router_id, supervised, to_restart

HOSTS = ["host1", "host2"]


@pytest.mark.parametrize(
    ("words", "fault"),
    [
        (["host", "host1"], Fault("host", "host1")),
        (["link", "host2"], Fault("link", "host2")),
        (["agent", "host1", "felix"], Fault("agent", "host1", "felix")),
        (["agent", "host2", "bgp"], Fault("agent", "host2", "bgp")),
        (["etcd"], Fault("etcd")),
    ],
)
def test_targets(words: list[str], fault: Fault) -> None:
    assert parse_target(words, HOSTS) == fault
    assert fault.target == " ".join(words)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "no target"),
        (["switch"], "unknown target 'switch'"),
        (["host"], "host needs HOST"),
        (["host", "host1", "host2"], "host needs HOST"),
        (["host", "host9"], "host 'host9' is not a host of this lab (hosts: host1, host2)"),
        (["agent", "host1"], "agent needs HOST felix|bgp"),
        (["agent", "host1", "kubelet"], "unknown agent 'kubelet' (agents: felix, bgp)"),
        (["etcd", "now"], "etcd takes no arguments, got 'now'"),
    ],
)
def test_bad_targets_say_what_is_wrong_in_one_line(words: list[str], message: str) -> None:
    with pytest.raises(FaultError) as caught:
        parse_target(words, HOSTS)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_conflicts() -> None:
    host1 = Fault("host", "host1")
    felix1 = Fault("agent", "host1", "felix")
    assert conflict(host1, []) is None
    assert conflict(host1, [Fault("host", "host1", since=5.0)]) == (
        "host host1 is already failed (undo it with: testbed heal host host1)"
    )
    assert conflict(felix1, [host1]) == "host host1 is failed as a whole: heal it first"
    assert conflict(host1, [felix1]) == "agent host1 felix is failed: heal it before failing the whole host"
    assert conflict(Fault("etcd"), [host1]) is None
    assert conflict(Fault("link", "host2"), [host1, felix1]) is None


def test_what_the_supervisor_leaves_alone() -> None:
    assert supervised_off([]) == set()
    assert supervised_off([Fault("agent", "host1", "bgp"), Fault("link", "host2")]) == {"bgp host1"}
    assert supervised_off([Fault("host", "host2"), Fault("etcd")]) == {"felix host2", "bgp host2", "etcd"}


def test_hosts_come_from_the_recorded_agents() -> None:
    names = ["etcd", "bgp host1", "felix host1", "supervisor", "felix host2", "pod demo/a", "bgp rr", "controller-manager"]
    assert hosts_of(names) == ["host1", "host2"]
    # not the reflector, etcd, pods; the lab's one controller manager
    assert supervised(names) == ["bgp host1", "controller-manager", "felix host1", "felix host2"]


def test_restart_choices() -> None:
    names = ["etcd", "bgp host1", "felix host1", "felix host2"]
    assert to_restart(names, alive={"etcd", "bgp host1", "felix host1", "felix host2"}, off=set(), last={}, now=0) == []
    assert to_restart(names, alive={"bgp host1"}, off={"felix host2"}, last={}, now=0) == ["felix host1"]
    recently = {"felix host1": 10.0}
    assert to_restart(names, {"bgp host1"}, set(), recently, now=10.0 + BACKOFF_SECONDS / 2) == ["felix host2"]
    assert to_restart(names, {"bgp host1"}, set(), recently, now=10.0 + BACKOFF_SECONDS) == [
        "felix host1", "felix host2",
    ]  # fmt: skip


def test_router_id_from_the_speaker_config() -> None:
    assert router_id("template {\n    neighbor t {\n        router-id 172.18.203.12;\n") == "172.18.203.12"
    assert router_id("nothing here") is None


def test_fault_record_and_clean_exit_notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_STATE_ROOT", str(tmp_path))
    state.folder("lab1").mkdir(parents=True)
    assert faults.load("lab1") == []
    saved = [Fault("agent", "host1", "felix", 1.5), Fault("etcd", since=2.0)]
    faults.save("lab1", saved)
    assert faults.load("lab1") == saved
    record = state.ProcessRecord("felix host1", "lab1.host1", 4242, 1)
    assert not supervisor.exited_cleanly("lab1", record)
    supervisor.note_clean_exit("lab1", "felix host1", 4242)
    assert supervisor.exited_cleanly("lab1", record)
    assert not supervisor.exited_cleanly("lab1", state.ProcessRecord("felix host1", "lab1.host1", 4343, 1))
    supervisor.note_clean_exit("gone-lab", "felix host1", 1)  # never raises
