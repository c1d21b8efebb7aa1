"""The glue's rtnetlink messages, byte for byte (layouts from linux/netlink.h and
linux/rtnetlink.h, little-endian as on the lab's machines), without a kernel."""

from __future__ import annotations

import struct

import pytest

from testbed.netns import rtnetlink as rt
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
                 kind: int = 1, scope: int = 0) -> bytes:  # fmt: skip
    payload = rtmsg(dst_len, min(table, 252), proto, scope, kind) + rta(15, struct.pack("<I", table))
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
    workload = rt.parse_route(kernel_route(bytes([10, 65, 0, 5]), 32, None, proto=3, scope=253))
    assert workload == rt.RouteEntry("10.65.0.5/32", None, 2, 3, 254, 1, 253)  # Felix's `dev caliX scope link`
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


# --- a pod's plumbing (the kubelet's CNI ADD) ------------------------------------------------


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("<BxHiII", 0, 0, index, flags, change)


CREATE_NEW = 0x1 | 0x4 | 0x400 | 0x200  # REQUEST | ACK | CREATE | EXCL
CREATE_OR_REPLACE = 0x1 | 0x4 | 0x400 | 0x100


def test_get_link_asks_by_name_without_a_dump() -> None:
    body = ifinfomsg() + rta(3, b"cali1234\0")
    assert rt.encode_get_link(4, "cali1234") == nlmsghdr(16 + len(body), 18, 0x1, 4) + body


def test_add_veth_names_both_ends_puts_the_peer_in_its_netns_and_the_mac_on_this_end() -> None:
    peer = rta(1, ifinfomsg() + rta(3, b"eth0\0") + rta(28, struct.pack("<I", 9)))
    linkinfo = rta(1, b"veth") + rta(2, peer)
    body = ifinfomsg() + rta(3, b"calia\0") + rta(1, bytes([0xEE] * 6)) + rta(18, linkinfo)
    got = rt.encode_add_veth(2, "calia", "eth0", 9, mac="ee:ee:ee:ee:ee:ee")
    assert got == nlmsghdr(16 + len(body), 16, CREATE_NEW, 2) + body


def test_set_up_and_delete_name_the_link_by_index() -> None:
    assert rt.encode_set_up(1, 7) == nlmsghdr(32, 16, 0x5, 1) + ifinfomsg(7, 1, 1)
    assert rt.encode_delete_link(2, 7) == nlmsghdr(32, 17, 0x5, 2) + ifinfomsg(7)


def test_an_address_is_local_and_peer_alike_and_replace_keeps_one_already_there() -> None:
    body = struct.pack("<BBBBI", 2, 32, 0, 0, 5) + rta(2, bytes([10, 65, 0, 3])) + rta(1, bytes([10, 65, 0, 3]))
    assert rt.encode_add_address(3, 5, "10.65.0.3", 32, replace=True) == nlmsghdr(16 + len(body), 20, CREATE_OR_REPLACE, 3) + body
    assert struct.unpack_from("<H", rt.encode_add_address(3, 5, "10.65.0.3", 32), 6)[0] == CREATE_NEW


def test_workload_routes_link_scope_default_via_gateway_and_blackhole() -> None:
    link = rtmsg(32, 254, 3, 253, 1) + rta(1, bytes([169, 254, 1, 1])) + rta(4, struct.pack("<I", 2))
    got = rt.encode_route(1, "169.254.1.1/32", oif=2, scope=rt.RT_SCOPE_LINK, proto=3, replace=True)
    assert got == nlmsghdr(16 + len(link), 24, CREATE_OR_REPLACE, 1) + link
    default = rtmsg(0, 254, 3, 0, 1) + rta(1, bytes(4)) + rta(5, bytes([169, 254, 1, 1])) + rta(4, struct.pack("<I", 2))
    got = rt.encode_route(2, "0.0.0.0/0", oif=2, gateway="169.254.1.1", proto=3)
    assert got == nlmsghdr(16 + len(default), 24, CREATE_NEW, 2) + default
    hole = rtmsg(26, 254, 12, 0, 6) + rta(1, bytes([10, 65, 0, 0]))
    assert rt.encode_route(3, "10.65.0.0/26", proto=12, blackhole=True, replace=True) == nlmsghdr(16 + len(hole), 24, CREATE_OR_REPLACE, 3) + hole


def test_a_permanent_neighbour_is_replaced_in_place() -> None:
    body = struct.pack("<BxxxiHBB", 2, 4, 0x80, 0, 0) + rta(1, bytes([10, 65, 0, 3])) + rta(2, bytes.fromhex("0a1b2c3d4e5f"))
    assert rt.encode_permanent_neighbour(6, 4, "10.65.0.3", "0a:1b:2c:3d:4e:5f") == nlmsghdr(16 + len(body), 28, CREATE_OR_REPLACE, 6) + body


def test_a_link_is_parsed_with_its_index_name_and_mac() -> None:
    payload = ifinfomsg(12, 1, 0) + rta(3, b"eth0\0") + rta(1, bytes.fromhex("f69810a9c7ae"))
    assert rt.parse_link(payload) == rt.LinkEntry(12, "eth0", "f6:98:10:a9:c7:ae")
    assert rt.parse_link(ifinfomsg(1) + rta(3, b"lo\0")).mac is None
