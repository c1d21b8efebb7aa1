"""A topology's manifests, once its lab is up: checked before `up` builds, applied after.

Through the same code as `testbed kubectl create -f A -f B` (sources.read_documents,
parse_documents, store_objects), so the lab's manifests behave exactly as a user's; then
`up` waits until the pods they made serve: a star probe answers its ``/status``, any
other pod with a container port accepts a connection. Every check runs from inside the
pod's own netns (its own address, over its loopback: no policy in the way, nothing from
the root netns).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from testbed import naming
from testbed.datastore import keys
from testbed.datastore.base import Datastore
from testbed.netns import namespaces

READY_TIMEOUT = 30.0
POLL_EVERY = 0.1
CHECK_TIMEOUT = 1.0
PROBE_IMAGE = "calico/star-probe"  # serves GET /status on its --http-port


class ManifestFileError(ValueError):
    """A manifest file of the topology that cannot be applied; one line per problem."""


@dataclass(frozen=True)
class ParsedManifests:
    objects: list[object]  # as objects.parse_documents returns them, every file's in order
    sources: list[str]  # the file of each object


def parse_files(paths: Sequence[str]) -> ParsedManifests:
    """Every manifest read and checked, as `kubectl create -f A -f B` reads them (nothing
    stored): all problems, each naming its file."""
    from testbed.kube import objects, sources  # noqa: PLC0415 - the manifest machinery, only when a topology has manifests
    from testbed.kube.errors import ManifestError  # noqa: PLC0415

    try:
        documents = sources.read_documents(paths, verb="create")
        return ParsedManifests(objects.parse_documents(documents, None), [d.source for d in documents])
    except ManifestError as exc:
        raise ManifestFileError("\n".join(exc.lines)) from None


def apply(lab: str, store: Datastore, manifests: ParsedManifests, say: Callable[[str], None]) -> list[object]:
    """Store the manifests as `kubectl create -f` does, saying kubectl's lines; every object."""
    from testbed.kube import objects  # noqa: PLC0415
    from testbed.kube.errors import ManifestError  # noqa: PLC0415

    try:
        changes = objects.store_objects(store, lab, manifests.objects, create_only=True, sources=manifests.sources)
    except ManifestError as exc:
        raise ManifestFileError("\n".join(exc.lines)) from None
    for change in changes:
        say(change.line())
    return manifests.objects


def node_ports(applied: Sequence[object]) -> list[int]:
    """The NodePorts the manifests asked for, in manifest order (the stars UI: 30002)."""
    found: list[int] = []
    for obj in applied:
        if type(obj).__name__ == "Service" and getattr(obj, "type", "") == "NodePort":
            found += [p.node_port for p in obj.ports if p.node_port]  # type: ignore[attr-defined]
    return found


@dataclass(frozen=True)
class ServingPod:
    """A pod to wait for: its netns, address, first container port, and whether it is a probe."""

    key: str
    netns: str
    ip: str
    port: int
    probe: bool


def serving_pods(lab: str, pod_values: Sequence[dict[str, Any]]) -> list[ServingPod]:
    """The pods (as stored) that declare a container port, each with what to check."""
    result = []
    for value in pod_values:
        meta, spec, status = value.get("metadata", {}), value.get("spec", {}), value.get("status", {})
        for container in spec.get("containers", []):
            ports = [p["containerPort"] for p in container.get("ports", []) if p.get("protocol", "TCP") == "TCP"]
            if ports and status.get("podIP"):
                image = str(container.get("image", ""))
                result.append(ServingPod(
                    f"{meta['namespace']}/{meta['name']}", naming.pod_netns(lab, meta["namespace"], meta["name"]),
                    status["podIP"], ports[0], image.split(":", 1)[0].endswith(PROBE_IMAGE),
                ))
                break
    return result


def probe_reports(body: bytes) -> bool:
    """A probe's /status: ``{"status": {"targets": [...]}}``."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return False
    status = data.get("status") if isinstance(data, dict) else None
    return isinstance(status, dict) and isinstance(status.get("targets"), list)


def http_get(ip: str, port: int, path: str, timeout: float = CHECK_TIMEOUT) -> bytes:
    """The body of ``GET path`` (HTTP/1.0, so the server closes when done); OSError if none."""
    with socket.create_connection((ip, port), timeout=timeout) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n\r\n".encode())
        chunks = []
        while data := conn.recv(65536):
            chunks.append(data)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or head.split(b" ", 2)[1:2] != [b"200"]:
        raise OSError(f"GET {path}: {head.splitlines()[0] if head else b'no answer'!r}")
    return body


def is_serving(pod: ServingPod) -> bool:
    def check() -> bool:
        if pod.probe:
            return probe_reports(http_get(pod.ip, pod.port, "/status"))
        socket.create_connection((pod.ip, pod.port), timeout=CHECK_TIMEOUT).close()
        return True

    try:
        return namespaces.run_inside(pod.netns, check)
    except OSError:
        return False


def wait_serving(lab: str, store: Datastore, pod_namespaces: Sequence[str], timeout: float = READY_TIMEOUT) -> list[str]:
    """Until every pod with a port in ``pod_namespaces`` serves; the pods waited for.

    TimeoutError names the pods that never answered (their logs say why).
    """
    values = [v for ns in sorted(set(pod_namespaces)) for v in store.list(keys.pods_in(ns)).values()]
    waiting = serving_pods(lab, values)
    pending = {p.key: p for p in waiting}
    deadline = time.monotonic() + timeout
    while pending:
        for key, pod in list(pending.items()):
            if is_serving(pod):
                del pending[key]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"pods not serving after {timeout:g} s: {', '.join(sorted(pending))} "
                f"(see: sudo testbed kubectl --lab {lab} logs POD -n NS)"
            )
        time.sleep(POLL_EVERY)
    return [p.key for p in waiting]


def workload_namespaces(applied: Sequence[object]) -> list[str]:
    """Namespaces in which the manifests made pods (ReplicationControllers, Deployments, ...)."""
    return sorted({obj.namespace for obj in applied if type(obj).__name__ == "Workload"})  # type: ignore[attr-defined]
