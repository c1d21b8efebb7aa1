"""The Deployment controller (with the ReplicaSet controller) over the in-memory store."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from testbed.controllers import objects as obj
from testbed.controllers.base import Controller, settle
from testbed.controllers.deployments import DeploymentController
from testbed.controllers.rollout import REVISION, rolling_limits
from testbed.controllers.replicasets import replica_set_controller
from testbed.datastore import keys
from testbed.datastore.base import put_if
from testbed.datastore.memory import MemoryDatastore
from testbed.kube.workloads import template_hash
from tests.unit.controller_fixtures import (
    NOW,
    active_pods,
    add_namespace,
    key_of,
    kubelet,
    pods,
    ready_pods,
    schedule_all,
    template,
    update_spec,
    workload,
)

LABELS = {"app": "web"}
A = template(LABELS, "nginx:1.25")
B = template(LABELS, "nginx:1.26")


def controllers() -> list[Controller]:
    return [DeploymentController(), replica_set_controller(random.Random(5))]


def setup(replicas: int = 4, **spec: Any) -> tuple[MemoryDatastore, str]:
    store = MemoryDatastore()
    add_namespace(store)
    d = workload("Deployment", "web", replicas, LABELS, **spec)
    store.put(key_of(d), d)
    return store, key_of(d)


def replica_sets(store: MemoryDatastore) -> dict[str, dict[str, Any]]:
    return {keys.name_of(k): v for k, v in store.list(keys.REPLICASETS).items()}


def deployment(store: MemoryDatastore, key: str) -> dict[str, Any]:
    value = store.get(key)
    assert value is not None
    return value


def conditions(store: MemoryDatastore, key: str) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in deployment(store, key)["status"]["conditions"]}


def run_until_complete(store: MemoryDatastore, key: str, ready_per_step: int | None = 1, steps: int = 40) -> int:
    """Controllers settle, then the stand-in kubelet acts (one pod Ready per step), until
    the rollout is complete. Returns the number of steps."""
    now = NOW
    for step in range(steps):
        settle(store, controllers(), now)
        if conditions(store, key)["Progressing"][1] == "NewReplicaSetAvailable":
            return step
        schedule_all(store)
        now += 1
        kubelet(store, now, ready=ready_per_step)
    raise AssertionError(f"rollout not complete after {steps} steps: {deployment(store, key)['status']}")


def watch_every_write(store: MemoryDatastore, check: Callable[[], None]) -> None:
    store.watch_prefix(keys.REGISTRY, lambda _event: check())


# --- rounding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (4, None, None, (1, 1)),  # 25 % of 4
        (10, None, None, (3, 2)),  # surge rounds up, unavailable down
        (3, None, None, (1, 0)),
        (10, 2, "30%", (2, 3)),
        (5, "0%", 0, (0, 1)),  # both 0 is not allowed: one may be unavailable
        (2, 0, 5, (0, 2)),  # never more unavailable than replicas
    ],
)
def test_rolling_limits(replicas: int, surge: Any, unavailable: Any, expected: tuple[int, int]) -> None:
    rolling = {k: v for k, v in (("maxSurge", surge), ("maxUnavailable", unavailable)) if v is not None}
    d = {"spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling}}}
    assert rolling_limits(d) == expected


# --- creating -----------------------------------------------------------------------------


def test_a_deployment_gets_its_replica_set_and_pods() -> None:
    store, key = setup(3)
    DeploymentController().reconcile(store, key, NOW)
    assert conditions(store, key)["Progressing"] == ("True", "NewReplicaSetCreated")
    settle(store, controllers(), NOW)
    d = deployment(store, key)
    digest = template_hash(d["spec"]["template"])
    (name, rs), = replica_sets(store).items()
    assert name == f"web-{digest}"
    assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": digest}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": digest}}
    assert rs["spec"]["replicas"] == 3
    assert rs["metadata"]["annotations"][REVISION] == "1" and d["metadata"]["annotations"][REVISION] == "1"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    made = pods(store)
    assert len(made) == 3
    assert all(p["metadata"]["labels"] == {"app": "web", "pod-template-hash": digest} for p in made.values())
    assert all(p["metadata"]["name"].startswith(f"web-{digest}-") for p in made.values())
    assert d["status"]["observedGeneration"] == 1 and d["status"]["replicas"] == 3
    assert conditions(store, key) == {  # the pods exist: progress
        "Available": ("False", "MinimumReplicasUnavailable"),
        "Progressing": ("True", "ReplicaSetUpdated"),
    }
    steps = run_until_complete(store, key, ready_per_step=None)
    assert steps == 1
    status = deployment(store, key)["status"]
    assert {k: status[k] for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")} == {
        "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3, "unavailableReplicas": 0,
    }  # fmt: skip
    assert conditions(store, key) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }


def test_settled_deployment_writes_nothing() -> None:
    store, key = setup(2)
    run_until_complete(store, key, ready_per_step=None)
    before = store.revision()
    settle(store, controllers(), NOW + 100)
    assert store.revision() == before


# --- rolling update --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "rolling", "surge", "unavailable"),
    [
        (4, {}, 1, 1),
        (4, {"maxSurge": 0, "maxUnavailable": 1}, 0, 1),
        (4, {"maxSurge": "50%", "maxUnavailable": 0}, 2, 0),
        (5, {"maxSurge": 0, "maxUnavailable": 0}, 0, 1),
        (10, {"maxSurge": 3, "maxUnavailable": "20%"}, 3, 2),
    ],
)
def test_rolling_update_stays_within_surge_and_unavailable_at_every_write(
    replicas: int, rolling: dict[str, Any], surge: int, unavailable: int
) -> None:
    store, key = setup(replicas, strategy={"type": "RollingUpdate", "rollingUpdate": rolling})
    run_until_complete(store, key, ready_per_step=None)
    seen = {"most": 0, "fewest_ready": replicas}

    def check() -> None:
        seen["most"] = max(seen["most"], len(active_pods(store)))
        seen["fewest_ready"] = min(seen["fewest_ready"], len(ready_pods(store)))

    watch_every_write(store, check)
    update_spec(store, key, template=B)
    steps = run_until_complete(store, key, ready_per_step=1)
    assert seen["most"] <= replicas + surge, seen
    assert seen["fewest_ready"] >= replicas - unavailable, seen
    assert seen["most"] == replicas + surge or surge == 0, "the surge is used"
    new_hash = template_hash(B)
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in active_pods(store).values()} == {new_hash}
    assert len(active_pods(store)) == replicas and steps >= replicas // max(surge + unavailable, 1)
    rs = replica_sets(store)
    assert rs[f"web-{new_hash}"]["spec"]["replicas"] == replicas
    assert rs[f"web-{template_hash(A)}"]["spec"]["replicas"] == 0, "the old one is kept, at 0"
    assert rs[f"web-{new_hash}"]["metadata"]["annotations"][REVISION] == "2"
    assert deployment(store, key)["metadata"]["annotations"][REVISION] == "2"
    assert deployment(store, key)["status"]["observedGeneration"] == 2


def test_progressing_says_replica_set_updated_during_a_rollout() -> None:
    store, key = setup(4)
    run_until_complete(store, key, ready_per_step=None)
    update_spec(store, key, template=B)
    DeploymentController().reconcile(store, key, NOW + 1)
    assert conditions(store, key)["Progressing"] == ("True", "NewReplicaSetCreated")
    settle(store, controllers(), NOW + 1)
    schedule_all(store)
    kubelet(store, NOW + 2, ready=1)
    settle(store, controllers(), NOW + 2)
    assert conditions(store, key) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "ReplicaSetUpdated"),
    }


def test_progress_deadline_exceeded() -> None:
    store, key = setup(2, progressDeadlineSeconds=30)
    settle(store, controllers(), NOW)
    wait = DeploymentController().reconcile(store, key, NOW + 10)
    assert wait == 20.0
    settle(store, controllers(), NOW + 31)
    assert conditions(store, key)["Progressing"] == ("False", "ProgressDeadlineExceeded")
    schedule_all(store)
    kubelet(store, NOW + 32)
    settle(store, controllers(), NOW + 32)
    assert conditions(store, key)["Progressing"] == ("True", "NewReplicaSetAvailable")


def test_rollback_reuses_the_old_replica_set_with_a_new_revision() -> None:
    store, key = setup(2)
    run_until_complete(store, key, ready_per_step=None)
    update_spec(store, key, template=B)
    run_until_complete(store, key, ready_per_step=None)
    update_spec(store, key, template=A)
    run_until_complete(store, key, ready_per_step=None)
    rs = replica_sets(store)
    assert len(rs) == 2
    assert rs[f"web-{template_hash(A)}"]["metadata"]["annotations"][REVISION] == "3"
    assert rs[f"web-{template_hash(A)}"]["spec"]["replicas"] == 2
    assert deployment(store, key)["metadata"]["annotations"][REVISION] == "3"


def test_revision_history_limit() -> None:
    store, key = setup(1, revisionHistoryLimit=2)
    for image in ("nginx:1", "nginx:2", "nginx:3", "nginx:4", "nginx:5"):
        update_spec(store, key, template=template(LABELS, image))
        run_until_complete(store, key, ready_per_step=None)
    rs = replica_sets(store)
    assert len(rs) == 3, sorted(rs)
    revisions = sorted(int(v["metadata"]["annotations"][REVISION]) for v in rs.values())
    assert revisions == [3, 4, 5]  # nginx:1 was revision 1
    assert rs[f"web-{template_hash(template(LABELS, 'nginx:5'))}"]["spec"]["replicas"] == 1


# --- scaling, Recreate -----------------------------------------------------------------------


def test_scale_up_and_down() -> None:
    store, key = setup(2)
    run_until_complete(store, key, ready_per_step=None)
    update_spec(store, key, replicas=5)
    run_until_complete(store, key, ready_per_step=None)
    assert len(active_pods(store)) == 5
    update_spec(store, key, replicas=1)
    run_until_complete(store, key, ready_per_step=None)
    assert len(active_pods(store)) == 1
    (rs,) = replica_sets(store).values()
    assert rs["spec"]["replicas"] == 1 and rs["metadata"]["generation"] == 3
    assert deployment(store, key)["status"]["replicas"] == 1


def test_recreate_removes_every_old_pod_before_the_first_new_one() -> None:
    store, key = setup(3, strategy={"type": "Recreate"})
    run_until_complete(store, key, ready_per_step=None)
    old_hash, new_hash = template_hash(A), template_hash(B)
    overlap = []

    def check() -> None:
        hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods(store).values()}
        if old_hash in hashes and new_hash in hashes:
            overlap.append(hashes)

    watch_every_write(store, check)
    update_spec(store, key, template=B)
    settle(store, controllers(), NOW + 1)
    assert len(pods(store)) == 3 and not active_pods(store), "old pods terminating, no new ones yet"
    assert f"web-{new_hash}" not in replica_sets(store)
    run_until_complete(store, key, ready_per_step=None)
    assert not overlap
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in active_pods(store).values()} == {new_hash}
    assert len(active_pods(store)) == 3


# --- racing ------------------------------------------------------------------------------


def apply(store: MemoryDatastore, manifest: dict[str, Any]) -> None:
    """What a `kubectl apply` writes: create if absent, else the new spec (conditional,
    generation bumped when the spec changed), retried when it lost a race."""
    key = key_of(manifest)
    for _ in range(200):
        current = store.get_versioned(key)
        if current is None:
            if put_if(store, key, manifest, 0):
                return
            continue
        value = current.value
        if value["spec"] == manifest["spec"]:
            return
        value["spec"] = manifest["spec"]
        value["metadata"]["generation"] = obj.generation_of(value) + 1
        if put_if(store, key, value, current.revision):
            return
    raise AssertionError("apply kept losing")


def test_five_concurrent_applies_and_two_controller_managers_end_with_replicas_pods() -> None:
    store = MemoryDatastore()
    add_namespace(store)
    manifest = workload("Deployment", "web", 3, LABELS)
    most = [0]
    store.watch_prefix(keys.PODS, lambda _e: most.__setitem__(0, max(most[0], len(active_pods(store)))))
    stop = threading.Event()

    def manager(seed: int) -> None:
        own = [DeploymentController(), replica_set_controller(random.Random(seed))]
        while not stop.is_set():
            for key in list(store.list(keys.DEPLOYMENTS)) + list(store.list(keys.REPLICASETS)):
                next(c for c in own if key.startswith(c.prefixes[0])).reconcile(store, key, NOW)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    managers = [threading.Thread(target=manager, args=(s,)) for s in (1, 2)]
    appliers = [threading.Thread(target=apply, args=(store, manifest)) for _ in range(5)]
    try:
        for t in (*managers, *appliers):
            t.start()
        for t in appliers:
            t.join()
        for _ in range(50):  # let the managers run a while after the applies
            settle(store, [], NOW)
    finally:
        stop.set()
        for t in managers:
            t.join()
        sys.setswitchinterval(switch)
    settle(store, controllers(), NOW)
    assert len(store.list(keys.DEPLOYMENTS)) == 1 and len(replica_sets(store)) == 1
    assert len(active_pods(store)) == 3 and len(pods(store)) == 3
    assert most[0] <= 3


def test_template_flapping_between_applies_never_exceeds_the_surge() -> None:
    """Applies of two templates in turn, each while the rollout of the other is under way:
    pods stay within replicas + maxSurge at every write, and the last template wins."""
    store, key = setup(4)
    run_until_complete(store, key, ready_per_step=None)
    most = [0]
    watch_every_write(store, lambda: most.__setitem__(0, max(most[0], len(active_pods(store)))))
    now = NOW
    for i in range(6):
        update_spec(store, key, template=B if i % 2 == 0 else template(LABELS, f"nginx:{i}"))
        settle(store, controllers(), now)
        schedule_all(store)
        now += 1
        kubelet(store, now, ready=1)
    run_until_complete(store, key, ready_per_step=1)
    assert most[0] <= 5
    assert {p["spec"]["containers"][0]["image"] for p in active_pods(store).values()} == {"nginx:5"}
