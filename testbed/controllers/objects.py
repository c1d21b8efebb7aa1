"""What the workload controllers share: reading stored objects (owner references, pod
state, label selectors), building pods from a template, and deleting pods as the API
server does (gracefully when a kubelet has them, outright when none ever did).

Pure functions over stored values (dicts): no store access here.
"""

from __future__ import annotations

import calendar
import copy
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from testbed.datastore import records
from testbed.datastore.base import Datastore, Value, Versioned, put_if
from testbed.kube import workloads

DEFAULT_GRACE_SECONDS = 30  # Pod spec.terminationGracePeriodSeconds default
DEFAULT_RESTART_POLICY = "Always"
MAX_PASSES = 12  # read-decide-write passes per reconcile (each pass makes at most one write)
BATCH = 50  # pods created or deleted per transaction: 2 operations each, within etcd's 128
GENERATED_BASE = 57  # the owner part of a generated name: `<owner>-<5 chars>` fits 63


def metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    value = obj.get("spec")
    return value if isinstance(value, dict) else {}


def status(obj: Mapping[str, Any]) -> dict[str, Any]:
    value = obj.get("status")
    return value if isinstance(value, dict) else {}


def uid_of(obj: Mapping[str, Any]) -> str | None:
    uid = metadata(obj).get("uid")
    return uid if isinstance(uid, str) and uid else None


def generation_of(obj: Mapping[str, Any]) -> int:
    generation = metadata(obj).get("generation")
    return generation if isinstance(generation, int) else 1


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    labels = metadata(obj).get("labels")
    return dict(labels) if isinstance(labels, dict) else {}


def int_field(obj: Mapping[str, Any], name: str, default: int) -> int:
    value = obj.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# --- ownership --------------------------------------------------------------------------


def owner_reference(owner: Mapping[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    """The controller ownerReference a dependent carries (with the owner's uid)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": metadata(owner).get("name", ""),
        "uid": uid_of(owner) or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_references(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    refs = metadata(obj).get("ownerReferences")
    return [r for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []


def controller_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true``, or None (an orphan)."""
    return next((r for r in owner_references(obj) if r.get("controller")), None)


def owned_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    """Is ``obj`` controlled by the object with ``uid`` (by uid, never by name)?"""
    ref = controller_of(obj)
    return uid is not None and ref is not None and ref.get("uid") == uid


def adopted(obj: Mapping[str, Any], ref: Mapping[str, Any]) -> Value:
    """``obj`` with ``ref`` added to its ownerReferences (a controller adopting an orphan)."""
    value = copy.deepcopy(dict(obj))
    value.setdefault("metadata", {})["ownerReferences"] = [*owner_references(obj), dict(ref)]
    return value


# --- selectors ----------------------------------------------------------------------------


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: None selects nothing, ``{}`` everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or ():
        key, operator, values = req.get("key"), req.get("operator"), req.get("values") or ()
        present = key in labels
        if operator == "In":
            ok = present and labels[key] in values
        elif operator == "NotIn":
            ok = not present or labels[key] not in values
        elif operator == "Exists":
            ok = present
        elif operator == "DoesNotExist":
            ok = not present
        else:
            return False
        if not ok:
            return False
    return True


def adopts(selector: object, labels: Mapping[str, str]) -> bool:
    """May a controller with this selector adopt an orphan with these labels? Never with
    an empty selector (it would take every orphan of the namespace)."""
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    return selector_matches(selector, labels)


# --- time -------------------------------------------------------------------------------


def parse_time(text: object) -> float | None:
    """An RFC 3339 timestamp as stored (``2024-01-02T03:04:05Z``, fractions allowed)."""
    if not isinstance(text, str) or not text.endswith("Z"):
        return None
    whole, _, fraction = text[:-1].partition(".")
    try:
        seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return seconds + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


# --- pods -------------------------------------------------------------------------------


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool(metadata(obj).get("deletionTimestamp"))


def is_active_pod(pod: Mapping[str, Any]) -> bool:
    """Counted by its controller: not being deleted, not finished."""
    return not is_terminating(pod) and status(pod).get("phase") not in ("Succeeded", "Failed")


def condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in status(obj).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def is_ready_pod(pod: Mapping[str, Any]) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Mapping[str, Any]) -> float | None:
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def available_in(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> float | None:
    """Seconds until a Ready pod counts as available (0: it does); None if not Ready."""
    if not is_ready_pod(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = ready_since(pod)
    return 0.0 if since is None else max(0.0, since + min_ready_seconds - now)


def restarts_of(pod: Mapping[str, Any]) -> int:
    return sum(int_field(c, "restartCount", 0) for c in status(pod).get("containerStatuses") or () if isinstance(c, dict))


_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key: the pods a controller removes first come first (Kubernetes' ActivePods
    order): unscheduled, then pending, not ready, ready for the shortest time, most
    restarted, newest."""
    created = parse_time(metadata(pod).get("creationTimestamp")) or 0.0
    return (
        1 if spec(pod).get("nodeName") else 0,
        _PHASE_ORDER.get(str(status(pod).get("phase")), 0),
        1 if is_ready_pod(pod) else 0,
        -(ready_since(pod) or 0.0),
        -restarts_of(pod),
        -created,
        metadata(pod).get("name", ""),
    )


def generated_name(owner: str, taken: Iterable[str], rng: random.Random) -> str:
    """``<owner>-<5 chars>`` (Kubernetes' generateName), unused among ``taken``."""
    return workloads.pod_name(owner[:GENERATED_BASE], list(taken), rng)


def new_pod(
    owner: Mapping[str, Any],
    ref: Mapping[str, Any],
    name: str,
    now: float,
    *,
    extra_labels: Mapping[str, str] | None = None,
    node_name: str | None = None,
) -> Value:
    """A Pod from its owner's ``spec.template``: Pending, owned, not scheduled (unless
    ``node_name``), with the defaults the API server fills in."""
    template = spec(owner).get("template") or {}
    tpl_meta = template.get("metadata") or {}
    namespace = metadata(owner).get("namespace", "default")
    pod_meta: dict[str, Any] = {
        "name": name,
        "generateName": f"{metadata(owner).get('name', '')[:GENERATED_BASE]}-",
        "namespace": namespace,
        "uid": str(uuid.uuid4()),
        "creationTimestamp": records.timestamp(now),
        "labels": {**(tpl_meta.get("labels") or {}), **(extra_labels or {})},
        "ownerReferences": [dict(ref)],
    }
    if tpl_meta.get("annotations"):
        pod_meta["annotations"] = dict(tpl_meta["annotations"])
    pod_spec = copy.deepcopy(template.get("spec") or {})
    pod_spec.setdefault("restartPolicy", DEFAULT_RESTART_POLICY)
    pod_spec.setdefault("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    pod_spec.setdefault("serviceAccountName", "default")
    if node_name is not None:
        pod_spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec, "status": {"phase": "Pending"}}


def pod_deletion(pod: Mapping[str, Any], now: float) -> Value | None:
    """Deleting a pod as the API server does: the pod with ``deletionTimestamp`` (when
    the deletion was asked, as the rest of the lab's control plane stamps it; Kubernetes
    itself stamps now + grace) and ``deletionGracePeriodSeconds``, for its kubelet to stop
    and remove; None when it was never scheduled (no kubelet has it: removed outright). A
    pod already being deleted is returned unchanged."""
    if not spec(pod).get("nodeName"):
        return None
    value = copy.deepcopy(dict(pod))
    meta = value.setdefault("metadata", {})
    if not meta.get("deletionTimestamp"):
        grace = int_field(spec(pod), "terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        meta["deletionTimestamp"] = records.timestamp(now)
        meta["deletionGracePeriodSeconds"] = grace
    return value


def namespace_accepts(namespace: Versioned | None) -> bool:
    """May objects be created in this namespace (it exists and is not Terminating)?"""
    if namespace is None:
        return False
    value = namespace.value
    return not is_terminating(value) and status(value).get("phase") != "Terminating"


def with_status(obj: Mapping[str, Any], new_status: Mapping[str, Any]) -> Value:
    value = copy.deepcopy(dict(obj))
    value["status"] = dict(new_status)
    return value


def stamp_server_fields(store: Datastore, key: str, current: Versioned, now: float) -> bool:
    """An object written into etcd by something other than the CLI (etcdctl, a test's
    store) has none of the fields the API server sets: give it a uid, creationTimestamp
    and generation, as the server would have on create, with a conditional write (the
    write wakes its controller again). False if another writer got there first."""
    value = copy.deepcopy(dict(current.value))
    meta = value.setdefault("metadata", {})
    meta.setdefault("uid", str(uuid.uuid4()))
    meta.setdefault("creationTimestamp", records.timestamp(now))
    meta.setdefault("generation", 1)
    return put_if(store, key, value, current.revision)


Pass = Callable[[], tuple[bool, float | None]]  # one read-decide-write: (done, look again after)


def in_passes(one_pass: Pass) -> float | None:
    """``reconcile`` of every controller: passes until one says it is done (each makes at
    most one write, so a race lost costs a pass, not the reconcile), at most MAX_PASSES."""
    for _ in range(MAX_PASSES):
        done, after = one_pass()
        if done:
            return after
    return 0.5  # kept losing races, or more to do than a few passes: look again soon


class OwnerIndex:
    """Which owner a dependent's event concerns: its controller reference on a put, and for a
    delete (which carries no value) the owner remembered from the dependent's last put.
    Thread-safe: watch threads call ``owners``, the manager's workers do not touch it."""

    def __init__(self, kind: str, key_of: Callable[[str, str], str]) -> None:
        self.kind, self.key_of = kind, key_of  # key_of(namespace, owner name) -> owner key
        self._owner_of: dict[str, str] = {}
        self._lock = threading.Lock()

    def owners(self, namespace: str, event_key: str, kind: str, value: Mapping[str, Any] | None) -> set[str]:
        """The owner keys of the dependent at ``event_key`` (``kind``: put or delete), before
        and after the event (an adoption or a release concerns both)."""
        ref = controller_of(value) if value is not None else None
        owner = self.key_of(namespace, str(ref.get("name"))) if ref is not None and ref.get("kind") == self.kind else None
        with self._lock:
            before = self._owner_of.pop(event_key, None)
            if owner is not None and kind == "put":
                self._owner_of[event_key] = owner
        return {k for k in (before, owner) if k is not None}
