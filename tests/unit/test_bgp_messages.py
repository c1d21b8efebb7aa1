"""ExaBGP 5.0 JSON API lines -> events, and the commands the glue writes back."""

from __future__ import annotations

import json

import pytest

from agents.bgp.messages import (
    Ack,
    EndOfRib,
    RouteUpdate,
    StateChange,
    Unknown,
    announce_command,
    parse_line,
    withdraw_command,
)

HEAD = '{"exabgp": "5.0.0", "time": 1718000000.5, "host": "h1", "pid": 42, "ppid": 1, "counter": 3, '
NEIGHBOR = '"neighbor": {"address": {"local": "172.18.203.11", "peer": "172.18.203.12"}, ' \
           '"asn": {"local": 64512, "peer": 64512}, '

ANNOUNCE = HEAD + '"type": "update", ' + NEIGHBOR + (
    '"direction": "receive", "message": {"update": {"attribute": {"origin": "igp", "local-preference": 100}, '
    '"announce": {"ipv4 unicast": {"172.18.203.12": [{"nlri": "10.65.1.0/26"}, {"nlri": "10.65.0.24/32"}]}}}}}}'
)
REFLECTED = (
    '{"exabgp":"5.0.0","type":"update","neighbor":{"address":{"local":"172.18.203.12","peer":"172.18.203.2"},'
    '"asn":{"local":64512,"peer":64512},"direction":"receive","message":{"update":{"attribute":{"origin":"igp",'
    '"local-preference":100,"originator-id":"172.18.203.11","cluster-list":["172.18.203.2"]},'
    '"announce":{"ipv4 unicast":{"172.18.203.11":[{"nlri":"10.65.1.0/26"}]}}}}}}'
)
WITHDRAW = HEAD + '"type": "update", ' + NEIGHBOR + (
    '"direction": "receive", "message": {"update": {"withdraw": {"ipv4 unicast": [{"nlri": "10.65.1.0/26"}]}}}}}'
)
EOR = HEAD + '"type": "update", ' + NEIGHBOR + (
    '"direction": "receive", "message": {"eor": {"afi": "ipv4", "safi": "unicast"}}}}'
)
UP = HEAD + '"type": "state", ' + NEIGHBOR + '"state": "up"}}'
CONNECTED = HEAD + '"type": "state", ' + NEIGHBOR + '"state": "connected"}}'
DOWN = HEAD + '"type": "state", ' + NEIGHBOR + '"state": "down", "reason": "notification sent (4,0)"}}'


def test_announce() -> None:
    assert parse_line(ANNOUNCE + "\n") == RouteUpdate(
        "172.18.203.12", (("10.65.1.0/26", "172.18.203.12"), ("10.65.0.24/32", "172.18.203.12")), ()
    )


def test_reflected_route_keeps_the_originators_next_hop() -> None:
    assert parse_line(REFLECTED) == RouteUpdate("172.18.203.2", (("10.65.1.0/26", "172.18.203.11"),), ())


def test_withdraw() -> None:
    assert parse_line(WITHDRAW) == RouteUpdate("172.18.203.12", (), ("10.65.1.0/26",))


def test_announce_and_withdraw_in_one_update() -> None:
    data = json.loads(ANNOUNCE)
    data["neighbor"]["message"]["update"]["withdraw"] = {"ipv4 unicast": [{"nlri": "10.65.2.0/26"}]}
    event = parse_line(json.dumps(data))
    assert isinstance(event, RouteUpdate)
    assert event.withdrawn == ("10.65.2.0/26",) and len(event.announced) == 2


def test_other_families_are_ignored() -> None:
    data = json.loads(ANNOUNCE)
    data["neighbor"]["message"]["update"]["announce"] = {"ipv6 unicast": {"fe80::1": [{"nlri": "2001:db8::/64"}]}}
    assert parse_line(json.dumps(data)) == RouteUpdate("172.18.203.12", (), ())


def test_end_of_rib_has_no_update_key() -> None:
    assert parse_line(EOR) == EndOfRib("172.18.203.12")


@pytest.mark.parametrize(
    ("line", "event"),
    [
        (UP, StateChange("172.18.203.12", "up", "")),
        (CONNECTED, StateChange("172.18.203.12", "connected", "")),
        (DOWN, StateChange("172.18.203.12", "down", "notification sent (4,0)")),
    ],
)
def test_state_changes(line: str, event: StateChange) -> None:
    assert parse_line(line) == event


@pytest.mark.parametrize(("line", "ok"), [("done\n", True), ("error", False), ("  done  ", True)])
def test_plain_text_acks(line: str, ok: bool) -> None:
    assert parse_line(line) == Ack(ok)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "\n",
        "garbage",
        "{not json",
        "[1, 2]",
        "null",
        '"done"',
        "{}",
        '{"type": "update"}',
        '{"type": "update", "neighbor": []}',
        '{"type": "update", "neighbor": {"address": {"peer": 7}}}',
        '{"type": "update", "neighbor": {"address": {"peer": "172.18.203.12"}, "message": "x"}}',
        '{"type": "state", "neighbor": {"address": {"peer": "172.18.203.12"}, "state": 5}}',
        '{"type": "keepalive", "neighbor": {"address": {"peer": "172.18.203.12"}}}',
        '{"type": "notification", "neighbor": {"address": {"peer": "172.18.203.12"}, "message": {}}}',
        '{"type": "update", "neighbor": {"address": {"peer": "p"}, "message": {"update": "x"}}}',
        "\udcff\x00{",
    ],
)
def test_odd_input_never_raises(line: str) -> None:
    assert parse_line(line) == Unknown(line)


def test_malformed_parts_of_an_update_are_skipped() -> None:
    line = json.dumps({"type": "update", "neighbor": {"address": {"peer": "p"}, "message": {"update": {
        "announce": {"ipv4 unicast": {"1.1.1.1": [{"nlri": 5}, "10.65.3.0/26", None], "2.2.2.2": "x"}},
        "withdraw": {"ipv4 unicast": {"bad": 1}}}}}})
    assert parse_line(line) == RouteUpdate("p", (("10.65.3.0/26", "1.1.1.1"),), ("bad",))


def test_commands() -> None:
    assert announce_command("10.65.1.0/26", "172.18.203.11") == "announce route 10.65.1.0/26 next-hop 172.18.203.11"
    assert withdraw_command("10.65.0.24/32", "172.18.203.11") == "withdraw route 10.65.0.24/32 next-hop 172.18.203.11"


@pytest.mark.parametrize(("prefix", "hop"), [("10.65.1.1/26", "172.18.203.11"), ("x", "172.18.203.11"),
                                             ("10.65.1.0/26", "self; shutdown")])
def test_commands_reject_bad_addresses(prefix: str, hop: str) -> None:
    with pytest.raises(ValueError):
        announce_command(prefix, hop)
