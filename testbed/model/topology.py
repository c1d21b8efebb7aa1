"""What a topology describes: hosts, lab options, namespaces and pods. Data only.

A topology knows nothing of the runtime (as Mininet's ``Topo``): it can be printed,
validated and tested without root. ``testbed.topology`` loads these from YAML or Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from testbed.model.policy import NamedPort


@dataclass(frozen=True)
class HostSpec:
    name: str
    ip: str | None = None  # pinned fabric address; None = next free from 172.18.203.11


@dataclass(frozen=True)
class NamespaceSpec:
    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...] = ()
    host: str | None = None  # None = automatic placement
    image: str = "busybox"
    command: tuple[str, ...] = ()  # empty = the image's default (none yet: the pod idles)
    ip: str | None = None  # pinned pod address inside 10.65.0.0/16
    ports: tuple[NamedPort, ...] = ()  # named container ports (NetworkPolicy may name them)

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class LabOptions:
    route_reflector: bool = False
    bgp_hold_time: int = 9  # seconds, used once BGP speakers run
    pod_eviction_timeout: float = 10.0  # seconds a node may be NotReady before its pods move


@dataclass(frozen=True)
class Topology:
    name: str
    hosts: tuple[HostSpec, ...]
    namespaces: tuple[NamespaceSpec, ...] = ()
    pods: tuple[PodSpec, ...] = ()
    options: LabOptions = field(default_factory=LabOptions)
    source: str = ""  # where it came from (file path or built-in name), for messages
    # Kubernetes manifests `up` applies once the lab runs, in order, as `kubectl create -f`
    # would: paths as the file gives them until the loader resolves them next to the file.
    manifests: tuple[str, ...] = ()

    def host_names(self) -> list[str]:
        return [h.name for h in self.hosts]
