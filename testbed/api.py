"""The Lab facade: what the CLI (and users' Python code) calls. up, down, status, exec.

Reads of a running lab's state come from its etcd; the state folder only says which
labs exist, which PIDs they started and where their etcd socket is.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from testbed import addressing, naming
from testbed.datastore import keys, records
from testbed.datastore.base import DatastoreError
from testbed.datastore.etcd import EtcdDatastore
from testbed.netns import namespaces, processes
from testbed.runtime import build, state
from testbed.runtime.plan import plan_lab
from testbed.runtime.teardown import TeardownReport, teardown
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


def up(
    topology_ref: str,
    *,
    name: str | None = None,
    hosts: int | None = None,
    pods_per_host: int | None = None,
    progress: build.Progress | None = None,
) -> LabStatus:
    """Validate and plan everything first (nothing is created on bad input), then build."""
    topology = load_topology(topology_ref, hosts=hosts, pods_per_host=pods_per_host)
    lab = name or topology.name
    check_lab_name(lab)
    plan = plan_lab(topology, lab)
    seconds = build.build_lab(plan, progress or (lambda *_: None))
    result = status(lab)
    result.seconds = round(seconds, 3)
    return result


def down(lab: str) -> TeardownReport:
    check_lab_name(lab)
    report = teardown(lab)
    if not report.found:
        raise LabError(f"no lab named {lab!r} is up")
    return report


def down_all() -> list[TeardownReport]:
    return [teardown(lab) for lab in labs()]


def datastore(lab: str) -> EtcdDatastore:
    return EtcdDatastore.over_unix_socket(build.etcd_socket(lab))


def status(lab: str) -> LabStatus:
    recorded = state.load(lab)
    if recorded is None:
        raise LabError(f"no lab named {lab!r} is up")
    etcd_pid = next((p.pid for p in recorded.processes if p.name == "etcd"), None)
    result = LabStatus(
        lab=lab,
        topology=recorded.topology,
        phase=recorded.phase,
        created=recorded.created,
        etcd={
            "endpoint": f"http://{addressing.FABRIC_GATEWAY}:{addressing.ETCD_CLIENT_PORT}",
            "pid": etcd_pid,
            "running": etcd_pid is not None and processes.is_alive(etcd_pid),
            "healthy": False,
        },
    )
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
        ),
        key=lambda p: (p.host, p.namespace, p.name),
    )
    return result


def pod_netns(lab: str, target: str) -> str:
    """The netns of ``NS/POD``, checked against the lab's etcd."""
    namespace, sep, pod = target.partition("/")
    if not sep or not namespace or not pod:
        raise LabError(f"pod {target!r}: expected NAMESPACE/POD")
    with datastore(lab) as store:
        if store.get(keys.pod(namespace, pod)) is None:
            raise LabError(f"pod {target} not found in lab {lab!r}")
    netns = naming.pod_netns(lab, namespace, pod)
    if not namespaces.exists(netns):
        raise LabError(f"pod {target} has no network namespace ({netns})")
    return netns


def host_netns(lab: str, host: str) -> str:
    with datastore(lab) as store:
        if store.get(keys.node(host)) is None:
            raise LabError(f"host {host!r} not found in lab {lab!r}")
    return naming.host_netns(lab, host)
