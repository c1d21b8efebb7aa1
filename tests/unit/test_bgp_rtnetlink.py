"""The glue's rtnetlink messages, byte for byte (layouts from linux/netlink.h and
linux/rtnetlink.h, little-endian as on the lab's machines), without a kernel."""

from __future__ import annotations

import struct

import pytest

from agents.bgp import rtnetlink as rt
from agents.bgp.kernel import PROTO_BIRD


def nlmsghdr(length: int, kind: int, flags: int, seq: int) -> bytes:
    return struct.pack("<IHHII", length, kind, flags, seq, 0)


def rtmsg(dst_len: int, table: int, proto: int, scope: int, kind: int) -> bytes:
    return bytes([2, dst_len, 0, 0, table, proto, scope, kind]) + b"\0\0\0\0"


def rta(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("<HH", length, kind) + data + b"\0" * (-length % 4)


def test_proto_bird_is_the_lab_runtimes() -> None:
    from testbed.netns.links import PROTO_BIRD as RUNTIME_PROTO_BIRD

    assert PROTO_BIRD == RUNTIME_PROTO_BIRD == 12


def test_replace_is_a_newroute_that_creates_or_replaces() -> None:
    body = rtmsg(26, 254, 12, 0, 1) + rta(1, bytes([10, 65, 0, 64])) + rta(5, bytes([172, 18, 203, 12]))
    body += rta(4, struct.pack("<I", 3))
    flags = 0x1 | 0x4 | 0x400 | 0x100  # REQUEST | ACK | CREATE | REPLACE
    assert rt.encode_replace(7, "10.65.0.64/26", "172.18.203.12", 3, 12) == nlmsghdr(16 + len(body), 24, flags, 7) + body


def test_delete_matches_any_scope_and_type_and_names_the_gateway() -> None:
    body = rtmsg(32, 254, 12, 255, 0) + rta(1, bytes([10, 65, 0, 5])) + rta(5, bytes([172, 18, 203, 12]))
    assert rt.encode_delete(9, "10.65.0.5/32", "172.18.203.12", 12) == nlmsghdr(16 + len(body), 25, 0x5, 9) + body
    bare = rtmsg(26, 254, 12, 255, 0) + rta(1, bytes([10, 65, 0, 0]))
    assert rt.encode_delete(1, "10.65.0.0/26", None, 12) == nlmsghdr(16 + len(bare), 25, 0x5, 1) + bare


def test_dump_asks_for_every_ipv4_route() -> None:
    assert rt.encode_dump(3) == nlmsghdr(28, 26, 0x301, 3) + bytes([2]) + b"\0" * 11


def kernel_route(dst: bytes | None, dst_len: int, gateway: bytes | None, *, table: int = 254, proto: int = 12,
                 kind: int = 1) -> bytes:  # fmt: skip
    payload = rtmsg(dst_len, min(table, 252), proto, 0, kind) + rta(15, struct.pack("<I", table))
    if dst is not None:
        payload += rta(1, dst)
    if gateway is not None:
        payload += rta(5, gateway)
    payload += rta(4, struct.pack("<I", 2))
    return payload


def test_routes_are_parsed_with_their_table_gateway_and_device() -> None:
    learned = rt.parse_route(kernel_route(bytes([10, 65, 0, 64]), 26, bytes([172, 18, 203, 12])))
    assert learned == rt.RouteEntry("10.65.0.64/26", "172.18.203.12", 2, 12, 254, 1)
    blackhole = rt.parse_route(kernel_route(bytes([10, 65, 0, 0]), 26, None, kind=6))
    assert blackhole is not None and blackhole.gateway is None and blackhole.kind == 6
    default = rt.parse_route(kernel_route(None, 0, bytes([172, 18, 203, 1]), proto=3))
    assert default is not None and default.dst == "0.0.0.0/0"
    local = rt.parse_route(kernel_route(bytes([172, 18, 203, 11]), 32, None, table=255, proto=2, kind=2))
    assert local is not None and local.table == 255
    assert rt.parse_route(bytes([10]) + b"\0" * 11) is None  # IPv6: not ours to read


def test_a_datagram_holds_several_messages() -> None:
    one = kernel_route(bytes([10, 65, 0, 64]), 26, bytes([172, 18, 203, 12]))
    datagram = nlmsghdr(16 + len(one), 24, 2, 5) + one + nlmsghdr(20, 3, 2, 5) + b"\0\0\0\0"
    assert [(k, f, s) for k, f, s, _ in rt.messages(datagram)] == [(24, 2, 5), (3, 2, 5)]
    with pytest.raises(rt.NetlinkError):
        list(rt.messages(nlmsghdr(64, 24, 2, 5) + one[:8]))


def test_an_error_message_carries_the_errno() -> None:
    assert rt.error_of(struct.pack("<i", 0) + nlmsghdr(16, 24, 5, 1)) == 0
    assert rt.error_of(struct.pack("<i", -101) + nlmsghdr(16, 24, 5, 1)) == 101  # ENETUNREACH
