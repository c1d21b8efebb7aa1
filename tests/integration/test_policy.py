"""NetworkPolicy enforced for real on netpol-model: kubectl, the agents, verify, drift, spoofing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.labs import running_lab, REPO, in_netns, status_json, testbed

pytestmark = pytest.mark.root

POLICIES = REPO / "tests" / "data" / "policies"


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with running_lab("netpol-model", "itpol") as name:
        yield name


@pytest.fixture
def clean(lab: str) -> Iterator[str]:
    yield lab
    for ns in "xyz":
        testbed("kubectl", "--lab", lab, "delete", "netpol", "--all", "-n", ns, check=False)
    testbed("kubectl", "--lab", lab, "label", "ns", "y", "ns=y", "--overwrite", check=False)


def verify(lab: str, port: int = 80, protocol: str = "tcp") -> dict:
    proc = testbed("verify", "--lab", lab, "--port", str(port), "--protocol", protocol, "-o", "json", check=False)
    result = json.loads(proc.stdout)
    assert proc.returncode == (1 if result["wrong"] else 0)
    return result


def apply(lab: str, *names: str) -> None:
    testbed("kubectl", "--lab", lab, "apply", *(arg for name in names for arg in ("-f", str(POLICIES / name))))


@pytest.mark.parametrize(
    "policies, port, protocol",
    [
        (["deny-all-ingress.yaml"], 80, "tcp"),
        (["deny-all-ingress.yaml", "allow-from-namespace-y.yaml"], 80, "tcp"),
        (["allow-same-namespace.yaml"], 81, "udp"),
        (["pod-and-namespace-one-peer.yaml"], 80, "tcp"),
        (["named-port-ingress.yaml"], 81, "tcp"),
        (["end-port.yaml"], 81, "tcp"),
        (["deny-all-egress.yaml"], 80, "tcp"),
        (["egress-to-port.yaml"], 81, "tcp"),
        (["ip-block-except.yaml"], 80, "tcp"),
        (["multiple-policies.yaml"], 80, "tcp"),
        (["deny-all-ingress.yaml", "sctp-from-y.yaml"], 80, "sctp"),
    ],
)
def test_the_dataplane_enforces_what_the_policies_mean(clean: str, policies: list[str], port: int, protocol: str) -> None:
    apply(clean, *policies)
    result = verify(clean, port, protocol)
    assert result["wrong"] == []


def test_a_namespace_label_change_takes_effect(clean: str) -> None:
    apply(clean, "deny-all-ingress.yaml", "allow-from-namespace-y.yaml")
    x_a, y_a = 0, 3
    assert verify(clean)["matrix"][y_a][x_a] is True
    testbed("kubectl", "--lab", clean, "label", "ns", "y", "ns=elsewhere", "--overwrite")
    result = verify(clean)
    assert result["wrong"] == [] and result["matrix"][y_a][x_a] is False


def saved_rules(lab: str, host: str) -> str:
    text = in_netns(f"{lab}.{host}", "iptables-legacy-save").stdout
    return "\n".join(re.sub(r"\[\d+:\d+\]", "", line) for line in text.splitlines() if not line.startswith("#"))


def test_applying_twice_changes_nothing(clean: str) -> None:
    apply(clean, "deny-all-ingress.yaml")
    before = saved_rules(clean, "host1")
    again = testbed("kubectl", "--lab", clean, "apply", "-f", str(POLICIES / "deny-all-ingress.yaml"))
    assert "unchanged" in again.stdout
    assert saved_rules(clean, "host1") == before


def test_a_rule_deleted_by_hand_comes_back_on_resync(clean: str) -> None:
    apply(clean, "deny-all-ingress.yaml")
    netns = f"{clean}.host1"
    chain = next(
        line.split()[1] for line in saved_rules(clean, "host1").splitlines()
        if line.startswith("-A cali-tw-") and "Drop if no policies passed packet" in line
    )
    deleted = in_netns(netns, "iptables-legacy", "-D", chain, "-m", "comment", "--comment", "Drop if no policies passed packet", "-m", "mark", "--mark", "0x0/0x20000", "-j", "DROP")
    if deleted.returncode != 0:  # delete by position instead: the rule's number in its chain
        numbered = in_netns(netns, "iptables-legacy", "-L", chain, "--line-numbers", "-n").stdout
        number = next(line.split()[0] for line in numbered.splitlines() if "Drop if no policies" in line)
        assert in_netns(netns, "iptables-legacy", "-D", chain, number).returncode == 0
    assert "Drop if no policies passed packet" not in in_netns(netns, "iptables-legacy", "-S", chain).stdout
    deadline = time.monotonic() + 15  # the agent's resync is every 10 s
    while time.monotonic() < deadline:
        if "Drop if no policies passed packet" in in_netns(netns, "iptables-legacy", "-S", chain).stdout:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the hand-deleted rule did not come back within 15 s")
    assert verify(clean)["wrong"] == []


def test_a_spoofed_source_is_dropped(lab: str) -> None:
    pods = {f"{p['namespace']}/{p['name']}": p for p in status_json(lab)["pods"]}
    src, dst = pods["x/a"], pods["y/b"]
    assert in_netns(src["netns"], "ping", "-c", "1", "-W", "1", dst["ip"]).returncode == 0
    spoofed = "10.65.3.250"
    assert in_netns(src["netns"], "ip", "addr", "add", f"{spoofed}/32", "dev", "eth0").returncode == 0
    try:
        assert in_netns(src["netns"], "ping", "-c", "1", "-W", "1", "-I", spoofed, dst["ip"]).returncode != 0
    finally:
        in_netns(src["netns"], "ip", "addr", "del", f"{spoofed}/32", "dev", "eth0")


def test_explain_names_the_policy_and_the_chain(clean: str) -> None:
    apply(clean, "deny-all-ingress.yaml")
    out = testbed("explain", "--lab", clean, "y/b", "x/a:80/tcp").stdout
    assert out.startswith("denied: ingress to x/a is isolated by x/")
    assert "ingress: judged on host1 in chain cali-tw-cali" in out


def test_invalid_policies_store_nothing(clean: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: NetworkPolicy\napiVersion: networking.k8s.io/v1\nmetadata: {name: bad, namespace: x}\n"
        "spec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 70000}]\n    from: [{ipBlock: {cidr: 10.0.0.0/33}}]\n"
    )
    proc = testbed("kubectl", "--lab", clean, "apply", "-f", str(bad), check=False)
    assert proc.returncode == 1
    assert 'The NetworkPolicy "bad" is invalid: spec.ingress[0].ports[0].port: Invalid value: 70000' in proc.stderr
    assert "10.0.0.0/33" in proc.stderr
    listed = testbed("kubectl", "--lab", clean, "get", "netpol", "-n", "x", check=False)
    assert "bad" not in listed.stdout


def test_a_workload_route_deleted_by_hand_comes_back(lab: str) -> None:
    pods = {f"{p['namespace']}/{p['name']}": p for p in status_json(lab)["pods"]}
    target, src = pods["x/a"], pods["y/b"]
    netns = f"{lab}.{target['host']}"
    assert in_netns(netns, "ip", "route", "del", target["ip"]).returncode == 0
    assert in_netns(src["netns"], "ping", "-c", "1", "-W", "1", target["ip"]).returncode != 0
    deadline = time.monotonic() + 15  # the agent's resync is every 10 s
    while time.monotonic() < deadline:
        routes = in_netns(netns, "ip", "route", "show", target["ip"]).stdout
        if f"dev {target['interface']}" in routes:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the workload route did not come back within 15 s")
    assert in_netns(src["netns"], "ping", "-c", "1", "-W", "2", target["ip"]).returncode == 0


def test_a_pod_label_change_takes_effect(clean: str) -> None:
    apply(clean, "deny-all-ingress.yaml")
    testbed("kubectl", "--lab", clean, "apply", "-f", "-", input=(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: from-b, namespace: x}\n"
        "spec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {pod: b}}}]\n"
    ))
    x_a, x_c = 0, 2
    assert verify(clean)["matrix"][x_c][x_a] is False
    testbed("kubectl", "--lab", clean, "label", "pod", "c", "-n", "x", "pod=b", "--overwrite")
    try:
        result = verify(clean)
        assert result["wrong"] == [] and result["matrix"][x_c][x_a] is True
    finally:
        testbed("kubectl", "--lab", clean, "label", "pod", "c", "-n", "x", "pod=c", "--overwrite")
