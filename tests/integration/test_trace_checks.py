"""Issue 7's remaining checks, on real labs brought up by the project's pytest plugin:

- the stars demo (Task 2): after the lab's default-deny, client -> frontend:80 is
  `DROPPED at <frontend's host> by default deny (stars/default-deny)`; after allow-ui,
  backend-policy and frontend-policy it is ALLOWED, every hop seen, the SYN-ACK followed
  back the same way;
- a trace to a Service (``ns/svc`` or its ClusterIP) shows the DNAT to the endpoint the
  packet really went to;
- ``--what-if`` agrees with the real trace on every pair of netpol-model, under five
  different policies.
"""

from __future__ import annotations

import pytest

from testbed.pytest_plugin import Lab, LabFactory
from testbed.trace.model import TraceResult
from tests.integration.labs import REPO, testbed

pytest_plugins = ("testbed.pytest_plugin",)  # also loaded through its pytest11 entry point
pytestmark = pytest.mark.root

STARS = REPO / "topologies" / "stars"
POLICIES = REPO / "tests" / "data" / "policies"
MODEL_PODS = [f"{ns}/{pod}" for ns in "xyz" for pod in "abc"]


@pytest.fixture(scope="module")
def stars(root_unchanged: None, testbed_module_lab: LabFactory) -> Lab:
    return testbed_module_lab("stars", "itckstars")


@pytest.fixture(scope="module")
def model(root_unchanged: None, testbed_module_lab: LabFactory) -> Lab:
    return testbed_module_lab("netpol-model", "itckmodel")


def host_of(lab: Lab, pod: str) -> str:
    return next(p.host for p in lab.status().pods if f"{p.namespace}/{p.name}" == pod)


def ip_of(lab: Lab, pod: str) -> str:
    return next(p.ip for p in lab.status().pods if f"{p.namespace}/{p.name}" == pod)


def points(result: TraceResult, leg: str) -> list[str]:
    return [h.point for h in result.hops if h.leg == leg]


# --- Services: the DNAT to the chosen endpoint ----------------------------------------


@pytest.mark.parametrize("by", ["name", "cluster-ip"])
def test_trace_to_a_service_shows_the_dnat_to_the_endpoint_it_reached(stars: Lab, by: str) -> None:
    client, frontend = stars.pod("client/client"), stars.pod("stars/frontend")
    svc = next(s for s in testbed("kubectl", "--lab", stars.name, "get", "svc", "-n", "stars").stdout.splitlines()
               if s.startswith("frontend "))
    cluster_ip = svc.split()[2]
    dst = "stars/frontend" if by == "name" else cluster_ip
    result = stars.trace(client, f"{dst}:80")
    assert result.verdict_line == "ALLOWED", result.verdict_line
    request = [h for h in result.hops if h.leg == "request"]
    nat = [n for h in request for n in h.notes if n.startswith("nat: ")]
    pod_ip = ip_of(stars, frontend)
    assert nat == [f"nat: DNAT {cluster_ip}:80 -> {pod_ip}:80 ({frontend}, service stars/frontend)"]
    assert f"-> {cluster_ip}:80 SYN" in request[0].packet  # the client sends to the Service
    assert request[-1].point == f"{frontend} eth0" and f"-> {pod_ip}:80 SYN" in request[-1].packet
    reply = [h for h in result.hops if h.leg == "reply"]
    assert reply[-1].packet.startswith(f"{cluster_ip}:80 -> ")  # un-NATed on the way back
    assert result.differences == []
    text = testbed("trace", "--lab", stars.name, client, f"{dst}:80").stdout
    assert f"nat: DNAT {cluster_ip}:80 -> {pod_ip}:80" in text


# --- stars: the lab's policy steps ------------------------------------------------------


def test_default_deny_drops_client_to_frontend_at_the_frontends_host(stars: Lab) -> None:
    stars.apply(STARS / "02-default-deny.yaml", namespace="stars")  # as the lab: create -n stars
    client, frontend = stars.pod("client/client"), stars.pod("stars/frontend")
    text = testbed("trace", "--lab", stars.name, client, f"{frontend}:80").stdout
    expected = f"DROPPED at {host_of(stars, frontend)} by default deny (stars/default-deny)"
    assert text.splitlines()[-1] == expected, text
    assert "Drop if no policies passed packet" in text
    result = stars.trace(client, f"{frontend}:80")
    assert points(result, "reply") == [] and result.differences == []
    assert not next(h for h in result.hops if h.point == f"{frontend} eth0").seen


def test_after_the_labs_policies_client_to_frontend_is_allowed_hop_by_hop(stars: Lab) -> None:
    stars.apply(STARS / "02-default-deny.yaml", namespace="stars")
    for step in ("03-allow-ui.yaml", "04-backend-policy.yaml", "05-frontend-policy.yaml"):
        stars.apply(STARS / step)
    client, frontend = stars.pod("client/client"), stars.pod("stars/frontend")
    text = testbed("trace", "--lab", stars.name, client, f"{frontend}:80").stdout
    assert text.splitlines()[-1] == "ALLOWED", text
    assert "accept: stars/frontend-policy ingress rule 0" in text
    result = stars.trace(client, f"{frontend}:80")
    request, reply = points(result, "request"), points(result, "reply")
    hops = 4 if host_of(stars, client) == host_of(stars, frontend) else 8  # + host eth0s and fabric ports
    assert len(request) == hops and request[0] == f"{client} eth0" and request[-1] == f"{frontend} eth0"
    assert reply == list(reversed(request))
    assert all(h.seen for h in result.hops), [h.point for h in result.hops if not h.seen]
    assert all("SYN-ACK" in h.packet for h in result.hops if h.leg == "reply")
    assert result.differences == []
    # the backend stays closed to the client: the lab's point
    assert stars.trace(client, f"{stars.pod('stars/backend')}:6379").dropped_at == host_of(stars, stars.pod("stars/backend"))


# --- what-if against reality, every pair -------------------------------------------------

CASES = [  # (policy file, port): five different kinds of isolation
    ("deny-all-ingress.yaml", 80),
    ("deny-all-egress.yaml", 80),
    ("allow-from-namespace-y.yaml", 80),
    ("multiple-policies.yaml", 80),
    ("named-port-ingress.yaml", 81),  # the named port is 80: 81 is denied to x/a
]


@pytest.mark.parametrize(("policy", "port"), CASES, ids=[c[0].removesuffix(".yaml") for c in CASES])
def test_what_if_agrees_with_the_real_trace_on_every_pair(model: Lab, policy: str, port: int) -> None:
    model.apply(POLICIES / policy)
    try:
        wrong, verdicts = [], set()
        for src in MODEL_PODS:
            for dst in MODEL_PODS:
                real = model.trace(src, f"{dst}:{port}")
                predicted = model.trace(src, f"{dst}:{port}", what_if=True)
                verdicts.add(real.allowed)
                if real.differences or real.verdict_line != predicted.verdict_line:
                    wrong.append(f"{src} -> {dst}:{port}: real {real.verdict_line}, what-if "
                                 f"{predicted.verdict_line}; {'; '.join(real.differences)}")
        assert wrong == [], "\n".join(wrong)
        assert verdicts == {True, False}  # the policy isolates some pairs, not all
    finally:
        for ns in "xyz":
            model.delete("netpol", namespace=ns)
