"""Selector and named-port ipsets (calico.md §4): names from hashes, members from endpoints."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agents.felix.render.rules import IPSet
from agents.felix.render.selectors import Selector
from testbed.model.policy import Endpoint, Protocol
from testbed.naming import MAX_IPSET, check_length

SET_PREFIX = "cali40"  # cali + IP version 4 + "0"
MAXELEM = 1048576
HASH_NET = "hash:net"
HASH_IP_PORT = "hash:ip,port"


def _b64_sha224(text: str) -> str:
    digest = hashlib.sha224(text.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def selector_set_id(selector: Selector) -> str:
    return "s:" + _b64_sha224("s:" + str(selector))


def named_port_set_id(selector: Selector, protocol: Protocol, port_name: str) -> str:
    """Our own combination of (selector id, protocol, port name); Felix's differs in detail."""
    return "n:" + _b64_sha224(f"n:{selector_set_id(selector)},{protocol.lower()},{port_name}")


def set_name(set_id: str) -> str:
    name = (SET_PREFIX + set_id)[:MAX_IPSET]
    check_length("ipset", name)
    return name


def selector_set_name(selector: Selector) -> str:
    return set_name(selector_set_id(selector))


def named_port_set_name(selector: Selector, protocol: Protocol, port_name: str) -> str:
    return set_name(named_port_set_id(selector, protocol, port_name))


@dataclass
class SetRequests:
    """The sets the rendered rules refer to, collected while rendering policy chains."""

    selectors: set[Selector] = field(default_factory=set)
    named_ports: set[tuple[Selector, Protocol, str]] = field(default_factory=set)

    def selector(self, selector: Selector) -> str:
        self.selectors.add(selector)
        return selector_set_name(selector)

    def named_port(self, selector: Selector, protocol: Protocol, port_name: str) -> str:
        self.named_ports.add((selector, protocol, port_name))
        return named_port_set_name(selector, protocol, port_name)


def build_ipsets(
    requests: SetRequests, labelled: Sequence[tuple[Endpoint, Mapping[str, str]]]
) -> tuple[IPSet, ...]:
    """Members from ALL endpoints of the cluster: /32 nets, or ``ip,proto:port`` entries."""
    sets: dict[str, IPSet] = {}
    for sel in requests.selectors:
        members = frozenset(f"{ep.ip}/32" for ep, labels in labelled if sel.matches(labels))
        name = selector_set_name(sel)
        sets[name] = IPSet(name, HASH_NET, members)
    for sel, protocol, port_name in requests.named_ports:
        entries = set()
        for ep, labels in labelled:
            if not sel.matches(labels):
                continue
            for port in ep.ports:
                if port.name == port_name and port.protocol == protocol:
                    entries.add(f"{ep.ip},{protocol.lower()}:{port.port}")
        name = named_port_set_name(sel, protocol, port_name)
        sets[name] = IPSet(name, HASH_IP_PORT, frozenset(entries))
    return tuple(sets[n] for n in sorted(sets))
