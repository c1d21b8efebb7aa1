"""Just enough rtnetlink, stdlib only: IPv4 routes of the main table (the BGP glue), and
the links, addresses, routes and neighbours of a pod's plumbing (the kubelet's CNI ADD).

Why not pyroute2, which the rest of the lab runtime uses:
- importing it costs about 110 ms of CPU, twice all the rest of the BGP glue's start
  (about 45 ms, measured with ``time.process_time`` around the imports, median of 9
  runs), and `testbed up` waits for every host's glue, all starting at once on a 2-core
  machine next to ExaBGP and the policy agents;
- a pyroute2 handle in another netns forks a helper process, and each of its requests
  goes through its asyncio core: a pod's CNI ADD (about 15 requests) spent most of its
  time there (py-spy on a host's agent during `testbed up` of 100 pods: 600 of the
  kubelet's 900 samples in pyroute2's plumbing).

The encoders and the parser are pure functions (unit-tested byte for byte); the socket
classes are the only I/O. A socket belongs to the netns of the thread that made it:
``namespaces.run_inside(netns, RouteSocket)`` makes one for another netns, with no fork.

Messages (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/neighbour.h): a
16-byte ``nlmsghdr``, a fixed header (``rtmsg`` 12 bytes, ``ifinfomsg`` 16, ``ifaddrmsg``
8, ``ndmsg`` 12), then attributes (``rtattr``: length, type, data padded to 4 bytes).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH = 28
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_DUMP = 0x300
NLM_F_DUMP_INTR = 0x10
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RTN_UNSPEC, RTN_UNICAST, RTN_BLACKHOLE = 0, 1, 6
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
SCOPES = {"universe": RT_SCOPE_UNIVERSE, "link": RT_SCOPE_LINK}
IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80
IFF_UP = 0x1
AF_UNSPEC = 0
ENODEV = 19
RT_TABLE_MAIN = 254
# Route protocols, as `ip route` prints them (/etc/iproute2/rt_protos).
PROTO_BOOT = 3  # what Calico's CNI plugin and Felix use for workload routes (`ip route` omits it)
PROTO_BIRD = 12  # routes learned over BGP, `proto bird`
AF_INET = 2
RECV_BUFFER = 1 << 18

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTA = struct.Struct("=HH")  # length, type
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
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
    scope: int = RT_SCOPE_UNIVERSE  # RT_SCOPE_LINK (253) for `dev X scope link`


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


def encode_route(
    seq: int, prefix: str, *, oif: int | None = None, gateway: str | None = None, scope: int = RT_SCOPE_UNIVERSE,
    proto: int, blackhole: bool = False, replace: bool = False,
) -> bytes:
    """``ip route add|replace PREFIX [via GATEWAY] [dev OIF] [scope SCOPE] proto PROTO``, or
    ``ip route ... blackhole PREFIX`` (main table)."""
    dst, dst_len = _split_prefix(prefix)
    body = _RTMSG.pack(AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, proto, scope, RTN_BLACKHOLE if blackhole else RTN_UNICAST, 0)
    body += _attr(RTA_DST, dst)
    if gateway is not None:
        body += _attr(RTA_GATEWAY, socket.inet_aton(gateway))
    if oif is not None:
        body += _attr(RTA_OIF, _U32.pack(oif))
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
    return _message(RTM_NEWROUTE, flags, seq, body)


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def encode_get_link(seq: int, name: str) -> bytes:
    """``ip link show NAME``: one RTM_NEWLINK back, or ENODEV."""
    body = _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name))
    return _message(RTM_GETLINK, NLM_F_REQUEST, seq, body)


def encode_add_veth(seq: int, name: str, peer: str, peer_netns_fd: int, mac: str | None = None) -> bytes:
    """``ip link add NAME [address MAC] type veth peer name PEER netns FD``: the MAC is this
    end's (the host's cali interface, as Calico sets it)."""
    peer_attrs = _attr(IFLA_IFNAME, _name(peer)) + _attr(IFLA_NET_NS_FD, _U32.pack(peer_netns_fd))
    peer_info = _attr(VETH_INFO_PEER, _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + peer_attrs)
    linkinfo = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, peer_info)
    body = _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name))
    if mac is not None:
        body += _attr(IFLA_ADDRESS, _mac(mac))
    body += _attr(IFLA_LINKINFO, linkinfo)
    return _message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


def encode_set_up(seq: int, index: int) -> bytes:
    """``ip link set dev INDEX up``."""
    return _message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, _IFINFOMSG.pack(AF_UNSPEC, 0, index, IFF_UP, IFF_UP))


def encode_delete_link(seq: int, index: int) -> bytes:
    """``ip link del dev INDEX`` (a veth takes its peer with it)."""
    return _message(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, _IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0))


def encode_add_address(seq: int, index: int, address: str, prefixlen: int, replace: bool = False) -> bytes:
    """``ip addr add|replace ADDRESS/PREFIXLEN dev INDEX``."""
    packed = socket.inet_aton(address)
    body = _IFADDRMSG.pack(AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    body += _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
    return _message(RTM_NEWADDR, flags, seq, body)


def encode_permanent_neighbour(seq: int, index: int, ip: str, mac: str) -> bytes:
    """``ip neigh replace IP lladdr MAC dev INDEX nud permanent``."""
    body = _NDMSG.pack(AF_INET, index, NUD_PERMANENT, 0, 0)
    body += _attr(NDA_DST, socket.inet_aton(ip)) + _attr(NDA_LLADDR, _mac(mac))
    return _message(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, body)


@dataclass(frozen=True)
class LinkEntry:
    index: int
    name: str
    mac: str | None  # "aa:bb:cc:dd:ee:ff"


def parse_link(payload: bytes) -> LinkEntry:
    """A link from an RTM_NEWLINK payload."""
    _family, _kind, index, _flags, _change = _IFINFOMSG.unpack_from(payload)
    attrs = attributes(payload, _IFINFOMSG.size)
    name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
    raw = attrs.get(IFLA_ADDRESS)
    return LinkEntry(index, name, ":".join(f"{b:02x}" for b in raw) if raw else None)


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
    family, dst_len, _src, _tos, table, proto, scope, kind, _flags = _RTMSG.unpack_from(payload)
    if family != AF_INET:
        return None
    attrs = attributes(payload, _RTMSG.size)
    dst = socket.inet_ntoa(attrs[RTA_DST]) if RTA_DST in attrs else "0.0.0.0"
    gateway = socket.inet_ntoa(attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else None
    oif = _U32.unpack(attrs[RTA_OIF])[0] if RTA_OIF in attrs else None
    if RTA_TABLE in attrs:
        table = _U32.unpack(attrs[RTA_TABLE])[0]
    return RouteEntry(f"{dst}/{dst_len}", gateway, oif, proto, table, kind, scope)


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
        """(type, flags, payload) of the replies to ``seq`` until NLMSG_DONE, an error
        message, or the one message of an answer that is not a dump."""
        while True:
            data = self._sock.recv(RECV_BUFFER)
            for kind, flags, got, payload in messages(data):
                if got != seq:
                    continue  # a late answer to an earlier request
                yield kind, flags, payload
                if kind in (NLMSG_DONE, NLMSG_ERROR) or not flags & NLM_F_MULTI:
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

    def request(self, encode: Callable[[int], bytes]) -> None:
        """Send ``encode(seq)``; NetlinkError unless the kernel acknowledges it."""
        seq = self._next_seq()
        self._acknowledged(encode(seq), seq)

    def link(self, name: str) -> LinkEntry | None:
        """The link called ``name`` in this netns, or None."""
        seq = self._next_seq()
        self._sock.send(encode_get_link(seq, name))
        for kind, _flags, payload in self._replies(seq):
            if kind == RTM_NEWLINK:
                return parse_link(payload)
            if kind == NLMSG_ERROR and (code := error_of(payload)):
                if code == ENODEV:
                    return None
                raise NetlinkError(code, f"link {name}: {os.strerror(code)}")
        raise NetlinkError(0, f"link {name}: no answer")

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


class RtnlLinks:
    """What a pod's plumbing needs of ``testbed.netns.links.NetnsLinks`` (the same methods,
    so ``testbed.netns.workload`` takes either), over one RouteSocket in netns ``netns``
    (None: the caller's own). Interface indexes are cached until ``forget``."""

    def __init__(self, netns: str | None) -> None:
        from testbed.netns import namespaces  # noqa: PLC0415 - the BGP glue imports this module without it

        self.netns = netns or ""
        self._sock = RouteSocket() if netns is None else namespaces.run_inside(netns, RouteSocket)
        self._indices: dict[str, int] = {}

    def __enter__(self) -> RtnlLinks:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def forget(self) -> None:
        self._indices.clear()

    def index(self, ifname: str) -> int:
        if ifname not in self._indices:
            found = self._sock.link(ifname)
            if found is None:
                raise LookupError(f"no interface {ifname} in netns {self.netns or '(own)'}")
            self._indices[ifname] = found.index
        return self._indices[ifname]

    def has(self, ifname: str) -> bool:
        return ifname in self._indices or self._sock.link(ifname) is not None

    def delete_link(self, ifname: str) -> None:
        """Remove interface ``ifname`` (a veth takes its peer with it); missing is no error."""
        self._indices.pop(ifname, None)
        found = self._sock.link(ifname)
        if found is not None:
            self._sock.request(lambda seq: encode_delete_link(seq, found.index))

    def add_veth(self, ifname: str, peer: str, peer_netns: str, mac: str | None = None) -> None:
        """A veth pair whose peer end is born inside ``peer_netns`` (``mac``: this end's)."""
        fd = os.open(f"/run/netns/{peer_netns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._sock.request(lambda seq: encode_add_veth(seq, ifname, peer, fd, mac))
        finally:
            os.close(fd)

    def set_up(self, ifname: str) -> None:
        index = self.index(ifname)
        self._sock.request(lambda seq: encode_set_up(seq, index))

    def mac(self, ifname: str) -> str:
        found = self._sock.link(ifname)
        if found is None or found.mac is None:
            raise LookupError(f"no interface {ifname} in netns {self.netns or '(own)'}")
        return found.mac

    def add_address(self, ifname: str, address: str, prefixlen: int, replace: bool = False) -> None:
        index = self.index(ifname)
        self._sock.request(lambda seq: encode_add_address(seq, index, address, prefixlen, replace))

    def add_route(
        self, dst: str, *, dev: str | None = None, via: str | None = None, scope: str | None = None,
        blackhole: bool = False, proto: int = PROTO_BOOT, replace: bool = False,
    ) -> None:  # fmt: skip
        oif = self.index(dev) if dev is not None else None
        code = SCOPES[scope] if scope is not None else RT_SCOPE_UNIVERSE
        self._sock.request(
            lambda seq: encode_route(seq, dst, oif=oif, gateway=via, scope=code, proto=proto, blackhole=blackhole, replace=replace)
        )

    def add_neighbour(self, ip: str, mac: str, dev: str) -> None:
        index = self.index(dev)
        self._sock.request(lambda seq: encode_permanent_neighbour(seq, index, ip, mac))
