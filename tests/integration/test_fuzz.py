"""Differential fuzzing: generated NetworkPolicies, the real dataplane against the oracle.

Hypothesis writes policies over the labels, ports and addresses of `netpol-model`
(podSelector and namespaceSelector with matchLabels and matchExpressions, ipBlock with
except, numeric and named ports, endPort, ingress, egress, policyTypes given or not), one
lab runs them all: each example is applied, enforced on every host, measured
(api.matrix: real connections) and compared cell by cell with what the oracle says the
policies mean (api.expected_matrix). A disagreement is shrunk by Hypothesis to a minimal
policy, which is saved under tests/data/regressions/ with both matrices; the second test
replays every saved case. Which side is right is then a question of what Kubernetes
means: a saved case's ``expected`` is the oracle's answer until someone decides otherwise.

Bounded: FUZZ_EXAMPLES examples (default 15) and FUZZ_SECONDS of dataplane work (default
150; shrinking then only replays what was already measured), so the module stays under
3 minutes. `FUZZ_EXAMPLES=200 FUZZ_SECONDS=1800 pytest tests/integration/test_fuzz.py` for
a long run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from testbed import api
from testbed.datastore import keys, records
from testbed.kube import edits, objects
from testbed.matrix import Matrix
from testbed.runtime.policy_agents import barrier, wait_enforced
from tests.integration.labs import REPO, running_lab

pytestmark = pytest.mark.root

REGRESSIONS = REPO / "tests" / "data" / "regressions"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
BUDGET_SECONDS = float(os.environ.get("FUZZ_SECONDS", "150"))
NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")

# netpol-model's addresses: host1 has 10.65.0.0/26 (the a pods), host2 .64/26 (b), host3 .128/26 (c).
POD_IPS = [f"10.65.0.{i}/32" for i in (0, 1, 2, 64, 65, 66, 128, 129, 130)]
BLOCKS = ["10.65.0.0/26", "10.65.0.64/26", "10.65.0.128/26"]
WIDE = ["10.65.0.0/25", "10.65.0.0/24", "10.65.0.0/16", "0.0.0.0/0"]


# -- the generator ------------------------------------------------------------------------


def selector(labels: dict[str, list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    """A LabelSelector over ``labels`` (key -> values that occur), plus absent keys and values."""
    keys_ = [*labels, "app"]  # "app" is carried by no pod and no namespace
    values = sorted({v for vs in labels.values() for v in vs} | {"w"})
    match_labels = st.dictionaries(st.sampled_from(keys_), st.sampled_from(values), max_size=2)
    expression = st.one_of(
        st.builds(
            lambda k, op, vs: {"key": k, "operator": op, "values": sorted(set(vs))},
            st.sampled_from(keys_), st.sampled_from(["In", "NotIn"]), st.lists(st.sampled_from(values), min_size=1, max_size=2),
        ),
        st.builds(lambda k, op: {"key": k, "operator": op}, st.sampled_from(keys_), st.sampled_from(["Exists", "DoesNotExist"])),
    )  # fmt: skip

    def build(ml: dict[str, str], exprs: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if ml:
            result["matchLabels"] = ml
        if exprs:
            result["matchExpressions"] = exprs
        return result

    return st.builds(build, match_labels, st.lists(expression, max_size=2))


POD_SELECTOR = selector({"pod": list(PODS)})
NAMESPACE_SELECTOR = selector({"ns": list(NAMESPACES), "kubernetes.io/metadata.name": list(NAMESPACES)})


def _inside(cidr: str, candidate: str) -> bool:
    outer, inner = ip_network(cidr), ip_network(candidate)
    return inner.subnet_of(outer) and inner != outer


@st.composite
def ip_block(draw: st.DrawFn) -> dict[str, Any]:
    cidr = draw(st.sampled_from([*POD_IPS, *BLOCKS, *WIDE]))
    inside = [c for c in [*POD_IPS, *BLOCKS, *WIDE] if _inside(cidr, c)]
    excepts = draw(st.lists(st.sampled_from(inside), max_size=2, unique=True)) if inside else []
    return {"cidr": cidr, **({"except": sorted(excepts)} if excepts else {})}


PEER = st.one_of(
    st.builds(lambda s: {"podSelector": s}, POD_SELECTOR),
    st.builds(lambda s: {"namespaceSelector": s}, NAMESPACE_SELECTOR),
    st.builds(lambda n, p: {"namespaceSelector": n, "podSelector": p}, NAMESPACE_SELECTOR, POD_SELECTOR),
    st.builds(lambda b: {"ipBlock": b}, ip_block()),
)


@st.composite
def policy_port(draw: st.DrawFn) -> dict[str, Any]:
    port: dict[str, Any] = {}
    protocol = draw(st.sampled_from([None, "TCP", "UDP", "SCTP"]))
    if protocol:
        port["protocol"] = protocol
    kind = draw(st.sampled_from(["none", "number", "range", "name"]))
    if kind == "number":
        port["port"] = draw(st.sampled_from([79, 80, 81]))
    elif kind == "range":
        port["port"] = draw(st.sampled_from([79, 80, 81]))
        port["endPort"] = draw(st.sampled_from([p for p in (80, 81, 82) if p >= port["port"]]))
    elif kind == "name":
        port["port"] = draw(st.sampled_from(["serve-80-tcp", "serve-80-udp", "serve-81-tcp", "serve-81-udp", "http"]))
    return port


def rule(direction: str) -> st.SearchStrategy[dict[str, Any]]:
    peers_key = "from" if direction == "ingress" else "to"

    def build(peers: list[dict[str, Any]] | None, ports: list[dict[str, Any]] | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if peers is not None:
            result[peers_key] = peers
        if ports is not None:
            result["ports"] = ports
        return result

    return st.builds(build, st.none() | st.lists(PEER, max_size=2), st.none() | st.lists(policy_port(), max_size=2))


@st.composite
def network_policy(draw: st.DrawFn, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": draw(POD_SELECTOR)}
    for direction in ("ingress", "egress"):
        rules = draw(st.none() | st.lists(rule(direction), max_size=2))
        if rules is not None:
            spec[direction] = rules
    types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if types is not None:
        spec["policyTypes"] = types
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": draw(st.sampled_from(NAMESPACES))},
        "spec": spec,
    }


@dataclass(frozen=True)
class Case:
    policies: tuple[dict[str, Any], ...]
    port: int
    protocol: str

    def key(self) -> str:
        return json.dumps([self.policies, self.port, self.protocol], sort_keys=True)


CASES = st.builds(
    lambda ps, port, proto: Case(tuple(ps), port, proto),
    st.lists(st.integers(0, 1), min_size=1, max_size=2).flatmap(
        lambda ns: st.tuples(*[network_policy(f"fuzz-{i}") for i in range(len(ns))])
    ),
    st.sampled_from([80, 81]),
    st.sampled_from(["tcp", "udp"]),
)


# -- running a case -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    measured: Matrix
    expected: Matrix

    def wrong(self) -> list[str]:
        m, e = self.measured, self.expected
        return [
            f"{m.pods[i]} -> {m.pods[j]}: measured {cell(m.cells[i][j])}, expected {cell(e.cells[i][j])}"
            for i in range(len(m.pods)) for j in range(len(m.pods)) if m.cells[i][j] != e.cells[i][j]
        ]  # fmt: skip


def cell(allowed: bool) -> str:
    return "." if allowed else "X"


def rows(matrix: Matrix) -> list[str]:
    return ["".join(cell(c) for c in row) for row in matrix.cells]


def enforce(lab: str, store: Any) -> None:
    hosts = [records.node_summary(v).name for v in store.list(keys.NODES).values()]
    wait_enforced(store, hosts, barrier(store))


def run_case(lab: str, case: Case) -> Outcome:
    """Apply the case's policies (as `kubectl apply` does), measure, ask the oracle, clean up."""
    with api.datastore(lab) as store:
        parsed = objects.parse_objects([dict(p) for p in case.policies], None)  # ManifestError: a bad generator
        objects.store_objects(store, lab, parsed, create_only=False)
        enforce(lab, store)
        try:
            measured = api.matrix(lab, case.port, case.protocol)
            expected = api.expected_matrix(lab, measured)
        finally:
            for namespace in NAMESPACES:
                edits.delete_policies(store, namespace, [], everything=True)
            enforce(lab, store)
    return Outcome(measured, expected)


def save_regression(case: Case, outcome: Outcome) -> Path:
    """The minimal case as tests/data/regressions/<hash>.yaml: policies, port, both matrices."""
    REGRESSIONS.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(case.key().encode()).hexdigest()[:10]
    path = REGRESSIONS / f"fuzz-{digest}.yaml"
    record = {
        "found": time.strftime("%Y-%m-%d"),
        "port": case.port,
        "protocol": case.protocol,
        "pods": list(outcome.measured.pods),
        "expected": rows(outcome.expected),  # the oracle's answer when found: rows are sources
        "measured_when_found": rows(outcome.measured),
        "wrong_when_found": outcome.wrong(),
        "policies": list(case.policies),
    }
    header = "# A disagreement between the dataplane and the oracle, shrunk by tests/integration/test_fuzz.py.\n"
    path.write_text(header + yaml.safe_dump(record, sort_keys=False))
    return path


# -- the tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with running_lab("netpol-model", "itfuzz") as name:
        yield name


def test_generated_policies_match_the_oracle(lab: str) -> None:
    seen: dict[str, Outcome] = {}  # measured once: shrinking and the final replay reuse it
    last_failure: list[tuple[Case, Outcome]] = []
    deadline = time.monotonic() + BUDGET_SECONDS

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )  # fmt: skip
    @given(case=CASES)
    def check(case: Case) -> None:
        key = case.key()
        if key not in seen:
            if time.monotonic() > deadline:
                reject()  # out of budget: only cases already measured may still be replayed
            seen[key] = run_case(lab, case)
        outcome = seen[key]
        wrong = outcome.wrong()
        if wrong:
            last_failure.append((case, outcome))
        assert not wrong, f"{len(wrong)} wrong cells on {case.protocol}/{case.port}: " + "; ".join(wrong[:5])

    try:
        check()
    except AssertionError:
        if last_failure:  # Hypothesis runs the minimal example last
            path = save_regression(*last_failure[-1])
            pytest.fail(f"the dataplane and the oracle disagree; minimal case saved in {path.relative_to(REPO)}")
        raise
    assert len(seen) >= min(EXAMPLES, 5), f"only {len(seen)} cases ran within {BUDGET_SECONDS:g} s"


def saved_cases() -> list[Path]:
    return sorted(REGRESSIONS.glob("*.yaml"))


@pytest.mark.parametrize("path", saved_cases(), ids=lambda p: p.stem)
def test_saved_regressions_replay(lab: str, path: Path) -> None:
    record = yaml.safe_load(path.read_text())
    case = Case(tuple(record["policies"]), int(record["port"]), str(record["protocol"]))
    outcome = run_case(lab, case)
    assert list(outcome.measured.pods) == record["pods"]
    assert rows(outcome.expected) == record["expected"], "the oracle's answer changed"
    assert rows(outcome.measured) == record["expected"], "; ".join(outcome.wrong())
