"""The kubelet's pure parts: reading a Pod, back-off, container life, probes, status, the
desired/actual decision, its file."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agents.kubelet import backoff, desired, lifecycle, local, probes, status
from agents.kubelet.desired import Action
from agents.kubelet.local import ContainerRun, LocalPod
from agents.kubelet.podspec import PodView, SpecError, parse_pod

KEY = "/registry/pods/demo/web"
T0 = 1_800_000_000.0


def pod_value(**spec: object) -> dict:
    container = {"name": "web", "image": "nginx", "ports": [{"name": "http", "containerPort": 80}]}
    return {
        "metadata": {"name": "web", "namespace": "demo", "uid": "u1", "labels": {"app": "web"}},
        "spec": {"nodeName": "host1", "containers": [container], **spec},
        "status": {"phase": "Pending"},
    }


def with_container(**fields: object) -> dict:
    value = pod_value()
    value["spec"]["containers"][0].update(fields)
    return value


# --- podspec ------------------------------------------------------------------------------


def test_a_pod_reads_with_kubernetes_defaults() -> None:
    pod = parse_pod(KEY, pod_value())
    assert (pod.namespace, pod.name, pod.uid, pod.node) == ("demo", "web", "u1", "host1")
    assert (pod.restart_policy, pod.grace_seconds, pod.deleting, pod.termination_grace) == ("Always", 30, False, 30)
    assert pod.containers[0].command == ()
    assert not pod.networked_elsewhere


def test_command_and_args_make_one_command() -> None:
    pod = parse_pod(KEY, with_container(image="busybox", command=["sh", "-c"], args=["sleep 1"]))
    assert pod.containers[0].command == ("sh", "-c", "sleep 1")


def test_probe_defaults_and_a_named_port() -> None:
    pod = parse_pod(KEY, with_container(readinessProbe={"httpGet": {"path": "healthz", "port": "http"}}))
    probe = pod.containers[0].readiness
    assert probe is not None
    assert (probe.kind, probe.path, probe.period, probe.timeout, probe.success_threshold, probe.failure_threshold) == (
        "httpGet", "/healthz", 10.0, 1.0, 1, 3,
    )  # fmt: skip
    assert pod.containers[0].resolve_port(probe.port) == 80


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"readinessProbe": {"httpGet": {"port": "nope"}}}, "spec.containers[0].readinessProbe.httpGet.port: container web has no port named 'nope'"),
        ({"livenessProbe": {"tcpSocket": {"port": 80}, "exec": {"command": ["true"]}}}, "spec.containers[0].livenessProbe: needs exactly one of"),
        ({"livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2}}, "livenessProbe.successThreshold: must be 1"),
        ({"readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 0}}, "readinessProbe.periodSeconds: expected an integer >= 1"),
        ({"image": ""}, "spec.containers[0].image: missing"),
    ],
)  # fmt: skip
def test_a_bad_field_is_one_line_naming_pod_and_field(fields: dict, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_pod(KEY, with_container(**fields))
    assert str(caught.value).startswith("pod demo/web: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_restart_policy_and_grace_are_checked() -> None:
    with pytest.raises(SpecError, match="pod demo/web: spec.restartPolicy: 'Sometimes'"):
        parse_pod(KEY, pod_value(restartPolicy="Sometimes"))
    value = pod_value(terminationGracePeriodSeconds=5)
    value["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=2)
    pod = parse_pod(KEY, value)
    assert (pod.deleting, pod.grace_seconds, pod.termination_grace) == (True, 5, 2)


def test_a_pod_networked_by_another_path_is_recognised() -> None:
    value = pod_value()
    value["status"] = {"phase": "Running", "podIP": "10.65.0.1"}
    assert parse_pod(KEY, value).networked_elsewhere
    value["status"]["containerStatuses"] = [{"name": "web"}]
    assert not parse_pod(KEY, value).networked_elsewhere


# --- back-off and container life ----------------------------------------------------------


def test_back_off_doubles_to_its_cap_and_resets_after_a_long_run() -> None:
    delays, previous = [], None
    for _ in range(7):
        previous = backoff.next_delay(previous, ran_for=1.0)
        delays.append(previous)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next_delay(30.0, ran_for=60.0) == 1.0


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 2, True), ("Never", 1, False)],
)
def test_restart_policy(policy: str, code: int, restarts: bool) -> None:
    assert backoff.restarts(policy, code) is restarts


def running(at: float = T0, pid: int = 42) -> ContainerRun:
    return lifecycle.started(ContainerRun("web"), pid, 7, at)


def test_an_exit_waits_in_crash_loop_back_off_then_restarts_counted() -> None:
    run = lifecycle.exited(running(), 137, T0 + 5, "Always", stopping=False)
    assert (run.state, run.reason, run.ready, run.restart_at) == ("waiting", "CrashLoopBackOff", False, T0 + 6)
    assert run.last_state["terminated"]["exitCode"] == 137
    assert run.last_state["terminated"]["containerID"] == "testbed://42"
    assert not lifecycle.due_to_start(run, T0 + 5.9)
    assert lifecycle.due_to_start(run, T0 + 6)
    again = lifecycle.started(run, 43, 8, T0 + 6)
    assert (again.state, again.restart_count, again.runs) == ("running", 1, 2)
    assert lifecycle.exited(again, 1, T0 + 7, "Always", stopping=False).delay == 2.0


def test_no_restart_when_the_policy_says_so_or_the_pod_is_stopping() -> None:
    done = lifecycle.exited(running(), 0, T0 + 1, "OnFailure", stopping=False)
    assert (done.state, done.reason, done.exit_code) == ("terminated", "Completed", 0)
    stopped = lifecycle.exited(running(), 143, T0 + 1, "Always", stopping=True)
    assert (stopped.state, stopped.reason) == ("terminated", "Error")


def test_a_kill_waits_at_least_the_minimum_grace_and_keeps_its_first_deadline() -> None:
    run = lifecycle.kill(running(), T0, 0)
    assert run.kill_at == T0 + lifecycle.MIN_GRACE_SECONDS and not run.ready
    assert lifecycle.kill(run, T0 + 1, 30).kill_at == T0 + lifecycle.MIN_GRACE_SECONDS


# --- probes -------------------------------------------------------------------------------


def test_readiness_needs_its_successes_and_flips_after_its_failures() -> None:
    pod = parse_pod(KEY, with_container(readinessProbe={
        "tcpSocket": {"port": 80}, "initialDelaySeconds": 2, "periodSeconds": 1, "successThreshold": 2, "failureThreshold": 2,
    }))  # fmt: skip
    probe = pod.containers[0].readiness
    assert probe is not None
    state = probes.initial("readiness", probe, T0)
    assert not state.passing and not probes.due(state, T0 + 1.9) and probes.due(state, T0 + 2)
    assert not probes.due(probes.launched(state), T0 + 3)
    state = probes.record(state, probe, True, T0 + 2)
    assert not state.passing and state.next_due == T0 + 2 + probes.UNTIL_READY_SECONDS
    state = probes.record(state, probe, True, T0 + 3)
    assert state.passing and state.next_due == T0 + 4
    state = probes.record(state, probe, False, T0 + 4)
    assert state.passing
    assert not probes.record(state, probe, False, T0 + 5).passing


def test_a_readiness_probe_that_never_passed_is_retried_soon_then_a_period_apart_once_it_did() -> None:
    pod = parse_pod(KEY, with_container(readinessProbe={"tcpSocket": {"port": 80}, "periodSeconds": 10}))
    probe = pod.containers[0].readiness
    assert probe is not None
    state = probes.record(probes.initial("readiness", probe, T0), probe, False, T0)  # not listening yet
    assert state.next_due == T0 + probes.UNTIL_READY_SECONDS
    state = probes.record(state, probe, True, T0 + 1)
    assert state.passing and state.next_due == T0 + 11
    state = probes.record(state, probe, False, T0 + 11)  # one failure of three: still Ready
    assert state.passing and state.next_due == T0 + 21
    state = probes.record(state, probe, False, T0 + 21)
    state = probes.record(state, probe, False, T0 + 31)
    assert not state.passing and state.next_due == T0 + 41  # Ready once: failures a period apart


def test_a_failing_liveness_probe_keeps_its_period() -> None:
    pod = parse_pod(KEY, with_container(livenessProbe={"tcpSocket": {"port": 80}, "periodSeconds": 5, "failureThreshold": 3}))
    probe = pod.containers[0].liveness
    assert probe is not None
    state = probes.record(probes.initial("liveness", probe, T0), probe, False, T0)
    assert state.passing and state.next_due == T0 + 5


def test_liveness_starts_passing() -> None:
    pod = parse_pod(KEY, with_container(livenessProbe={"exec": {"command": ["true"]}, "failureThreshold": 1}))
    probe = pod.containers[0].liveness
    assert probe is not None
    state = probes.initial("liveness", probe, T0)
    assert state.passing
    assert not probes.record(state, probe, False, T0).passing


# --- status -------------------------------------------------------------------------------


def pod_view(**fields: object) -> PodView:
    return replace(parse_pod(KEY, pod_value()), **fields)


def held(*runs: ContainerRun, ip: str | None = "10.65.0.5") -> LocalPod:
    return LocalPod(KEY, "u1", "demo", "web", seen_at=T0, ip=ip, containers=runs or (ContainerRun("web"),))


def test_status_while_the_network_is_made_is_pending_container_creating() -> None:
    got = status.pod_status(pod_view(), held(ip=None), "172.18.203.11", {"phase": "Pending"}, T0)
    assert got["phase"] == "Pending" and "podIP" not in got
    assert got["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert {c["type"]: c["status"] for c in got["conditions"]} == {
        "PodScheduled": "True", "Initialized": "True", "ContainersReady": "False", "Ready": "False",
    }  # fmt: skip


def test_status_of_a_ready_pod() -> None:
    run = replace(running(), ready=True)
    got = status.pod_status(pod_view(), held(run), "172.18.203.11", {}, T0 + 1)
    assert (got["phase"], got["podIP"], got["podIPs"], got["hostIP"]) == (
        "Running", "10.65.0.5", [{"ip": "10.65.0.5"}], "172.18.203.11",
    )  # fmt: skip
    assert got["startTime"] == lifecycle.timestamp(T0)
    assert got["containerStatuses"] == [{
        "name": "web", "image": "nginx", "imageID": "", "containerID": "testbed://42", "ready": True, "started": True,
        "restartCount": 0, "state": {"running": {"startedAt": lifecycle.timestamp(T0)}}, "lastState": {},
    }]  # fmt: skip
    assert [c["status"] for c in got["conditions"] if c["type"] == "Ready"] == ["True"]


def test_the_same_inputs_give_the_same_status_and_transitions_keep_their_times() -> None:
    first = status.pod_status(pod_view(), held(running()), None, {}, T0)
    assert status.pod_status(pod_view(), held(running()), None, first, T0 + 50) == first
    ready = status.pod_status(pod_view(), held(replace(running(), ready=True)), None, first, T0 + 60)
    times = {c["type"]: c["lastTransitionTime"] for c in ready["conditions"]}
    assert times["Initialized"] == lifecycle.timestamp(T0) and times["Ready"] == lifecycle.timestamp(T0 + 60)


def test_the_schedulers_condition_and_unknown_fields_are_kept() -> None:
    previous = {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
                               {"type": "Custom", "status": "True"}], "nominatedNodeName": "x"}  # fmt: skip
    got = status.pod_status(pod_view(), held(running()), None, previous, T0)
    assert got["nominatedNodeName"] == "x"
    assert got["conditions"][0] == previous["conditions"][0]
    assert [c["type"] for c in got["conditions"]] == ["PodScheduled", "Initialized", "ContainersReady", "Ready", "Custom"]


def test_phase_follows_the_containers() -> None:
    done = lifecycle.exited(running(), 0, T0 + 1, "Never", stopping=False)
    failed = lifecycle.exited(running(), 3, T0 + 1, "Never", stopping=False)
    backing_off = lifecycle.exited(running(), 3, T0 + 1, "Always", stopping=False)
    assert status.phase(pod_view(), held(done)) == "Succeeded"
    assert status.phase(pod_view(), held(failed)) == "Failed"
    assert status.phase(pod_view(), held(backing_off)) == "Running"
    got = status.pod_status(pod_view(), held(backing_off), None, {}, T0 + 1)
    assert got["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert got["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 3


# --- desired against actual ---------------------------------------------------------------


def test_decide() -> None:
    pod, mine = pod_view(), held()
    assert desired.decide("host1", pod, None) is Action.ADD
    assert desired.decide("host1", pod, mine) is Action.SYNC
    assert desired.decide("host2", pod, None) is Action.IGNORE
    assert desired.decide("host1", None, mine) is Action.TEARDOWN
    assert desired.decide("host1", replace(pod, uid="u2"), mine) is Action.TEARDOWN
    assert desired.decide("host1", replace(pod, node="host2"), mine) is Action.TEARDOWN
    assert desired.decide("host1", replace(pod, deleting=True), mine) is Action.TERMINATE
    assert desired.decide("host1", replace(pod, deleting=True), None) is Action.DELETE
    assert desired.decide("host1", replace(pod, networked_elsewhere=True), None) is Action.IGNORE
    assert desired.decide("host1", None, replace(mine, orphan=True)) is Action.TEARDOWN


def test_orphan_endpoints_are_this_nodes_without_a_pod_bound_here() -> None:
    endpoints = [("host1", "demo", "gone"), ("host1", "demo", "moved"), ("host1", "demo", "here"),
                 ("host2", "demo", "other"), ("host1", "demo", "held")]  # fmt: skip
    pods = {"/registry/pods/demo/moved": "host2", "/registry/pods/demo/here": "host1"}
    held_here = {"/registry/pods/demo/held": held()}
    assert desired.orphan_endpoints("host1", endpoints, pods, held_here) == [("demo", "gone"), ("demo", "moved")]


# --- the kubelet's file -------------------------------------------------------------------


def test_the_file_round_trips_and_a_foreign_one_reads_as_empty(tmp_path) -> None:
    pods = {KEY: held(lifecycle.exited(running(), 1, T0 + 2, "Always", stopping=False))}
    file = local.path(tmp_path, "host1")
    local.save(file, pods)
    assert local.load(file) == pods
    file.write_text('{"format": 99, "pods": {}}')
    assert local.load(file) == {}
    file.write_text("not json")
    assert local.load(file) == {}


def test_host_down() -> None:
    assert desired.host_down(False, None, T0, 30) and not desired.host_down(True, None, T0, 30)
    assert not desired.host_down(None, None, T0, 30)  # never reported: starting, wait
    assert desired.host_down(None, {"updated": T0 - 31}, T0, 30)
    assert not desired.host_down(None, {"updated": T0 - 29}, T0, 30)
