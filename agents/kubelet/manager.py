"""The containers of the pods a kubelet holds: start, watch for exits, restart after the
back-off, probe, kill (SIGTERM, then SIGKILL once the grace period is over), adopt after
a restart. It keeps the processes and probe states; what it decides is in ``lifecycle``
and ``probes`` (pure), what it runs goes through the ``Runtime`` and ``Prober`` seams.
Nothing here waits: each call looks once and returns the container's new record.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections.abc import Hashable

from agents.kubelet import lifecycle, probes
from agents.kubelet.containers import Process, Runtime, attach_exit
from agents.kubelet.local import ContainerRun, LocalPod
from agents.kubelet.podspec import Container, PodView
from agents.kubelet.prober import Prober
from testbed import images, naming
from testbed.kube import events
from testbed.netns import sandbox, security

LOG = logging.getLogger("agents.kubelet")
PURPOSES = ("readiness", "liveness")
COMPONENT = "kubelet"  # the source of its events


def container_ref(pod: PodView, container: str) -> dict[str, str]:
    """The ``involvedObject`` of an event about one container of ``pod``."""
    return {"kind": "Pod", "apiVersion": "v1", "namespace": pod.namespace, "name": pod.name, "uid": pod.uid,
            "fieldPath": f"spec.containers{{{container}}}"}  # fmt: skip


class ContainerManager:
    def __init__(self, lab: str, runtime: Runtime, prober: Prober | None = None) -> None:
        self.lab, self.runtime, self.prober = lab, runtime, prober
        self.procs: dict[tuple[str, str], Process] = {}  # (pod key, container) -> its process
        self.probe_states: dict[tuple[str, str, str], probes.ProbeState] = {}  # + purpose

    def sync(self, pod: PodView, held: LocalPod, now: float) -> LocalPod:
        """A pod that runs: exits seen, starts due (first ones, or after the back-off),
        probes run and judged."""
        for spec in pod.containers:
            run = held.container(spec.name) or ContainerRun(spec.name)
            run = self.reap(pod.key, pod, run, now, stopping=False)
            if lifecycle.due_to_start(run, now):
                run = self._start(pod, spec, run, now, held.ip)
            if run.state == "running":
                run = self._probe(pod, held, spec, run, now)
            held = held.with_container(run)
        return held

    def stop(self, key: str, pod: PodView | None, held: LocalPod, now: float, grace: float) -> LocalPod:
        """A pod going away: nothing restarts, every process gets SIGTERM (once), then
        SIGKILL after ``grace``; done when no container is ``lifecycle.alive``."""
        runs = []
        for run in held.containers:
            run = self.reap(key, pod, lifecycle.stop_waiting(run), now, stopping=True)
            if lifecycle.alive(run):
                if run.kill_at is None and pod is not None:
                    events.emit(container_ref(pod, run.name), "Killing", f"Stopping container {run.name}",
                                component=COMPONENT)  # fmt: skip
                run = self._kill(key, run, now, grace)
            runs.append(run)
        for state_key in [k for k in self.probe_states if k[0] == key]:
            del self.probe_states[state_key]
        return dataclasses.replace(held, containers=tuple(runs))

    def reap(self, key: str, pod: PodView | None, run: ContainerRun, now: float, stopping: bool) -> ContainerRun:
        """An exit seen (or SIGKILL sent, when the grace period ran out)."""
        if not lifecycle.alive(run):
            return run
        proc = self.procs.get((key, run.name))
        code = proc.poll() if proc is not None else lifecycle.UNKNOWN_EXIT
        if code is None:
            if run.kill_at is not None and now >= run.kill_at and proc is not None:
                proc.signal(signal.SIGKILL)
            return run
        self.procs.pop((key, run.name), None)
        self._forget_probes(key, run.name)
        namespace, _, name = _ref(key).partition("/")
        attached = attach_exit(self.lab, namespace, name, run.name)
        if attached is not None:  # the command an attach ran in its place, and how it ended
            code, unknown = attached, False
        else:
            unknown = proc is None or proc.unknown_exit
        policy = pod.restart_policy if pod is not None else "Never"
        after = lifecycle.exited(run, code, now, policy, stopping, reason="ContainerStatusUnknown" if unknown else None)
        LOG.info("container %s of %s exited %d%s", run.name, _ref(key), code,
                 f"; restart in {after.delay:g} s" if after.state == "waiting" else "")  # fmt: skip
        return after

    def adopt(self, held: LocalPod, now: float) -> None:
        """Containers an earlier kubelet process started: watched again, never started twice.
        One that passed its readiness probe stays Ready until a probe says otherwise."""
        for run in held.containers:
            if lifecycle.alive(run) and run.pid is not None:
                self.procs[(held.key, run.name)] = self.runtime.adopt(run.pid, run.start_ticks)
                if run.ready:
                    self.probe_states[(held.key, run.name, "readiness")] = probes.ProbeState(next_due=now, passing=True)

    def probe_result(self, token: Hashable, ok: bool, pod: PodView | None, held: LocalPod | None, now: float) -> None:
        key, name, purpose, runs = token  # type: ignore[misc]
        run = held.container(name) if held else None
        state = self.probe_states.get((key, name, purpose))
        spec = next((c for c in pod.containers if c.name == name), None) if pod else None
        probe = None if spec is None else (spec.readiness if purpose == "readiness" else spec.liveness)
        if run is None or state is None or probe is None or run.runs != runs or run.state != "running":
            return  # a result for a run that is over
        self.probe_states[(key, name, purpose)] = probes.record(state, probe, ok, now)

    def forget(self, key: str) -> None:
        for proc_key in [k for k in self.procs if k[0] == key]:
            del self.procs[proc_key]
        for state_key in [k for k in self.probe_states if k[0] == key]:
            del self.probe_states[state_key]

    def _start(self, pod: PodView, spec: Container, run: ContainerRun, now: float, ip: str | None = None) -> ContainerRun:
        try:
            proc = self.runtime.start(pod, spec, ip)
        except images.UnknownImage as exc:
            events.emit(container_ref(pod, spec.name), "Failed", f"Failed to pull image \"{spec.image}\": {exc}", "Warning",
                        component=COMPONENT)  # fmt: skip
            return lifecycle.cannot_start(run, "ErrImagePull", str(exc))
        except security.SecurityError as exc:
            return lifecycle.cannot_start(run, "CreateContainerConfigError", str(exc))
        except (OSError, sandbox.SandboxError) as exc:
            LOG.warning("cannot start container %s of %s: %s", spec.name, pod.ref, exc)
            failed = lifecycle.started(run, None, None, now)
            return lifecycle.exited(failed, 128, now, pod.restart_policy, stopping=False, reason="StartError")
        if proc is not None:
            self.procs[(pod.key, spec.name)] = proc
        run = lifecycle.started(run, proc.pid if proc else None, proc.start_ticks if proc else None, now)
        LOG.info("started container %s of %s%s", spec.name, pod.ref, f" as pid {proc.pid}" if proc else " (no program)")
        ref = container_ref(pod, spec.name)
        if run.runs <= 1:
            events.emit(ref, "Pulled", f'Container image "{spec.image}" already present on machine', component=COMPONENT)
        events.emit(ref, "Created", f"Created container: {spec.name}", component=COMPONENT)
        events.emit(ref, "Started", f"Started container {spec.name}", component=COMPONENT)
        return dataclasses.replace(run, ready=spec.readiness is None)

    def _probe(self, pod: PodView, held: LocalPod, spec: Container, run: ContainerRun, now: float) -> ContainerRun:
        for purpose in PURPOSES:
            probe = spec.readiness if purpose == "readiness" else spec.liveness
            if probe is None or run.kill_at is not None:
                continue
            state_key = (pod.key, spec.name, purpose)
            state = self.probe_states.get(state_key) or probes.initial(purpose, probe, run.started_at or now)  # type: ignore[arg-type]
            if probes.due(state, now) and self.prober is not None and held.ip:
                netns = naming.pod_netns(self.lab, pod.namespace, pod.name)
                token = (pod.key, spec.name, purpose, run.runs)
                self.prober.submit(token, netns, held.ip, spec.image, probe, spec.resolve_port(probe.port))
                state = probes.launched(state)
            self.probe_states[state_key] = state
            if purpose == "liveness" and not state.passing:
                LOG.info("liveness probe of container %s of %s failed: killing it", spec.name, pod.ref)
                ref = container_ref(pod, spec.name)
                events.emit(ref, "Unhealthy", "Liveness probe failed", "Warning", component=COMPONENT)
                events.emit(ref, "Killing", f"Container {spec.name} failed liveness probe, will be restarted",
                            component=COMPONENT)  # fmt: skip
                if run.idle:  # no process to wait for: dead at once
                    self._forget_probes(pod.key, spec.name)
                    return lifecycle.exited(run, 137, now, pod.restart_policy, stopping=False)
                run = self._kill(pod.key, run, now, pod.grace_seconds)
        readiness = self.probe_states.get((pod.key, spec.name, "readiness"))
        ready = spec.readiness is None or (readiness is not None and readiness.passing)
        return dataclasses.replace(run, ready=ready and run.kill_at is None)

    def _kill(self, key: str, run: ContainerRun, now: float, grace: float) -> ContainerRun:
        """SIGTERM now (once); ``reap`` sends SIGKILL when the grace period is over."""
        if run.kill_at is None and (proc := self.procs.get((key, run.name))) is not None:
            proc.signal(signal.SIGTERM)
        return lifecycle.kill(run, now, grace)

    def _forget_probes(self, key: str, name: str) -> None:
        for purpose in PURPOSES:
            self.probe_states.pop((key, name, purpose), None)


def _ref(key: str) -> str:
    return "/".join(key.split("/")[-2:])
