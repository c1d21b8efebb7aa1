"""Just enough rtnetlink for the glue: IPv4 routes of the main table, replaced, deleted, dumped.

Why not pyroute2, which the lab runtime uses: importing it costs about 110 ms of CPU,
twice all the rest of the glue's start (about 45 ms, measured with ``time.process_time``
around the imports, median of 9 runs), and `testbed up` waits for every host's glue,
all starting at once on a 2-core machine next to ExaBGP and the policy agents. The glue
needs three requests, which fit in this module: the encoders and the parser are pure
functions (unit-tested byte for byte), ``RouteSocket`` is the only I/O.

Messages (linux/netlink.h, linux/rtnetlink.h): a 16-byte ``nlmsghdr``, a 12-byte
``rtmsg``, then attributes (``rtattr``: length, type, data padded to 4 bytes).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400
NLM_F_DUMP = 0x300
NLM_F_DUMP_INTR = 0x10
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RTN_UNSPEC, RTN_UNICAST = 0, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE = 0, 255
RT_TABLE_MAIN = 254
AF_INET = 2
RECV_BUFFER = 1 << 18

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTA = struct.Struct("=HH")  # length, type
_ERROR = struct.Struct("=i")  # nlmsgerr.error (the request's header follows)
_U32 = struct.Struct("=I")


@dataclass(frozen=True)
class RouteEntry:
    """One route of a dump."""

    dst: str  # "a.b.c.d/len"
    gateway: str | None
    oif: int | None
    proto: int
    table: int
    kind: int  # RTN_UNICAST, RTN_BLACKHOLE (6), ...


class NetlinkError(OSError):
    """The kernel refused a request (errno and its text), or its answer made no sense."""


def _align(length: int) -> int:
    return (length + 3) & ~3


def _attr(kind: int, data: bytes) -> bytes:
    length = _RTA.size + len(data)
    return _RTA.pack(length, kind) + data + b"\0" * (_align(length) - length)


def _split_prefix(prefix: str) -> tuple[bytes, int]:
    address, _, length = prefix.partition("/")
    return socket.inet_aton(address), int(length or 32)


def _message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _NLMSG.pack(_NLMSG.size + len(body), kind, flags, seq, 0) + body


def encode_replace(seq: int, prefix: str, gateway: str, oif: int, proto: int) -> bytes:
    """``ip route replace PREFIX via GATEWAY dev OIF proto PROTO`` (main table)."""
    dst, dst_len = _split_prefix(prefix)
    body = _RTMSG.pack(AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, proto, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    body += _attr(RTA_DST, dst) + _attr(RTA_GATEWAY, socket.inet_aton(gateway)) + _attr(RTA_OIF, _U32.pack(oif))
    return _message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, body)


def encode_delete(seq: int, prefix: str, gateway: str | None, proto: int) -> bytes:
    """``ip route del PREFIX [via GATEWAY] proto PROTO`` (main table). Any scope and type:
    the kernel deletes the route matching the fields given; with a gateway it never
    matches a blackhole."""
    dst, dst_len = _split_prefix(prefix)
    body = _RTMSG.pack(AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, proto, RT_SCOPE_NOWHERE, RTN_UNSPEC, 0)
    body += _attr(RTA_DST, dst)
    if gateway is not None:
        body += _attr(RTA_GATEWAY, socket.inet_aton(gateway))
    return _message(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def encode_dump(seq: int) -> bytes:
    """``ip route show table all`` for IPv4."""
    body = _RTMSG.pack(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
    return _message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, sequence, payload) of each netlink message in one datagram."""
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, flags, seq, _port = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size or offset + length > len(data):
            raise NetlinkError(0, f"truncated netlink message ({length} bytes at {offset} of {len(data)})")
        yield kind, flags, seq, data[offset + _NLMSG.size : offset + length]
        offset += _align(length)


def attributes(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attribute type -> data (the last one of a type wins)."""
    found: dict[int, bytes] = {}
    while offset + _RTA.size <= len(data):
        length, kind = _RTA.unpack_from(data, offset)
        if length < _RTA.size:
            break
        found[kind] = data[offset + _RTA.size : offset + length]
        offset += _align(length)
    return found


def parse_route(payload: bytes) -> RouteEntry | None:
    """A route from an RTM_NEWROUTE payload; None for another family."""
    family, dst_len, _src, _tos, table, proto, _scope, kind, _flags = _RTMSG.unpack_from(payload)
    if family != AF_INET:
        return None
    attrs = attributes(payload, _RTMSG.size)
    dst = socket.inet_ntoa(attrs[RTA_DST]) if RTA_DST in attrs else "0.0.0.0"
    gateway = socket.inet_ntoa(attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else None
    oif = _U32.unpack(attrs[RTA_OIF])[0] if RTA_OIF in attrs else None
    if RTA_TABLE in attrs:
        table = _U32.unpack(attrs[RTA_TABLE])[0]
    return RouteEntry(f"{dst}/{dst_len}", gateway, oif, proto, table, kind)


def error_of(payload: bytes) -> int:
    """The (positive) errno of an NLMSG_ERROR payload; 0 for an acknowledgement."""
    return -_ERROR.unpack_from(payload)[0]


class RouteSocket:
    """An rtnetlink socket in the network namespace of the thread that made it. Not
    thread-safe. The socket is made and bound here, at once (pyroute2 0.9 makes its own
    lazily, on first use, which is why the lab runtime forks a child for each handle): so
    one made by a thread that joined a lab's netns keeps talking to that netns, from any
    thread, as the runtime's convergence wait does."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFFFFFF + 1
        return self._seq

    def _replies(self, seq: int) -> Iterator[tuple[int, int, bytes]]:
        """(type, flags, payload) of the replies to ``seq`` until NLMSG_DONE or an error message."""
        while True:
            data = self._sock.recv(RECV_BUFFER)
            for kind, flags, got, payload in messages(data):
                if got != seq:
                    continue  # a late answer to an earlier request
                yield kind, flags, payload
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return

    def _acknowledged(self, request: bytes, seq: int) -> None:
        self._sock.send(request)
        for kind, _flags, payload in self._replies(seq):
            if kind == NLMSG_ERROR:
                code = error_of(payload)
                if code:
                    raise NetlinkError(code, os.strerror(code))
                return
        raise NetlinkError(0, "no acknowledgement")

    def replace(self, prefix: str, gateway: str, oif: int, proto: int) -> None:
        seq = self._next_seq()
        self._acknowledged(encode_replace(seq, prefix, gateway, oif, proto), seq)

    def delete(self, prefix: str, gateway: str | None, proto: int) -> None:
        seq = self._next_seq()
        self._acknowledged(encode_delete(seq, prefix, gateway, proto), seq)

    def routes(self, table: int = RT_TABLE_MAIN, attempts: int = 5) -> list[RouteEntry]:
        """Every IPv4 route of ``table``. A dump the kernel marks interrupted (the table
        changed meanwhile) is read again, up to ``attempts`` times."""
        for _ in range(attempts):
            seq = self._next_seq()
            self._sock.send(encode_dump(seq))
            found: list[RouteEntry] = []
            interrupted = False
            for kind, flags, payload in self._replies(seq):
                if kind == NLMSG_ERROR:
                    code = error_of(payload)
                    raise NetlinkError(code, os.strerror(code))
                interrupted |= bool(flags & NLM_F_DUMP_INTR)
                if kind == RTM_NEWROUTE:
                    route = parse_route(payload)
                    if route is not None and route.table == table:
                        found.append(route)
            if not interrupted:
                return found
        raise NetlinkError(0, f"route dump interrupted {attempts} times in a row")

    def close(self) -> None:
        self._sock.close()
