"""The network policy lab's Task 2 (the stars demo), step by step, as a user sees it.

`testbed up stars`, then the lab's policy manifests (topologies/stars/, verbatim) with
`testbed kubectl create -f`. After each step three views must agree with the lab: the
probes' own /status (read from inside each probe's netns), the management UI's JSON
through the localhost forwarder, and the page itself as headless Chromium renders it
(the SVG's data attributes, after the page's script refreshed it). A screenshot per
step is kept under pytest's tmp_path (printed; `pytest -s` shows where).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.runtime import state
from tests.integration.labs import REPO, RootSnapshot, in_netns, lab_netns, status_json, testbed, unique

pytestmark = pytest.mark.root

STARS = REPO / "topologies" / "stars"
CHROMIUM = shutil.which("chromium")
PROBE_PORTS = {"stars/backend": 6379, "stars/frontend": 80, "client/client": 9000}
NODE_OF = {"stars/backend": "B", "stars/frontend": "F", "client/client": "C"}
ALL_EDGES = {"C->F", "C->B", "F->F", "F->B", "F->C", "B->F", "B->B", "B->C"}
STEP_TIMEOUT = 40.0  # probes and collector poll every 5 s: two rounds each, and a loaded machine


@dataclass
class Stars:
    lab: str
    url: str  # the UI on localhost
    artifacts: Path


@pytest.fixture(scope="module")
def stars(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stars]:
    before = RootSnapshot.take()
    lab = unique("stars")
    up = testbed("up", "stars", "--name", lab, timeout=180)
    try:
        assert "replicationcontroller/management-ui created" in up.stderr or \
            'replicationcontroller "management-ui" created' in up.stderr, up.stderr
        match = re.search(r"management UI: (http://127\.0\.0\.1:\d+)", up.stdout)
        if match is None:  # 30002 taken (another stars lab?): the same forwarder on another port
            assert "is already in use" in up.stderr, up.stdout + up.stderr
            match = re.search(r"management UI: (\S+)", testbed("ui", "--lab", lab, "--port", "30102").stdout)
            assert match is not None
        artifacts = tmp_path_factory.mktemp("stars-screenshots")
        print(f"\nstars screenshots: {artifacts}")
        yield Stars(lab, match.group(1), artifacts)
    finally:
        testbed("down", lab, check=False)
    assert lab_netns(lab) == []
    assert RootSnapshot.take() == before


# --- the three views -----------------------------------------------------------------


def probe_edges(lab: str) -> set[str] | None:
    """Each probe's /status, read from its own netns: the edges it reports reachable."""
    solid: set[str] = set()
    pods = {f"{p['namespace']}/{p['name'].rsplit('-', 1)[0]}": p for p in status_json(lab)["pods"]}
    for owner, port in PROBE_PORTS.items():
        pod = pods[owner]
        out = in_netns(pod["netns"], "curl", "-s", "-m", "2", f"http://{pod['ip']}:{port}/status")
        if out.returncode != 0:
            return None
        for target in json.loads(out.stdout)["status"]["targets"]:
            name = target["url"].split("//", 1)[1].split(":", 1)[0]  # frontend.stars
            to = {"frontend.stars": "F", "backend.stars": "B", "client.client": "C"}[name]
            if target["reachable"]:
                solid.add(f"{NODE_OF[owner]}->{to}")
    return solid


def ui_graph(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/graph.json", timeout=5) as answer:  # noqa: S310 - localhost
        return json.loads(answer.read())


def page_graph(url: str, screenshot: Path | None = None) -> tuple[set[str], set[str], set[str]]:
    """(nodes, solid edges, faint edges) of the page's SVG, after its script drew it."""
    assert CHROMIUM is not None
    common = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={screenshot.parent if screenshot else '/tmp'}/chromium-profile",
        "--virtual-time-budget=4000",
    ]
    if screenshot is not None:
        subprocess.run([*common, f"--screenshot={screenshot}", "--window-size=1280,800", url],
                       capture_output=True, timeout=90, check=False)
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=90).stdout
    assert 'data-loaded="true"' in dom, dom[:2000]
    nodes, solid, faint = set(), set(), set()
    for tag in re.findall(r"<g\s[^>]*>", dom):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        if "data-node" in attrs:
            nodes.add(attrs["data-node"])
        elif "data-from" in attrs:
            edge = f"{attrs['data-from']}->{attrs['data-to']}"
            (solid if attrs["data-reachable"] == "true" else faint).add(edge)
    return nodes, solid, faint


def wait_for(what: str, check: Callable[[], object], timeout: float = STEP_TIMEOUT) -> None:
    """Poll ``check`` until it returns a true value (bounded); the last value if never."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        if last is True:
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:g} s; last: {last!r}")


def expect(stars: Stars, step: str, nodes: set[str], solid: set[str]) -> None:
    """Probes, UI JSON and page all show ``nodes`` and exactly ``solid`` among the edges
    the UI draws (edges whose both ends it sees); every other such edge faint."""
    drawn = {e for e in ALL_EDGES if set(e.split("->")) <= nodes and e[0] != e[-1]}  # no loops drawn
    want_solid = solid & drawn

    def probes_agree() -> object:
        seen = probe_edges(stars.lab)
        return seen == solid or seen

    def ui_agrees() -> object:
        graph = ui_graph(stars.url)
        got_nodes = {n["id"] for n in graph["nodes"]}
        got_solid = {e["id"] for e in graph["edges"] if e["reachable"]}
        got_faint = {e["id"] for e in graph["edges"] if not e["reachable"]}
        ok = got_nodes == nodes and got_solid == want_solid and got_faint == drawn - want_solid
        return ok or (got_nodes, got_solid, got_faint)

    wait_for(f"{step}: the probes' /status", probes_agree)
    wait_for(f"{step}: the UI's graph.json", ui_agrees)
    shot = stars.artifacts / f"{step}.png"
    page = page_graph(stars.url, shot)
    deadline = time.monotonic() + STEP_TIMEOUT
    while page != (nodes, want_solid, drawn - want_solid) and time.monotonic() < deadline:
        time.sleep(1)
        page = page_graph(stars.url, shot)
    assert page == (nodes, want_solid, drawn - want_solid), step
    assert shot.stat().st_size > 1000, f"no screenshot at {shot}"
    print(f"{step}: {shot}")


def create(lab: str, manifest: str, *args: str) -> list[str]:
    return testbed("kubectl", "--lab", lab, "create", *args, "-f", str(STARS / manifest)).stdout.splitlines()


# --- Task 2, step by step --------------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/install installs it)")
def test_task2_stars_step_by_step(stars: Stars) -> None:
    # Every probe sees every other; the UI sees all three.
    expect(stars, "1-all-connected", {"B", "F", "C"}, ALL_EDGES)

    # Isolation in stars: the UI can no longer reach frontend and backend.
    assert create(stars.lab, "02-default-deny.yaml", "-n", "stars") == [
        'networkpolicy.networking.k8s.io "default-deny" created'
    ]
    expect(stars, "2-default-deny", {"C"}, {"F->C", "B->C"})  # egress is not isolated yet

    # allow-ui: the UI sees all again, but the apps still reach none of each other.
    assert create(stars.lab, "03-allow-ui.yaml") == [
        'networkpolicy.networking.k8s.io "allow-ui" created',
        'networkpolicy.networking.k8s.io "allow-ui" created',
    ]
    expect(stars, "3-allow-ui", {"B", "F", "C"}, set())

    # backend-policy: frontend -> backend on 6379 only.
    create(stars.lab, "04-backend-policy.yaml")
    expect(stars, "4-backend-policy", {"B", "F", "C"}, {"F->B"})

    # frontend-policy: client -> frontend on 80; client -> backend and anything into the
    # client stay faint.
    create(stars.lab, "05-frontend-policy.yaml")
    expect(stars, "5-frontend-policy", {"B", "F", "C"}, {"F->B", "C->F"})


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/install installs it)")
def test_task2_through_kubectl_itself(stars: Stars, tmp_path: Path) -> None:
    """The same steps with the real kubectl against the lab's API server (after the
    policies of the steps above are deleted through it): the same three views."""
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(testbed("kubeconfig", "--lab", stars.lab).stdout)
    kubectl = Path(sys.prefix) / "bin" / "kubectl"

    def run(*args: str) -> list[str]:
        done = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                              timeout=60, check=True)  # fmt: skip
        return done.stdout.splitlines()

    for namespace in ("stars", "client", "management-ui"):
        run("delete", "networkpolicy", "--all", "-n", namespace)
    expect(stars, "k1-all-connected", {"B", "F", "C"}, ALL_EDGES)
    assert run("create", "-n", "stars", "-f", str(STARS / "02-default-deny.yaml")) == [
        "networkpolicy.networking.k8s.io/default-deny created"]  # fmt: skip
    expect(stars, "k2-default-deny", {"C"}, {"F->C", "B->C"})
    assert run("create", "-f", str(STARS / "03-allow-ui.yaml")) == ["networkpolicy.networking.k8s.io/allow-ui created"] * 2
    expect(stars, "k3-allow-ui", {"B", "F", "C"}, set())
    run("create", "-f", str(STARS / "04-backend-policy.yaml"))
    expect(stars, "k4-backend-policy", {"B", "F", "C"}, {"F->B"})
    run("create", "-f", str(STARS / "05-frontend-policy.yaml"))
    expect(stars, "k5-frontend-policy", {"B", "F", "C"}, {"F->B", "C->F"})


def test_down_stops_the_forwarder(stars: Stars) -> None:
    """Checked last by the fixture too; here: the forwarder is a recorded process of the lab."""
    recorded = json.loads((state.folder(stars.lab) / state.STATE_FILE).read_text())
    assert any(p["name"].startswith("ui forwarder") and p["netns"] == "" for p in recorded["processes"])
