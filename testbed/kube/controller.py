"""The controllers a cluster runs for workloads, run by the CLI after each change it makes.

Deployment -> its current ReplicaSet (older ones removed, a recreate rollout); ReplicaSet
and ReplicationController -> as many pods as ``replicas``, each owned through
``metadata.ownerReferences``, spread over the hosts. Pods are made and removed with the
same code as ``testbed pod add|delete`` (``testbed.runtime.pods``): netns, veth, address,
records, program. Idempotent: running it twice changes nothing the second time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.kube import workloads
from testbed.kube.workloads import Workload
from testbed.model.topology import PodSpec

PREFIXES = {"Deployment": keys.DEPLOYMENTS, "ReplicaSet": keys.REPLICASETS, "ReplicationController": keys.CONTROLLERS}


def workload_key(kind: str, namespace: str, name: str) -> str:
    if kind == "Pod":
        return keys.pod(namespace, name)
    return f"{PREFIXES[kind]}{namespace}/{name}"


def stored_value(lab: str, workload: Workload, current: dict[str, Any] | None, created: float) -> dict[str, Any]:
    """The object as etcd holds it: the manifest, plus metadata the server fills in."""
    value = dict(workload.manifest)
    metadata = dict(value.get("metadata", {}))
    old = (current or {}).get("metadata", {})
    metadata["creationTimestamp"] = old.get("creationTimestamp", records.timestamp(created))
    metadata["uid"] = old.get("uid") or records.object_uid(lab, workload.kind, f"{workload.namespace}/{workload.name}", created)
    value["metadata"] = metadata
    return value


def load(value: dict[str, Any]) -> Workload:
    return workloads.parse_workload(value, value.get("metadata", {}).get("namespace", "default"))


@dataclass(frozen=True)
class PodChange:
    namespace: str
    name: str
    verb: str  # created | deleted


def _owned_pods(store: Datastore, namespace: str) -> dict[tuple[str, str], list[str]]:
    owned: dict[tuple[str, str], list[str]] = {}
    for value in store.list(keys.pods_in(namespace)).values():
        owner = workloads.owner_of(value)
        if owner is not None:
            owned.setdefault(owner, []).append(value["metadata"]["name"])
    return owned


def reconcile(lab: str, store: Datastore, namespaces: Iterable[str], rng: random.Random | None = None) -> list[PodChange]:
    """Bring the pods of every workload in ``namespaces`` to what the workloads ask."""
    from testbed.runtime import pods  # noqa: PLC0415 - the runtime is only needed when pods change

    rng = rng or random.Random()
    changes: list[PodChange] = []
    created: list[Any] = []
    for namespace in sorted(set(namespaces)):
        _reconcile_deployments(lab, store, namespace)
        owners: list[Workload] = [
            load(v) for prefix in (keys.REPLICASETS, keys.CONTROLLERS) for v in store.list(f"{prefix}{namespace}/").values()
        ]
        owned = _owned_pods(store, namespace)
        live = {(w.kind, w.name) for w in owners}
        for (kind, name), pod_names in owned.items():
            if (kind, name) not in live:  # the owner is gone: its pods go too (garbage collection)
                for pod_name in pod_names:
                    pods.delete_pod(lab, namespace, pod_name, store)
                    changes.append(PodChange(namespace, pod_name, "deleted"))
        for owner in owners:
            names = owned.get((owner.kind, owner.name), [])
            plan = workloads.plan_replicas(owner.replicas, names)
            for pod_name in plan.delete:
                pods.delete_pod(lab, namespace, pod_name, store)
                changes.append(PodChange(namespace, pod_name, "deleted"))
            taken = [k.rsplit("/", 1)[-1] for k in store.list(keys.pods_in(namespace))]
            for _ in range(plan.create):
                pod_name = workloads.pod_name(owner.name, taken, rng)
                taken.append(pod_name)
                created.append(pods.add_pod(lab, pod_spec(owner, pod_name), store, owner=workloads.owner_reference(owner), start=False))
                changes.append(PodChange(namespace, pod_name, "created"))
    start_when_ready(lab, store, created)
    return changes


def start_when_ready(lab: str, store: Datastore, plans: list[Any]) -> None:
    """Start the pods' programs once every host enforces their endpoints, as a kubelet
    starts containers after the CNI plugin is done: a program's first packet is then
    never dropped by a host that does not know its pod yet."""
    from testbed.runtime import pods, policy_agents  # noqa: PLC0415

    if not plans:
        return
    try:
        policy_agents.wait_enforced_everywhere(store)
    except TimeoutError:
        pass  # start anyway: the program retries, and the caller's own wait reports the lag
    for plan in plans:
        pods.start_program(lab, plan)


def _reconcile_deployments(lab: str, store: Datastore, namespace: str) -> None:
    """Each Deployment has exactly its current ReplicaSet; ReplicaSets of old templates go."""
    wanted: dict[str, dict[str, Any]] = {}
    for value in store.list(f"{keys.DEPLOYMENTS}{namespace}/").values():
        replica_set = workloads.replica_set_of(load(value))
        key = workload_key("ReplicaSet", namespace, replica_set.name)
        current = store.get(key)
        stored = stored_value(lab, replica_set, current, time.time())
        if current != stored:
            store.put(key, stored)
        wanted[key] = stored
    for key, value in store.list(f"{keys.REPLICASETS}{namespace}/").items():
        owner = workloads.owner_of(value)
        if owner is not None and owner[0] == "Deployment" and key not in wanted:
            store.delete(key)


def delete_workload(lab: str, store: Datastore, kind: str, namespace: str, name: str) -> list[PodChange]:
    """Remove a workload and, through the garbage collection of ``reconcile``, its pods."""
    store.delete(workload_key(kind, namespace, name))
    if kind == "Deployment":
        for key, value in store.list(f"{keys.REPLICASETS}{namespace}/").items():
            if workloads.owner_of(value) == ("Deployment", name):
                store.delete(key)
    return reconcile(lab, store, [namespace])


def status_of(store: Datastore, kind: str, value: dict[str, Any]) -> dict[str, int]:
    """replicas / ready / up-to-date counts, computed from the pods the workload owns."""
    namespace = value.get("metadata", {}).get("namespace", "default")
    name = value.get("metadata", {}).get("name", "")
    owned = _owned_pods(store, namespace)
    if kind == "Deployment":
        count = sum(len(p) for (k, n), p in owned.items() if k == "ReplicaSet" and n.startswith(f"{name}-"))
    else:
        count = len(owned.get((kind, name), []))
    desired = value.get("spec", {}).get("replicas", 1)
    return {"replicas": desired, "readyReplicas": count, "availableReplicas": count, "updatedReplicas": count}


def pod_spec(workload: Workload, name: str | None = None) -> PodSpec:
    template = workload.template
    return PodSpec(
        name=name or workload.name,
        namespace=workload.namespace,
        labels=template.labels,
        host=template.host,
        image=template.image,
        command=template.command,
        ports=template.ports,
    )


def create_bare_pod(lab: str, store: Datastore, pod: Workload) -> None:
    """A Pod manifest: one pod, no owner (its spec.nodeName, if any, picks the host)."""
    from testbed.runtime import pods  # noqa: PLC0415

    try:
        plan = pods.add_pod(lab, pod_spec(pod), store, start=False)
    except pods.PodError as exc:
        raise workloads.ManifestError([f"Error from server: {exc}"]) from None
    start_when_ready(lab, store, [plan])
