"""Handing a running pod from one node's kubelet to another's, for `testbed migrate` (pure).

A testbed extension, not Kubernetes: there ``spec.nodeName`` is immutable once set (a pod
never changes node; a controller deletes it and makes a new one elsewhere). `testbed
migrate` moves a live pod (its netns, address and processes stay; only the host end of
its veth moves), so the two kubelets hand it over through two annotations on the Pod,
every write conditional on the revision read:

1. migrate writes ``testbed.io/migrate-to: <host>`` (the request);
2. the kubelet of the pod's node, seeing it, stops managing the pod without stopping
   anything (processes, sandbox, netns and address stay), drops it from its state and
   file, and writes ``testbed.io/handoff``: JSON of what it held (each container's PID
   and start ticks, restart count, back-off, readiness; the pod's address and start);
3. migrate moves the veth, then in one transaction rewrites the WorkloadEndpoint, the
   Pod's ``spec.nodeName`` and ``status.hostIP``, and removes ``migrate-to``;
4. the kubelet of the new node, seeing a Pod bound to it that it does not hold, with a
   handoff and no request pending, adopts the containers (it watches them through /proc,
   not being their parent), saves them in its file, then removes ``handoff``.

A migrate that gives up before 3 removes ``migrate-to``: the Pod is still bound to the old
node, which adopts its own handoff back by rule 4. An old kubelet restarted between its
handoff write and its file save finds its own handoff on the Pod and only forgets the pod.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.kubelet import local as localfile
from agents.kubelet.local import LocalPod
from agents.kubelet.podspec import PodView

MIGRATE_TO = "testbed.io/migrate-to"
HANDOFF = "testbed.io/handoff"


@dataclass(frozen=True)
class Handoff:
    source: str  # the node that let the pod go
    target: str  # the node migrate asked for
    pod: LocalPod  # what ``source``'s kubelet held for it


def encode(source: str, target: str, held: LocalPod) -> str:
    return json.dumps({"from": source, "to": target, "pod": dataclasses.asdict(held)}, sort_keys=True)


def decode(raw: str | None) -> Handoff | None:
    """The handoff an annotation holds; None when absent or unreadable (never raises)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        held = localfile.from_json({"format": localfile.FORMAT, "pods": {"pod": data["pod"]}}).get("pod")
        source, target = data["from"], data["to"]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if held is None or not isinstance(source, str) or not isinstance(target, str):
        return None
    return Handoff(source, target, held)


# --- what the Pod says ------------------------------------------------------------------------


def moving_to(pod: PodView, host: str) -> str | None:
    """The node migrate asked this pod to move to, when that is not ``host``."""
    target = pod.annotation(MIGRATE_TO)
    return target if target and target != host else None


def of(pod: PodView) -> Handoff | None:
    """The pod's handoff, if it is this pod's (the same uid)."""
    given = decode(pod.annotation(HANDOFF))
    return given if given is not None and given.pod.uid == pod.uid else None


def handing_off(host: str, pod: PodView, held: LocalPod) -> bool:
    """``host``'s kubelet, holding ``held``, lets the pod go (without stopping it): a move
    away is asked and the pod runs here undisturbed (networked, not being deleted), or it
    handed the pod off already (the Pod says so) and must only forget it."""
    if held.orphan or pod.uid != held.uid:
        return False
    given = of(pod)
    away = moving_to(pod, host) is not None
    if given is not None and given.source == host and (pod.node != host or away):
        return True
    return away and pod.node == host and held.networked and not pod.deleting and not held.terminating


def adoptable(host: str, pod: PodView) -> bool:
    """A pod bound to ``host`` that its kubelet does not hold, handed off and not (any more)
    asked to move: the new node after the move, or the old one after migrate gave up."""
    return pod.node == host and moving_to(pod, host) is None and of(pod) is not None


def adopted(given: Handoff, revision: int) -> LocalPod:
    """What the adopting kubelet holds: the pod as handed off. Containers not started yet
    wait until every Felix enforces the Pod's revision ``revision`` (it moved the endpoint)."""
    held = given.pod
    if held.enforced:
        return held
    return dataclasses.replace(held, endpoint_revision=revision)


# --- the Pod's value, rewritten -------------------------------------------------------------


def annotated(value: Mapping[str, Any], changes: Mapping[str, str | None]) -> dict[str, Any]:
    """The Pod with each annotation of ``changes`` set (None: removed); nothing else changes."""
    new = copy.deepcopy(dict(value))
    meta = new.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    for name, text in changes.items():
        if text is None:
            annotations.pop(name, None)
        else:
            annotations[name] = text
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return new


def annotation_of(value: Mapping[str, Any], name: str) -> str | None:
    raw = ((value.get("metadata") or {}).get("annotations") or {}).get(name)
    return None if raw is None else str(raw)


def handoff_in(value: Mapping[str, Any]) -> Handoff | None:
    """The handoff on a stored Pod value, if it is this pod's (the same uid)."""
    given = decode(annotation_of(value, HANDOFF))
    uid = str((value.get("metadata") or {}).get("uid") or "")
    return given if given is not None and given.pod.uid == uid else None
