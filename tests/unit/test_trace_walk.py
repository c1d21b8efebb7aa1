"""The what-if walk and the numbered trace (testbed.trace.whatif, walkmodel, render):
host steps from the rendered rules, the predicted hops, the verdict line, and the
differences a real trace is flagged with."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from testbed.naming import workload_interface
from testbed.trace import render, walkmodel, whatif
from testbed.trace.model import Decision, Node, Sighting, TraceResult
from testbed.trace.path import points
from tests.unit import felix_model

DATA: dict[str, Any] = {
    "namespaces": [{"name": "x", "labels": {"ns": "x"}}, {"name": "y", "labels": {"ns": "y"}}],
    "pods": [
        {"namespace": "x", "name": "a", "ip": "10.65.0.2", "host": "h1", "labels": {"pod": "a"}},
        {"namespace": "x", "name": "b", "ip": "10.65.1.2", "host": "h2", "labels": {"pod": "b"}},
        {"namespace": "y", "name": "a", "ip": "10.65.0.3", "host": "h1", "labels": {"pod": "a"}},
    ],
}
DENY_X = {"namespace": "x", "name": "deny-in", "podSelector": {}, "policyTypes": ["Ingress"]}
ALLOW_Y = {"namespace": "x", "name": "from-y", "podSelector": {},
           "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 80}]}]}
ROUTES = {"h1": [("10.65.1.0/26", "10.65.1.0/26 via 172.18.203.12 dev eth0 proto bird")],
          "h2": [("10.65.1.2", "10.65.1.2 dev cali1 proto boot")]}


def node(key: str, ip: str, host: str) -> Node:
    ns, name = key.split("/")
    return Node("pod", key, ip, host, f"lab.{ns}.{name}", workload_interface(ns, name))


XA, XB, YA = node("x/a", "10.65.0.2", "h1"), node("x/b", "10.65.1.2", "h2"), node("y/a", "10.65.0.3", "h1")


def what_if(src: Node, dst: Node, policies: list[dict[str, Any]], port: int = 80) -> TraceResult:
    eps, nss, pols = felix_model.model({**DATA, "policies": policies})
    chains = whatif.policy_chains(pols)
    steps = whatif.steps(src, dst, "request", whatif.walked(src, dst, "tcp", port, eps, nss, pols), ROUTES, chains)
    path = points("lab", src, dst)

    def make(p):  # type: ignore[no-untyped-def]
        return Sighting(p, "request", src.ip, dst.ip, None, port, "SYN")

    seen = walkmodel.predicted_sightings(path, "request", steps, make)
    result = TraceResult(src.name, dst.name, "tcp", port, True, steps=steps)
    result.hops = walkmodel.leg_hops("request", path, seen, steps, 1)
    result.allowed, result.dropped_at, result.dropped_by = walkmodel.verdict(path, seen, steps)
    return result


def test_no_policy_is_allowed_through_every_hop() -> None:
    result = what_if(XA, XB, [])
    assert result.verdict_line == "ALLOWED"
    assert all(h.seen for h in result.hops) and len(result.hops) == 8
    assert result.steps[0].route.startswith("10.65.1.0/26 via 172.18.203.12")


def test_default_deny_drops_at_the_destination_host_and_names_the_policy() -> None:
    result = what_if(XA, XB, [DENY_X])
    assert result.verdict_line == "DROPPED at h2 by default deny (x/deny-in)"
    seen = [h.point for h in result.hops if h.seen]
    assert seen[-1] == "h2 eth0"  # the host that drops it sees it arrive, its pod never does


def test_allow_rule_is_named_with_its_index_and_port_matters() -> None:
    allowed = what_if(YA, XA, [DENY_X, ALLOW_Y])
    assert allowed.verdict_line == "ALLOWED"
    assert any(s.decision.by == "x/from-y ingress rule 0" for s in allowed.steps)
    denied = what_if(YA, XA, [DENY_X, ALLOW_Y], port=81)
    assert denied.verdict_line == "DROPPED at h1 by default deny (x/deny-in, x/from-y)"
    assert whatif.oracle_allows(YA, XA, "tcp", 81, *felix_model.model({**DATA, "policies": [DENY_X, ALLOW_Y]})) is False


def test_differences_flag_a_real_trace_that_disagrees() -> None:
    predicted = what_if(XA, XB, [])
    assert walkmodel.differences(predicted, predicted) == []
    real = replace(predicted, what_if=False, hops=[replace(h, seen=h.number <= 5) for h in predicted.hops])
    real.allowed, real.dropped_at, real.dropped_by = False, "h2", "unknown (not seen after fabric p-h2)"
    diffs = walkmodel.differences(real, predicted)
    assert any("h2 eth0: not seen, what-if says seen" in d for d in diffs)
    assert any(d.startswith("verdict: DROPPED at h2") for d in diffs)


def test_unseen_request_without_a_drop_rule_is_dropped_at_the_last_host_seen() -> None:
    path = points("lab", XA, XB)
    seen = [Sighting(p, "request", XA.ip, XB.ip, 1, 80, "SYN") for p in path[:3]]
    ok = walkmodel.verdict(path, seen, [])
    assert ok == (False, "h1", "unknown (not seen after h1 eth0)")


def test_render_is_a_numbered_walk_ending_in_the_verdict() -> None:
    result = what_if(XA, XB, [DENY_X])
    text = render.render(result)
    lines = text.splitlines()
    assert lines[0] == "trace x/a -> x/b:80 tcp (what-if: computed, nothing sent)"
    assert lines[-1] == "DROPPED at h2 by default deny (x/deny-in)"
    assert "  1. x/a eth0" in text and "drop: default deny (x/deny-in)" in text
    result.differences = ["verdict: x"]
    assert "  ! verdict: x" in render.render(result)
    assert result.to_json()["verdict"] == result.verdict_line


def test_decision_rule_of_a_terminal_accept_stops_later_chains() -> None:
    same_host = whatif.steps(XA, YA, "reply", {"h1": []}, ROUTES, {})
    assert [s.decision.verdict for s in same_host] == ["UNKNOWN", "UNKNOWN"]
    est = {"h1": whatif.walked(XA, YA, "tcp", None, *felix_model.model(DATA), established=True)["h1"]}
    steps = whatif.steps(XA, YA, "reply", est, ROUTES, {})
    assert len(steps) == 1 and steps[0].decision == Decision(
        "ACCEPT", "conntrack (reply of an established connection)", steps[0].decision.rule)
