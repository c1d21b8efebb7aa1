"""Waiting on status, as `kubectl wait` and `kubectl rollout status` do: the CLI, `up` and
the pytest plugin write objects and then wait here until the controllers and kubelets
have made them real. Predicates are pure; ``wait_for`` polls the store (bounded).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from testbed.controllers import objects as obj
from testbed.datastore.base import Datastore

Value = Mapping[str, Any]
POLL_SECONDS = 0.05


def _observed(value: Value) -> bool:
    generation = int(value.get("metadata", {}).get("generation", 1))
    return int(value.get("status", {}).get("observedGeneration", 0)) >= generation


def pod_ready(value: Value) -> bool:
    """Ready, or done (a pod that ran to completion is as far as it will get)."""
    return obj.is_ready_pod(value) or value.get("status", {}).get("phase") == "Succeeded"


def deployment_complete(value: Value) -> bool:
    """`kubectl rollout status`'s test: the new ReplicaSet has every replica, all available,
    and no old pods remain."""
    spec, status = value.get("spec", {}), value.get("status", {})
    want = int(spec.get("replicas", 1))
    return (
        _observed(value)
        and int(status.get("updatedReplicas", 0)) == want
        and int(status.get("replicas", 0)) == want
        and int(status.get("availableReplicas", 0)) == want
    )


def replicas_ready(value: Value) -> bool:
    """A ReplicaSet or ReplicationController with all its replicas ready."""
    want = int(value.get("spec", {}).get("replicas", 1))
    status = value.get("status", {})
    return _observed(value) and int(status.get("replicas", 0)) == want and int(status.get("readyReplicas", 0)) == want


def daemon_set_ready(value: Value) -> bool:
    status = value.get("status", {})
    return _observed(value) and int(status.get("numberReady", 0)) == int(status.get("desiredNumberScheduled", -1))


READY: dict[str, Callable[[Value], bool]] = {
    "Pod": pod_ready,
    "Deployment": deployment_complete,
    "ReplicaSet": replicas_ready,
    "ReplicationController": replicas_ready,
    "DaemonSet": daemon_set_ready,
}


def is_ready(value: Value) -> bool:
    """Whether an object of a kind with a readiness notion is ready (True for other kinds)."""
    check = READY.get(str(value.get("kind")))
    return True if check is None else check(value)


def wait_for(
    store: Datastore,
    keys: Sequence[str],
    done: Callable[[Value | None], bool],
    timeout: float,
    what: str = "ready",
) -> float:
    """Poll until ``done`` holds for the value under every key (None: the key is gone);
    seconds waited. TimeoutError naming the keys that are not."""
    started = time.monotonic()
    pending = list(keys)
    while True:
        pending = [k for k in pending if not done(store.get(k))]
        if not pending:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            shown = ", ".join(k.removeprefix("/registry/") for k in pending[:5])
            more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
            raise TimeoutError(f"not {what} within {timeout:g} s: {shown}{more}")
        time.sleep(POLL_SECONDS)


class Deleted(TimeoutError):
    """What was waited on was deleted meanwhile (by a namespace's deletion, another client)."""


def wait_ready(store: Datastore, keys: Sequence[str], timeout: float) -> float:
    """Until every object is ready; Deleted at once if one of them goes away."""

    def done(value: Value | None) -> bool:
        if value is None:
            raise Deleted
        return is_ready(value)

    try:
        return wait_for(store, keys, done, timeout)
    except Deleted:
        gone = [k for k in keys if store.get(k) is None]
        raise Deleted(f"deleted while waiting for it to be ready: {', '.join(k.removeprefix('/registry/') for k in gone)}") from None


def wait_gone(store: Datastore, keys: Sequence[str], timeout: float) -> float:
    return wait_for(store, keys, lambda v: v is None, timeout, what="deleted")


READY_TIMEOUT = 60.0  # seconds for the pods of what was written to be Ready
GONE_TIMEOUT = 60.0  # seconds for what was deleted to be gone (pods: their grace period too)


def settle(store: Datastore, ready: Sequence[str | None] = (), gone: Sequence[str] = ()) -> None:
    """What a client that wrote objects waits for (bounded): what it deleted gone, what it
    wrote Ready (for kinds with a notion of it), then every host's policy agent enforcing
    it. TimeoutError naming what is late; the control plane goes on regardless."""
    from testbed.runtime.policy_agents import wait_enforced_everywhere  # noqa: PLC0415

    if gone:
        wait_gone(store, gone, GONE_TIMEOUT)
    keys = [k for k in ready if k]
    if keys:
        wait_ready(store, keys, READY_TIMEOUT)
    if store.last_write_revision:
        wait_enforced_everywhere(store)
