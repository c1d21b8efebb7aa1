"""`kubectl get`'s tables, one per kind, as kubectl prints them. Pure: values in, rows out."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

Value = dict[str, Any]
def status_counts(value: Value) -> Mapping[str, int]:
    """replicas / ready / available / up-to-date, as the workload's controller reported them."""
    status = value.get("status", {})
    return {
        "replicas": int(value.get("spec", {}).get("replicas", 1)),
        "current": int(status.get("replicas", 0)),
        "readyReplicas": int(status.get("readyReplicas", 0)),
        "availableReplicas": int(status.get("availableReplicas", 0)),
        "updatedReplicas": int(status.get("updatedReplicas", 0)),
    }


def age(value: Value, now: float | None = None) -> str:
    stamp = value.get("metadata", {}).get("creationTimestamp")
    try:
        created = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        return "<unknown>"
    seconds = (time.time() if now is None else now) - created
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def _policy_selector(value: Value) -> str:
    selector = value.get("spec", {}).get("podSelector") or {}
    labels = selector.get("matchLabels") or {}
    parts = [f"{k}={v}" for k, v in sorted(labels.items())]
    parts += [f"{e['key']} {e['operator']}" for e in selector.get("matchExpressions") or []]
    return ",".join(parts) or "<none>"


def _labels_text(labels: Mapping[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _ports_text(value: Value) -> str:
    ports = value.get("spec", {}).get("ports") or []
    parts = []
    for p in ports:
        node_port = p.get("nodePort")
        head = f"{p.get('port')}:{node_port}" if node_port else f"{p.get('port')}"
        parts.append(f"{head}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _container(value: Value) -> Value:
    spec = value.get("spec", {})
    template = spec.get("template", {}).get("spec", spec)
    containers = template.get("containers") or [{}]
    return containers[0]


def _workload_selector(kind: str, value: Value) -> str:
    selector = value.get("spec", {}).get("selector") or {}
    if kind == "replicationcontrollers":
        return _labels_text(selector)
    return _labels_text(selector.get("matchLabels"))


def _containers(value: Value) -> tuple[list[Value], list[Value]]:
    """(spec containers, their statuses)."""
    return value.get("spec", {}).get("containers") or [{}], value.get("status", {}).get("containerStatuses") or []


def pod_ready(value: Value) -> str:
    """READY: ready containers / containers (a pod from before the kubelet reported: its phase)."""
    containers, statuses = _containers(value)
    if not statuses:
        ready = len(containers) if value.get("status", {}).get("phase") == "Running" else 0
    else:
        ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{len(containers)}"


def pod_status(value: Value) -> str:
    """STATUS as kubectl prints it: Terminating, a container's waiting or terminated reason
    (ContainerCreating, CrashLoopBackOff, Completed, Error), else the phase."""
    status = value.get("status", {})
    if value.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    reason = status.get("reason") or status.get("phase") or "Pending"
    running = False
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            done = state["terminated"]
            reason = done.get("reason") or (f"Signal:{done['signal']}" if done.get("signal") else f"ExitCode:{done.get('exitCode', 0)}")
        elif "running" in state and container.get("ready"):
            running = True
    if reason == "Completed" and running:
        return "Running"
    return reason


def pod_restarts(value: Value, now: float | None = None) -> str:
    """RESTARTS: the sum of restartCount, with how long ago the last one ended (kubectl 1.2x)."""
    statuses = value.get("status", {}).get("containerStatuses") or []
    count = sum(int(s.get("restartCount", 0)) for s in statuses)
    finished = [
        s.get("lastState", {}).get("terminated", {}).get("finishedAt") for s in statuses if s.get("restartCount")
    ]
    latest = max((f for f in finished if f), default=None)
    if not count or latest is None:
        return str(count)
    return f"{count} ({age({'metadata': {'creationTimestamp': latest}}, now)} ago)"


def endpoints_text(value: Value) -> str:
    """ENDPOINTS: ready ip:port pairs, the first three, as kubectl shows them."""
    pairs = [
        f"{a.get('ip')}:{p.get('port')}"
        for subset in value.get("subsets") or []
        for a in subset.get("addresses") or []
        for p in subset.get("ports") or [{}]
    ]
    if not pairs:
        return "<none>"
    return ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")


def node_status(value: Value) -> str:
    """Ready or NotReady from a Kubernetes Node's Ready condition (a Calico node: Ready)."""
    conditions = value.get("status", {}).get("conditions")
    if conditions is None:
        return "Ready"
    ready = next((c for c in conditions if c.get("type") == "Ready"), {})
    return "Ready" if ready.get("status") == "True" else "NotReady"


def node_address(value: Value) -> str:
    addresses = value.get("status", {}).get("addresses") or []
    internal = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    return internal or str(value.get("spec", {}).get("bgp", {}).get("ipv4Address", "")).split("/")[0]


def rows(plural: str, values: Sequence[Value], wide: bool) -> list[list[str]]:
    """Header and one row per object (no NAMESPACE column: ``with_namespace`` adds it)."""
    if plural == "namespaces":
        return [["NAME", "STATUS", "AGE"]] + [
            [v["metadata"]["name"], v.get("status", {}).get("phase", "Active"), age(v)] for v in values
        ]
    if plural == "pods":
        header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE", "NOMINATED NODE", "READINESS GATES"] if wide else [])
        out = [header]
        for v in values:
            row = [v["metadata"]["name"], pod_ready(v), pod_status(v), pod_restarts(v), age(v)]
            if wide:
                row += [v.get("status", {}).get("podIP") or "<none>", v.get("spec", {}).get("nodeName") or "<none>", "<none>", "<none>"]
            out.append(row)
        return out
    if plural == "services":
        header = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] + (["SELECTOR"] if wide else [])
        out = [header]
        for v in values:
            spec = v.get("spec", {})
            row = [v["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"), "<none>", _ports_text(v), age(v)]
            if wide:
                row.append(_labels_text(spec.get("selector")))
            out.append(row)
        return out
    if plural == "deployments":
        header = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] + (["CONTAINERS", "IMAGES", "SELECTOR"] if wide else [])
        out = [header]
        for v in values:
            c = status_counts(v)
            row = [v["metadata"]["name"], f"{c['readyReplicas']}/{c['replicas']}", str(c["updatedReplicas"]), str(c["availableReplicas"]), age(v)]
            if wide:
                row += [_container(v).get("name", ""), _container(v).get("image", ""), _workload_selector(plural, v)]
            out.append(row)
        return out
    if plural in ("replicasets", "replicationcontrollers"):
        header = ["NAME", "DESIRED", "CURRENT", "READY", "AGE"] + (["CONTAINERS", "IMAGES", "SELECTOR"] if wide else [])
        out = [header]
        for v in values:
            c = status_counts(v)
            row = [v["metadata"]["name"], str(c["replicas"]), str(c["current"]), str(c["readyReplicas"]), age(v)]
            if wide:
                row += [_container(v).get("name", ""), _container(v).get("image", ""), _workload_selector(plural, v)]
            out.append(row)
        return out
    if plural == "daemonsets":
        header = ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"]
        out = [header]
        for v in values:
            st = v.get("status", {})
            selector = v.get("spec", {}).get("template", {}).get("spec", {}).get("nodeSelector")
            out.append([v["metadata"]["name"], *(str(st.get(f, 0)) for f in (
                "desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled",
                "numberAvailable")), _labels_text(selector), age(v)])  # fmt: skip
        return out
    if plural == "endpoints":
        return [["NAME", "ENDPOINTS", "AGE"]] + [[v["metadata"]["name"], endpoints_text(v), age(v)] for v in values]
    if plural == "endpointslices":
        header = ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
        out = [header]
        for v in values:
            ports = ",".join(str(p.get("port")) for p in v.get("ports") or []) or "<unset>"
            addresses = [a for e in v.get("endpoints") or [] for a in e.get("addresses", [])]
            shown = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")
            out.append([v["metadata"]["name"], v.get("addressType", "IPv4"), ports, shown or "<unset>", age(v)])
        return out
    if plural == "leases":
        return [["NAME", "HOLDER", "AGE"]] + [
            [v["metadata"]["name"], v.get("spec", {}).get("holderIdentity", ""), age(v)] for v in values
        ]
    if plural == "nodes":
        header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"] + (["INTERNAL-IP"] if wide else [])
        out = [header]
        for v in values:
            row = [v["metadata"]["name"], node_status(v), "<none>", age(v), "testbed"]
            if wide:
                row.append(node_address(v))
            out.append(row)
        return out
    if plural == "networkpolicies":
        return [["NAME", "POD-SELECTOR", "AGE"]] + [[v["metadata"]["name"], _policy_selector(v), age(v)] for v in values]
    return [["NAME", "AGE"]] + [[v["metadata"]["name"], age(v)] for v in values]


def with_namespace(table: list[list[str]], values: Sequence[Value]) -> list[list[str]]:
    return [["NAMESPACE", *table[0]]] + [[v["metadata"].get("namespace", ""), *r] for v, r in zip(values, table[1:])]


def render(table: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell, three spaces apart, as kubectl aligns them."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
