"""Felix's renderers: golden restore text (black-style cases), names, hashes, restore forms.

Golden cases live in tests/data/render/<case>.yaml (model as plain data) with the expected
output beside them in <case>.rules. Regenerate with TESTBED_REGEN=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from agents.felix.render import marks
from agents.felix.render.host import render_host
from agents.felix.render.ipsets import selector_set_name
from agents.felix.render.names import chain_name, policy_chain, profile_chain
from agents.felix.render.policy import port_blocks
from agents.felix.render.ipsets import SetRequests
from agents.felix.render.restore import (
    hook_line, render_chain_deletes, render_host_text, render_ipsets, render_ipsets_delta,
    render_table, rule_ids,
)
from agents.felix.render.rules import Chain, IPSet, Rule
from agents.felix.render.selectors import ALL_PODS, peer_selector, policy_selector
from agents.felix.render.static import HOOKS
from testbed.model.policy import LabelSelector, Peer, PolicyPort, Requirement
from testbed.naming import workload_interface
from tests.unit import felix_model

DATA = Path(__file__).resolve().parent.parent / "data" / "render"
CASES = sorted(p.stem for p in DATA.glob("*.yaml"))


def render_case(case: str) -> str:
    data = yaml.safe_load((DATA / f"{case}.yaml").read_text())
    endpoints, namespaces, policies = felix_model.model(data)
    return render_host_text(render_host(data["host"], endpoints, namespaces, policies))


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    actual = render_case(case)
    expected_path = DATA / f"{case}.rules"
    if os.environ.get("TESTBED_REGEN"):
        expected_path.write_text(actual)
    assert expected_path.exists(), f"no {expected_path.name}; run with TESTBED_REGEN=1"
    assert actual == expected_path.read_text()


def test_cases_exist() -> None:
    assert len(CASES) >= 4


# Selectors (calico.md §5)


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(tuple(sorted(labels.items())))


def test_pod_selector_peer_is_scoped_to_the_policy_namespace() -> None:
    got = peer_selector("stars", Peer(pod_selector=sel(role="frontend")))
    assert str(got) == (
        "projectcalico.org/namespace == 'stars' && "
        "projectcalico.org/orchestrator == 'k8s' && role == 'frontend'"
    )


def test_namespace_selector_peer_uses_pcns_keys() -> None:
    got = peer_selector("stars", Peer(namespace_selector=sel(role="client")))
    assert str(got) == "pcns.role == 'client' && projectcalico.org/orchestrator == 'k8s'"


def test_empty_namespace_selector_is_has_namespace() -> None:
    got = peer_selector("x", Peer(namespace_selector=LabelSelector(), pod_selector=sel(a="b")))
    assert str(got) == (
        "has(projectcalico.org/namespace) && projectcalico.org/orchestrator == 'k8s' && a == 'b'"
    )


def test_match_expressions_render_and_normalise() -> None:
    exprs = (
        Requirement("k", "In", ("b", "a")),
        Requirement("k", "NotIn", ("z",)),
        Requirement("e", "Exists"),
        Requirement("d", "DoesNotExist"),
    )
    got = peer_selector("x", Peer(pod_selector=LabelSelector((), exprs)))
    assert str(got).endswith(
        "k in { 'a', 'b' } && k not in { 'z' } && has(e) && ! has(d)"
    )


def test_policy_selector_and_matching() -> None:
    from testbed.model.policy import NetworkPolicy

    policy = NetworkPolicy("x", "p", sel(pod="a"), ("Ingress",))
    selector = policy_selector(policy)
    labels = {"projectcalico.org/namespace": "x", "projectcalico.org/orchestrator": "k8s"}
    assert selector.matches({**labels, "pod": "a"})
    assert not selector.matches({**labels, "pod": "b"})
    assert not selector.matches({"pod": "a", "projectcalico.org/namespace": "y"})


def test_selector_set_name_is_31_chars_and_stable() -> None:
    name = selector_set_name(ALL_PODS)
    assert name.startswith("cali40s:") and len(name) == 31
    assert name == selector_set_name(ALL_PODS)


# Names (calico.md §3)


def test_short_chain_names_are_kept_and_long_ones_hashed() -> None:
    assert chain_name("cali-pri-", "kns.stars") == "cali-pri-kns.stars"
    hashed = chain_name("cali-pi-", "stars/knp.default.default-deny")
    assert hashed.startswith("cali-pi-_") and len(hashed) == 28


def test_kubernetes_policy_chains_are_always_hashed() -> None:
    from testbed.model.policy import NetworkPolicy

    policy = NetworkPolicy("x", "p", LabelSelector(), ("Ingress",))
    assert policy_chain(policy, "Ingress").startswith("cali-pi-_")
    assert policy_chain(policy, "Egress").startswith("cali-po-_")
    assert len(profile_chain("n" * 40, "Ingress")) == 28


# Ports


def test_multiport_splits_at_15_slots() -> None:
    ports = tuple(PolicyPort("TCP", p) for p in range(1, 15)) + (PolicyPort("TCP", 100, 110),)
    blocks = port_blocks(ports, ALL_PODS, SetRequests())
    assert [b.match.count(",") + 1 for b in blocks] == [14, 1]
    assert blocks[1].match.endswith("--dports 100:110")


def test_protocol_without_port_matches_every_port() -> None:
    ports = (PolicyPort("UDP", 53), PolicyPort("UDP", None), PolicyPort("SCTP", 9))
    blocks = port_blocks(ports, ALL_PODS, SetRequests())
    assert [b.match for b in blocks] == ["-p udp", "-p sctp -m multiport --dports 9"]


# restore text


def test_rule_ids_chain_over_previous_rules() -> None:
    a = Chain("cali-x", (Rule("", "-j ACCEPT"), Rule("", "-j DROP")))
    b = Chain("cali-x", (Rule("-i lo", "-j ACCEPT"), Rule("", "-j DROP")))
    ids_a, ids_b = rule_ids(a), rule_ids(b)
    assert all(len(i) == 16 for i in ids_a + ids_b)
    assert ids_a[1] != ids_b[1]  # same rule, different history
    assert rule_ids(Chain("cali-y", a.rules))[0] != ids_a[0]


def test_render_table_declares_fills_and_deletes() -> None:
    chain = Chain("cali-a", (Rule("-i cali+", "-j DROP", "why"),))
    text = render_table("filter", [chain], delete=["cali-old", "cali-a"])
    lines = text.splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert lines[1:3] == [":cali-a - -", ":cali-old - -"]
    assert lines[3].startswith('-A cali-a -m comment --comment "cali:')
    assert lines[3].endswith('-m comment --comment "why" -i cali+ -j DROP')
    assert lines[4] == "-X cali-old"
    assert render_chain_deletes("raw", ["cali-z"]) == "*raw\n:cali-z - -\n-X cali-z\nCOMMIT\n"


def test_hook_lines_insert_at_the_top() -> None:
    forward = next(h for h in HOOKS if h.chain == "FORWARD")
    assert hook_line(forward).startswith('-I FORWARD 1 -m comment --comment "cali:')
    assert hook_line(forward).endswith(" -j cali-FORWARD")


def test_ipsets_full_and_delta() -> None:
    old = IPSet("cali40s:a", "hash:net", frozenset({"10.0.0.1/32", "10.0.0.2/32"}))
    new = IPSet("cali40s:a", "hash:net", frozenset({"10.0.0.2/32", "10.0.0.3/32"}))
    fresh = IPSet("cali40n:b", "hash:ip,port", frozenset({"10.0.0.3,tcp:80"}))
    gone = IPSet("cali40s:c", "hash:net", frozenset())
    assert render_ipsets([new]) == (
        "create cali40s:a hash:net family inet maxelem 1048576 -exist\n"
        "flush cali40s:a\nadd cali40s:a 10.0.0.2/32\nadd cali40s:a 10.0.0.3/32\n"
    )
    delta = render_ipsets_delta({old.name: old, gone.name: gone}, [new, fresh])
    assert delta.update == (
        "del cali40s:a 10.0.0.1/32 -exist\nadd cali40s:a 10.0.0.3/32 -exist\n"
        "create cali40n:b hash:ip,port family inet maxelem 1048576 -exist\n"
        "add cali40n:b 10.0.0.3,tcp:80\n"
    )
    assert delta.destroy == "destroy cali40s:c\n"
    assert render_ipsets_delta({new.name: new}, [new]).empty


def test_ipset_type_change_swaps_through_a_temporary_set() -> None:
    old = IPSet("cali40s:a", "hash:ip,port", frozenset())
    new = IPSet("cali40s:a", "hash:net", frozenset({"10.0.0.2/32"}))
    update = render_ipsets_delta({old.name: old}, [new]).update.splitlines()
    assert update[-2:] == ["swap cali4t0 cali40s:a", "destroy cali4t0"]


# render_host


def test_rule_count_does_not_grow_with_remote_pods() -> None:
    data = yaml.safe_load((DATA / "namespace-selector.yaml").read_text())
    endpoints, namespaces, policies = felix_model.model(data)
    before = render_host("h1", endpoints, namespaces, policies)
    extra = [
        felix_model.endpoint(
            {"namespace": "y", "name": f"r{i}", "ip": f"10.65.9.{i}", "host": "h9",
             "labels": {"pod": "b"}}
        )
        for i in range(1, 50)
    ]
    after = render_host("h1", endpoints + extra, namespaces, policies)
    assert after.chains == before.chains and after.raw_chains == before.raw_chains
    assert sum(len(s.members) for s in after.ipsets) > sum(len(s.members) for s in before.ipsets)


def test_dispatch_and_endpoint_chains_for_local_pods_only() -> None:
    data = yaml.safe_load((DATA / "default-deny.yaml").read_text())
    endpoints, namespaces, policies = felix_model.model(data)
    rules = render_host("h1", endpoints, namespaces, policies)
    names = {c.name for c in rules.chains}
    assert f"cali-tw-{workload_interface('x', 'a')}" in names
    assert f"cali-tw-{workload_interface('x', 'b')}" not in names  # on h2
    dispatch = rules.chain("cali-to-wl-dispatch")
    assert dispatch.rules[-1] == Rule("", "-j DROP", "Unknown interface")
    assert len(dispatch.rules) == 3
    tw = rules.chain(f"cali-tw-{workload_interface('x', 'a')}")
    assert Rule(marks.match(0, marks.PASS), "-j DROP", "Drop if no policies passed packet") in tw.rules
    tw_y = rules.chain(f"cali-tw-{workload_interface('y', 'a')}")
    assert not any("policies" in r.comment for r in tw_y.rules)
    assert all(len(c.name) <= 28 for c in rules.chains)


def test_inactive_policies_render_no_chains_and_no_sets() -> None:
    data = yaml.safe_load((DATA / "named-port.yaml").read_text())
    endpoints, namespaces, policies = felix_model.model(data)
    rules = render_host("h1", endpoints, namespaces, policies)  # y/b (selected) is on h2
    assert not any(c.name.startswith(("cali-pi-", "cali-po-")) for c in rules.chains)
    assert rules.ipsets == ()


def test_walker_rejects_rules_it_cannot_read() -> None:
    from agents.felix.render.host import HostRules
    from agents.felix.render.walk import Packet, walk

    chain = Chain("cali-OUTPUT", (Rule("-m state --state NEW", "-j DROP"),))
    rules = HostRules("h", (chain,), (), (), HOOKS)
    with pytest.raises(ValueError, match="--state"):
        walk(rules, Packet("10.0.0.1", "10.0.0.2", "tcp", 80, None, "eth1"))


@pytest.mark.parametrize("case", CASES)
def test_the_applier_reads_back_the_ids_the_renderer_writes(case: str) -> None:
    """Renderer and applier share one id function; what must agree is the text: the ids
    written into restore lines are the ones the applier's parser finds again."""
    from agents.felix.apply.iptables import parse_save

    data = yaml.safe_load((DATA / f"{case}.yaml").read_text())
    endpoints, namespaces, policies = felix_model.model(data)
    host = render_host(data["host"], endpoints, namespaces, policies)
    for table, chains in (("filter", host.chains), ("raw", host.raw_chains)):
        actual = parse_save(render_table(table, chains), table)
        for chain in chains:
            assert [r.rule_id for r in actual.rules[chain.name]] == rule_ids(chain), chain.name
