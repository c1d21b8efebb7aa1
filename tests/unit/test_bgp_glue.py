"""The BGP glue fed with ExaBGP 5.0.15's own JSON lines (recorded from a two-host lab, only
the prefixes varied), an in-memory datastore and a fake kernel route table.
"""

from __future__ import annotations

import io
import queue
import threading
from ipaddress import IPv4Network
from typing import Any

import pytest

from agents.bgp import runner
from agents.bgp.config import Peer
from agents.bgp.glue import REFRESH_COMMAND, Glue
from agents.bgp.kernel import KernelError
from testbed.datastore import DatastoreError, MemoryDatastore, keys
from testbed.datastore.blocks import affinity_record

H1, H2, RR = "172.18.203.11", "172.18.203.12", "172.18.203.254"
B1, B2 = "10.65.0.0/26", "10.65.0.64/26"
HEAD = '{ "exabgp": "5.0.0", "time": 1795954062.1, "host" : "vm", "pid" : 30149, "ppid" : 1, "counter": 1, '
NEIGHBOR = (
    '"neighbor": { "address": { "local": "172.18.203.11", "peer": "%s" }, "asn": { "local": 64512, '
    '"peer": 64512 }, "router-id": "172.18.203.11" , '
)


def state(state: str, reason: str | None = None, peer: str = H2) -> str:
    tail = f', "reason": "{reason}"' if reason is not None else ""
    return HEAD + '"type": "state", ' + NEIGHBOR % peer + f'"state": "{state}"{tail} }} }}\n'


def update(message: str, peer: str = H2) -> str:
    return HEAD + '"type": "update", ' + NEIGHBOR % peer + f'"direction": "receive", "message": {message} }} }}\n'


def announce(prefix: str, next_hop: str = H2, peer: str = H2) -> str:
    return update(
        '{ "update": { "attribute": { "origin": "igp", "local-preference": 100 }, "announce": '
        f'{{ "ipv4 unicast": {{ "{next_hop}": [ {{ "nlri": "{prefix}" }} ] }} }} }} }}',
        peer,
    )


def withdraw(prefix: str, peer: str = H2) -> str:
    return update(f'{{ "update": {{ "withdraw": {{ "ipv4 unicast": [ {{ "nlri": "{prefix}" }} ] }} }} }}', peer)


EOR = update('{ "eor": { "afi" : "ipv4", "safi" : "unicast" } }')
SHUTDOWN = HEAD + '"type": "notification", "notification": "shutdown" }\n'


class FakeKernel:
    """prefix -> (gateway or None, proto): the main table as the glue may see it."""

    def __init__(self, routes: dict[str, tuple[str | None, int]] | None = None) -> None:
        self.routes = dict(routes or {})
        self.failing: set[str] = set()

    def replace(self, prefix: str, gateway: str) -> None:
        if prefix in self.failing:
            raise KernelError(f"route replace {prefix} via {gateway}: Network unreachable")
        self.routes[prefix] = (gateway, 12)

    def remove(self, prefix: str) -> bool:
        gateway, proto = self.routes.get(prefix, (None, 0))
        if gateway is None or proto != 12:
            return False
        del self.routes[prefix]
        return True

    def flush(self) -> list[str]:
        ours = [p for p, (gw, proto) in self.routes.items() if gw is not None and proto == 12]
        for prefix in ours:
            del self.routes[prefix]
        return ours

    def close(self) -> None:
        pass

    def learned(self) -> dict[str, str | None]:
        return {p: gw for p, (gw, proto) in self.routes.items() if gw is not None and proto == 12}


def wep(node: str, pod: str, ip: str) -> tuple[str, dict[str, Any]]:
    name = f"{node}-k8s-{pod}-eth0"
    return keys.workload_endpoint("demo", name), {
        "metadata": {"name": name, "namespace": "demo", "labels": {}},
        "spec": {"node": node, "pod": pod, "interfaceName": f"cali{pod}", "ipNetworks": [f"{ip}/32"]},
    }


class Setup:
    def __init__(self) -> None:
        self.store = MemoryDatastore()
        self.store.put(keys.block_affinity("host1", IPv4Network(B1)), affinity_record())
        self.store.put(keys.block_affinity("host2", IPv4Network(B2)), affinity_record())
        self.store.put(*wep("host1", "a", "10.65.0.1"))
        self.store.put(*wep("host2", "c", "10.65.0.65"))
        self.kernel = FakeKernel({B1: (None, 12), "172.18.203.0/24": (None, 2)})
        self.out = io.StringIO()
        self.glue = Glue(self.store, self.kernel, self.out, "host1", H1, [Peer(H2), Peer(RR, "global")],
                         clock=lambda: 1_700_000_000.0)  # fmt: skip

    def commands(self) -> list[str]:
        lines = self.out.getvalue().splitlines()
        self.out.seek(0)
        self.out.truncate()
        return lines

    def status(self) -> dict[str, Any]:
        self.glue.flush_status()  # the loop does it after each batch of lines
        value = self.store.get(keys.bgp_status("host1"))
        assert value is not None
        return value

    def peer(self, address: str) -> dict[str, str]:
        return next(p for p in self.status()["peers"] if p["address"] == address)


@pytest.fixture
def s() -> Setup:
    setup = Setup()
    setup.glue.start()
    return setup


def test_start_announces_blocks_and_publishes_status(s: Setup) -> None:
    assert s.kernel.routes == {B1: (None, 12), "172.18.203.0/24": (None, 2)}  # blackhole kept
    assert s.commands() == [REFRESH_COMMAND, f"announce route {B1} next-hop {H1}"]
    status = s.status()
    assert (status["host"], status["router_id"], status["asn"], status["running"]) == ("host1", H1, 64512, True)
    assert status["peers"] == [
        {"address": H2, "type": "node-to-node mesh", "state": "start", "since": status["peers"][0]["since"],
         "info": "Active"},
        {"address": RR, "type": "global", "state": "start", "since": status["peers"][1]["since"], "info": "Active"},
    ]  # fmt: skip


def test_pods_and_blocks_come_and_go(s: Setup) -> None:
    s.commands()
    borrowed = wep("host1", "b", "10.65.3.7")  # outside host1's block: a /32
    s.store.put(*borrowed)
    s.store.put(*wep("host2", "d", "10.65.4.4"))  # another host's pod: not ours
    s.store.put(*wep("host1", "e", "10.65.0.2"))  # inside our block: the block covers it
    s.glue.on_datastore_change()
    assert s.commands() == [f"announce route 10.65.3.7/32 next-hop {H1}"]
    s.store.delete(borrowed[0])
    s.store.put(keys.block_affinity("host1", IPv4Network("10.65.0.128/26")), affinity_record())
    s.glue.on_datastore_change()
    assert s.commands() == [
        f"withdraw route 10.65.3.7/32 next-hop {H1}",
        f"announce route 10.65.0.128/26 next-hop {H1}",
    ]
    s.glue.on_datastore_change()
    assert s.commands() == []


def test_bad_records_are_skipped(s: Setup) -> None:
    s.commands()
    s.store.put(keys.workload_endpoint("demo", "broken"), {"spec": {"node": "host1"}})
    s.store.put(keys.affinities_of("host1") + "not-a-block", {})
    assert s.glue.on_datastore_change() is True
    assert s.commands() == []


def test_learned_routes_go_to_the_kernel_and_leave_on_withdraw(s: Setup) -> None:
    for line in (state("connected"), state("up"), EOR, announce(B2), announce("10.65.3.7/32")):
        s.glue.on_line(line)
    assert s.kernel.learned() == {B2: H2, "10.65.3.7/32": H2}
    s.glue.on_line(withdraw("10.65.3.7/32"))
    assert s.kernel.learned() == {B2: H2}
    assert s.kernel.routes[B1] == (None, 12)


def test_a_session_that_drops_takes_its_routes_with_it(s: Setup) -> None:
    s.glue.on_line(state("up"))
    s.glue.on_line(announce(B2))
    s.glue.on_line(announce("10.65.5.0/26", "172.18.203.13", peer=RR))
    s.glue.on_line(state("down", "notification sent (4,0)"))  # no withdraws come: flush H2's
    assert s.kernel.learned() == {"10.65.5.0/26": "172.18.203.13"}
    assert s.kernel.routes[B1] == (None, 12)


def test_routes_we_must_not_install(s: Setup) -> None:
    s.glue.on_line(announce("172.18.203.0/24"))  # outside the pool
    s.glue.on_line(announce("10.65.7.0/26", H1))  # back to ourselves
    s.glue.on_line(announce(B1))  # our own block, announced by someone else
    assert s.kernel.learned() == {}
    assert s.kernel.routes[B1] == (None, 12)


def test_status_follows_the_session(s: Setup) -> None:
    clock = [1_700_000_000.0]
    s.glue.status._clock = lambda: clock[0]
    s.glue.on_line(state("connected"))
    assert (s.peer(H2)["state"], s.peer(H2)["info"]) == ("start", "Connect")
    clock[0] += 61
    s.glue.on_line(state("up"))
    up = s.peer(H2)
    assert (up["state"], up["info"]) == ("up", "Established")
    clock[0] += 61
    s.glue.on_line(state("down", "notification sent (4,0)"))
    down = s.peer(H2)
    assert (down["state"], down["info"]) == ("start", "Active notification sent (4,0)")
    assert len({up["since"], down["since"]}) == 2
    clock[0] += 61
    s.glue.on_line(state("connected"))  # retrying: SINCE stays, as BIRD's does
    assert s.peer(H2)["since"] == down["since"] and s.peer(H2)["info"] == "Connect"
    assert s.peer(RR)["info"] == "Active"


def test_a_respawned_glue_learns_that_sessions_are_up_from_their_updates(s: Setup) -> None:
    assert s.peer(H2)["state"] == "start"  # ExaBGP sends no "up" for a session already up
    s.glue.on_line(announce(B2))  # the answer to our route refresh
    assert (s.peer(H2)["state"], s.peer(H2)["info"]) == ("up", "Established")
    s.glue.on_line(update('{ "eor": { "afi" : "ipv4", "safi" : "unicast" } }', peer=RR))
    assert s.peer(RR)["state"] == "up"


def test_odd_input_never_raises(s: Setup) -> None:
    s.commands()
    for line in ("", "\n", "done\n", "error\n", "garbage\n", "[1, 2]\n", "{\n", '{"type": "state"}\n',
                 state("teleported"), update('{"update": "nonsense"}'), announce("bogus/99"), EOR):  # fmt: skip
        s.glue.on_line(line)
    assert s.kernel.learned() == {} and s.commands() == [] and not s.glue.stopping


def test_error_acks_name_the_command(s: Setup, caplog: pytest.LogCaptureFixture) -> None:
    s.glue.on_line("error\n")  # the route refresh: no session up yet
    s.glue.on_line("error\n")
    assert f"ExaBGP refused: announce route {B1} next-hop {H1}" in caplog.text
    assert "refused: " + REFRESH_COMMAND not in caplog.text


def test_kernel_errors_are_logged_not_raised(s: Setup) -> None:
    s.kernel.failing.add(B2)
    s.glue.on_line(announce(B2))
    s.glue.on_line(announce("10.65.3.0/26"))
    assert s.kernel.learned() == {"10.65.3.0/26": H2}
    assert s.glue.installed == {"10.65.3.0/26": H2}


def test_stop_removes_our_routes_and_says_not_running(s: Setup) -> None:
    s.glue.on_line(announce(B2))
    s.glue.on_line(SHUTDOWN)
    assert s.glue.stopping
    s.glue.stop()
    assert s.kernel.learned() == {} and s.kernel.routes[B1] == (None, 12)
    status = s.status()
    assert status["running"] is False and {p["state"] for p in status["peers"]} == {"down"}


class FailingStore(MemoryDatastore):
    def put(self, key: str, value: dict[str, Any]) -> None:
        raise DatastoreError("etcd at 172.18.203.1:2379: put: cannot connect")

    def list(self, prefix: str) -> dict[str, dict[str, Any]]:
        raise DatastoreError("etcd at 172.18.203.1:2379: list: cannot connect")


def test_an_unreachable_datastore_does_not_stop_the_glue() -> None:
    out = io.StringIO()
    glue = Glue(FailingStore(), FakeKernel(), out, "host1", H1, [Peer(H2)])
    glue.start()
    assert glue.on_datastore_change() is False
    glue.on_line(state("up"))
    glue.on_line(announce(B2))
    assert glue.installed == {B2: H2}
    assert out.getvalue() == REFRESH_COMMAND + "\n"


def test_a_closed_stdout_stops_the_glue(s: Setup) -> None:
    s.out.close()
    s.store.put(*wep("host1", "b", "10.65.3.7"))
    s.glue.on_datastore_change()
    assert s.glue.stopping


# --- the process around it ----------------------------------------------------------------


def test_loop_batches_changes_and_stops_at_eof(s: Setup) -> None:
    calls: list[str] = []

    def relist() -> bool:
        calls.append("relist")
        return True

    s.glue.on_datastore_change = relist  # type: ignore[method-assign]
    events: queue.SimpleQueue[runner.Item] = queue.SimpleQueue()
    for item in [(runner.CHANGED, "etcd")] * 5 + [(runner.LINE, announce(B2)), (runner.LINE, "{oops\n")]:
        events.put(item)
    events.put((runner.EOF, "stdin closed"))
    assert runner.loop(s.glue, events, resync=60) == "stdin closed"
    assert s.kernel.learned() == {B2: H2}
    assert calls == []  # EOF in the same batch: stop without re-listing


def test_loop_writes_the_status_once_per_batch(s: Setup) -> None:
    writes: list[dict[str, Any]] = []
    real_put = s.store.put

    def put(key: str, value: dict[str, Any]) -> None:
        writes.append(value)
        real_put(key, value)

    def relist() -> bool:  # the resync timer fires after the batch: stop there
        events.put((runner.STOP, "SIGTERM"))
        return True

    s.store.put = put  # type: ignore[method-assign]
    s.glue.on_datastore_change = relist  # type: ignore[method-assign]
    events: queue.SimpleQueue[runner.Item] = queue.SimpleQueue()
    for _ in range(10):  # a peer that cannot connect yet
        events.put((runner.LINE, state("connected")))
        events.put((runner.LINE, state("down", "closing connection")))
    events.put((runner.LINE, state("up")))
    assert runner.loop(s.glue, events, resync=0.05) == "SIGTERM"
    assert len(writes) == 1 and writes[0]["peers"][0]["info"] == "Established"


def test_loop_resyncs_on_a_timer_and_survives_errors(s: Setup) -> None:
    calls: list[str] = []

    def relist() -> bool:
        calls.append("relist")
        if len(calls) == 1:
            raise RuntimeError("unexpected")
        if len(calls) == 3:
            events.put((runner.STOP, "SIGTERM"))
        return True

    s.glue.on_datastore_change = relist  # type: ignore[method-assign]
    events: queue.SimpleQueue[runner.Item] = queue.SimpleQueue()
    assert runner.loop(s.glue, events, resync=0.01) == "SIGTERM"
    assert len(calls) == 3


def test_watch_thread_notifies_on_connect_and_on_changes() -> None:
    store = MemoryDatastore()
    hits: queue.SimpleQueue[str] = queue.SimpleQueue()
    watch = runner.WatchThread(store, [keys.affinities_of("host1"), keys.WORKLOAD_ENDPOINTS], lambda: hits.put("x"))
    watch.start()
    try:
        assert hits.get(timeout=2) == "x"  # the full re-list after connecting
        store.put(*wep("host1", "a", "10.65.0.1"))
        assert hits.get(timeout=2) == "x"
        store.put("/elsewhere", {})
        assert hits.empty()
    finally:
        watch.stop()
    assert not [t for t in threading.enumerate() if t.name == "etcd-watch"]


def test_watch_thread_reconnects_after_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "BACKOFF_FIRST", 0.01)

    class Flaky(MemoryDatastore):
        attempts = 0

        def watch_prefix(self, prefix: str, callback: Any, **kw: Any) -> Any:
            Flaky.attempts += 1
            if Flaky.attempts == 1:
                raise DatastoreError("etcd at x: watch: cannot connect")
            if Flaky.attempts == 2:
                kw["on_error"](DatastoreError("etcd at x: watch: stream ended"))
            return super().watch_prefix(prefix, callback, **kw)

    hits: queue.SimpleQueue[str] = queue.SimpleQueue()
    watch = runner.WatchThread(Flaky(), ["/p/"], lambda: hits.put("x"))
    watch.start()
    try:
        assert hits.get(timeout=2) == "x" and hits.get(timeout=2) == "x"  # after each connect
        assert Flaky.attempts == 3
    finally:
        watch.stop()


def test_arguments() -> None:
    args = runner.parse_args(["--lab", "l", "--host", "host1", "--local-ip", H1, "--etcd", "172.18.203.1:2379",
                              "--peer", f"{H2}:mesh", "--peer", f"{RR}:global", "--hold-time", "9"])  # fmt: skip
    assert args.peer == [Peer(H2, "mesh"), Peer(RR, "global")]
    assert args.etcd == ("172.18.203.1", 2379) and args.hold_time == 9
    with pytest.raises(SystemExit):
        runner.parse_args(["--lab", "l", "--host", "h", "--local-ip", H1, "--etcd", "x", "--peer", f"{H2}:ibgp"])


def test_the_glue_refuses_to_run_outside_its_host_netns() -> None:
    # Here (the test's own namespace) it must stop before opening etcd or netlink:
    # from the machine's namespace, 172.18.203.1 would be an address out on the network.
    from agents.bgp import runner

    args = ["--lab", "nolab", "--host", "nohost", "--local-ip", "172.18.203.11", "--etcd", "172.18.203.1:2379"]
    assert runner.main(args) == 2


def test_a_restarted_glue_keeps_found_routes_until_peers_resend_or_time_runs_out() -> None:
    now = [100.0]
    setup = Setup()
    setup.kernel.routes.update({"10.65.8.0/26": (H2, 12), "10.65.9.0/26": (RR, 12)})  # a previous glue's
    setup.glue = Glue(setup.store, setup.kernel, setup.out, "host1", H1, [Peer(H2), Peer(RR, "global")],
                      clock=lambda: now[0], stale_seconds=20)  # fmt: skip
    setup.glue.start()
    assert setup.kernel.learned() == {"10.65.9.0/26": RR, "10.65.8.0/26": H2}
    setup.glue.on_line(state("up"))
    setup.glue.on_line(announce("10.65.8.0/26"))  # re-learned: no longer stale
    now[0] += 19
    setup.glue.expire_stale()
    assert setup.kernel.learned() == {"10.65.9.0/26": RR, "10.65.8.0/26": H2}
    now[0] += 2
    setup.glue.expire_stale()
    assert setup.kernel.learned() == {"10.65.8.0/26": H2}
    assert setup.kernel.routes[B1] == (None, 12)  # the blackhole is never ours
