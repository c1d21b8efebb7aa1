"""kubectl's get, delete and label for namespaces, pods and network policies, on etcd."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from testbed.datastore import keys, records
from testbed.datastore.base import Datastore
from testbed.kube.errors import ManifestError
from testbed.kube import registry
from testbed.kube.objects import POLICY_KIND, Change, policy_key
from testbed.labels import label_key_problem, label_value_problem

def resource(name: str) -> str:
    """The plural of the kind kubectl's ``name`` means; kubectl's error line if none."""
    try:
        return registry.resolve(name).plural
    except registry.UnknownKind as exc:
        raise ManifestError([str(exc)]) from None


def singular(plural: str) -> str:
    return registry.resolve(plural).singular


def is_namespaced(plural: str) -> bool:
    return registry.resolve(plural).namespaced


def get(store: Datastore, kind: str, namespace: str | None, name: str | None = None) -> list[dict[str, Any]]:
    """Objects of a kind (``namespace`` None = all namespaces), sorted by namespace and name."""
    entry = registry.resolve(resource(kind))
    plural = entry.plural
    values = list(store.list(entry.scope(namespace)).values())
    values.sort(key=lambda v: (v.get("metadata", {}).get("namespace", ""), v.get("metadata", {}).get("name", "")))
    if name is not None:
        values = [v for v in values if v.get("metadata", {}).get("name") == name]
        if not values:
            raise ManifestError([f'Error from server (NotFound): {plural} "{name}" not found'])
    return values


def delete_policies(store: Datastore, namespace: str, names: Sequence[str], everything: bool) -> list[Change]:
    if everything:
        found = store.list(registry.BY_KIND["NetworkPolicy"].scope(namespace))
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
