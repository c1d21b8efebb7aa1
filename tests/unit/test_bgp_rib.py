"""The glue's route table: per-peer routes, flush on down, pool filter, deterministic choice."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from agents.bgp.messages import Ack, EndOfRib, RouteUpdate, StateChange, Unknown, parse_line
from agents.bgp.rib import Rib, RouteDiff, desired_announcements

H2, H3, RR = "172.18.203.12", "172.18.203.13", "172.18.203.254"
B1, B2 = "10.65.1.0/26", "10.65.2.0/26"


def announce(peer: str, *routes: tuple[str, str]) -> RouteUpdate:
    return RouteUpdate(peer, tuple(routes))


def withdraw(peer: str, *prefixes: str) -> RouteUpdate:
    return RouteUpdate(peer, (), tuple(prefixes))


def test_announce_then_withdraw() -> None:
    rib = Rib("172.18.203.11")
    assert rib.apply(announce(H2, (B1, H2))) == RouteDiff(add={B1: H2})
    assert rib.apply(announce(H2, (B1, H2))) == RouteDiff()  # repeated: nothing to do
    assert rib.selected() == {B1: H2}
    assert rib.apply(withdraw(H2, B1)) == RouteDiff(remove=frozenset({B1}))
    assert rib.selected() == {} and rib.learned(H2) == {}
    assert rib.apply(withdraw(H2, B1)) == RouteDiff()  # unknown withdraw is harmless


def test_down_flushes_only_that_peer() -> None:
    rib = Rib()
    rib.apply(announce(H2, (B1, H2), ("10.65.0.24/32", H2)))
    rib.apply(announce(H3, (B2, H3)))
    diff = rib.apply(StateChange(H2, "down", "hold timer expired"))
    assert diff == RouteDiff(remove=frozenset({B1, "10.65.0.24/32"}))
    assert rib.selected() == {B2: H3}
    assert rib.apply(StateChange(H2, "down")) == RouteDiff()


def test_up_connected_eor_acks_and_unknown_change_nothing() -> None:
    rib = Rib()
    rib.apply(announce(H2, (B1, H2)))
    for event in (StateChange(H2, "up"), StateChange(H2, "connected"), EndOfRib(H2), Ack(True), Unknown("x")):
        assert rib.apply(event) == RouteDiff()
        assert not rib.apply(event)
    assert rib.selected() == {B1: H2}


def test_only_pool_prefixes_are_accepted() -> None:
    rib = Rib()
    diff = rib.apply(announce(RR, ("172.18.203.0/24", RR), ("10.64.0.0/10", H2), ("0.0.0.0/0", H2),
                              ("10.66.0.0/26", H2), ("bogus", H2), ("10.65.1.1/26", H2), (B1, "bogus"),
                              ("10.65.0.0/16", H3), (B2, H2)))
    assert diff == RouteDiff(add={"10.65.0.0/16": H3, B2: H2})


def test_routes_back_to_this_host_are_dropped() -> None:
    rib = Rib("172.18.203.11")
    assert rib.apply(announce(RR, (B1, "172.18.203.11"), (B2, H2))) == RouteDiff(add={B2: H2})


def test_same_prefix_from_two_peers_lowest_next_hop_wins_and_fails_over() -> None:
    rib = Rib()
    assert rib.apply(announce(H3, (B1, H3))) == RouteDiff(add={B1: H3})
    assert rib.apply(announce(H2, (B1, H2))) == RouteDiff(add={B1: H2})  # lower: takes over
    assert rib.apply(announce(H3, (B1, H3))) == RouteDiff()
    assert rib.apply(withdraw(H2, B1)) == RouteDiff(add={B1: H3})  # fail over, not removed
    assert rib.apply(StateChange(H3, "down")) == RouteDiff(remove=frozenset({B1}))


def test_lowest_next_hop_compares_numerically() -> None:
    rib = Rib()
    rib.apply(announce("a", (B1, "172.18.203.100")))
    assert rib.apply(announce("b", (B1, "172.18.203.99"))) == RouteDiff(add={B1: "172.18.203.99"})


def test_next_hop_change_from_one_peer_is_a_replace() -> None:
    rib = Rib()
    rib.apply(announce(RR, (B1, H2)))
    assert rib.apply(announce(RR, (B1, H3))) == RouteDiff(add={B1: H3})


def test_flush_removes_everything() -> None:
    rib = Rib()
    rib.apply(announce(H2, (B1, H2)))
    rib.apply(announce(H3, (B1, H3), (B2, H3)))
    assert rib.flush() == RouteDiff(remove=frozenset({B1, B2}))
    assert rib.selected() == {}


def test_recorded_session_through_the_parser() -> None:
    lines = [
        '{"type":"state","neighbor":{"address":{"local":"172.18.203.11","peer":"172.18.203.12"},"state":"up"}}',
        '{"type":"update","neighbor":{"address":{"peer":"172.18.203.12"},"direction":"receive","message":'
        '{"update":{"announce":{"ipv4 unicast":{"172.18.203.12":[{"nlri":"10.65.1.0/26"}]}}}}}}',
        '{"type":"update","neighbor":{"address":{"peer":"172.18.203.12"},"message":{"eor":{"afi":"ipv4"}}}}',
        "done",
        "garbage",
        '{"type":"state","neighbor":{"address":{"peer":"172.18.203.12"},"state":"down","reason":"in loop"}}',
    ]
    rib = Rib("172.18.203.11")
    diffs = [rib.apply(parse_line(line)) for line in lines]
    assert [d for d in diffs if d] == [RouteDiff(add={B1: H2}), RouteDiff(remove=frozenset({B1}))]


def test_desired_announcements() -> None:
    blocks = ["10.65.0.0/26", IPv4Network("10.65.0.64/26")]
    pods = ["10.65.0.1", IPv4Address("10.65.0.70"), "10.65.1.5", "10.65.200.3", "192.168.1.1"]
    assert desired_announcements(blocks, pods) == {
        "10.65.0.0/26", "10.65.0.64/26", "10.65.1.5/32", "10.65.200.3/32",
    }
    assert desired_announcements([], []) == set()
    assert desired_announcements([], ["10.65.0.24"]) == {"10.65.0.24/32"}
