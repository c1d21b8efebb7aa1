"""ExaBGP 5.0's API, both ways: parse one line it writes to the glue, format the glue's commands.

Parsing never raises: ExaBGP respawns a helper that dies, so odd input becomes ``Unknown``.
Quirks (feasibility §5): commands are acknowledged by a plain ``done``/``error`` line even with
the JSON encoder; End-of-RIB is a ``type: update`` message carrying ``eor`` and no ``update``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

FAMILY = "ipv4 unicast"


@dataclass(frozen=True)
class StateChange:
    """A session changed state: ``connected``, ``up`` or ``down`` (with ExaBGP's reason)."""

    peer: str
    state: str
    reason: str = ""


@dataclass(frozen=True)
class RouteUpdate:
    """Routes a peer announced as (prefix, next hop), and prefixes it withdrew."""

    peer: str
    announced: tuple[tuple[str, str], ...] = ()
    withdrawn: tuple[str, ...] = ()


@dataclass(frozen=True)
class EndOfRib:
    peer: str


@dataclass(frozen=True)
class Ack:
    """ExaBGP's answer to one of our commands."""

    ok: bool


@dataclass(frozen=True)
class Unknown:
    raw: str


Event = StateChange | RouteUpdate | EndOfRib | Ack | Unknown


def _nlris(entries: Any) -> list[str]:
    """Prefixes from an NLRI list: ``[{"nlri": "P"}, ...]``, also plain strings or a dict."""
    if isinstance(entries, dict):
        entries = list(entries)
    if not isinstance(entries, list):
        return []
    found: list[str] = []
    for entry in entries:
        nlri = entry.get("nlri") if isinstance(entry, dict) else entry
        if isinstance(nlri, str):
            found.append(nlri)
    return found


def _update(peer: str, update: dict[str, Any]) -> RouteUpdate:
    announced: list[tuple[str, str]] = []
    by_next_hop = update.get("announce", {})
    families = by_next_hop.get(FAMILY, {}) if isinstance(by_next_hop, dict) else {}
    if isinstance(families, dict):
        for next_hop, entries in families.items():
            announced += [(prefix, str(next_hop)) for prefix in _nlris(entries)]
    withdraw = update.get("withdraw", {})
    withdrawn = _nlris(withdraw.get(FAMILY, [])) if isinstance(withdraw, dict) else []
    return RouteUpdate(peer, tuple(announced), tuple(withdrawn))


def _peer(neighbor: dict[str, Any]) -> str | None:
    address = neighbor.get("address")
    peer = address.get("peer") if isinstance(address, dict) else neighbor.get("ip")
    return peer if isinstance(peer, str) and peer else None


def _decode(raw: str, text: str) -> Event:
    data = json.loads(text)
    if not isinstance(data, dict):
        return Unknown(raw)
    neighbor = data.get("neighbor")
    if not isinstance(neighbor, dict):
        return Unknown(raw)
    peer = _peer(neighbor)
    if peer is None:
        return Unknown(raw)
    kind = data.get("type")
    if kind == "state":
        state = neighbor.get("state")
        reason = neighbor.get("reason", data.get("reason", ""))
        if not isinstance(state, str):
            return Unknown(raw)
        return StateChange(peer, state, reason if isinstance(reason, str) else str(reason))
    if kind == "update":
        message = neighbor.get("message", data.get("message"))
        if not isinstance(message, dict):
            return Unknown(raw)
        if "eor" in message:
            return EndOfRib(peer)
        update = message.get("update")
        if isinstance(update, dict):
            return _update(peer, update)
    return Unknown(raw)


def parse_line(raw: str) -> Event:
    """One line from ExaBGP to its API process, as an event. Never raises."""
    try:
        text = raw.strip()
        if text in ("done", "error"):
            return Ack(text == "done")
        if not text.startswith("{"):
            return Unknown(raw)
        return _decode(raw, text)
    except Exception:  # noqa: BLE001 - a helper that crashes gets respawned; never crash
        return Unknown(raw)


def _route(prefix: str, next_hop: str) -> str:
    net = IPv4Network(prefix)  # strict: a host bit set is a caller's bug
    return f"route {net} next-hop {IPv4Address(next_hop)}"


def announce_command(prefix: str, next_hop: str) -> str:
    """``announce route 10.65.1.0/26 next-hop 172.18.203.11`` (ValueError on bad addresses)."""
    return f"announce {_route(prefix, next_hop)}"


def withdraw_command(prefix: str, next_hop: str) -> str:
    return f"withdraw {_route(prefix, next_hop)}"
