"""`testbed trace` on a real lab (netpol-model: x, y, z with pods a on host1, b on host2,
c on host3): the marked SYN seen at every hop with the pods' own addresses on the fabric,
the SYN-ACK followed back, the deciding rule named back to the policy, and the what-if
walk agreeing with reality."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.labs import REPO, running_lab, status_json, testbed

pytestmark = pytest.mark.root

POLICIES = Path(REPO) / "tests" / "data" / "policies"


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with running_lab("netpol-model", "ittrace") as name:
        yield name


@pytest.fixture
def clean(lab: str) -> Iterator[str]:
    yield lab
    for ns in "xyz":
        testbed("kubectl", "--lab", lab, "delete", "netpol", "--all", "-n", ns, check=False)


def trace(lab: str, *args: str) -> dict:
    return json.loads(testbed("trace", "--lab", lab, *args, "-o", "json").stdout)


def apply(lab: str, name: str) -> None:
    testbed("kubectl", "--lab", lab, "apply", "-f", str(POLICIES / name))


def test_allowed_cross_host_trace_lists_every_hop_and_the_reply(clean: str) -> None:
    pods = {f"{p['namespace']}/{p['name']}": p for p in status_json(clean)["pods"]}
    a, b = pods["x/a"], pods["x/b"]
    proc = testbed("trace", "--lab", clean, "x/a", "x/b:80")
    lines = proc.stdout.splitlines()
    assert lines[-1] == "ALLOWED"
    assert not any("!" in line for line in lines)
    result = trace(clean, "x/a", "x/b:80")
    request = [h for h in result["hops"] if h["leg"] == "request"]
    reply = [h for h in result["hops"] if h["leg"] == "reply"]
    assert [h["point"] for h in request] == [
        "x/a eth0", f"host1 {a['interface']}", "host1 eth0", "fabric p-host1",
        "fabric p-host2", "host2 eth0", f"host2 {b['interface']}", "x/b eth0",
    ]
    assert all(h["seen"] for h in result["hops"])
    fabric = next(h for h in request if h["point"] == "fabric p-host2")
    assert fabric["packet"].startswith(f"{a['ip']}:") and f"-> {b['ip']}:80 SYN" in fabric["packet"]  # no encapsulation
    assert [h["point"] for h in reply] == [h["point"] for h in reversed(request)]
    assert all("SYN-ACK" in h["packet"] for h in reply)
    routes = [n for h in request for n in h["notes"] if n.startswith("route: ")]
    assert any("via" in r and "proto bird" in r for r in routes)  # host1 -> host2 over BGP
    assert result["verdict"] == "ALLOWED" and result["differences"] == []


def test_deny_policy_drops_at_the_destination_host_by_name(clean: str) -> None:
    apply(clean, "deny-all-ingress.yaml")
    proc = testbed("trace", "--lab", clean, "y/a", "x/b:80")
    assert proc.stdout.splitlines()[-1] == "DROPPED at host2 by default deny (x/default-deny-ingress)"
    assert "Drop if no policies passed packet" in proc.stdout
    result = trace(clean, "y/a", "x/b:80")
    seen = {h["point"]: h["seen"] for h in result["hops"]}
    assert seen["host2 eth0"] and not seen["x/b eth0"]
    assert not any(h["leg"] == "reply" for h in result["hops"])
    assert result["differences"] == []


def test_allow_rule_is_named_and_what_if_agrees_with_reality(clean: str) -> None:
    apply(clean, "deny-all-ingress.yaml")
    apply(clean, "allow-from-namespace-y.yaml")
    pairs = [("y/a", "x/a:80", True), ("y/b", "x/a:81", True), ("z/b", "x/a:80", False),
             ("x/c", "x/b:80", False), ("x/a", "z/c:80", True)]
    for src, dst, allowed in pairs:
        real = trace(clean, src, dst)
        predicted = trace(clean, src, dst, "--what-if")
        assert real["allowed"] is allowed, (src, dst, real["verdict"])
        assert real["verdict"] == predicted["verdict"], (src, dst)
        assert [(h["point"], h["seen"]) for h in real["hops"]] == [(h["point"], h["seen"]) for h in predicted["hops"]]
        assert real["differences"] == [], (src, dst, real["differences"])
    text = testbed("trace", "--lab", clean, "y/a", "x/a:80").stdout
    assert "x/allow-from-y ingress rule 0" in text


def test_udp_and_icmp_from_a_host(clean: str) -> None:
    assert trace(clean, "--protocol", "icmp", "host3", "x/a")["verdict"] == "ALLOWED"
    apply(clean, "deny-all-ingress.yaml")
    assert trace(clean, "--protocol", "udp", "z/c", "x/b:80")["verdict"].startswith("DROPPED at host2 by default deny")


def test_addresses_outside_the_lab_are_refused(lab: str) -> None:
    proc = testbed("trace", "--lab", lab, "x/a", "192.0.2.1:80", check=False)
    assert proc.returncode == 1 and "traces never leave the lab" in proc.stderr
