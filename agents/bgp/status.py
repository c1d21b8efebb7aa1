"""What ``testbed bgp status`` prints for a host, kept by its glue from ExaBGP's state events.

The words are those of ``calicoctl node status`` (which reads BIRD's ``show protocols``):
STATE is BIRD's protocol state (``up`` when established, ``start`` while trying), SINCE
the local time STATE last changed (as BIRD's), INFO the BGP state: ``Established``;
``Active`` while waiting to connect, with the reason of the last drop (BIRD shows
``Active Socket: Connection refused``); ``Connect`` on ExaBGP's ``connected``, which it
also reports for a connect() that is about to fail (it polls the socket for writability
and never reads SO_ERROR), so it only means a TCP connection is being tried.
The stored value (``keys.bgp_status(host)``):

    {"host": "host1", "router_id": "172.18.203.11", "asn": 64512, "running": true,
     "updated": 1700000000.0,
     "peers": [{"address": "172.18.203.12", "type": "node-to-node mesh", "state": "up",
                "since": "12:00:01", "info": "Established"}]}

``running`` turns false when the glue stops (its speaker is going away; every peer then
shows ``down``/``Idle``), so a reader can say what calicoctl says then: the BGP process
is not running.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import Any

from agents.bgp.config import PEER_TYPE, Peer
from agents.bgp.messages import StateChange
from testbed.addressing import AS_NUMBER

STATE_UP = "up"
STATE_START = "start"
STATE_DOWN = "down"
INFO_ESTABLISHED = "Established"
INFO_ACTIVE = "Active"
INFO_CONNECT = "Connect"
INFO_IDLE = "Idle"
UNKNOWN_PEER_KIND = "global"  # a peer that is not in the glue's arguments


@dataclass(frozen=True)
class PeerStatus:
    address: str
    type: str
    state: str
    since: str
    info: str

    def as_dict(self) -> dict[str, str]:
        return {"address": self.address, "type": self.type, "state": self.state, "since": self.since, "info": self.info}


def hhmmss(epoch: float) -> str:
    """BIRD's SINCE column: the local time of the last change."""
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def _sort_key(address: str) -> tuple[int, str]:
    try:
        return int(IPv4Address(address)), address
    except ValueError:
        return 1 << 32, address


def describe(event: StateChange) -> tuple[str, str] | None:
    """(state, info) after an ExaBGP state event; None for states that change nothing."""
    if event.state == "up":
        return STATE_UP, INFO_ESTABLISHED
    if event.state == "connected":
        return STATE_START, INFO_CONNECT
    if event.state == "down":
        reason = " ".join(event.reason.split())
        return STATE_START, f"{INFO_ACTIVE} {reason}" if reason else INFO_ACTIVE
    return None


class BgpStatus:
    """The sessions of one host's speaker, keyed by peer address."""

    def __init__(
        self,
        host: str,
        router_id: str,
        peers: Sequence[Peer],
        *,
        asn: int = AS_NUMBER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.router_id = router_id
        self.asn = asn
        self.running = True
        self._clock = clock
        since = hhmmss(clock())
        self._peers = {
            p.ip: PeerStatus(p.ip, PEER_TYPE[p.kind], STATE_START, since, INFO_ACTIVE) for p in peers
        }

    def peer(self, address: str) -> PeerStatus | None:
        return self._peers.get(address)

    def apply(self, event: StateChange) -> bool:
        """Take a state event in; True when something the status shows changed."""
        described = describe(event)
        if described is None:
            return False
        state, info = described
        old = self._peers.get(event.peer)
        if old is not None and (old.state, old.info) == (state, info):
            return False
        kind = old.type if old is not None else PEER_TYPE[UNKNOWN_PEER_KIND]
        since = old.since if old is not None and old.state == state else hhmmss(self._clock())
        self._peers[event.peer] = PeerStatus(event.peer, kind, state, since, info)
        return True

    def heard_from(self, address: str) -> bool:
        """An update came from ``address``, so its session is established: a respawned glue
        hears no ``up`` for sessions that were already up. True when that is news."""
        old = self._peers.get(address)
        if old is not None and old.state == STATE_UP:
            return False
        return self.apply(StateChange(address, "up"))

    def stopped(self) -> None:
        """The glue is stopping: every session is going away with its speaker."""
        since = hhmmss(self._clock())
        self.running = False
        for address, old in self._peers.items():
            self._peers[address] = replace(old, state=STATE_DOWN, info=INFO_IDLE, since=since)

    def value(self) -> dict[str, Any]:
        """The JSON object stored under ``keys.bgp_status(host)``."""
        return {
            "host": self.host,
            "router_id": self.router_id,
            "asn": self.asn,
            "running": self.running,
            "peers": [self._peers[a].as_dict() for a in sorted(self._peers, key=_sort_key)],
            "updated": self._clock(),
        }
