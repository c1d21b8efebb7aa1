"""Pure renderers: the ExaBGP 5.0 config and environment of a host, BIRD 2 as route reflector.

BGP session names follow Calico's BIRD protocols (``Mesh_172_18_203_12``), which is what
``calicoctl node status`` parses: ``^(Global|Node|Mesh)_(.+)$`` with dots as underscores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from testbed.addressing import AS_NUMBER, parse_ipv4

PeerKind = Literal["mesh", "global"]
PROCESS_NAME = "glue"
TEMPLATE_NAME = "calico"
RR_TEMPLATE_NAME = "rr_client"
PROTOCOL_PREFIX: dict[str, str] = {"mesh": "Mesh", "global": "Global"}
PEER_TYPE: dict[str, str] = {"mesh": "node-to-node mesh", "global": "global", "node": "node specific"}
_PROTOCOL_RE = re.compile(r"^(Global|Node|Mesh)_(\d+_\d+_\d+_\d+)$")
_UNSAFE_ARG = re.compile(r"[\s;{}'\"#]")


@dataclass(frozen=True)
class Peer:
    """One BGP neighbour of a host: another host (mesh) or the route reflector (global)."""

    ip: str
    kind: PeerKind = "mesh"

    def __post_init__(self) -> None:
        parse_ipv4(self.ip)
        if self.kind not in PROTOCOL_PREFIX:
            raise ValueError(f"peer {self.ip}: kind {self.kind!r} is not one of mesh, global")


def protocol_name(ip: str, kind: str) -> str:
    """Calico's BIRD protocol name for a peer: ``Mesh_172_18_203_12``, ``Global_…``."""
    return f"{PROTOCOL_PREFIX[kind]}_{parse_ipv4(ip)}".replace(".", "_")


def parse_protocol_name(name: str) -> tuple[str, str] | None:
    """(peer IP, Calico peer type) from a protocol name, or None when it is not a BGP peer."""
    match = _PROTOCOL_RE.match(name)
    if match is None:
        return None
    kind = match.group(1).lower()
    return match.group(2).replace("_", "."), PEER_TYPE[kind]


def _check_timers(asn: int, hold_time: int) -> None:
    if not 1 <= asn <= 4294967295:
        raise ValueError(f"asn: {asn} is not a valid AS number")
    if hold_time != 0 and not 3 <= hold_time <= 65535:
        raise ValueError(f"hold_time: {hold_time} must be 0 or between 3 and 65535 seconds")


def _check_neighbours(router_id: str, ips: Sequence[str], what: str) -> list[str]:
    own = parse_ipv4(router_id)
    seen: set[str] = set()
    for ip in ips:
        addr = parse_ipv4(ip)
        if addr == own:
            raise ValueError(f"{what} {ip}: is the router itself")
        if str(addr) in seen:
            raise ValueError(f"{what} {ip}: listed twice")
        seen.add(str(addr))
    return [str(parse_ipv4(ip)) for ip in ips]


def exabgp_config(
    router_id: str,
    peers: Sequence[Peer],
    *,
    asn: int = AS_NUMBER,
    hold_time: int = 9,
    process_argv: Sequence[str],
) -> str:
    """ExaBGP 5.0 config: one API process (JSON), a neighbour template, one neighbour per peer."""
    _check_timers(asn, hold_time)
    ips = _check_neighbours(router_id, [p.ip for p in peers], "peer")
    if not process_argv:
        raise ValueError("process_argv: the glue command is empty")
    for arg in process_argv:
        if not arg or _UNSAFE_ARG.search(arg):
            raise ValueError(f"process_argv: {arg!r} is empty or holds spaces, quotes or ;{{}}#")
    rid = str(parse_ipv4(router_id))
    lines = [
        f"process {PROCESS_NAME} {{",
        f"    run {' '.join(process_argv)};",
        "    encoder json;",
        "}",
        "",
        "template {",
        f"    neighbor {TEMPLATE_NAME} {{",
        f"        router-id {rid};",
        f"        local-address {rid};",
        f"        local-as {asn};",
        f"        peer-as {asn};",
        f"        hold-time {hold_time};",
        "        group-updates false;",
        "        family { ipv4 unicast; }",
        "        capability { route-refresh; }",  # a respawned glue asks peers to resend
        "        api {",
        f"            processes [ {PROCESS_NAME} ];",
        "            neighbor-changes;",
        "            receive { parsed; update; }",
        "        }",
        "    }",
        "}",
        "",
    ]
    # As Calico's mesh: only the side with the lower address dials, so two speakers
    # starting together do not open two sessions and drop one (a storm at 16 hosts).
    kinds = {str(parse_ipv4(p.ip)): p.kind for p in peers}
    for ip in ips:
        passive = kinds[ip] == "mesh" and parse_ipv4(ip) > parse_ipv4(rid)
        lines.append(f"neighbor {ip} {{ inherit {TEMPLATE_NAME}; {'passive true; ' if passive else ''}}}")
    return "\n".join(lines) + "\n"


def exabgp_environment(local_ip: str) -> dict[str, str]:
    """The environment ExaBGP needs in a host netns (see feasibility §5: each one bit us)."""
    return {
        "exabgp_daemon_user": "root",  # the glue must program routes
        "exabgp_daemon_drop": "false",
        "exabgp_api_cli": "false",  # no named pipes, no warnings about them
        "exabgp_tcp_bind": str(parse_ipv4(local_ip)),  # without it ExaBGP does not listen
        "exabgp_log_destination": "stdout",
        "exabgp_log_enable": "true",
    }


def bird_rr_config(
    router_id: str, clients: Sequence[str], *, asn: int = AS_NUMBER, hold_time: int = 9
) -> str:
    """BIRD 2 as route reflector: every client in one cluster, exporting only BGP routes."""
    _check_timers(asn, hold_time)
    ips = _check_neighbours(router_id, clients, "client")
    rid = str(parse_ipv4(router_id))
    lines = [
        f"# BIRD 2 route reflector {rid}, AS {asn}; rendered by testbed.",
        f"router id {rid};",
        "",
        "protocol device {",
        "}",
        "",
        "# The fabric route lets iBGP next hops resolve; it is never exported.",
        "protocol direct {",
        "  ipv4;",
        '  interface "eth0";',
        "}",
        "",
        f"template bgp {RR_TEMPLATE_NAME} {{",
        f"  local {rid} as {asn};",
        "  rr client;",
        f"  rr cluster id {rid};",
        f"  hold time {hold_time};",
        "  connect retry time 1;",
        "  ipv4 {",
        "    import all;",
        "    export where source = RTS_BGP;",
        "  };",
        "}",
    ]
    for ip in ips:
        lines += [
            "",
            f"protocol bgp {protocol_name(ip, 'global')} from {RR_TEMPLATE_NAME} {{",
            f"  neighbor {ip} as {asn};",
            "}",
        ]
    return "\n".join(lines) + "\n"
