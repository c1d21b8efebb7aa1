"""A stored Pod as the kubelet reads it (pure): containers, probes with their defaults,
restart policy, grace periods, deletion, the address it asks for.

Only what the kubelet acts on is parsed; a field it cannot use is one SpecError naming
the pod and the field (``pod demo/web: spec.containers[0].readinessProbe.httpGet.port:
...``), which the kubelet reports in the pod's status instead of running it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DEFAULT_GRACE_SECONDS = 30
PROBE_KINDS = ("httpGet", "tcpSocket", "exec")

ProbeKind = Literal["httpGet", "tcpSocket", "exec"]


class SpecError(ValueError):
    """A pod the kubelet cannot run, in one line naming the pod and the field."""


@dataclass(frozen=True)
class Probe:
    """A readiness or liveness probe, defaults filled in as Kubernetes does."""

    kind: ProbeKind
    port: int | str | None = None  # httpGet, tcpSocket: a number or a container port's name
    path: str = "/"
    host: str | None = None  # None: the pod's IP
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()  # exec
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class ContainerPort:
    name: str | None
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...] = ()  # command + args; () = the image's default
    ports: tuple[ContainerPort, ...] = ()
    readiness: Probe | None = None
    liveness: Probe | None = None
    security: str = "{}"  # its securityContext, as JSON (the sandbox turns it into rights)
    stdin: bool = False  # `kubectl run -i`: it waits for an attach (see containers.start_container)

    def resolve_port(self, port: int | str | None) -> int | None:
        """A probe's port: a number as given, a name through this container's ports."""
        if isinstance(port, int) or port is None:
            return port
        return next((p.port for p in self.ports if p.name == port), None)


@dataclass(frozen=True)
class PodView:
    key: str  # the store key
    namespace: str
    name: str
    uid: str
    node: str | None
    containers: tuple[Container, ...]
    restart_policy: str = "Always"
    grace_seconds: int = DEFAULT_GRACE_SECONDS  # spec.terminationGracePeriodSeconds
    deleting: bool = False  # metadata.deletionTimestamp is set
    deletion_grace: int | None = None  # metadata.deletionGracePeriodSeconds
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    # Networked by another path (`testbed up` or the CLI today): a pod IP but no container
    # statuses; the kubelet leaves such a pod alone unless it networked it itself.
    networked_elsewhere: bool = False
    security: str = "{}"  # spec.securityContext, as JSON

    @property
    def ref(self) -> str:
        return f"pod {self.namespace}/{self.name}"

    def annotation(self, name: str) -> str | None:
        return next((v for k, v in self.annotations if k == name), None)

    @property
    def termination_grace(self) -> int:
        return self.deletion_grace if self.deletion_grace is not None else self.grace_seconds


def parse_pod(key: str, value: Mapping[str, Any]) -> PodView:
    """The pod under ``key``; SpecError (one line) when the kubelet cannot run it."""
    meta = _mapping(value.get("metadata"))
    spec = _mapping(value.get("spec"))
    status = _mapping(value.get("status"))
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    if not namespace or not name:  # as the key names it: /registry/pods/<ns>/<name>
        namespace, name = key.split("/")[-2:]
    ref = f"pod {namespace}/{name}"
    raw_containers = spec.get("containers")
    if not isinstance(raw_containers, list) or not raw_containers:
        raise SpecError(f"{ref}: spec.containers: expected a non-empty list")
    containers = tuple(_container(ref, i, c) for i, c in enumerate(raw_containers))
    names = [c.name for c in containers]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise SpecError(f"{ref}: spec.containers: duplicate name {duplicate!r}")
    policy = spec.get("restartPolicy") or "Always"
    if policy not in RESTART_POLICIES:
        raise SpecError(f"{ref}: spec.restartPolicy: {policy!r} is not one of {', '.join(RESTART_POLICIES)}")
    grace = _int(ref, "spec.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds"), DEFAULT_GRACE_SECONDS)
    deletion_grace = meta.get("deletionGracePeriodSeconds")
    node = spec.get("nodeName")
    return PodView(
        key=key,
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid") or ""),
        node=str(node) if node else None,
        containers=containers,
        restart_policy=str(policy),
        grace_seconds=grace,
        deleting=bool(meta.get("deletionTimestamp")),
        deletion_grace=None if deletion_grace is None else _int(ref, "metadata.deletionGracePeriodSeconds", deletion_grace, 0),
        labels=tuple(sorted((str(k), str(v)) for k, v in _mapping(meta.get("labels")).items())),
        annotations=tuple(sorted((str(k), str(v)) for k, v in _mapping(meta.get("annotations")).items())),
        networked_elsewhere=bool(status.get("podIP")) and not status.get("containerStatuses"),
        security=json.dumps(_mapping(spec.get("securityContext")), sort_keys=True),
    )


def _container(ref: str, index: int, raw: Any) -> Container:
    where = f"spec.containers[{index}]"
    if not isinstance(raw, Mapping):
        raise SpecError(f"{ref}: {where}: expected a mapping")
    name, image = raw.get("name"), raw.get("image")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{ref}: {where}.name: missing")
    if not isinstance(image, str) or not image:
        raise SpecError(f"{ref}: {where}.image: missing")
    command: list[str] = []
    for field in ("command", "args"):
        items = raw.get(field) or []
        if not isinstance(items, list):
            raise SpecError(f"{ref}: {where}.{field}: expected a list of strings")
        command += [str(item) for item in items]
    ports = []
    for j, port in enumerate(raw.get("ports") or []):
        port = _mapping(port)
        number = _int(ref, f"{where}.ports[{j}].containerPort", port.get("containerPort"), None)
        if number is None or not 0 < number < 65536:
            raise SpecError(f"{ref}: {where}.ports[{j}].containerPort: expected a port number")
        ports.append(ContainerPort(port.get("name") or None, number, str(port.get("protocol") or "TCP")))
    container = Container(name, image, tuple(command), tuple(ports))
    readiness = _probe(ref, f"{where}.readinessProbe", raw.get("readinessProbe"), container)
    liveness = _probe(ref, f"{where}.livenessProbe", raw.get("livenessProbe"), container)
    if liveness is not None and liveness.success_threshold != 1:
        raise SpecError(f"{ref}: {where}.livenessProbe.successThreshold: must be 1")
    security = json.dumps(_mapping(raw.get("securityContext")), sort_keys=True)
    return Container(name, image, tuple(command), tuple(ports), readiness, liveness, security, bool(raw.get("stdin")))


def _probe(ref: str, where: str, raw: Any, container: Container) -> Probe | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError(f"{ref}: {where}: expected a mapping")
    kinds = [k for k in PROBE_KINDS if k in raw]
    if len(kinds) != 1:
        raise SpecError(f"{ref}: {where}: needs exactly one of {', '.join(PROBE_KINDS)}")
    kind: ProbeKind = kinds[0]  # type: ignore[assignment]
    handler = _mapping(raw[kind])
    timing = {
        "initial_delay": float(_int(ref, f"{where}.initialDelaySeconds", raw.get("initialDelaySeconds"), 0)),
        "period": float(_int(ref, f"{where}.periodSeconds", raw.get("periodSeconds"), 10, minimum=1)),
        "timeout": float(_int(ref, f"{where}.timeoutSeconds", raw.get("timeoutSeconds"), 1, minimum=1)),
        "success_threshold": _int(ref, f"{where}.successThreshold", raw.get("successThreshold"), 1, minimum=1),
        "failure_threshold": _int(ref, f"{where}.failureThreshold", raw.get("failureThreshold"), 3, minimum=1),
    }
    if kind == "exec":
        command = handler.get("command")
        if not isinstance(command, list) or not command:
            raise SpecError(f"{ref}: {where}.exec.command: expected a non-empty list")
        return Probe(kind, command=tuple(str(c) for c in command), **timing)  # type: ignore[arg-type]
    port = handler.get("port")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise SpecError(f"{ref}: {where}.{kind}.port: expected a number or a container port name")
    if isinstance(port, int) and not 0 < port < 65536:
        raise SpecError(f"{ref}: {where}.{kind}.port: {port} is not a port number")
    if isinstance(port, str) and container.resolve_port(port) is None:
        raise SpecError(f"{ref}: {where}.{kind}.port: container {container.name} has no port named {port!r}")
    host = handler.get("host") or None
    if kind == "tcpSocket":
        return Probe(kind, port=port, host=host, **timing)  # type: ignore[arg-type]
    scheme = str(handler.get("scheme") or "HTTP").upper()
    if scheme != "HTTP":
        raise SpecError(f"{ref}: {where}.httpGet.scheme: only HTTP is supported, not {scheme}")
    headers = tuple(
        (str(h.get("name")), str(h.get("value", ""))) for h in handler.get("httpHeaders") or [] if isinstance(h, Mapping)
    )
    path = str(handler.get("path") or "/")
    return Probe(kind, port=port, path=path if path.startswith("/") else "/" + path, host=host, scheme=scheme,
                 headers=headers, **timing)  # type: ignore[arg-type]  # fmt: skip


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(ref: str, where: str, value: Any, default: int | None, minimum: int = 0) -> Any:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{ref}: {where}: expected an integer >= {minimum}, got {value!r}")
    return value
