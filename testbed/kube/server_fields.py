"""What the API server adds to an object it stores: uid, creationTimestamp, generation,
defaults, and the status that only controllers and kubelets write. Pure.

A client's write never carries status (kubectl strips it, the API server ignores it on
the main resource): an update keeps the status already stored, and a new Pod starts
``Pending``. ``generation`` counts changes of ``spec``, which is how a controller's
``status.observedGeneration`` says it has seen the latest one.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from testbed.datastore import records

Value = dict[str, Any]
POD_DEFAULTS: Mapping[str, Any] = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "schedulerName": "default-scheduler",
    "serviceAccountName": "default",
}
WITH_TEMPLATE = ("Deployment", "ReplicaSet", "ReplicationController", "DaemonSet")


def default_pod_spec(spec: Mapping[str, Any]) -> Value:
    """A pod spec with the API server's defaults (restartPolicy Always, 30 s grace, ...)."""
    out = {**POD_DEFAULTS, **copy.deepcopy(dict(spec))}
    out.setdefault("serviceAccount", out["serviceAccountName"])
    return out


def defaulted(kind: str, manifest: Mapping[str, Any]) -> Value:
    """The manifest with its kind's defaults filled in (its own values win)."""
    value = copy.deepcopy(dict(manifest))
    spec = value.setdefault("spec", {})
    if kind == "Pod":
        value["spec"] = default_pod_spec(spec)
    elif kind in WITH_TEMPLATE:
        template = spec.setdefault("template", {})
        template["spec"] = default_pod_spec(template.get("spec", {}))
        if kind != "DaemonSet":
            spec.setdefault("replicas", 1)
        if kind == "Deployment":
            spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
    return value


def stored(kind: str, manifest: Mapping[str, Any], current: Mapping[str, Any] | None, now: float) -> Value:
    """The value to store for a client's ``manifest`` over ``current`` (None: a create)."""
    value = defaulted(kind, manifest)
    value.pop("status", None)
    metadata = value.setdefault("metadata", {})
    old = (current or {}).get("metadata", {})
    metadata["uid"] = old.get("uid") or str(uuid.uuid4())
    metadata["creationTimestamp"] = old.get("creationTimestamp") or records.timestamp(now)
    generation = int(old.get("generation", 0))
    metadata["generation"] = generation + 1 if current is None or current.get("spec") != value.get("spec") else generation
    for kept in ("deletionTimestamp", "deletionGracePeriodSeconds", "finalizers", "ownerReferences"):
        if kept in old and kept not in metadata:
            metadata[kept] = old[kept]
    if old.get("annotations"):  # what controllers noted (a Deployment's revision) stays; the client's win
        metadata["annotations"] = {**old["annotations"], **(metadata.get("annotations") or {})}
    if kind == "Pod" and current is not None and current.get("spec", {}).get("nodeName"):
        value["spec"]["nodeName"] = current["spec"]["nodeName"]  # a binding is not the client's to undo
    if current is not None and "status" in current:
        value["status"] = copy.deepcopy(current["status"])
    elif kind == "Pod":
        value["status"] = {"phase": "Pending"}
    return value


def same_for_client(current: Mapping[str, Any] | None, value: Mapping[str, Any]) -> bool:
    """Equal but for what the server fills in (what makes `apply` say "unchanged")."""
    if current is None:
        return False
    strip = ("creationTimestamp", "uid", "resourceVersion", "generation")

    def bare(v: Mapping[str, Any]) -> Value:
        out = {k: x for k, x in v.items() if k != "status"}
        out["metadata"] = {k: x for k, x in v.get("metadata", {}).items() if k not in strip}
        return out

    return bare(current) == bare(value)
