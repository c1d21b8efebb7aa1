"""`testbed migrate` between two kubelets: the old node lets a pod go without stopping it,
the new one adopts its running containers (agents.kubelet.handoff). The decisions (pure),
then both kubelets' loops over one in-memory store, migrate's writes done by hand."""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import pytest

from agents.kubelet import desired, handoff, local
from agents.kubelet.desired import Action
from agents.kubelet.kubelet import Kubelet
from agents.kubelet.local import ContainerRun, LocalPod
from agents.kubelet.podspec import PodView, parse_pod
from testbed.datastore.base import put_if
from tests.unit.test_kubelet_loop import KEY, FakeNetwork, FakeProber, FakeRuntime, Lab

RUNNING = ContainerRun("web", state="running", reason="", pid=101, start_ticks=1000, started_at=1.0, restart_count=2,
                       runs=3, ready=True)  # fmt: skip
MINE = LocalPod(KEY, "u1", "demo", "web", seen_at=1.0, ip="10.65.0.5", enforced=True, containers=(RUNNING,))


def view(node: str = "host1", uid: str = "u1", deleting: bool = False, **annotations: str) -> PodView:
    value = {"metadata": {"name": "web", "namespace": "demo", "uid": uid, "annotations": annotations},
             "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx"}]}}  # fmt: skip
    return replace(parse_pod(KEY, value), deleting=deleting)


ASKED = {handoff.MIGRATE_TO: "host2"}
GIVEN = {handoff.HANDOFF: handoff.encode("host1", "host2", MINE)}


def test_the_old_node_lets_a_pod_go_only_when_it_runs_undisturbed() -> None:
    assert desired.decide("host1", view(**ASKED), MINE) is Action.HANDOFF
    assert desired.decide("host1", view(**ASKED), replace(MINE, ip=None)) is Action.SYNC  # not networked yet
    assert desired.decide("host1", view(deleting=True, **ASKED), MINE) is Action.TERMINATE  # deletion wins
    assert desired.decide("host1", view(**ASKED), replace(MINE, terminating=True)) is Action.SYNC
    assert desired.decide("host1", view(**{handoff.MIGRATE_TO: "host1"}), MINE) is Action.SYNC  # here already
    # Handed off, the move under way: nobody's, never made again by the old node.
    assert desired.decide("host1", view(**ASKED, **GIVEN), None) is Action.IGNORE
    assert desired.decide("host1", view(**ASKED), None) is Action.IGNORE


def test_a_pod_it_handed_off_is_forgotten_never_torn_down() -> None:
    # The old kubelet restarted between its handoff write and its file save.
    assert desired.decide("host1", view(**ASKED, **GIVEN), MINE) is Action.HANDOFF
    assert desired.decide("host1", view(node="host2", **GIVEN), MINE) is Action.HANDOFF
    assert desired.decide("host1", view(node="host2"), MINE) is Action.TEARDOWN  # moved without a handoff
    assert desired.decide("host1", view(node="host2", uid="u2", **GIVEN), MINE) is Action.TEARDOWN


def test_the_new_node_adopts_and_the_old_one_takes_it_back_when_migrate_gives_up() -> None:
    assert desired.decide("host2", view(node="host2", **GIVEN), None) is Action.ADOPT
    assert desired.decide("host2", view(node="host2", deleting=True, **GIVEN), None) is Action.ADOPT  # then terminates
    assert desired.decide("host1", view(node="host2", **GIVEN), None) is Action.IGNORE
    assert desired.decide("host2", view(**ASKED, **GIVEN), None) is Action.IGNORE  # not bound there yet
    assert desired.decide("host1", view(**GIVEN), None) is Action.ADOPT  # request withdrawn: back home
    assert desired.decide("host1", view(**GIVEN), MINE) is Action.SYNC  # held again
    assert desired.decide("host2", view(node="host2", uid="u2", **GIVEN), None) is Action.ADD  # not this pod's


def test_the_handoff_round_trips_and_garbage_reads_as_none() -> None:
    given = handoff.decode(handoff.encode("host1", "host2", MINE))
    assert given == handoff.Handoff("host1", "host2", MINE)
    for raw in (None, "", "{", "[]", '{"from": "host1"}', '{"from": 1, "to": "x", "pod": {}}'):
        assert handoff.decode(raw) is None


def test_containers_not_started_yet_wait_for_the_moved_endpoint() -> None:
    assert handoff.adopted(handoff.Handoff("host1", "host2", MINE), 99) == MINE
    waiting = replace(MINE, enforced=False, endpoint_revision=5)
    assert handoff.adopted(handoff.Handoff("host1", "host2", waiting), 99).endpoint_revision == 99


def test_annotated_changes_only_the_annotations() -> None:
    value = {"metadata": {"name": "web", "annotations": {"a": "1"}}, "spec": {"x": 1}}
    assert handoff.annotated(value, {"b": "2"}) == {"metadata": {"name": "web", "annotations": {"a": "1", "b": "2"}},
                                                    "spec": {"x": 1}}  # fmt: skip
    assert handoff.annotated(value, {"a": None}) == {"metadata": {"name": "web"}, "spec": {"x": 1}}
    assert value["metadata"]["annotations"] == {"a": "1"}


# --- both kubelets ---------------------------------------------------------------------------


class TwoNodes(Lab):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.runtime2, self.network2 = FakeRuntime(), FakeNetwork()
        self.runtime2.next_pid = 500
        self.file2 = local.path(tmp, "host2")
        self.kubelet2 = Kubelet(self.store, "lab", "host2", self.runtime2, self.network2, FakeProber(), self.file2,
                                clock=lambda: self.now)  # fmt: skip
        self.store.watch_prefix("/registry/pods/", self.kubelet2.on_pod_event)

    def step(self, seconds: float = 0.2) -> None:
        self.now += seconds
        self.kubelet.step(self.now)
        self.kubelet2.step(self.now)

    def rewrite(self, change: dict[str, str | None], node: str | None = None) -> None:
        got = self.store.get_versioned(KEY)
        assert got is not None
        value = handoff.annotated(got.value, change)
        if node is not None:
            value["spec"] = {**value["spec"], "nodeName": node}
        assert put_if(self.store, KEY, value, got.revision)

    def annotations(self) -> dict:
        return dict(self.pod()["metadata"].get("annotations") or {})


@pytest.fixture
def two(tmp_path: Path) -> TwoNodes:
    return TwoNodes(tmp_path)


def test_a_moved_pod_keeps_running_and_its_new_node_carries_on(two: TwoNodes) -> None:
    proc = two.running_pod()
    proc.code = 1  # one restart, so there is a count to carry over
    two.step()
    two.step(1.1)
    proc = two.runtime.started[-1]
    assert two.container()["restartCount"] == 1
    two.rewrite({handoff.MIGRATE_TO: "host2"})
    two.step()
    given = handoff.decode(two.annotations()[handoff.HANDOFF])
    assert given is not None and (given.source, given.target) == ("host1", "host2")
    assert [(c.pid, c.start_ticks) for c in given.pod.containers] == [(proc.pid, proc.start_ticks)]
    assert KEY not in local.load(two.file) and proc.signals == []  # let go, nothing stopped
    two.step()
    assert two.network.deleted == [] and two.network2.added == []  # the move is under way: nobody's
    two.rewrite({handoff.MIGRATE_TO: None}, node="host2")  # migrate re-homes it
    two.step()
    assert [(p.pid, p.start_ticks) for p in two.runtime2.adopted] == [(proc.pid, proc.start_ticks)]
    assert two.runtime2.started == [] and handoff.HANDOFF not in two.annotations()
    assert KEY in local.load(two.file2)
    two.step()
    assert two.status()["phase"] == "Running" and two.ready() == "True"
    assert two.container()["restartCount"] == 1 and two.network.deleted == []
    two.runtime2.adopted[0].code = 137  # the new node restarts it, counted
    two.step()
    two.step(2.1)
    assert len(two.runtime2.started) == 1 and two.container()["restartCount"] == 2
    two.delete()  # and deletes it
    two.step()
    assert two.runtime2.started[0].signals == [signal.SIGTERM]
    two.step()
    assert two.network2.deleted == ["demo/web"] and two.store.get(KEY) is None and two.network.deleted == []


def test_a_withdrawn_request_leaves_the_pod_with_its_old_node(two: TwoNodes) -> None:
    proc = two.running_pod()
    two.rewrite({handoff.MIGRATE_TO: "host2"})
    two.step()
    assert handoff.HANDOFF in two.annotations()
    two.rewrite({handoff.MIGRATE_TO: None})  # migrate gave up before moving anything
    two.step()
    assert [p.pid for p in two.runtime.adopted] == [proc.pid] and len(two.runtime.started) == 1
    assert two.annotations() == {} and KEY in local.load(two.file)
    assert two.runtime2.adopted == [] and two.network2.added == []
