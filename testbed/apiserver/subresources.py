"""Subresources beyond ``status``: ``scale`` of the workloads and ``log`` of pods.

- ``<deployments|replicasets|replicationcontrollers>/<name>/scale`` is an autoscaling/v1
  Scale: ``spec.replicas`` is the workload's, ``status.replicas`` and ``status.selector``
  (a label selector string) what its controller reports. `kubectl scale` PATCHes it with
  a merge patch, or GETs then PUTs it with ``--current-replicas`` / ``--resource-version``
  [kubectl pkg/scale/scale.go]; either way the workload's ``spec.replicas`` is written, as
  an update conditional on the revision read.
- ``pods/<name>/log``: what the pod's programs wrote, from the file their sandbox's
  stdout and stderr go to (``testbed.runtime.programs.log_path``); ``tailLines``,
  ``limitBytes`` and ``follow`` (the file is followed until the client goes or the pod is
  deleted), as text [kubectl logs: GET .../log?container=&follow=&tailLines=].
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from testbed.apiserver import patches, resources, status
from testbed.apiserver.paths import Target
from testbed.datastore.base import Datastore
from testbed.kube import tables as cells
from testbed.runtime import programs

Value = dict[str, Any]
SCALABLE = ("deployments", "replicasets", "replicationcontrollers")
FOLLOW_POLL = 0.2  # seconds between looks at a followed log


def scale_of(workload: Value) -> Value:
    """The Scale of a served workload (pure)."""
    meta = workload["metadata"]
    spec, found = workload.get("spec", {}), workload.get("status", {})
    selector = spec.get("selector") or {}
    if workload.get("kind") == "ReplicationController":  # a plain map of labels
        text = ",".join(sorted(f"{k}={v}" for k, v in selector.items()))
    else:
        text = cells.selector_text(selector)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
        "spec": {"replicas": int(spec.get("replicas", 1))},
        "status": {"replicas": int(found.get("replicas", 0)), "selector": text},
    }


def get_scale(store: Datastore, target: Target) -> Value:
    return scale_of(resources.get(store, Target(target.kind, target.namespace, target.name)))


def set_scale(store: Datastore, lab: str, target: Target, replicas: object, resource_version: str | None,
              dry_run: bool) -> Value:  # fmt: skip
    """Write the workload's spec.replicas; the Scale after."""
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise status.invalid("Scale", target.name or "", [("spec.replicas", f"Invalid value: {json.dumps(replicas)}: "
                                                           "must be greater than or equal to 0")])  # fmt: skip
    main = Target(target.kind, target.namespace, target.name)
    for _attempt in range(5):
        current = resources.get(store, main)
        if resource_version and resource_version != current["metadata"]["resourceVersion"]:
            raise status.conflict(target.kind.plural, target.kind.group, target.name or "")
        wanted = copy.deepcopy(current)
        wanted.setdefault("spec", {})["replicas"] = replicas
        try:
            return scale_of(resources.update(store, lab, main, wanted, dry_run=dry_run))
        except status.ApiError as exc:
            if exc.code != 409 or resource_version:
                raise
    raise status.conflict(target.kind.plural, target.kind.group, target.name or "")


def patch_scale(store: Datastore, lab: str, target: Target, content_type: str, raw: bytes, dry_run: bool) -> Value:
    current = get_scale(store, target)
    try:
        patched = patches.apply_patch(current, content_type, raw, "Scale")
    except patches.PatchError as exc:
        raise status.from_patch_error(exc.code, str(exc)) from None
    return set_scale(store, lab, target, patched.get("spec", {}).get("replicas"), None, dry_run)


def grown(path: Path, offset: int) -> tuple[bytes, int]:
    """What a log file gained past ``offset``, and the new offset (b"" when nothing)."""
    size = path.stat().st_size if path.exists() else 0
    if size <= offset:
        return b"", offset
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size - offset), size


def tail(text: bytes, lines: int | None, limit: int | None) -> bytes:
    """The last ``lines`` lines, at most ``limit`` bytes (pure)."""
    if lines is not None:
        kept = text.splitlines(keepends=True)
        text = b"".join(kept[-lines:]) if lines > 0 else b""
    if limit is not None:
        text = text[:limit]
    return text


def _int(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise status.bad_request(f'invalid {name} "{value}"') from None
    if number < 0:
        raise status.bad_request(f"{name}: must be greater than or equal to 0")
    return number


async def serve_log(request: web.Request, backend: Any, target: Target) -> web.StreamResponse:
    pod = await backend.run(lambda s: resources.get(s, Target(target.kind, target.namespace, target.name)))
    containers = [c.get("name") for c in pod.get("spec", {}).get("containers", [])]
    wanted = request.query.get("container")
    if wanted and wanted not in containers:
        raise status.bad_request(f"container {wanted} is not valid for pod {target.name}")
    if wanted is None and len(containers) > 1:
        raise status.bad_request(f"a container name must be specified for pod {target.name}, choose one of: "
                                 f"[{' '.join(str(c) for c in containers)}]")  # fmt: skip
    path = programs.log_path(backend.lab, target.namespace or "", target.name or "")
    text = path.read_bytes() if path.exists() else b""
    lines, limit = _int(request.query, "tailLines"), _int(request.query, "limitBytes")
    first = tail(text, lines, limit)
    follow = resources.truthy(request.query.get("follow"))
    if not follow:
        return web.Response(body=first, content_type="text/plain")
    response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(first)
    offset = len(text)
    key = target.kind.key(target.namespace, target.name or "")
    try:
        while True:
            await asyncio.sleep(FOLLOW_POLL)
            chunk, offset = grown(path, offset)
            if chunk:
                await response.write(chunk)
            elif await backend.run(lambda s: s.get(key)) is None:  # the pod is gone: so is its log
                break
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response
