"""`kubectl get`'s tables, one per kind, as kubectl prints them. Pure: values in, rows out.

Two users: the CLI's `testbed kubectl get` prints ``rows``; the lab's API server builds its
meta.k8s.io/v1 Table responses (`testbed.apiserver.tables`) from the same cell functions
(``pod_ready``, ``pod_status``, ``age``...), so both print the same cells. It lives here, under
`testbed.kube`, because the API server must not import from `testbed.cli`.

The cells follow kube-apiserver's printers [k/k pkg/printers/internalversion/printers.go:
printPod, printService, printNode, printEvent, formatEndpoints, layoutContainerCells...];
ages are apimachinery's ``duration.HumanDuration`` [am pkg/util/duration/duration.go] and
selectors print as ``metav1.FormatLabelSelector`` / ``labels.FormatLabels`` [am
pkg/apis/meta/v1/helpers.go, pkg/labels/selector.go ``Requirement.String``]. Where the lab
differs from a cluster the cell says so (a Calico node without conditions is Ready).
"""


from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

Value = dict[str, Any]
NONE = "<none>"


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


# -- time --


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``: 2-3 significant figures (``90s``, ``5m30s``, ``3h10m``, ``4d6h``)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def parse_time(stamp: object) -> float | None:
    """An RFC 3339 timestamp (``...Z``, fractions and offsets allowed) as epoch seconds; None if unset."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def since(stamp: object, now: float | None = None) -> str:
    """``translateTimestampSince``: how long ago ``stamp`` was, ``<unknown>`` if unset."""
    at = parse_time(stamp)
    if at is None:
        return "<unknown>"
    return human_duration((time.time() if now is None else now) - at)


def age(value: Value, now: float | None = None) -> str:
    return since(value.get("metadata", {}).get("creationTimestamp"), now)


# -- labels and selectors --


def labels_text(labels: Mapping[str, str] | None) -> str:
    """``labels.FormatLabels``: ``k=v,...`` sorted, ``<none>`` when empty."""
    return ",".join(sorted(f"{k}={v}" for k, v in (labels or {}).items())) or NONE


def selector_text(selector: Mapping[str, Any] | None) -> str:
    """A metav1.LabelSelector as ``labels.Selector.String()``: requirements by key, ``k=v``,
    ``k in (a,b)``, ``k notin (a)``, ``k``, ``!k``; empty for an empty or missing selector."""
    operators = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}
    parts = [(k, f"{k}={v}") for k, v in ((selector or {}).get("matchLabels") or {}).items()]
    for e in (selector or {}).get("matchExpressions") or []:
        key, op = e.get("key", ""), e.get("operator", "")
        if op not in operators:
            return "<error>"
        values = f"({','.join(sorted(e.get('values') or []))})" if op in ("In", "NotIn") else ""
        parts.append((key, f"{'!' if op == 'DoesNotExist' else ''}{key}{operators[op]}{values}"))
    return ",".join(text for _key, text in sorted(parts, key=lambda p: p[0]))


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``: the selector's string, ``<none>`` when empty."""
    return selector_text(selector) or NONE


def policy_selector(value: Value) -> str:
    return format_label_selector(value.get("spec", {}).get("podSelector") or {})


def workload_selector(plural: str, value: Value) -> str:
    """SELECTOR (wide): a ReplicationController's map, a Deployment's selector string, the others'
    FormatLabelSelector."""
    selector = value.get("spec", {}).get("selector") or {}
    if plural == "replicationcontrollers":
        return labels_text(selector)
    return selector_text(selector) if plural == "deployments" else format_label_selector(selector)


# -- services --


def service_ports(value: Value) -> str:
    """PORT(S): ``port[:nodePort]/protocol`` joined by commas, ``<none>`` without ports."""
    parts = []
    for p in value.get("spec", {}).get("ports") or []:
        node_port = p.get("nodePort")
        head = f"{p.get('port')}:{node_port}" if node_port else f"{p.get('port')}"
        parts.append(f"{head}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) or NONE


def service_cluster_ip(value: Value) -> str:
    spec = value.get("spec", {})
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return ips[0] if ips else NONE


def service_external_ip(value: Value) -> str:
    """EXTERNAL-IP: externalIPs for ClusterIP and NodePort, the load balancer's for LoadBalancer
    (``<pending>`` until it has one), externalName for ExternalName."""
    spec = value.get("spec", {})
    kind, external = spec.get("type", "ClusterIP"), list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or NONE
    if kind == "LoadBalancer":
        ingress = value.get("status", {}).get("loadBalancer", {}).get("ingress") or []
        balancer = sorted({i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")})
        return ",".join(balancer + external) or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


# -- workloads --


def pod_template_spec(value: Value) -> Value:
    spec = value.get("spec", {})
    return spec.get("template", {}).get("spec", spec)


def container_names(value: Value) -> str:
    """CONTAINERS (wide): every container's name, comma-separated (``layoutContainerCells``)."""
    return ",".join(str(c.get("name", "")) for c in pod_template_spec(value).get("containers") or [])


def container_images(value: Value) -> str:
    return ",".join(str(c.get("image", "")) for c in pod_template_spec(value).get("containers") or [])


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
    return f"{count} ({since(latest, now)} ago)"


def pod_ip(value: Value) -> str:
    status = value.get("status", {})
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    return (ips[0] if ips else status.get("podIP")) or NONE


def pod_readiness_gates(value: Value) -> str:
    """READINESS GATES (wide): gates whose condition is True / gates, ``<none>`` without gates."""
    gates = value.get("spec", {}).get("readinessGates") or []
    if not gates:
        return NONE
    conditions = {c.get("type"): c.get("status") for c in value.get("status", {}).get("conditions") or []}
    return f"{sum(1 for g in gates if conditions.get(g.get('conditionType')) == 'True')}/{len(gates)}"


# -- endpoints --


def _host_port(ip: str, port: object) -> str:
    try:
        v6 = ipaddress.ip_address(ip).version == 6
    except ValueError:
        v6 = ":" in ip
    return f"[{ip}]:{port}" if v6 else f"{ip}:{port}"


def _first_three(items: Sequence[str], empty: str) -> str:
    if not items:
        return empty
    return ",".join(items[:3]) + (f" + {len(items) - 3} more..." if len(items) > 3 else "")


def endpoints_text(value: Value) -> str:
    """ENDPOINTS: ready ip:port pairs (bare IPs for a subset without ports), the first three."""
    pairs = []
    for subset in value.get("subsets") or []:
        addresses = [str(a.get("ip")) for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        pairs += [_host_port(a, p.get("port")) for p in ports for a in addresses] if ports else addresses
    return _first_three(pairs, NONE)


def endpoint_slice_ports(value: Value) -> str:
    """PORTS: each port's number, else its name, else ``*``; ``<unset>`` without ports."""
    ports = [str(p["port"] if p.get("port") is not None else p.get("name") or "*") for p in value.get("ports") or []]
    return _first_three(ports, "<unset>")


def endpoint_slice_endpoints(value: Value) -> str:
    addresses = [str(a) for e in value.get("endpoints") or [] for a in e.get("addresses") or []]
    return _first_three(addresses, "<unset>")


# -- nodes --

NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"


def node_status(value: Value) -> str:
    """Ready, NotReady or Unknown from a Node's Ready condition, plus SchedulingDisabled when
    cordoned (a Calico node, which has no conditions: Ready)."""
    conditions = value.get("status", {}).get("conditions")
    if conditions is None:
        status = "Ready"
    else:
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        status = "Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"
    return f"{status},SchedulingDisabled" if value.get("spec", {}).get("unschedulable") else status


def node_roles(value: Value) -> str:
    """ROLES: ``node-role.kubernetes.io/<role>`` keys and ``kubernetes.io/role`` values, sorted."""
    roles = set()
    for key, label in (value.get("metadata", {}).get("labels") or {}).items():
        if key.startswith(NODE_ROLE_PREFIX) and key[len(NODE_ROLE_PREFIX):]:
            roles.add(key[len(NODE_ROLE_PREFIX):])
        elif key == NODE_ROLE_LABEL and label:
            roles.add(label)
    return ",".join(sorted(roles)) or NONE


def node_info(value: Value, field: str, missing: str = "<unknown>") -> str:
    """One of ``status.nodeInfo``'s fields (kubeletVersion, osImage, kernelVersion...)."""
    return str(value.get("status", {}).get("nodeInfo", {}).get(field) or missing)


def _node_address(value: Value, kind: str) -> str | None:
    addresses = value.get("status", {}).get("addresses") or []
    return next((a.get("address") for a in addresses if a.get("type") == kind), None)


def node_address(value: Value) -> str:
    """INTERNAL-IP: the InternalIP address (a Calico node: its BGP address), ``<none>`` if neither."""
    calico = str(value.get("spec", {}).get("bgp", {}).get("ipv4Address", "")).split("/")[0]
    return _node_address(value, "InternalIP") or calico or NONE


def node_external_ip(value: Value) -> str:
    return _node_address(value, "ExternalIP") or NONE


# -- events --


def _event_first(value: Value) -> object:
    return value.get("firstTimestamp") or value.get("eventTime")


def event_first_seen(value: Value, now: float | None = None) -> str:
    return since(_event_first(value), now)


def event_last_seen(value: Value, now: float | None = None) -> str:
    """LAST SEEN: the series' last observation, else lastTimestamp, else when first seen."""
    series = value.get("series")
    if series:
        return since(series.get("lastObservedTime"), now)
    return since(value.get("lastTimestamp") or _event_first(value), now)


def event_count(value: Value) -> int:
    series = value.get("series")
    return int((series or {}).get("count") or value.get("count") or 1)


def event_object(value: Value) -> str:
    """OBJECT: ``kind/name`` of the involved object, in lower case kind."""
    involved = value.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    return f"{kind}/{involved['name']}" if involved.get("name") else kind


def event_source(value: Value) -> str:
    """SOURCE (wide): ``component, host`` (reportingComponent/reportingInstance when unset)."""
    source = value.get("source") or {}
    component = source.get("component") or value.get("reportingComponent") or ""
    host = source.get("host") or value.get("reportingInstance") or ""
    return f"{component}, {host}" if host else str(component)


# -- the rest --


def data_count(value: Value) -> int:
    """DATA: keys in data plus binaryData (a ConfigMap's; a Secret has only data)."""
    return len(value.get("data") or {}) + len(value.get("binaryData") or {})


def role_ref(value: Value) -> str:
    ref = value.get("roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def subjects(value: Value, kind: str) -> str:
    """USERS / GROUPS / SERVICEACCOUNTS (wide) of a (Cluster)RoleBinding: ``ns/name`` for accounts."""
    found = []
    for s in value.get("subjects") or []:
        if s.get("kind") == kind:
            found.append(f"{s.get('namespace', '')}/{s.get('name', '')}" if kind == "ServiceAccount" else s.get("name", ""))
    return ", ".join(found)


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
                status = v.get("status", {})
                row += [pod_ip(v), v.get("spec", {}).get("nodeName") or NONE, status.get("nominatedNodeName") or NONE,
                        pod_readiness_gates(v)]
            out.append(row)
        return out
    if plural == "services":
        header = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] + (["SELECTOR"] if wide else [])
        out = [header]
        for v in values:
            spec = v.get("spec", {})
            row = [v["metadata"]["name"], spec.get("type", "ClusterIP"), service_cluster_ip(v), service_external_ip(v),
                   service_ports(v), age(v)]
            if wide:
                row.append(labels_text(spec.get("selector")))
            out.append(row)
        return out
    if plural == "deployments":
        header = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] + (["CONTAINERS", "IMAGES", "SELECTOR"] if wide else [])
        out = [header]
        for v in values:
            c = status_counts(v)
            row = [v["metadata"]["name"], f"{c['readyReplicas']}/{c['replicas']}", str(c["updatedReplicas"]), str(c["availableReplicas"]), age(v)]
            if wide:
                row += [container_names(v), container_images(v), workload_selector(plural, v)]
            out.append(row)
        return out
    if plural in ("replicasets", "replicationcontrollers"):
        header = ["NAME", "DESIRED", "CURRENT", "READY", "AGE"] + (["CONTAINERS", "IMAGES", "SELECTOR"] if wide else [])
        out = [header]
        for v in values:
            c = status_counts(v)
            row = [v["metadata"]["name"], str(c["replicas"]), str(c["current"]), str(c["readyReplicas"]), age(v)]
            if wide:
                row += [container_names(v), container_images(v), workload_selector(plural, v)]
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
                "numberAvailable")), labels_text(selector), age(v)])  # fmt: skip
        return out
    if plural == "endpoints":
        return [["NAME", "ENDPOINTS", "AGE"]] + [[v["metadata"]["name"], endpoints_text(v), age(v)] for v in values]
    if plural == "endpointslices":
        header = ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
        out = [header]
        for v in values:
            out.append([v["metadata"]["name"], v.get("addressType", "IPv4"), endpoint_slice_ports(v),
                        endpoint_slice_endpoints(v), age(v)])
        return out
    if plural == "leases":
        return [["NAME", "HOLDER", "AGE"]] + [
            [v["metadata"]["name"], v.get("spec", {}).get("holderIdentity", ""), age(v)] for v in values
        ]
    if plural == "nodes":
        header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"] + (["INTERNAL-IP"] if wide else [])
        out = [header]
        for v in values:
            row = [v["metadata"]["name"], node_status(v), node_roles(v), age(v), node_info(v, "kubeletVersion", "testbed")]
            if wide:
                row.append(node_address(v))
            out.append(row)
        return out
    if plural == "networkpolicies":
        return [["NAME", "POD-SELECTOR", "AGE"]] + [[v["metadata"]["name"], policy_selector(v), age(v)] for v in values]
    return [["NAME", "AGE"]] + [[v["metadata"]["name"], age(v)] for v in values]


def with_namespace(table: list[list[str]], values: Sequence[Value]) -> list[list[str]]:
    return [["NAMESPACE", *table[0]]] + [[v["metadata"].get("namespace", ""), *r] for v, r in zip(values, table[1:])]


def render(table: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell, three spaces apart, as kubectl aligns them."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
