"""What a trace is made of: the parties, the places a packet is looked for, what was seen
there, and what each host decided. Data only, so rendering and comparing stay pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Leg = Literal["request", "reply"]
Kind = Literal["pod", "host"]


@dataclass(frozen=True)
class Node:
    """A party of the trace: a pod (``ns/pod``) or a host of the lab."""

    kind: Kind
    name: str  # "ns/pod" or the host's name
    ip: str
    host: str  # the pod's host, or the host itself
    netns: str
    iface: str | None = None  # a pod's host-side cali interface


@dataclass(frozen=True)
class Point:
    """An interface a packet is looked for on: ``where`` is a pod, a host or "fabric"."""

    where: str
    netns: str
    iface: str

    @property
    def label(self) -> str:
        return f"{self.where} {self.iface}"


@dataclass(frozen=True)
class Sighting:
    """The marked packet (or its reply) as one point saw it."""

    point: Point
    leg: Leg
    src: str
    dst: str
    sport: int | None
    dport: int | None
    detail: str  # "SYN", "SYN-ACK", "echo-request", ...


@dataclass(frozen=True)
class Decision:
    """What one host's rules did with a packet, and the rule (``chain[index] text``) that did it."""

    verdict: Literal["ACCEPT", "DROP", "UNKNOWN"]
    by: str  # "x/allow-80 ingress rule 0", "default deny (x/deny-all)", "no policy (profile kns.x)"
    rule: str = ""


@dataclass(frozen=True)
class HostStep:
    """Everything one host did with the packet on one leg."""

    host: str
    leg: Leg
    route: str  # the matched route, as `ip route` prints it; "" when the host delivers locally
    decision: Decision
    nat: str = ""  # "DNAT 10.96.0.10:80 -> 10.65.0.64:80"


@dataclass(frozen=True)
class Hop:
    number: int
    leg: Leg
    point: str  # Point.label
    seen: bool
    packet: str = ""  # "10.65.0.0:40001 -> 10.65.0.64:80 SYN"
    notes: tuple[str, ...] = ()  # route, NAT and rule lines of the host this hop enters


@dataclass
class TraceResult:
    src: str
    dst: str
    protocol: str
    port: int | None
    what_if: bool
    hops: list[Hop] = field(default_factory=list)
    steps: list[HostStep] = field(default_factory=list)
    allowed: bool = False
    dropped_at: str | None = None
    dropped_by: str | None = None
    differences: list[str] = field(default_factory=list)  # real trace vs what-if
    seconds: float | None = None

    @property
    def verdict_line(self) -> str:
        if self.allowed:
            return "ALLOWED"
        return f"DROPPED at {self.dropped_at or 'unknown'} by {self.dropped_by or 'unknown'}"

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["verdict"] = self.verdict_line
        return data
