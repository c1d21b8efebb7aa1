"""kubectl's get, delete and label for namespaces, pods and network policies, on etcd."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.kube.errors import ManifestError
from testbed.kube.objects import NETWORK_POLICIES, POLICY_KIND, STORED_ONLY, Change, policy_key
from testbed.labels import label_key_problem, label_value_problem

KINDS = {
    "networkpolicy": "networkpolicies", "networkpolicies": "networkpolicies", "netpol": "networkpolicies",
    "namespace": "namespaces", "namespaces": "namespaces", "ns": "namespaces",
    "pod": "pods", "pods": "pods", "po": "pods",
    "service": "services", "services": "services", "svc": "services",
    "deployment": "deployments", "deployments": "deployments", "deploy": "deployments",
    "replicaset": "replicasets", "replicasets": "replicasets", "rs": "replicasets",
    "replicationcontroller": "replicationcontrollers", "replicationcontrollers": "replicationcontrollers",
    "rc": "replicationcontrollers",
    "node": "nodes", "nodes": "nodes", "no": "nodes",
}  # fmt: skip
for _kind, (_group, _plural, _namespaced) in STORED_ONLY.items():
    for _alias in (_kind.lower(), _plural, f"{_plural}.{_group}" if _group else _plural):
        KINDS.setdefault(_alias, _plural)
    KINDS.setdefault(f"{_kind.lower()}.{_group}" if _group else _kind.lower(), _plural)

# plural -> where its objects live (a prefix + "<ns>/<name>"), for namespaced kinds
PREFIXES = {
    "pods": keys.PODS,
    "services": keys.SERVICES,
    "deployments": keys.DEPLOYMENTS,
    "replicasets": keys.REPLICASETS,
    "replicationcontrollers": keys.CONTROLLERS,
    "networkpolicies": NETWORK_POLICIES,
}
CLUSTER_SCOPED = {"namespaces": keys.K8S_NAMESPACES, "nodes": keys.NODES}

# plural -> how kubectl names one object of the kind in result lines and `-o name`
SINGULARS = {
    "pods": "pod", "services": "service", "deployments": "deployment.apps", "replicasets": "replicaset.apps",
    "replicationcontrollers": "replicationcontroller", "networkpolicies": POLICY_KIND, "namespaces": "namespace",
    "nodes": "node",
}  # fmt: skip


def singular(plural: str) -> str:
    """``SINGULARS``, or a stored-only kind's lower-case name qualified by its API group."""
    if plural in SINGULARS:
        return SINGULARS[plural]
    for kind, (group, name, _namespaced) in STORED_ONLY.items():
        if name == plural:
            return f"{kind.lower()}.{group}" if group else kind.lower()
    raise KeyError(plural)


def resource(kind: str) -> str:
    found = KINDS.get(kind.lower())
    if found is None:
        raise ManifestError([f'error: the server doesn\'t have a resource type "{kind}"'])
    return found


def is_namespaced(plural: str) -> bool:
    if plural in CLUSTER_SCOPED:
        return False
    for group, name, namespaced in STORED_ONLY.values():
        if name == plural:
            return namespaced
    return True


def stored_prefix(plural: str) -> str:
    for group, name, _namespaced in STORED_ONLY.values():
        if name == plural:
            return f"{keys.OTHER_OBJECTS}{name}.{group}/" if group else f"{keys.OTHER_OBJECTS}{name}/"
    raise KeyError(plural)


def get(store: Datastore, kind: str, namespace: str | None, name: str | None = None) -> list[dict[str, Any]]:
    """Objects of a kind (``namespace`` None = all namespaces), sorted by namespace and name."""
    plural = resource(kind)
    if plural in CLUSTER_SCOPED:
        values = list(store.list(CLUSTER_SCOPED[plural]).values())
    elif plural in PREFIXES:
        prefix = PREFIXES[plural]
        values = list(store.list(f"{prefix}{namespace}/" if namespace else prefix).values())
    else:
        prefix = stored_prefix(plural)
        scope = (namespace if is_namespaced(plural) else "_cluster") if namespace or not is_namespaced(plural) else None
        values = list(store.list(f"{prefix}{scope}/" if scope else prefix).values())
    values.sort(key=lambda v: (v.get("metadata", {}).get("namespace", ""), v.get("metadata", {}).get("name", "")))
    if name is not None:
        values = [v for v in values if v.get("metadata", {}).get("name") == name]
        if not values:
            raise ManifestError([f'Error from server (NotFound): {plural} "{name}" not found'])
    return values


def delete_policies(store: Datastore, namespace: str, names: Sequence[str], everything: bool) -> list[Change]:
    if everything:
        found = store.list(f"{NETWORK_POLICIES}{namespace}/")
        names = [k.rsplit("/", 1)[-1] for k in found]
    missing = [n for n in names if store.get(policy_key(namespace, n)) is None]
    if missing:
        raise ManifestError([f'Error from server (NotFound): networkpolicies.networking.k8s.io "{n}" not found' for n in missing])
    for name in names:
        store.delete(policy_key(namespace, name))
    return [Change(POLICY_KIND, n, "deleted") for n in names]


def parse_label_args(args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``k=v`` sets, ``k-`` removes: kubectl label's arguments."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    problems: list[str] = []
    for arg in args:
        if arg.endswith("-") and "=" not in arg:
            removes.append(arg[:-1])
            continue
        key, eq, value = arg.partition("=")
        if not eq:
            problems.append(f"error: invalid label spec: {arg}")
            continue
        for problem in (label_key_problem(key), label_value_problem(key, value)):
            if problem:
                problems.append(f"error: invalid label value: {arg!r}: {problem}")
        sets[key] = value
    if problems:
        raise ManifestError(problems)
    return sets, removes


def _relabel(current: dict[str, str], sets: dict[str, str], removes: list[str], overwrite: bool, what: str) -> dict[str, str]:
    clash = [k for k, v in sets.items() if k in current and current[k] != v]
    if clash and not overwrite:
        raise ManifestError(
            [f"error: '{k}' already has a value ({current[k]}), and --overwrite is false" for k in clash]
        )
    labels = {**current, **sets}
    for key in removes:
        labels.pop(key, None)
    return labels


def label(store: Datastore, kind: str, namespace: str, name: str, args: Sequence[str], overwrite: bool) -> Change:
    """Label a namespace (its profile's pcns.* labels follow) or a pod (its endpoint's follow)."""
    sets, removes = parse_label_args(args)
    plural = resource(kind)
    if plural == "namespaces":
        key = keys.k8s_namespace(name)
        value = store.get(key)
        if value is None:
            raise ManifestError([f'Error from server (NotFound): namespaces "{name}" not found'])
        labels = _relabel(dict(value["metadata"].get("labels", {})), sets, removes, overwrite, name)
        labels[records.LABEL_K8S_NAMESPACE_NAME] = name  # Kubernetes keeps this one
        value["metadata"]["labels"] = labels
        profile_key = keys.namespace_profile(name)
        profile = store.get(profile_key) or {}
        applied = {records.NAMESPACE_LABEL_PREFIX + k: v for k, v in labels.items()}
        applied[records.NAMESPACE_LABEL_PREFIX + records.LABEL_NAME] = name
        profile.setdefault("spec", {})["labelsToApply"] = applied
        store.put_many({key: value, profile_key: profile})
        return Change("namespace", name, "labeled")
    if plural == "pods":
        key = keys.pod(namespace, name)
        value = store.get(key)
        if value is None:
            raise ManifestError([f'Error from server (NotFound): pods "{name}" not found'])
        labels = _relabel(dict(value["metadata"].get("labels", {})), sets, removes, overwrite, name)
        value["metadata"]["labels"] = labels
        node = value.get("spec", {}).get("nodeName", "")
        wep_key = keys.workload_endpoint_of(node, namespace, name)
        wep = store.get(wep_key)
        writes = {key: value}
        if wep is not None:
            system = {k: v for k, v in wep["metadata"].get("labels", {}).items() if k.startswith("projectcalico.org/")}
            wep["metadata"]["labels"] = {**labels, **system}
            writes[wep_key] = wep
        store.put_many(writes)
        return Change("pod", name, "labeled")
    raise ManifestError([f'error: labelling {plural} is not supported here (namespaces and pods are)'])
