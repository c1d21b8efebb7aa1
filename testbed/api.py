"""The Lab facade: what the CLI (and users' Python code) calls. up, down, status, exec.

Reads of a running lab's state come from its etcd; the state folder only says which
labs exist, which PIDs they started and where their etcd socket is.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any
from pathlib import Path
from dataclasses import asdict, dataclass, field, replace

from testbed import addressing, images, naming, oracle, ui_forward
from testbed import matrix as reach
from testbed.datastore import keys, records
from testbed.datastore.base import DatastoreError
from testbed.datastore.etcd import EtcdDatastore
from testbed.netns import namespaces, processes, sandbox, security
from testbed.netns.links import PROTO_BIRD, NetnsLinks
from testbed.runtime import apiserver as runtime_apiserver
from testbed.runtime import build, manifests, policy_agents, speakers, state
from testbed.runtime.plan import LabPlan, neighbour_entries, plan_lab
from testbed.runtime.teardown import TeardownReport, teardown
from testbed.kube import cluster_dns, registry, waits
from testbed.kube.view import read_view
from testbed.model.topology import PodSpec
from testbed.topology import load_topology


class LabError(RuntimeError):
    """A request about labs that cannot be met (no such lab, ambiguous lab, bad name)."""


@dataclass(frozen=True)
class HostStatus:
    name: str
    ip: str
    netns: str
    blocks: list[str]


@dataclass(frozen=True)
class PodStatus:
    namespace: str
    name: str
    ip: str
    host: str
    interface: str
    netns: str


@dataclass
class LabStatus:
    lab: str
    topology: str
    phase: str
    created: float
    etcd: dict[str, object]
    hosts: list[HostStatus] = field(default_factory=list)
    pods: list[PodStatus] = field(default_factory=list)
    seconds: float | None = None  # how long `up` took, when this status comes from `up`
    ui: str | None = None  # the lab's UI on localhost, when `up` forwarded one
    api: dict[str, object] | None = None  # the Kubernetes API: server, context, the kubeconfig `up` wrote
    failed: list[dict[str, object]] = field(default_factory=list)  # `testbed fail` targets not healed yet

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def check_lab_name(name: str) -> None:
    if not naming.is_valid_lab_name(name):
        raise LabError(
            f"lab name {name!r} is invalid: use up to {naming.MAX_LAB} lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )


def labs() -> list[str]:
    return state.labs()


def resolve_lab(explicit: str | None) -> str:
    """The lab a command acts on: --lab, else $TESTBED_LAB, else the only lab that is up."""
    chosen = explicit or os.environ.get(naming.ENV_LAB)
    up = labs()
    if chosen:
        check_lab_name(chosen)
        if chosen not in up:
            raise LabError(f"no lab named {chosen!r} is up" + (f" (labs up: {', '.join(up)})" if up else ""))
        return chosen
    if not up:
        raise LabError("no lab is up; start one with: sudo testbed up two-hosts")
    if len(up) > 1:
        raise LabError(f"several labs are up ({', '.join(up)}): choose one with --lab or {naming.ENV_LAB}")
    return up[0]


NEIGHBOUR_LIMIT = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
NEIGHBOUR_SHARE = 0.75  # of the machine-wide table a lab may plan to use


def check_neighbour_budget(plan: LabPlan, limit_file: Path = NEIGHBOUR_LIMIT) -> None:
    """Refuse a lab whose ARP entries would fill the neighbour table all namespaces share."""
    try:
        limit = int(limit_file.read_text())
    except (OSError, ValueError):
        return
    needed = neighbour_entries(plan)
    if needed > NEIGHBOUR_SHARE * limit:
        hint = " use --route-reflector, or fewer hosts" if not plan.options.route_reflector else " use fewer hosts"
        raise LabError(
            f"lab {plan.lab}: {len(plan.hosts)} hosts"
            + ("" if plan.options.route_reflector else " in a full BGP mesh")
            + f" need about {needed} ARP entries, but the kernel's neighbour table, shared by every "
            f"namespace on this machine, holds {limit} (net.ipv4.neigh.default.gc_thresh3) and must keep "
            f"room for the rest of the machine:{hint}"
        )


def up(
    topology_ref: str,
    *,
    name: str | None = None,
    hosts: int | None = None,
    pods_per_host: int | None = None,
    route_reflector: bool = False,
    pod_eviction_timeout: float | None = None,
    progress: build.Progress | None = None,
    say: Callable[[str], None] | None = None,
    ui_port: int | None = ui_forward.DEFAULT_PORT,
    kubeconfig: bool = True,
    switch_context: bool = True,
) -> LabStatus:
    """Validate and plan everything first (nothing is created on bad input), then build.

    A topology's manifests are checked with the rest, applied once the lab runs (``say``
    gets kubectl's lines), and `up` returns when their pods serve. When they ask for a
    NodePort (the stars UI), it is forwarded to 127.0.0.1:``ui_port`` (None: not).
    ``kubeconfig``: merge the lab's context ``testbed-<lab>`` into the invoking user's
    kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``), the current one unless not
    ``switch_context``, as `kind create cluster` does.
    """
    topology = load_topology(topology_ref, hosts=hosts, pods_per_host=pods_per_host)
    if route_reflector:
        topology = replace(topology, options=replace(topology.options, route_reflector=True))
    if pod_eviction_timeout is not None:
        topology = replace(topology, options=replace(topology.options, pod_eviction_timeout=pod_eviction_timeout))
    lab = name or topology.name
    check_lab_name(lab)
    for pod in topology.pods:
        try:
            images.lookup(pod.image)
        except images.UnknownImage as exc:
            raise LabError(f"{topology.source}: pod {pod.key}: {exc}") from None
    plan = plan_lab(topology, lab)
    check_neighbour_budget(plan)
    try:
        parsed = manifests.parse_files(topology.manifests) if topology.manifests else None
    except manifests.ManifestFileError as exc:
        raise LabError(str(exc)) from None
    seconds = build.build_lab(plan, progress or (lambda *_: None))
    ui_url = None
    if parsed is not None:
        started = time.monotonic()
        try:
            applied = _apply_manifests(lab, parsed, say or (lambda _line: None))
        except BaseException:
            teardown(lab)  # `up` is all or nothing, manifests included
            raise
        seconds += time.monotonic() - started
        ports = manifests.node_ports(applied)
        if ports and ui_port is not None:
            try:
                ui_url = ui(lab, port=ui_port, node_port=ports[0])
            except LabError as exc:  # the lab is fine; only its shortcut on localhost is not
                (say or (lambda _line: None))(f"warning: {exc}")
    result = status(lab)
    result.seconds = round(seconds, 3)
    result.ui = ui_url
    if kubeconfig and result.api is not None:
        try:
            result.api["kubeconfig"] = str(runtime_apiserver.merge_user_kubeconfig(lab, switch=switch_context))
        except (OSError, ValueError, RuntimeError) as exc:  # the lab is fine; only the user's kubeconfig is not
            (say or (lambda _line: None))(f"warning: kubeconfig not written: {exc}")
    return result


def kubeconfig_text(lab: str) -> str:
    """A standalone kubeconfig for the lab's API server, as its admin (YAML)."""
    from testbed.apiserver import kubeconfig  # noqa: PLC0415

    check_lab_name(lab)
    if state.load(lab) is None:
        raise LabError(f"no lab named {lab!r} is up")
    try:
        return kubeconfig.render(runtime_apiserver.standalone_kubeconfig(lab))
    except RuntimeError as exc:
        raise LabError(str(exc)) from None


def api_info(lab: str) -> dict[str, object] | None:
    """Where the lab's API server listens and the kubectl context that names it."""
    from testbed.apiserver.kubeconfig import entry_name  # noqa: PLC0415

    port = runtime_apiserver.port_of(lab)
    if port is None:
        return None
    return {"server": runtime_apiserver.url(port), "context": entry_name(lab), "kubeconfig": None}


def _apply_manifests(lab: str, parsed: manifests.ParsedManifests, say: Callable[[str], None]) -> list[object]:
    """The topology's manifests as `kubectl create -f` stores them, enforced, their pods serving."""
    with datastore(lab) as store:
        # The cluster DNS first (up applied it with the lab): the manifests' programs look
        # Service names up as soon as they start.
        waits.wait_ready(store, [registry.BY_KIND["Deployment"].key(cluster_dns.NAMESPACE, cluster_dns.DEPLOYMENT)], 30.0)
        try:
            applied = manifests.apply(lab, store, parsed, say)
        except manifests.ManifestFileError as exc:
            raise LabError(str(exc)) from None
        # Their workloads made real by the controllers and kubelets, then their programs serving.
        workloads = [registry.BY_KIND[o.kind].key(o.namespace, o.name) for o in applied if type(o).__name__ == "Workload"]
        try:
            waits.wait_ready(store, workloads, MANIFEST_READY_TIMEOUT)
        except TimeoutError as exc:
            raise LabError(f"the topology's manifests: {exc}") from None
        policy_agents.wait_enforced_everywhere(store)
        manifests.wait_serving(lab, store, manifests.workload_namespaces(applied))
    return applied


def ui(lab: str, *, port: int = ui_forward.DEFAULT_PORT, node_port: int = ui_forward.DEFAULT_PORT) -> str:
    """Forward 127.0.0.1:``port`` to ``node_port`` on the lab's first host; the URL.

    Idempotent: a forwarder of this lab already on ``port`` is kept. The daemon is
    recorded with the lab's processes, so `down` stops it.
    """
    recorded = state.load(lab)
    if recorded is None:
        raise LabError(f"no lab named {lab!r} is up")
    name = f"{UI_PROCESS} {port}"
    if any(p.name == name and processes.is_ours(p.pid, p.start_time) for p in recorded.processes):
        return ui_forward.url(port)
    with datastore(lab) as store:
        nodes = sorted((records.node_summary(v) for v in store.list(keys.NODES).values()), key=lambda n: n.name)
        services = store.list(keys.SERVICES)
    if not any(
        p.get("nodePort") == node_port for v in services.values() for p in v.get("spec", {}).get("ports", [])
    ):
        raise LabError(f"lab {lab!r} has no Service with NodePort {node_port}: nothing to forward")
    if not nodes:
        raise LabError(f"lab {lab!r} has no hosts")
    try:
        listener = ui_forward.listen(port)
    except ui_forward.PortTaken as exc:
        raise LabError(str(exc)) from None
    try:
        child = ui_forward.spawn(
            listener, naming.fabric_netns(lab), (str(nodes[0].ip), node_port), state.folder(lab) / "ui-forward.log"
        )
    finally:
        listener.close()
    recorded.processes = [p for p in recorded.processes if p.name != name]
    state.record_process(recorded, name, "", child.pid)
    return ui_forward.url(port)


UI_PROCESS = "ui forwarder"


def down(lab: str) -> TeardownReport:
    check_lab_name(lab)
    runtime_apiserver.remove_user_kubeconfig(lab)  # as `kind delete cluster`: the lab's entries go
    report = teardown(lab)
    if not report.found:
        raise LabError(f"no lab named {lab!r} is up")
    return report


def down_all() -> list[TeardownReport]:
    for lab in labs():
        runtime_apiserver.remove_user_kubeconfig(lab)
    return [teardown(lab) for lab in labs()]


def datastore(lab: str) -> EtcdDatastore:
    return EtcdDatastore.over_unix_socket(build.etcd_socket(lab))


def status(lab: str, *, add_ons: bool = False) -> LabStatus:
    recorded = state.load(lab)
    if recorded is None:
        raise LabError(f"no lab named {lab!r} is up")
    etcd = next((p for p in recorded.processes if p.name == "etcd"), None)
    etcd_pid = etcd.pid if etcd else None
    result = LabStatus(
        lab=lab,
        topology=recorded.topology,
        phase=recorded.phase,
        created=recorded.created,
        etcd={
            "endpoint": f"http://{addressing.FABRIC_GATEWAY}:{addressing.ETCD_CLIENT_PORT}",
            "pid": etcd_pid,
            "running": etcd is not None and processes.is_ours(etcd.pid, etcd.start_time),
            "healthy": False,
        },
    )
    from testbed import faults  # what `testbed fail` broke: readable even while etcd is down

    result.api = api_info(lab)
    result.failed = [{"target": f.target, "since": f.since} for f in faults.load(lab)]
    try:
        with datastore(lab) as store:
            result.etcd["healthy"] = store.healthy()
            nodes = [records.node_summary(v) for v in store.list(keys.NODES).values()]
            endpoints = [records.endpoint_summary(v) for v in store.list(keys.WORKLOAD_ENDPOINTS).values()]
            affinities = store.list(keys.AFFINITIES)
    except DatastoreError as exc:
        result.etcd["error"] = str(exc)
        return result
    blocks: dict[str, list[str]] = {}
    for key in affinities:
        node, cidr = keys.parse_block_affinity(key)
        blocks.setdefault(node, []).append(str(cidr))
    result.hosts = [
        HostStatus(n.name, str(n.ip), naming.host_netns(lab, n.name), sorted(blocks.get(n.name, []))) for n in nodes
    ]
    result.pods = sorted(
        (
            PodStatus(e.namespace, e.pod, str(e.ip), e.node, e.interface, naming.pod_netns(lab, e.namespace, e.pod))
            for e in endpoints
            if add_ons or e.namespace not in SYSTEM_NAMESPACES  # the add-ons' pods: `kubectl get pods -A` shows them
        ),
        key=lambda p: (p.host, p.namespace, p.name),
    )
    return result


def pod_netns(lab: str, target: str) -> str:
    """The netns of ``NS/POD``, checked against the lab's etcd."""
    return _pod(lab, target)[0]


def _pod(lab: str, target: str) -> tuple[str, dict]:
    namespace, sep, pod = target.partition("/")
    if not sep or not namespace or not pod:
        raise LabError(f"pod {target!r}: expected NAMESPACE/POD")
    with datastore(lab) as store:
        value = store.get(keys.pod(namespace, pod))
    if value is None:
        raise LabError(f"pod {target} not found in lab {lab!r}")
    netns = naming.pod_netns(lab, namespace, pod)
    if not namespaces.exists(netns):
        raise LabError(f"pod {target} has no network namespace ({netns})")
    return netns, value


@dataclass(frozen=True)
class PodExec:
    """How to run a command in a pod: ``argv`` to run in the foreground; ``warning`` (one
    line) when the pod's sandbox is gone and the command runs in its netns only."""

    argv: list[str]
    warning: str | None = None


def pod_exec(lab: str, target: str, argv: Sequence[str]) -> PodExec:
    """``argv`` in the pod ``NS/POD`` as its container's program runs: in its sandbox
    (hostname, processes, files as the program sees them), with the container's
    securityContext as stored in the pod (uid, capabilities)."""
    netns, value = _pod(lab, target)
    try:
        who = security.of_pod_record(value)
    except security.SecurityError as exc:
        raise LabError(f"pod {target}: {exc}") from None
    pause = sandbox.find(netns)
    if pause is None:
        return PodExec(
            processes.netns_exec_argv(netns, argv),
            f"pod {target} has no sandbox (its pause process is gone): running in its network namespace only",
        )
    return PodExec(sandbox.exec_argv(pause, argv, who))


def host_netns(lab: str, host: str) -> str:
    with datastore(lab) as store:
        if store.get(keys.node(host)) is None:
            raise LabError(f"host {host!r} not found in lab {lab!r}")
    return naming.host_netns(lab, host)


@dataclass(frozen=True)
class RouteRow:
    destination: str
    via: str | None
    dev: str | None
    proto: str
    kind: str  # what the route is for, in the lab's terms
    peer_host: str | None = None  # the host a BGP route points at


PROTO_NAMES = {2: "kernel", 3: "boot", 4: "static", PROTO_BIRD: "bird", 80: "felix"}


def routes(lab: str, host: str) -> list[RouteRow]:
    """The host's IPv4 routing table, each route labelled as the lab's figure explains it."""
    netns = host_netns(lab, host)
    with datastore(lab) as store:
        hosts_by_ip = {str(n.ip): n.name for n in map(records.node_summary, store.list(keys.NODES).values())}
    with NetnsLinks(netns) as links:
        table = links.routes()
    rows = []
    for r in table:
        dst = r.dst[:-3] if r.dst.endswith("/32") else r.dst
        if r.dst == "0.0.0.0/0":
            dst, kind = "default", "default route (the fabric gateway)"
        elif r.kind == "blackhole":
            kind = "own block: unused addresses are dropped here"
        elif r.dev and r.dev.startswith(naming.WORKLOAD_PREFIX):
            kind = "local workload"
        elif r.proto == PROTO_BIRD and r.gateway:
            kind = f"workloads on {hosts_by_ip.get(r.gateway, r.gateway)} (learned over BGP)"
        elif r.proto == 2:
            kind = "the fabric"
        else:
            kind = ""
        rows.append(
            RouteRow(
                destination=dst,
                via=r.gateway,
                dev=r.dev,
                proto=PROTO_NAMES.get(r.proto, str(r.proto)),
                kind=kind,
                peer_host=hosts_by_ip.get(r.gateway) if r.gateway else None,
            )
        )
    return rows


@dataclass
class BgpStatus:
    host: str
    ip: str
    running: bool  # the host's BGP speaker process is alive
    peers: list[dict[str, object]] = field(default_factory=list)
    updated: float | None = None


def bgp_status(lab: str, host: str | None = None) -> list[BgpStatus]:
    """Per host: is its speaker running, and its peers as `calicoctl node status` lists them."""
    recorded = state.load(lab)
    pids = {p.name: p for p in recorded.processes} if recorded else {}
    result = []
    with datastore(lab) as store:
        nodes = [records.node_summary(v) for v in store.list(keys.NODES).values()]
        if host is not None and host not in {n.name for n in nodes}:
            raise LabError(f"host {host!r} not found in lab {lab!r}")
        for node in nodes:
            if host is not None and node.name != host:
                continue
            record = pids.get(f"bgp {node.name}")
            reported = store.get(keys.bgp_status(node.name)) or {}
            result.append(
                BgpStatus(
                    host=node.name,
                    ip=str(node.ip),
                    running=record is not None and processes.is_ours(record.pid, record.start_time),
                    peers=list(reported.get("peers", [])),
                    updated=reported.get("updated"),
                )
            )
    return result


POD_READY_TIMEOUT = 30.0
MANIFEST_READY_TIMEOUT = 60.0


def pod_manifest(spec: PodSpec) -> dict[str, Any]:
    """The Pod object `testbed pod add` writes for ``spec`` (pure): its host, if pinned, as
    ``spec.nodeName``; a pinned address as Calico's ``cni.projectcalico.org/ipAddrs``."""
    container = records.container_record(spec.image, spec.command, spec.ports)
    metadata: dict[str, Any] = {"name": spec.name, "namespace": spec.namespace, "labels": spec.label_dict}
    if spec.ip is not None:
        metadata["annotations"] = {records.ANNOTATION_IP_ADDRS: json.dumps([spec.ip])}
    pod_spec: dict[str, Any] = {"containers": [container]}
    if spec.host is not None:
        pod_spec["nodeName"] = spec.host
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def add_pod(lab: str, spec: PodSpec) -> PodStatus:
    """Create a pod in a running lab, as any client does: the Pod object (its namespace too,
    if missing), then wait until its kubelet reports it Ready and every host enforces it."""
    from testbed.kube import objects  # noqa: PLC0415
    from testbed.kube.errors import ManifestError  # noqa: PLC0415

    with datastore(lab) as store:
        if spec.host is not None and store.get(keys.node(spec.host)) is None:
            hosts = ", ".join(keys.name_of(k) for k in store.list(keys.NODES))
            raise LabError(f"pod {spec.key}: host {spec.host!r} is not in the lab (hosts: {hosts})")
        docs = [pod_manifest(spec)]
        if store.get(keys.k8s_namespace(spec.namespace)) is None:
            docs.insert(0, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.namespace}})
        try:
            objects.store_objects(store, lab, objects.parse_objects(docs, spec.namespace), create_only=True)
        except ManifestError as exc:
            raise LabError(f"pod {spec.key}: {exc.lines[0]}") from None
        key = keys.pod(spec.namespace, spec.name)
        try:
            waits.wait_ready(store, [key], POD_READY_TIMEOUT)
        except TimeoutError as exc:
            raise LabError(f"pod {spec.key}: {exc} (see: testbed kubectl get pod -n {spec.namespace} {spec.name})") from None
        policy_agents.wait_enforced_everywhere(store)
        value = store.get(key) or {}
    ip = str(value.get("status", {}).get("podIP", ""))
    host = str(value.get("spec", {}).get("nodeName", ""))
    return PodStatus(
        spec.namespace, spec.name, ip, host, naming.workload_interface(spec.namespace, spec.name),
        naming.pod_netns(lab, spec.namespace, spec.name),
    )


def delete_pod(lab: str, target: str) -> None:
    """Delete a pod as `kubectl delete pod` does (its kubelet stops it), and wait until gone."""
    from testbed.kube import removal  # noqa: PLC0415
    from testbed.kube.errors import ManifestError  # noqa: PLC0415

    namespace, sep, name = target.partition("/")
    if not sep or not namespace or not name:
        raise LabError(f"pod {target!r}: expected NAMESPACE/POD")
    with datastore(lab) as store:
        try:
            deleted = removal.request_deletion(store, [("pods", namespace, name)])
        except ManifestError:
            raise LabError(f"pod {namespace}/{name} not found in lab {lab!r}") from None
        try:
            waits.wait_gone(store, deleted.pending, POD_READY_TIMEOUT + 30.0)
        except TimeoutError as exc:
            raise LabError(f"pod {target}: {exc}") from None


def start_speaker(lab: str, host: str) -> int:
    """Start a host's BGP speaker again (after it was stopped); returns its PID."""
    recorded = state.load(lab)
    if recorded is None:
        raise LabError(f"no lab named {lab!r} is up")
    with datastore(lab) as store:
        node = store.get(keys.node(host))
    if node is None:
        raise LabError(f"host {host!r} not found in lab {lab!r}")
    current = [p for p in recorded.processes if p.name == f"bgp {host}"]
    if any(processes.is_ours(p.pid, p.start_time) for p in current):
        raise LabError(f"the BGP speaker of {host} is already running")
    recorded.processes = [p for p in recorded.processes if p.name != f"bgp {host}"]
    return speakers.spawn_speaker(lab, host, str(records.node_summary(node).ip), recorded)


# Left out of `matrix` and `verify` unless asked for: the cluster DNS pod there serves
# only port 53, so on any other port its row and column would be "wrong" on a correct lab.
SYSTEM_NAMESPACES = (cluster_dns.NAMESPACE,)


def matrix_pods(pods: Sequence[PodStatus], namespaces: Sequence[str] = (), all_namespaces: bool = False) -> list[PodStatus]:
    """The pods a matrix covers, sorted: those of ``namespaces`` if any are named, else
    every pod (``all_namespaces``) or every pod outside SYSTEM_NAMESPACES. Pure."""
    if namespaces:
        chosen = [p for p in pods if p.namespace in namespaces]
    else:
        chosen = [p for p in pods if all_namespaces or p.namespace not in SYSTEM_NAMESPACES]
    return sorted(chosen, key=lambda p: (p.namespace, p.name))


def matrix(
    lab: str, port: int, protocol: str = "tcp", namespaces: Sequence[str] = (), all_namespaces: bool = False
) -> reach.Matrix:
    """Measure which pods reach which on port/protocol (see ``matrix_pods`` for which pods)."""
    chosen = matrix_pods(status(lab, add_ons=True).pods, namespaces, all_namespaces)
    if not chosen:
        where = f" in namespaces {', '.join(namespaces)}" if namespaces else ""
        hint = "" if namespaces or all_namespaces else f" ({', '.join(SYSTEM_NAMESPACES)} only with -n or -A)"
        raise LabError(f"no pods in lab {lab!r}{where}{hint}")
    refs = [reach.PodRef(f"{p.namespace}/{p.name}", p.ip, p.netns) for p in chosen]
    return reach.measure(refs, port, protocol)


def expected_matrix(lab: str, measured: reach.Matrix) -> reach.Matrix:
    """What the policies in etcd mean for the same pods, port and protocol (the oracle)."""
    with datastore(lab) as store:
        view = read_view(store)
    by_key = {ep.key: ep for ep in view.endpoints}
    endpoints = [by_key[key] for key in measured.pods]
    cells = oracle.matrix(endpoints, measured.port, measured.protocol, view.policies, view.namespaces)
    return reach.Matrix(measured.port, measured.protocol, measured.pods, tuple(tuple(r) for r in cells))


def explain(lab: str, src: str, dst: str, port: int, protocol: str) -> tuple[str, list[str]]:
    """The oracle's verdict for SRC -> DST:PORT/PROTO, and where the dataplane judges it."""
    with datastore(lab) as store:
        view = read_view(store)
    by_key = {ep.key: ep for ep in view.endpoints}
    parties = []
    for what in (src, dst):
        if "/" in what:
            if what not in by_key:
                raise LabError(f"pod {what} not found in lab {lab!r}")
            parties.append(by_key[what])
        else:
            try:
                parties.append(str(addressing.parse_ipv4(what)))
            except addressing.AddressError as exc:
                raise LabError(f"{what!r}: expected NAMESPACE/POD or an IPv4 address") from exc
    verdict = oracle.evaluate(parties[0], parties[1], port, protocol, view.policies, view.namespaces)
    where = []
    for party, direction, prefix in ((parties[0], "egress", "cali-fw-"), (parties[1], "ingress", "cali-tw-")):
        if not isinstance(party, str):
            chain = prefix + naming.workload_interface(party.namespace, party.name)
            where.append(f"{direction}: judged on {party.host} in chain {chain}")
    return oracle.explain(verdict), where
