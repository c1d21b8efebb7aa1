"""The lab's Kubernetes API over HTTPS: routing, authentication, and the wire formats.

One aiohttp application. Every request must carry a client certificate signed by the
lab's CA (the handshake asks for one but lets a request without one through, so that it
gets the API server's 401 rather than a TLS error); the admin certificate's group
``system:masters`` may do everything, as in a kubeadm cluster. The store is blocking:
each verb runs in a worker thread with a store client of its own (``resources``), and
watches are etcd watches whose events the loop streams, one compact JSON per line
[k8s.io/apiserver pkg/endpoints/handlers/watch.go].
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from testbed import __version__
from testbed.apiserver import discovery, paths, resources, status, subresources, tables
from testbed.apiserver.patches import PatchError, apply_patch
from testbed.apiserver.selectors import FieldQuery, LabelQuery, SelectorError, parse_field_selector, parse_label_selector
from testbed.apiserver.watching import WatchRequest, watch_stream
from testbed.datastore.base import Datastore

LOG = logging.getLogger("testbed.apiserver")
T = TypeVar("T")
JSON = "application/json"
# The client asks for ...spec.v2@v1.0+protobuf; the server answers with dots: Go's mime parser takes no "@"
# [kube-openapi pkg/handler/handler.go]
PROTOBUF_OPENAPI = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
ADMIN_GROUP = "system:masters"
WORKERS = 8
# Subresources served, by plural (advertised in discovery; `status` reads as the object).
SUBRESOURCES: Mapping[str, tuple[str, ...]] = {
    "pods": ("status", "log", "exec", "attach", "portforward"), "deployments": ("status", "scale"), "replicasets": ("status", "scale"),
    "replicationcontrollers": ("status", "scale"), "daemonsets": ("status",), "namespaces": ("status",),
    "nodes": ("status",), "services": ("status",),
}  # fmt: skip
CONFLICT_RETRIES = 5  # a patch is re-applied over a fresh read when another writer got in first


class Backend:
    """The lab's store, one client per worker thread, and the lab's name."""

    def __init__(self, lab: str, open_store: Callable[[], Datastore], workers: int = WORKERS,
                 crds: Any = None) -> None:  # fmt: skip
        self.lab = lab
        self._open_store = open_store
        self.crds = crds  # a crds.CrdCache: the kinds served beside the built-in ones
        self._local = threading.local()
        self._stores: list[Datastore] = []
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apiserver")

    @property
    def kinds(self) -> tuple[Any, ...]:
        from testbed.kube import registry  # noqa: PLC0415

        return self.crds.kinds if self.crds is not None else registry.KINDS

    def store(self) -> Datastore:
        found = getattr(self._local, "store", None)
        if found is None:
            found = self._open_store()
            self._local.store = found
            with self._lock:
                self._stores.append(found)
        return found

    async def run(self, call: Callable[[Datastore], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: call(self.store()))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for store in self._stores:
                store.close()


def json_response(body: object, code: int = 200) -> web.Response:
    return web.Response(body=resources.as_json(body), status=code, content_type=JSON)


def error_response(error: status.ApiError) -> web.Response:
    return json_response(error.body(), error.code)


@web.middleware
async def authenticate(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """401 without a certificate of the lab's CA (the handshake verified any that came);
    403 for an identity outside ``system:masters`` (the only one the lab issues is in it)."""
    peer = request.transport.get_extra_info("peercert") if request.transport is not None else None
    if not peer:
        return error_response(status.unauthorized())
    organisations = {value for rdn in peer.get("subject", ()) for key, value in rdn if key == "organizationName"}
    if ADMIN_GROUP not in organisations:
        user = next((value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"), "")
        return error_response(status.forbidden_user(user, request.method.lower(), request.path))
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except status.ApiError as exc:
        return error_response(exc)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug answers as the API server's 500, and is logged
        LOG.exception("%s %s failed", request.method, request.path)
        return error_response(status.internal(f"{type(exc).__name__}: {exc}"))


def make_app(backend: Backend) -> web.Application:
    app = web.Application(middlewares=[authenticate], client_max_size=3 * 1024 * 1024)
    app["backend"] = backend
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def dispatch(request: web.Request) -> web.StreamResponse:
    path = request.path.rstrip("/") or "/"
    if path in ("/healthz", "/readyz", "/livez"):
        return web.Response(text="ok")
    backend: Backend = request.app["backend"]
    if request.method == "GET":
        fixed = _fixed_document(path, request.headers.get("User-Agent", ""), backend.kinds)
        if fixed is not None:
            return fixed
    if path == ACCESS_REVIEWS and request.method == "POST":
        return json_response(access_review(await _body(request)), 201)
    try:
        target = paths.resolve(path, backend.kinds)
    except paths.NoRoute:
        raise status.not_found_path() from None
    return await serve_resource(request, target)


ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def access_review(body: object) -> dict[str, Any]:
    """`kubectl auth can-i`: the admin (the only identity the lab issues) may do everything."""
    review = dict(body) if isinstance(body, dict) else {}
    review.update({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1"})
    review.setdefault("metadata", {})
    review["status"] = {"allowed": True, "reason": "the lab's admin certificate (group system:masters)"}
    return review


def _fixed_document(path: str, user_agent: str, kinds: Any) -> web.Response | None:
    """Discovery, /version and OpenAPI; None for any other path."""
    if path == "/version":
        return json_response(discovery.version_info(user_agent, __version__))
    if path == "/api":
        return json_response(discovery.api_versions())
    if path == "/apis":
        return json_response(discovery.api_group_list(kinds))
    if path == "/openapi/v2":
        # An empty protobuf Document: kubectl (which fetches only protobuf here) finds no
        # schema for any kind and validates nothing on the client (see kube-api.md §2).
        return web.Response(body=b"", content_type=PROTOBUF_OPENAPI)
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts == ["api", "v1"]:
        return json_response(discovery.resource_list("", "v1", SUBRESOURCES, kinds))
    if len(parts) == 2 and parts[0] == "apis":
        group = discovery.api_group(parts[1], kinds)
        return json_response(group) if group is not None else None
    if parts == ["apis", discovery.AUTHORIZATION_GROUP, "v1"]:
        return json_response(discovery.authorization_resources())
    if len(parts) == 3 and parts[0] == "apis":
        document = discovery.resource_list(parts[1], parts[2], SUBRESOURCES, kinds)
        return json_response(document) if document is not None else None
    return None


def _queries(request: web.Request, plural: str) -> tuple[LabelQuery | None, FieldQuery | None]:
    try:
        labels = parse_label_selector(request.query["labelSelector"]) if request.query.get("labelSelector") else None
        fields = parse_field_selector(request.query["fieldSelector"], plural) if request.query.get("fieldSelector") else None
    except SelectorError as exc:
        raise status.bad_request(str(exc)) from None
    return labels, fields


BODY_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")


async def _body(request: web.Request) -> object:
    """The request's object: JSON (kubectl sends manifests as JSON), YAML, or Kubernetes
    protobuf, which kubectl's typed clients send for `create deployment`, `create
    namespace`, `auth can-i` and the like; client-go does not retry in JSON after a 415
    (kubectl 1.32 and 1.37, tried), so the server reads it (``protobuf``)."""
    raw = await request.read()
    if not raw:
        return None
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if content_type not in BODY_TYPES:
        raise status.unsupported_media_type(BODY_TYPES)
    if content_type == "application/vnd.kubernetes.protobuf":
        from testbed.apiserver import protobuf  # noqa: PLC0415

        try:
            return protobuf.decode(raw)
        except protobuf.UnsupportedKind as exc:
            raise status.ApiError(415, "UnsupportedMediaType", str(exc)) from None
        except ValueError as exc:
            raise status.bad_request(f"the body of the request could not be decoded as protobuf: {exc}") from None
    if content_type == "application/yaml":
        import yaml  # noqa: PLC0415

        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise status.bad_request(f"the body of the request could not be decoded as YAML: {exc}") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise status.bad_request(f"the body of the request could not be decoded as JSON: {exc}") from None


async def serve_resource(request: web.Request, target: paths.Target) -> web.StreamResponse:
    backend: Backend = request.app["backend"]
    kind, method = target.kind, request.method
    dry_run = request.query.get("dryRun") == "All"
    if target.subresource is not None:
        return await serve_subresource(request, backend, target, dry_run)
    if target.name is None:
        labels, fields = _queries(request, kind.plural)
        if method == "GET" and resources.truthy(request.query.get("watch")):
            return await watch_stream(request, backend, WatchRequest.of(kind, target.namespace, labels, fields, request))
        if method == "GET":
            listing = await backend.run(lambda s: resources.list_objects(s, kind, target.namespace, labels, fields))
            if tables.wants_table(request.headers.get("Accept", "")):
                include = tables.include_object(request.query.get("includeObject"))
                return json_response(tables.table(kind.plural, listing.items, resource_version=str(listing.revision),
                                                  include_object=include))  # fmt: skip
            return json_response(resources.list_body(kind, listing))
        if method == "POST":
            body = await _body(request)
            created = await backend.run(lambda s: resources.create(s, backend.lab, target, body, dry_run=dry_run))
            return json_response(created, 201)
        if method == "DELETE":
            options = resources.delete_options(await _body(request), request.query)
            deleted = await backend.run(
                lambda s: resources.delete_collection(s, kind, target.namespace, labels, fields, options)
            )
            return json_response(deleted)
        raise status.method_not_allowed(kind.plural, method)
    if method == "GET":
        found = await backend.run(lambda s: resources.get(s, target))
        if tables.wants_table(request.headers.get("Accept", "")):
            include = tables.include_object(request.query.get("includeObject"))
            return json_response(tables.table(kind.plural, [found], resource_version=found["metadata"]["resourceVersion"],
                                              include_object=include))  # fmt: skip
        return json_response(found)
    if method == "PUT":
        body = await _body(request)
        return json_response(await backend.run(lambda s: resources.update(s, backend.lab, target, body, dry_run=dry_run)))
    if method == "PATCH":
        raw = await request.read()
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        return json_response(await backend.run(lambda s: _patch(s, backend.lab, target, content_type, raw, dry_run)))
    if method == "DELETE":
        options = resources.delete_options(await _body(request), request.query)
        code, body = await backend.run(lambda s: resources.delete(s, target, options))
        return json_response(body, code)
    raise status.method_not_allowed(kind.plural, method)


async def serve_subresource(request: web.Request, backend: Backend, target: paths.Target, dry_run: bool,
                            ) -> web.StreamResponse:  # fmt: skip
    kind, method, sub = target.kind, request.method, target.subresource or ""
    if sub not in SUBRESOURCES.get(kind.plural, ()) or target.name is None:
        raise status.not_found_path()
    if sub == "status" and method == "GET":
        return json_response(await backend.run(lambda s: resources.get(s, target)))
    if sub == "exec" and method in ("GET", "POST"):  # GET: the WebSocket upgrade; POST: SPDY, refused inside
        from testbed.apiserver import execute  # noqa: PLC0415

        return await execute.serve_exec(request, backend, target)
    if sub == "portforward" and method in ("GET", "POST"):
        from testbed.apiserver import portforward  # noqa: PLC0415

        return await portforward.serve_portforward(request, backend, target)
    if sub == "attach" and method in ("GET", "POST"):
        from testbed.apiserver import execute  # noqa: PLC0415

        return await execute.serve_attach(request, backend, target)
    if sub == "log" and method == "GET":
        return await subresources.serve_log(request, backend, target)
    if sub == "scale":
        if method == "GET":
            return json_response(await backend.run(lambda s: subresources.get_scale(s, target)))
        if method == "PUT":
            body = await _body(request)
            spec = body.get("spec", {}) if isinstance(body, dict) else {}
            version = body.get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
            return json_response(await backend.run(
                lambda s: subresources.set_scale(s, backend.lab, target, spec.get("replicas"), version, dry_run)))
        if method == "PATCH":
            raw = await request.read()
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            return json_response(await backend.run(
                lambda s: subresources.patch_scale(s, backend.lab, target, content_type, raw, dry_run)))
    raise status.method_not_allowed_sub(kind.plural, sub, method)


APPLY_PATCH = "application/apply-patch+yaml"


def _applied(raw: bytes) -> dict[str, Any]:
    """A server-side apply body: the applied configuration, YAML or JSON."""
    import yaml  # noqa: PLC0415

    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise status.bad_request(f"error decoding YAML: {exc}") from None
    if not isinstance(value, dict):
        raise status.bad_request("the applied configuration is not an object")
    return value


def _patch(store: Datastore, lab: str, target: paths.Target, content_type: str, raw: bytes, dry_run: bool) -> dict[str, Any]:
    """Apply a patch to the stored object and update it, conditional on the revision the
    patch was applied to (again over a fresh read when another writer got in first).

    Server-side apply (``application/apply-patch+yaml``, `kubectl apply --server-side`)
    creates the object when it does not exist, and otherwise merges the applied
    configuration over it as a strategic merge patch: without managedFields, fields a
    manager applied before and no longer applies are kept, and no conflicts between
    managers are reported."""
    for _attempt in range(CONFLICT_RETRIES):
        if content_type == APPLY_PATCH:
            applied = _applied(raw)
            try:
                current = resources.get(store, target)
            except status.ApiError as exc:
                if exc.code != 404:
                    raise
                collection = paths.Target(target.kind, target.namespace)
                return resources.create(store, lab, collection, applied, dry_run=dry_run)
            raw, content_type = json.dumps(applied).encode(), "application/strategic-merge-patch+json"
            if target.kind.stored_only:
                content_type = "application/merge-patch+json"
        else:
            current = resources.get(store, target)
        try:
            patched = apply_patch(current, content_type, raw, target.kind.kind)
        except PatchError as exc:
            raise status.from_patch_error(exc.code, str(exc)) from None
        patched.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            return resources.update(store, lab, target, patched, dry_run=dry_run)
        except status.ApiError as exc:
            if exc.code != 409:
                raise
    raise status.conflict(target.kind.plural, target.kind.group, target.name or "")
