"""The stars demo's probe and collector: status JSON, reachability, the graph, the reasons, the page.

Everything on 127.0.0.1 with ports the kernel picks; nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from agents.apps import star_collect, star_probe
from testbed.kube.policy import parse_network_policy
from testbed.kube.services import parse_service
from testbed.model.policy import Endpoint, Namespace

URLS = {
    "F": "http://frontend.stars:80/status",
    "B": "http://backend.stars:6379/status",
    "C": "http://client.client:9000/status",
}
RESOURCES = [{"id": "C", "url": URLS["C"]}, {"id": "F", "url": URLS["F"]}, {"id": "B", "url": URLS["B"]}]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- helpers ---------------------------------------------------------------------------


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[str]:
    """Serve in a thread; yields http://127.0.0.1:PORT."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get(url: str) -> tuple[int, bytes]:
    try:
        with NO_PROXY.open(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def response(targets: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    return {"url": "x", "statusCode": 200, "json": {"status": {"targets": [{"url": u, "reachable": r} for u, r in targets]}}}


# --- the probe ---------------------------------------------------------------------------


def test_status_document_shape_and_order() -> None:
    doc = star_probe.status_document(["http://b/status", "http://a/status"], {"http://a/status": True})
    assert doc == {"status": {"targets": [
        {"url": "http://b/status", "reachable": False},  # not probed yet: unreachable
        {"url": "http://a/status", "reachable": True},
    ]}}  # fmt: skip
    assert json.loads(json.dumps(doc)) == doc


def test_parse_urls_takes_the_manifests_list() -> None:
    assert star_probe.parse_urls(",".join(URLS.values())) == list(URLS.values())
    assert star_probe.parse_urls("") == []


def test_probe_accepts_the_manifests_argv() -> None:
    args = star_probe.parse_args(["--http-port=6379", f"--urls={URLS['F']},{URLS['B']}"])
    assert (args.http_port, args.http_probe_seconds) == (6379, 5.0)
    assert star_probe.parse_urls(args.urls) == [URLS["F"], URLS["B"]]
    assert star_probe.parse_args(["--urls=x"]).http_port == 9000


def test_any_http_answer_is_reachable_and_a_closed_port_is_not() -> None:
    prober = star_probe.Prober([], 5, 1)
    with running(star_probe.serve(prober, "127.0.0.1", 0)) as base:
        assert star_probe.reachable(f"{base}/status", 1.0)
        assert star_probe.reachable(f"{base}/nothing-here", 1.0)  # 404 is an answer
    assert not star_probe.reachable(f"http://127.0.0.1:{closed_port()}/status", 1.0)
    assert not star_probe.reachable("not a url", 1.0)


def test_a_silent_target_times_out_quickly() -> None:
    with socket.socket() as silent:  # accepts (backlog) and never answers: a dropped answer
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        started = time.monotonic()
        assert not star_probe.reachable(f"http://127.0.0.1:{silent.getsockname()[1]}/status", 0.5)
        assert time.monotonic() - started < 3


def test_probe_serves_its_targets_reachability() -> None:
    dead = f"http://127.0.0.1:{closed_port()}/status"
    with running(star_probe.serve(star_probe.Prober([], 5, 1), "127.0.0.1", 0)) as other:
        live = f"{other}/status"
        prober = star_probe.Prober([live, dead], 0.2, 1.0)
        with running(star_probe.serve(prober, "127.0.0.1", 0)) as base:
            code, body = get(f"{base}/status")
            assert code == 200
            assert json.loads(body) == star_probe.status_document([live, dead], {})  # start unreachable
            prober.start()
            try:
                seen = wait_for(lambda: json.loads(get(f"{base}/status")[1])["status"]["targets"][0]["reachable"])
                assert seen is True
                assert json.loads(get(f"{base}/status")[1]) == {"status": {"targets": [
                    {"url": live, "reachable": True}, {"url": dead, "reachable": False},
                ]}}  # fmt: skip
                assert get(f"{base}/")[0] == 404
                assert get(f"{base}/status/x")[0] == 404
            finally:
                prober.stop()


# --- the graph ---------------------------------------------------------------------------


def test_graph_has_a_node_per_answering_probe_and_edges_to_matching_urls() -> None:
    responses = {
        "F": response([(URLS["F"], True), (URLS["B"], True), (URLS["C"], False)]),
        "B": response([(URLS["F"], False), (URLS["B"], True), (URLS["C"], False), ("http://elsewhere/status", True)]),
        "C": None,
    }
    graph = star_collect.build_graph(RESOURCES, responses)
    assert [n["id"] for n in graph["nodes"]] == ["F", "B"]
    assert graph["nodes"][0] == {"id": "F", "label": "F", "url": URLS["F"]}
    edges = {e["id"]: (e["reachable"], e["reason"]) for e in graph["edges"]}
    assert edges == {"F->B": (True, None), "B->F": (False, None)}  # no self edges, none to C or elsewhere
    assert graph["missing"] == [{"id": "C", "url": URLS["C"], "reason": None}]


def test_graph_asks_the_judge_only_for_what_is_dark() -> None:
    asked: list[tuple[str | None, str]] = []

    def judge(src: str | None, dst: str) -> str:
        asked.append((src, dst))
        return f"{src} x {dst}"

    responses = {"F": response([(URLS["B"], True), (URLS["C"], False)]), "B": None, "C": response([(URLS["F"], False)])}
    graph = star_collect.build_graph(RESOURCES, responses, judge)
    edges = {e["id"]: e for e in graph["edges"]}
    assert set(edges) == {"F->C", "C->F"}
    assert edges["F->C"]["reason"] == f"{URLS['F']} x {URLS['C']}"
    assert graph["missing"][0]["reason"] == f"None x {URLS['B']}"
    assert sorted(asked, key=str) == sorted([(URLS["F"], URLS["C"]), (URLS["C"], URLS["F"]), (None, URLS["B"])], key=str)


@pytest.mark.parametrize("bad", [None, "x", [{"id": "C"}], [{"id": "C", "url": "u"}, {"id": "C", "url": "v"}]])
def test_bad_resources_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="resources"):
        star_collect.parse_resources(bad)


def test_default_resources_are_the_probes_urls() -> None:
    assert star_collect.parse_resources(list(star_collect.DEFAULT_RESOURCES)) == RESOURCES


# --- the reasons (the oracle on the lab's objects) -----------------------------------------


def _policy(name: str, selector: dict[str, str], ingress: list[dict[str, Any]]) -> Any:
    obj = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "stars"},
        "spec": {"podSelector": {"matchLabels": selector} if selector else {}, "ingress": ingress},
    }  # fmt: skip
    return parse_network_policy(obj, "stars")


def _service(namespace: str, name: str, port: int, role: str) -> Any:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
           "spec": {"selector": {"role": role}, "ports": [{"port": port, "targetPort": port}]}}  # fmt: skip
    return parse_service(obj, namespace)


def _cluster(*policies: Any) -> star_collect.Cluster:
    endpoints = (
        Endpoint("stars", "frontend-a", "10.65.0.2", "h1", (("role", "frontend"),)),
        Endpoint("stars", "backend-b", "10.65.0.3", "h2", (("role", "backend"),)),
        Endpoint("client", "client-c", "10.65.0.4", "h3", (("role", "client"),)),
        Endpoint("management-ui", "management-ui-d", "10.65.0.5", "h1", (("role", "management-ui"),)),
    )
    namespaces = {
        n: Namespace(n, tuple(sorted({"kubernetes.io/metadata.name": n, **({"role": n} if n != "stars" else {})}.items())))
        for n in ("stars", "client", "management-ui")
    }
    services = (
        _service("stars", "frontend", 80, "frontend"),
        _service("stars", "backend", 6379, "backend"),
        _service("client", "client", 9000, "client"),
    )
    return star_collect.Cluster(endpoints, namespaces, tuple(policies), services)


DEFAULT_DENY = _policy("default-deny", {}, [])
ALLOW_UI = _policy("allow-ui", {}, [{"from": [{"namespaceSelector": {"matchLabels": {"role": "management-ui"}}}]}])
BACKEND = _policy("backend-policy", {"role": "backend"},
                  [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}], "ports": [{"protocol": "TCP", "port": 6379}]}])  # fmt: skip


def test_pods_behind_a_service_url() -> None:
    cluster = _cluster()
    pods, where = star_collect.pods_behind(URLS["B"], cluster)
    assert [(ep.key, port) for ep, port in pods] == [("stars/backend-b", 6379)]
    assert where == "Service stars/backend"
    assert star_collect.pods_behind("http://backend.stars.svc.cluster.local:6379/status", cluster)[0] == pods
    assert star_collect.pods_behind("http://backend:6379/", cluster, "stars")[0] == pods
    assert star_collect.pods_behind("http://backend.stars:81/status", cluster) == ([], "Service stars/backend has no TCP port 81")
    assert star_collect.pods_behind("http://nope.stars/status", cluster) == ([], "no Service stars/nope")
    assert [ep.key for ep, _ in star_collect.pods_behind("http://10.65.0.4:9000/", cluster)[0]] == ["client/client-c"]


def test_reason_names_the_default_deny() -> None:
    cluster = _cluster(DEFAULT_DENY, ALLOW_UI)
    reason = star_collect.judge(cluster, URLS["F"], URLS["B"])
    assert reason is not None
    assert reason.startswith("denied: ingress to stars/backend-b is isolated by ")
    assert "stars/default-deny" in reason and "stars/frontend-a" in reason


def test_reason_once_a_policy_allows_the_edge() -> None:
    cluster = _cluster(DEFAULT_DENY, ALLOW_UI, BACKEND)
    allowed = star_collect.judge(cluster, URLS["F"], URLS["B"])
    assert allowed is not None and allowed.startswith("not denied by policy (allowed by stars/backend-policy")
    denied = star_collect.judge(cluster, URLS["C"], URLS["B"])
    assert denied is not None and "client/client-c" in denied and "stars/backend-policy" in denied


def test_reason_for_a_probe_the_ui_cannot_reach() -> None:
    assert star_collect.judge(_cluster(DEFAULT_DENY), None, URLS["F"], "management-ui/management-ui-d") == (
        "denied: ingress to stars/frontend-a is isolated by stars/default-deny and no rule allows "
        "management-ui/management-ui-d"
    )
    assert star_collect.judge(_cluster(DEFAULT_DENY), None, URLS["F"], None) is None  # the UI's pod unknown


# --- the collector end to end on 127.0.0.1 ------------------------------------------------


def test_collector_polls_probes_and_serves_graph_and_page() -> None:
    dead = f"http://127.0.0.1:{closed_port()}/status"
    one = star_probe.Prober([], 0.1, 1.0)
    with running(star_probe.serve(one, "127.0.0.1", 0)) as base_one:
        url_one = f"{base_one}/status"
        two = star_probe.Prober([url_one, dead], 0.1, 1.0)
        with running(star_probe.serve(two, "127.0.0.1", 0)) as base_two:
            url_two = f"{base_two}/status"
            two.start()
            try:
                assert wait_for(lambda: two.document()["status"]["targets"][0]["reachable"])  # type: ignore[index]
                resources = [{"id": "A", "url": url_one}, {"id": "T", "url": url_two}, {"id": "D", "url": dead}]
                collector = star_collect.Collector(resources, 1.0, lambda: None)
                collector.poll()
                with running(star_collect.serve(collector, "127.0.0.1", 0)) as ui:
                    graph = json.loads(get(f"{ui}/graph.json")[1])
                    assert [n["id"] for n in graph["nodes"]] == ["A", "T"]
                    assert [(e["id"], e["reachable"]) for e in graph["edges"]] == [("T->A", True)]
                    assert graph["missing"] == [{"id": "D", "url": dead, "reason": None}]
                    responses = json.loads(get(f"{ui}/responses")[1])["responses"]
                    assert responses["D"] is None
                    assert responses["T"]["statusCode"] == 200
                    assert responses["T"]["json"] == two.document()
                    assert json.loads(get(f"{ui}/resources")[1]) == resources
                    code, page = get(f"{ui}/")
                    assert code == 200 and b"<svg" in page
                    assert get(f"{ui}/nothing")[0] == 404
            finally:
                two.stop()


def test_collector_takes_posted_resources() -> None:
    collector = star_collect.Collector(RESOURCES)
    with running(star_collect.serve(collector, "127.0.0.1", 0)) as ui:
        body = json.dumps([{"id": "X", "url": "http://x.y:1/status"}]).encode()
        request = urllib.request.Request(f"{ui}/resources", data=body, method="POST")
        with NO_PROXY.open(request, timeout=5) as answer:
            assert answer.status == 200
        assert json.loads(get(f"{ui}/resources")[1]) == [{"id": "X", "url": "http://x.y:1/status"}]
        bad = urllib.request.Request(f"{ui}/resources", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as error:
            NO_PROXY.open(bad, timeout=5)
        assert error.value.code == 400


def test_fetch_keeps_json_and_drops_the_rest() -> None:
    prober = star_probe.Prober(["http://a/status"], 5, 1)
    with running(star_probe.serve(prober, "127.0.0.1", 0)) as base:
        assert star_collect.fetch(f"{base}/status") == {"url": f"{base}/status", "statusCode": 200, "json": prober.document()}
        assert star_collect.fetch(f"{base}/other") is None  # 404 page is not JSON
    assert star_collect.fetch(f"http://127.0.0.1:{closed_port()}/status", 1.0) is None


# --- the page ------------------------------------------------------------------------------


def test_page_is_self_contained() -> None:
    page = star_collect.PAGE.read_text()
    assert re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE) == []
    assert "@import" not in page
    assert re.findall(r"url\(\s*['\"]?\s*(?:https?:)?//", page, re.IGNORECASE) == []
    assert re.findall(r"fetch\(\s*['\"](?:https?:)?//", page) == []
    for attribute in ('"data-edge"', '"data-reachable"', '"data-node"', '"data-reason"'):
        assert attribute in page  # what the browser test reads
    assert "graph.json" in page and "setInterval(refresh" in page
