"""What `up` waits for, without a kernel: BGP convergence (sessions in etcd, routes from a
fake route source) and the policy agents' enforced revision, over the memory store."""

from __future__ import annotations

import threading
import time

import pytest

from testbed.datastore import MemoryDatastore, keys
from testbed.model.topology import HostSpec, PodSpec, Topology
from testbed.runtime import policy_agents, speakers
from testbed.runtime.plan import HostPlan, LabPlan, plan_lab


def two_hosts() -> LabPlan:
    pods = (PodSpec("a", "demo", host="host1"), PodSpec("c", "demo", host="host2"))
    return plan_lab(Topology(name="t", hosts=(HostSpec("host1"), HostSpec("host2")), pods=pods), "t")


def established(store: MemoryDatastore, host: str, *peers: str) -> None:
    store.put(keys.bgp_status(host), {"peers": [{"address": p, "info": "Established"} for p in peers]})


class FakeRoutes:
    """Learned routes per host, and how often each host's kernel was read."""

    def __init__(self, routes: dict[str, set[str]]) -> None:
        self.routes = routes
        self.reads: dict[str, int] = {}

    def __call__(self, host: HostPlan) -> set[str]:
        self.reads[host.name] = self.reads.get(host.name, 0) + 1
        return set(self.routes.get(host.name, set()))


def test_converged_when_every_session_is_up_and_every_route_is_in() -> None:
    plan, store = two_hosts(), MemoryDatastore()
    established(store, "host1", "172.18.203.12")
    established(store, "host2", "172.18.203.11")
    routes = FakeRoutes({"host1": {"10.65.0.64/26"}, "host2": {"10.65.0.0/26"}})
    assert speakers.wait_converged(plan, store, 1.0, routes=routes, poll=0.001) < 0.5
    assert routes.reads == {"host1": 1, "host2": 1}


def test_kernels_are_not_read_while_a_session_is_down() -> None:
    plan, store = two_hosts(), MemoryDatastore()
    established(store, "host1", "172.18.203.12")
    routes = FakeRoutes({"host1": {"10.65.0.64/26"}, "host2": {"10.65.0.0/26"}})
    with pytest.raises(TimeoutError) as info:
        speakers.wait_converged(plan, store, 0.05, routes=routes, poll=0.001)
    assert "host2 lacks session 172.18.203.11" in str(info.value)
    assert routes.reads == {"host1": 1, "host2": 1}  # once, for the message at the end


def test_a_missing_route_is_named_and_a_host_with_all_its_routes_is_not_read_again() -> None:
    plan, store = two_hosts(), MemoryDatastore()
    established(store, "host1", "172.18.203.12")
    established(store, "host2", "172.18.203.11")
    routes = FakeRoutes({"host1": {"10.65.0.64/26"}})
    with pytest.raises(TimeoutError) as info:
        speakers.wait_converged(plan, store, 0.05, routes=routes, poll=0.001)
    assert str(info.value).startswith("BGP did not converge in 0.05 s (host2 lacks 10.65.0.0/26)")
    assert routes.reads["host1"] == 1 and routes.reads["host2"] > 1


def test_the_wait_ends_soon_after_the_last_session_comes_up() -> None:
    plan, store = two_hosts(), MemoryDatastore()
    established(store, "host1", "172.18.203.12")
    routes = FakeRoutes({"host1": {"10.65.0.64/26"}, "host2": {"10.65.0.0/26"}})
    later = threading.Timer(0.2, established, args=(store, "host2", "172.18.203.11"))
    later.start()
    began = time.monotonic()
    try:
        speakers.wait_converged(plan, store, 5.0, routes=routes)
    finally:
        later.cancel()
    assert 0.2 <= time.monotonic() - began < 0.2 + 0.1


def test_lagging_hosts_are_those_below_the_revision() -> None:
    store = MemoryDatastore()
    store.put(keys.felix_status("host1"), {"host": "host1", "revision": 7})
    store.put(keys.felix_status("host10"), {"host": "host10", "revision": 3})
    assert policy_agents.lagging(store, ["host1", "host10", "host2"], 5) == ["host10", "host2"]
    assert policy_agents.lagging(store, ["host1"], 7) == []
