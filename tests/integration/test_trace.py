"""`testbed trace` on a real lab (netpol-model: x, y, z with pods a on host1, b on host2,
c on host3): the marked SYN seen at every hop with the pods' own addresses on the fabric,
the SYN-ACK followed back, the deciding rule named back to the policy, and the what-if
walk agreeing with reality. The lab and the checks come from the project's pytest
plugin (testbed.pytest_plugin), as a user's suite would get them; the text output is
read through the CLI, as a user reads it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.pytest_plugin import Lab, LabFactory
from tests.integration.labs import REPO, status_json, testbed

pytest_plugins = ("testbed.pytest_plugin",)  # also loaded through its pytest11 entry point
pytestmark = pytest.mark.root

POLICIES = Path(REPO) / "tests" / "data" / "policies"


@pytest.fixture(scope="module")
def model(root_unchanged: None, testbed_module_lab: LabFactory) -> Lab:
    return testbed_module_lab("netpol-model", "ittrace")


@pytest.fixture
def clean(model: Lab) -> Iterator[str]:
    yield model.name
    for ns in "xyz":
        model.delete("netpol", namespace=ns)


def trace(lab: str, *args: str) -> dict:
    """The trace as JSON, from the plugin's helper (``-o json`` prints the same dict)."""
    protocol = args[args.index("--protocol") + 1] if "--protocol" in args else "tcp"
    src, dst = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] != "--protocol")]
    return Lab(lab, "netpol-model").trace(src, dst, protocol, what_if="--what-if" in args).to_json()


def apply(lab: str, name: str) -> None:
    Lab(lab, "netpol-model").apply(POLICIES / name)


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


def test_plugin_reachable_and_matrix_agree_with_the_trace(model: Lab, clean: str) -> None:
    model.apply(POLICIES / "deny-all-ingress.yaml")
    assert model.reachable("x/a", "z/c", 80) and model.trace("x/a", "z/c:80").allowed
    assert not model.reachable("y/a", "x/b", 80) and not model.trace("y/a", "x/b:80").allowed
    measured = model.matrix(80, namespaces=["x", "z"])
    assert measured == model.expected(measured)
    row = measured.cells[measured.pods.index("z/a")]
    assert [measured.pods[j] for j, ok in enumerate(row) if ok] == ["z/a", "z/b", "z/c"]  # x isolated


def test_addresses_outside_the_lab_are_refused(model: Lab) -> None:
    proc = testbed("trace", "--lab", model.name, "x/a", "192.0.2.1:80", check=False)
    assert proc.returncode == 1 and "traces never leave the lab" in proc.stderr
