"""The stars demo's management UI (`calico/star-collect`): polls the probes, draws the graph.

Every ``--poll-seconds`` it GETs each resource's status URL (in parallel, a short client
timeout) and caches ``{url, statusCode, json}``, or null on an error or a body that is not
JSON, as the original does. From that cache it builds the graph the page draws: one node
per probe that answered, an edge n->m when one of n's targets is m's URL, reachable or
not as n last saw it. Unlike the original, every unreachable edge (and every probe the UI
cannot reach) says why, when the collector is given the lab's etcd (``--lab``,
``--etcd-socket``, ``--pod``): the lab's oracle judges the pods behind the two URLs under
the stored NetworkPolicies, so the page can name the policy or default deny that blocks it.

API: `GET /` (the page, agents/apps/star_ui/index.html), `GET /resources`,
`POST /resources` (a JSON array of {id, url}), `GET /responses` ->
`{"responses": {"<id>": {...} | null}}`, `GET /graph.json` -> `{"nodes", "edges", "missing"}`.

Split as the agents are: resolving URLs to pods, judging and building the graph are pure;
the poll loop and the etcd read only move data.

Usage: python -m agents.apps.star_collect [--http-port=9001] [--resources-file=PATH]
       [--poll-seconds=5] [--lab LAB --etcd-socket PATH --pod NS/POD]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from testbed.datastore.base import Datastore
    from testbed.kube.services import Service
    from testbed.model.policy import Endpoint, Namespace, NetworkPolicy

LOG = logging.getLogger("agents.apps.star_collect")

DEFAULT_PORT = 9001
DEFAULT_POLL = 5.0
DEFAULT_TIMEOUT = 2.0
PAGE = Path(__file__).resolve().parent / "star_ui" / "index.html"
# The demo's probes, as the lab's management-ui (which gives no command) polls them; the
# URLs are byte for byte the probes' --urls, or no edge would match.
DEFAULT_RESOURCES: tuple[dict[str, str], ...] = (
    {"id": "C", "url": "http://client.client:9000/status"},
    {"id": "F", "url": "http://frontend.stars:80/status"},
    {"id": "B", "url": "http://backend.stars:6379/status"},
)
CLUSTER_SUFFIXES = (("svc", "cluster", "local"), ("svc",))

Resource = Mapping[str, str]  # {"id": ..., "url": ...}
Response = Mapping[str, Any] | None  # {"url", "statusCode", "json"}, or None
Judge = Callable[[str | None, str], str | None]  # (from URL or None = the UI, to URL) -> reason

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy from the env


# --- pure: resources and the graph -----------------------------------------------------


def parse_resources(data: object) -> list[dict[str, str]]:
    """A JSON array of {id, url} (ValueError otherwise); ids must be unique."""
    if not isinstance(data, list):
        raise ValueError("resources: expected a JSON array of {id, url}")
    out: list[dict[str, str]] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("url"), str):
            raise ValueError(f"resources[{index}]: expected {{\"id\": string, \"url\": string}}")
        out.append({"id": item["id"], "url": item["url"]})
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):
        raise ValueError("resources: ids must be unique")
    return out


def targets_of(response: Response) -> list[Mapping[str, Any]]:
    """A probe's `status.targets`, [] for anything else."""
    body = response.get("json") if isinstance(response, Mapping) else None
    status = body.get("status") if isinstance(body, Mapping) else None
    targets = status.get("targets") if isinstance(status, Mapping) else None
    return [t for t in targets if isinstance(t, Mapping)] if isinstance(targets, list) else []


def build_graph(
    resources: Sequence[Resource], responses: Mapping[str, Response], judge: Judge | None = None
) -> dict[str, Any]:
    """The page's graph: a node per resource that answered, an edge n->m per target of n
    equal to m's URL (no self edges), and the resources that did not answer.

    ``judge`` gives the reason of each unreachable edge and missing node (None: unknown)."""
    nodes = [r for r in resources if responses.get(r["id"]) is not None]
    by_url = {r["url"]: r for r in nodes}
    edges = []
    for source in nodes:
        for target in targets_of(responses[source["id"]]):
            dest = by_url.get(str(target.get("url")))
            if dest is None or dest["id"] == source["id"]:
                continue
            ok = target.get("reachable") is True
            edges.append({
                "id": f"{source['id']}->{dest['id']}",
                "from": source["id"],
                "to": dest["id"],
                "reachable": ok,
                "reason": None if ok or judge is None else judge(source["url"], dest["url"]),
            })  # fmt: skip
    missing = [
        {"id": r["id"], "url": r["url"], "reason": None if judge is None else judge(None, r["url"])}
        for r in resources
        if responses.get(r["id"]) is None
    ]
    return {
        "nodes": [{"id": r["id"], "label": r.get("label", r["id"]), "url": r["url"]} for r in nodes],
        "edges": edges,
        "missing": missing,
    }


# --- pure: why an edge is missing, from the lab's state ---------------------------------


@dataclass(frozen=True)
class Cluster:
    """What the oracle needs, read from the lab's etcd."""

    endpoints: tuple[Endpoint, ...]
    namespaces: Mapping[str, Namespace]
    policies: tuple[NetworkPolicy, ...]
    services: tuple[Service, ...]


def pods_behind(url: str, cluster: Cluster, namespace: str = "default") -> tuple[list[tuple[Endpoint, int]], str]:
    """The pods (with the port they receive on) a URL reaches, and how it got there.

    The host is a Service name (`svc`, `svc.ns`, `svc.ns.svc.cluster.local`, as a pod's
    search list expands it; bare names are in ``namespace``), a ClusterIP or a pod IP."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    service = None
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        labels = tuple(host.rstrip(".").split("."))
        for suffix in CLUSTER_SUFFIXES:
            if len(labels) > len(suffix) and labels[-len(suffix) :] == suffix:
                labels = labels[: -len(suffix)]
                break
        if len(labels) not in (1, 2):
            return [], f"{host} is not a Service of the lab"
        name, ns = labels[0], labels[1] if len(labels) == 2 else namespace
        service = next((s for s in cluster.services if (s.namespace, s.name) == (ns, name)), None)
        if service is None:
            return [], f"no Service {ns}/{name}"
    else:
        service = next((s for s in cluster.services if s.cluster_ip == address), None)
        if service is None:
            pods = [(ep, port) for ep in cluster.endpoints if ep.ip == address]
            return pods, f"{address}" if pods else f"no pod or Service has {address}"
    return _service_pods(service, port, cluster)


def _service_pods(service: Service, port: int, cluster: Cluster) -> tuple[list[tuple[Endpoint, int]], str]:
    where = f"Service {service.namespace}/{service.name}"
    chosen = next((p for p in service.ports if p.port == port and p.protocol == "TCP"), None)
    if chosen is None:
        return [], f"{where} has no TCP port {port}"
    selector = dict(service.selector)
    pods = []
    for ep in cluster.endpoints:
        labels = dict(ep.labels)
        if not selector or ep.namespace != service.namespace or any(labels.get(k) != v for k, v in selector.items()):
            continue
        target = chosen.target_port
        if isinstance(target, str):
            target = next((n.port for n in ep.ports if n.name == target and n.protocol == "TCP"), None)
        if target is not None:
            pods.append((ep, target))
    return pods, where if pods else f"{where} has no endpoints"


def judge(cluster: Cluster, source_url: str | None, dest_url: str, ui_pod: str | None = None) -> str | None:
    """Why ``source_url``'s pods (None: the UI's own pod, ``ui_pod`` "ns/name") may not
    reach ``dest_url``'s: the oracle's explanation of the first denied pair, or what the
    oracle found when it allows them all (the probe then has not seen the change yet)."""
    from testbed import oracle  # noqa: PLC0415 - only with the lab's etcd

    if source_url is None:
        sources = [ep for ep in cluster.endpoints if ep.key == ui_pod]
        if not sources:
            return None
    else:
        found, why = pods_behind(source_url, cluster)
        sources = [ep for ep, _ in found]
        if not sources:
            return why
    targets, why = pods_behind(dest_url, cluster, sources[0].namespace)
    if not targets:
        return why
    allowed = ""
    for src in sources:
        for dst, port in targets:
            verdict = oracle.evaluate(src, dst, port, "TCP", cluster.policies, cluster.namespaces)
            if not verdict.allowed:
                return oracle.explain(verdict)
            allowed = allowed or oracle.explain(verdict)
    return f"not denied by policy ({allowed}): not probed since the last change?"


# --- the lab's etcd (thin) ---------------------------------------------------------------


def read_cluster(store: Datastore) -> Cluster:
    """Endpoints, namespaces, policies and Services at the store's current revision."""
    from testbed.datastore import keys  # noqa: PLC0415 - `--help` and unit tests stay cheap
    from testbed.kube.errors import ManifestError  # noqa: PLC0415
    from testbed.kube.services import service_from_dict  # noqa: PLC0415
    from testbed.kube.view import read_view  # noqa: PLC0415

    view = read_view(store)
    services = []
    for key, value in store.list(keys.SERVICES).items():
        try:
            services.append(service_from_dict(value))
        except ManifestError:
            LOG.warning("skipping %s: not a valid Service", key)
    return Cluster(view.endpoints, view.namespaces, view.policies, tuple(services))


# --- polling -------------------------------------------------------------------------------


def fetch(url: str, timeout: float = DEFAULT_TIMEOUT) -> Response:
    """`{url, statusCode, json}` for a JSON answer (any status), None otherwise."""
    try:
        request = urllib.request.Request(url, headers={"Connection": "close", "Accept": "application/json"})
        with _OPENER.open(request, timeout=timeout) as response:
            code, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read()
    except Exception:  # noqa: BLE001 - refused, reset, timed out, not HTTP: no answer
        return None
    try:
        return {"url": url, "statusCode": code, "json": json.loads(body)}
    except ValueError:
        return None


class Collector:
    """The resources, their last responses and the graph built from them."""

    def __init__(self, resources: Sequence[Resource], timeout: float = DEFAULT_TIMEOUT,
                 cluster: Callable[[], Cluster | None] | None = None, ui_pod: str | None = None) -> None:  # fmt: skip
        self.timeout = timeout
        self._cluster = cluster
        self._ui_pod = ui_pod
        self._lock = threading.Lock()
        self._resources = [dict(r) for r in resources]
        self._responses: dict[str, Response] = {}
        self._graph: dict[str, Any] = build_graph(self._resources, {})

    def resources(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(r) for r in self._resources]

    def set_resources(self, resources: Sequence[Resource]) -> None:
        with self._lock:
            self._resources = [dict(r) for r in resources]

    def responses(self) -> dict[str, Response]:
        with self._lock:
            return {r["id"]: self._responses.get(r["id"]) for r in self._resources}

    def graph(self) -> dict[str, Any]:
        with self._lock:
            return self._graph

    def poll(self) -> None:
        """GET every resource at once, then rebuild the graph (asking etcd only when
        something is unreachable)."""
        resources = self.resources()
        with ThreadPoolExecutor(max_workers=max(1, len(resources))) as pool:
            answers = list(pool.map(lambda r: fetch(r["url"], self.timeout), resources))
        responses = {r["id"]: answer for r, answer in zip(resources, answers, strict=True)}
        graph = build_graph(resources, responses)
        dark = graph["missing"] or any(not e["reachable"] for e in graph["edges"])
        cluster = self._cluster() if dark and self._cluster is not None else None
        if cluster is not None:
            graph = build_graph(resources, responses, lambda src, dst: judge(cluster, src, dst, self._ui_pod))
        graph["updated"] = time.time()
        with self._lock:
            self._responses, self._graph = responses, graph

    def run(self, period: float, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - one bad round must not stop the UI
                LOG.exception("poll failed")
            stop.wait(max(0.0, started + period - time.monotonic()))


def etcd_reader(store: Datastore) -> Callable[[], Cluster | None]:
    """read_cluster that logs an outage once and answers None meanwhile."""
    from testbed.datastore.base import DatastoreError  # noqa: PLC0415

    failing = False

    def read() -> Cluster | None:
        nonlocal failing
        try:
            cluster = read_cluster(store)
        except DatastoreError as exc:
            if not failing:
                LOG.warning("cannot read the lab's etcd (%s): reasons unknown meanwhile", exc)
            failing = True
            return None
        failing = False
        return cluster

    return read


# --- the server ---------------------------------------------------------------------------


def make_handler(collector: Collector, page: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "star-collect"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, page, "text/html; charset=utf-8")
            elif path == "/resources":
                self._json(collector.resources())
            elif path == "/responses":
                self._json({"responses": collector.responses()})
            elif path == "/graph.json":
                self._json(collector.graph())
            else:
                self.send_error(404)

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] != "/resources":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                resources = parse_resources(json.loads(self.rfile.read(length) or b"null"))
            except ValueError as exc:
                self._json({"error": str(exc)}, 400)
                return
            collector.set_resources(resources)
            self._json(resources)

        def _json(self, body: object, status: int = 200) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, data: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's signature
            pass  # the page polls every 2 s: no access log

    return Handler


def serve(collector: Collector, address: str, port: int) -> ThreadingHTTPServer:
    """The UI's server, bound (port 0: any free one) and not yet serving."""
    server = ThreadingHTTPServer((address, port), make_handler(collector, PAGE.read_bytes()))
    server.daemon_threads = True
    return server


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="collect", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http-port", type=int, default=DEFAULT_PORT, help="port of the UI and API (default: 9001)")
    parser.add_argument("--resources-file", type=Path, help="JSON array of {id, url} (default: the demo's C, F, B)")
    parser.add_argument("--poll-seconds", type=float, default=DEFAULT_POLL, help="seconds between polls (default: 5)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds a poll waits (default: 2)")
    parser.add_argument("--address", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--lab", help="the lab's name (with --etcd-socket: reasons from its policies)")
    parser.add_argument("--etcd-socket", type=Path, metavar="PATH", help="the lab's etcd UNIX socket")
    parser.add_argument("--pod", metavar="NS/POD", help="the UI's own pod (why it cannot reach a probe)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s star-collect %(levelname)s %(message)s")
    try:
        resources = parse_resources(json.loads(args.resources_file.read_text())) if args.resources_file else list(DEFAULT_RESOURCES)
    except (OSError, ValueError) as exc:
        LOG.error("%s: %s", args.resources_file, exc)
        return 2
    store = None
    if args.etcd_socket is not None:
        from testbed.datastore.etcd import EtcdDatastore  # noqa: PLC0415 - only with the lab's etcd

        store = EtcdDatastore.over_unix_socket(args.etcd_socket)
    collector = Collector(resources, args.timeout, etcd_reader(store) if store is not None else None, args.pod)
    try:
        server = serve(collector, args.address, args.http_port)
    except OSError as exc:
        LOG.error("cannot listen on %s:%d: %s", args.address, args.http_port, exc.strerror or exc)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: (stop.set(), threading.Thread(target=server.shutdown, daemon=True).start()))
    threading.Thread(target=collector.run, args=(args.poll_seconds, stop), name="poll", daemon=True).start()
    LOG.info("serving the UI on %s:%d, polling %d resources every %gs%s", args.address, server.server_address[1],
             len(resources), args.poll_seconds, f", reasons from {args.etcd_socket}" if store is not None else "")  # fmt: skip
    with server:
        server.serve_forever(poll_interval=0.2)
    stop.set()
    if store is not None:
        store.close()
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
