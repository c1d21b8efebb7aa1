"""The Deployment controller: one ReplicaSet per pod template, rolled as the strategy says.

The ReplicaSet of the current template is ``<deployment>-<template hash>`` (label and
selector ``pod-template-hash``); the others are old. RollingUpdate scales the new one up
while the pods of all of them stay within ``replicas + maxSurge``, and the old ones down
while at least ``replicas - maxUnavailable`` pods stay available (Kubernetes' rolling.go
arithmetic; surge rounds up, unavailable down). Recreate scales every old one to 0 and
waits until their pods are gone before the new one gets any. Old ReplicaSets at 0 are
kept up to ``revisionHistoryLimit``; the new one carries annotation
``deployment.kubernetes.io/revision`` (max of the old ones + 1), and so does the
Deployment.

Each pass makes at most one write, then reads again. Every write to a ReplicaSet also
rewrites the Deployment expecting the revision it was read at: two controller managers,
or a client changing the template in between, make the write fail instead of acting on
a stale Deployment (the pass re-reads). The arithmetic and the status are pure, in
``rollout``.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from testbed.controllers import objects as obj
from testbed.controllers.rollout import (
    DEFAULT_HISTORY,
    REVISION,
    Rollout,
    deployment_status,
    new_rs_target,
    old_scale_down,
    oldest_first,
    replicas_of,
    revision_of,
    rolling_limits,
    strategy_of,
)
from testbed.datastore import keys, records
from testbed.datastore.base import Datastore, Value, Versioned, WatchEvent, delete_if
from testbed.kube import events
from testbed.kube.workloads import TEMPLATE_HASH_LABEL, template_hash

LOG = logging.getLogger("testbed.controllers.deployments")


class DeploymentController:
    name = "deployment"
    prefixes = (keys.DEPLOYMENTS, keys.REPLICASETS, keys.PODS)

    def __init__(self) -> None:
        self._owners = obj.OwnerIndex("Deployment", lambda ns, name: keys.namespaced(keys.DEPLOYMENTS, ns, name))

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        if event.key.startswith(keys.DEPLOYMENTS):
            return [event.key]
        try:
            prefix = keys.REPLICASETS if event.key.startswith(keys.REPLICASETS) else keys.PODS
            namespace, name = keys.split_namespaced(event.key, prefix)
        except keys.KeyFormatError:
            return []
        if prefix == keys.PODS:  # a pod gone: a Recreate may be waiting for it
            if event.kind != "delete":
                return []
            return [keys.namespaced(keys.DEPLOYMENTS, namespace, name.rsplit("-", 2)[0])] if name.count("-") >= 2 else []
        found = self._owners.owners(namespace, event.key, event.kind, event.value)
        if event.kind == "delete" and not found:
            found.add(keys.namespaced(keys.DEPLOYMENTS, namespace, name.rsplit("-", 1)[0]))
        if event.kind == "put" and not found and event.value is not None and obj.controller_of(event.value) is None:
            found.add(keys.namespaced(keys.DEPLOYMENTS, namespace, name.rsplit("-", 1)[0]))  # an orphan to adopt?
        return sorted(found)

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        return sorted(store.list_versioned(keys.DEPLOYMENTS)[0])

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        rollout = Rollout()
        try:
            return obj.in_passes(lambda: self._pass(store, key, now, rollout))
        finally:
            for line in rollout.logs:
                LOG.info("%s", line)

    # --- one pass -------------------------------------------------------------------------

    def _pass(self, store: Datastore, key: str, now: float, rollout: Rollout) -> tuple[bool, float | None]:
        current = store.get_versioned(key)
        if current is None:
            return True, None  # its ReplicaSets are the garbage collector's
        d = current.value
        uid = obj.uid_of(d)
        try:
            namespace, name = keys.split_namespaced(key, keys.DEPLOYMENTS)
        except keys.KeyFormatError:
            return True, None
        if uid is None:
            obj.stamp_server_fields(store, key, current, now)
            return True, None
        if obj.is_terminating(d):
            return True, None
        where = f"deployment {namespace}/{name}"
        listed, _ = store.list_versioned(f"{keys.REPLICASETS}{namespace}/")
        selector = obj.spec(d).get("selector")
        for rs_key, rs in sorted(listed.items()):
            if (
                obj.controller_of(rs.value) is None and not obj.is_terminating(rs.value)
                and obj.adopts(selector, obj.labels_of(rs.value))
            ):  # fmt: skip
                adopted = obj.adopted(rs.value, obj.owner_reference(d, "Deployment", "apps/v1"))
                if self._write(store, current, {rs_key: adopted}, {rs_key: rs.revision}):
                    rollout.logs.append(f"adopted replicaset {namespace}/{keys.name_of(rs_key)} for {where}")
                return False, None
        owned = {k: v for k, v in listed.items() if obj.owned_by(v.value, uid)}
        template = obj.spec(d).get("template") or {}
        digest = template_hash(template)
        new_key = keys.namespaced(keys.REPLICASETS, namespace, f"{name}-{digest}")
        if new_key in listed and new_key not in owned:
            LOG.warning("%s: replicaset %s belongs to another owner; waiting", where, keys.name_of(new_key))
            return True, 5.0
        new = owned.get(new_key)
        olds = [v for k, v in owned.items() if k != new_key]
        replicas = obj.int_field(obj.spec(d), "replicas", 1)
        max_old = max((revision_of(v.value) for v in olds), default=0)

        if obj.spec(d).get("paused"):
            return self._finish(store, key, current, new, olds, rollout, now)
        if new is not None and revision_of(new.value) <= max_old:  # back to an older template
            rs = copy.deepcopy(new.value)
            rs["metadata"].setdefault("annotations", {})[REVISION] = str(max_old + 1)
            if self._write(store, current, {new_key: rs}, {new_key: new.revision}):
                rollout.logs.append(f"replicaset {namespace}/{keys.name_of(new_key)} is revision {max_old + 1} of {where}")
            return False, None
        strategy = strategy_of(d)
        surge, unavailable = rolling_limits(d)
        if strategy == "Recreate":
            step = self._recreate(store, current, namespace, new, olds, replicas)
        else:
            step = self._rolling(current, new, olds, replicas, surge, unavailable)
        if step is None and new is None:
            if strategy == "Recreate" and self._old_pods_left(store, namespace, olds):
                return self._finish(store, key, current, new, olds, rollout, now)  # their pods' deletes wake us
            zero: Value = {"spec": {"replicas": 0}}
            target = replicas if strategy == "Recreate" else new_rs_target(replicas, surge, zero, (v.value for v in olds))
            rs = self._new_replica_set(d, new_key, digest, target, max_old + 1, now)
            if self._write(store, current, {new_key: rs}, {new_key: 0}):
                rollout.created, rollout.acted = keys.name_of(new_key), True
                rollout.logs.append(f"created replicaset {namespace}/{keys.name_of(new_key)} for {where} with {target} replicas")
                events.emit(events.involved(d, "Deployment", "apps/v1"), "ScalingReplicaSet",
                            f"Scaled up replica set {keys.name_of(new_key)} from 0 to {target}",
                            component="deployment-controller")  # fmt: skip
            return False, None
        if step is not None:
            rs_key, target = step
            rs_v = owned[rs_key]
            rs = copy.deepcopy(rs_v.value)
            before = replicas_of(rs)
            rs["spec"]["replicas"] = target
            if rs_key == new_key:
                _sync_min_ready(rs, d)
            rs["metadata"]["generation"] = obj.generation_of(rs) + 1
            if self._write(store, current, {rs_key: rs}, {rs_key: rs_v.revision}):
                rollout.acted = True
                rollout.logs.append(f"scaled replicaset {namespace}/{keys.name_of(rs_key)} from {before} to {target} for {where}")
                events.emit(events.involved(d, "Deployment", "apps/v1"), "ScalingReplicaSet",
                            f"Scaled {'up' if target > before else 'down'} replica set {keys.name_of(rs_key)} "
                            f"from {before} to {target}", component="deployment-controller")  # fmt: skip
            return False, None
        if self._clean_history(store, d, olds, where, rollout):
            return False, None
        return self._finish(store, key, current, new, olds, rollout, now)

    def _write(self, store: Datastore, current: Versioned, puts: Mapping[str, Value], expect: Mapping[str, int]) -> bool:
        """ReplicaSet writes, fenced by the Deployment's revision (rewritten unchanged)."""
        key = _key_of(current.value)
        return store.commit({**puts, key: current.value}, expect={**expect, key: current.revision})

    def _rolling(
        self, current: Versioned, new: Versioned | None, olds: list[Versioned], replicas: int, surge: int, unavailable: int
    ) -> tuple[str, int] | None:
        if new is None:
            return None  # created first (by the caller), as rolling.go does
        everything = [v.value for v in olds] + [new.value]
        target = new_rs_target(replicas, surge, new.value, everything)
        if target != replicas_of(new.value) or _min_ready_differs(new.value, current.value):
            return _key_of(new.value), target
        downs = old_scale_down(replicas, unavailable, new.value, olds)
        if downs:
            rs_key = next(_key_of(v.value) for v in oldest_first(olds) if _key_of(v.value) in downs)
            return rs_key, downs[rs_key]
        return None

    def _recreate(
        self, store: Datastore, current: Versioned, namespace: str, new: Versioned | None, olds: list[Versioned], replicas: int
    ) -> tuple[str, int] | None:
        for v in oldest_first(olds):
            if replicas_of(v.value) != 0:
                return _key_of(v.value), 0
        if new is not None and (replicas_of(new.value) != replicas or _min_ready_differs(new.value, current.value)):
            if not self._old_pods_left(store, namespace, olds):
                return _key_of(new.value), replicas
        return None

    def _old_pods_left(self, store: Datastore, namespace: str, olds: list[Versioned]) -> bool:
        """Recreate waits for every pod of the old ReplicaSets to be gone (not just deleting)."""
        uids = {obj.uid_of(v.value) for v in olds}
        if not uids:
            return False
        for pod in store.list(keys.pods_in(namespace)).values():
            ref = obj.controller_of(pod)
            if ref is not None and ref.get("uid") in uids and obj.status(pod).get("phase") not in ("Succeeded", "Failed"):
                return True
        return False

    def _new_replica_set(self, d: Mapping[str, Any], key: str, digest: str, replicas: int, revision: int, now: float) -> Value:
        template = copy.deepcopy(obj.spec(d).get("template") or {})
        tpl_meta = template.setdefault("metadata", {})
        labels = {**(tpl_meta.get("labels") or {}), TEMPLATE_HASH_LABEL: digest}
        tpl_meta["labels"] = labels
        selector = copy.deepcopy(obj.spec(d).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), TEMPLATE_HASH_LABEL: digest}
        namespace, name = keys.split_namespaced(key, keys.REPLICASETS)
        rs: Value = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": records.timestamp(now),
                "generation": 1,
                "labels": dict(labels),
                "annotations": {REVISION: str(revision)},
                "ownerReferences": [obj.owner_reference(d, "Deployment", "apps/v1")],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        }
        _sync_min_ready(rs, d)
        return rs

    def _clean_history(self, store: Datastore, d: Mapping[str, Any], olds: list[Versioned], where: str, rollout: Rollout) -> bool:
        limit = obj.int_field(obj.spec(d), "revisionHistoryLimit", DEFAULT_HISTORY)
        idle = [
            v for v in oldest_first(olds)
            if replicas_of(v.value) == 0 and obj.int_field(obj.status(v.value), "replicas", 0) == 0
            and not obj.is_terminating(v.value)
        ]  # fmt: skip
        if len(idle) <= limit:
            return False
        doomed = idle[0]
        if delete_if(store, _key_of(doomed.value), doomed.revision):
            rollout.logs.append(
                f"deleted replicaset {obj.metadata(doomed.value).get('namespace')}/{obj.metadata(doomed.value).get('name')} "
                f"of {where} (revisionHistoryLimit {limit})"
            )
        return True

    def _finish(
        self, store: Datastore, key: str, current: Versioned, new: Versioned | None, olds: list[Versioned],
        rollout: Rollout, now: float,
    ) -> tuple[bool, float | None]:  # fmt: skip
        d = current.value
        new_status, wait = deployment_status(d, new.value if new is not None else None, [v.value for v in olds], rollout, now)
        value = obj.with_status(d, new_status)
        revision = str(revision_of(new.value)) if new is not None else None
        annotations = dict(obj.metadata(d).get("annotations") or {})
        if revision is not None and annotations.get(REVISION) != revision:
            annotations[REVISION] = revision
            value["metadata"]["annotations"] = annotations
        if value != d and not store.commit({key: value}, expect={key: current.revision}):
            return False, None
        return True, wait


def build(**options: Any) -> DeploymentController:
    """For the manager (no options of its own; others' are ignored)."""
    return DeploymentController()


def _key_of(value: Mapping[str, Any]) -> str:
    meta = obj.metadata(value)
    prefix = keys.DEPLOYMENTS if value.get("kind") == "Deployment" else keys.REPLICASETS
    return keys.namespaced(prefix, str(meta.get("namespace", "default")), str(meta.get("name", "")))


def _sync_min_ready(rs: Value, d: Mapping[str, Any]) -> None:
    wanted = obj.int_field(obj.spec(d), "minReadySeconds", 0)
    if wanted:
        rs["spec"]["minReadySeconds"] = wanted
    else:
        rs["spec"].pop("minReadySeconds", None)


def _min_ready_differs(rs: Mapping[str, Any], d: Mapping[str, Any]) -> bool:
    return obj.int_field(obj.spec(rs), "minReadySeconds", 0) != obj.int_field(obj.spec(d), "minReadySeconds", 0)
