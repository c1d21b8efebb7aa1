"""A packet walker over rendered chains (pure): which verdict, through which rules.

It evaluates exactly the iptables vocabulary the renderers emit (interfaces with ``+``,
addresses, protocols, conntrack state, marks, ipsets, multiport) and raises ValueError on
anything else, so a renderer cannot emit a rule the walker would silently misread.
Kernel chains hold only our hooks and have policy ACCEPT (as on the lab's hosts).
"""

from __future__ import annotations

import ipaddress
import shlex
from functools import lru_cache
from dataclasses import dataclass
from typing import Literal

from agents.felix.render.host import HostRules
from agents.felix.render.restore import rule_body
from agents.felix.render.rules import Chain, IPSet

Verdict = Literal["ACCEPT", "DROP"]
PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "4": 4, "ipencap": 4}
MAX_DEPTH = 64


@dataclass(frozen=True)
class Packet:
    """in_iface None: sent by the host itself; out_iface None: addressed to the host."""

    src: str
    dst: str
    protocol: str = "tcp"  # tcp, udp, sctp, or a number
    dport: int | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    ct_state: str = "NEW"


@dataclass
class _State:
    packet: Packet
    chains: dict[str, Chain]
    sets: dict[str, IPSet]
    mark: int
    trace: list[str]


def _iface(pattern: str, name: str | None) -> bool:
    if name is None:
        return False
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


def _in_net(ip: str, net: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(net, strict=False)


def _proto_number(name: str) -> int:
    return int(name) if name.isdigit() else PROTOCOLS[name]


def _set_match(st: _State, name: str, flags: str) -> bool:
    ipset = st.sets.get(name)
    if ipset is None:
        raise ValueError(f"rule refers to missing ipset {name}")
    pkt = st.packet
    ip = pkt.src if flags.split(",")[0] == "src" else pkt.dst
    if ipset.kind == "hash:net":
        return any(_in_net(ip, m) for m in ipset.members)
    if ipset.kind == "hash:ip,port":
        return f"{ip},{pkt.protocol}:{pkt.dport}" in ipset.members
    raise ValueError(f"ipset type {ipset.kind} not understood")


@lru_cache(maxsize=4096)
def _split(text: str) -> tuple[str, ...]:
    return tuple(shlex.split(text))


def _matches(st: _State, match: str) -> bool:
    pkt = st.packet
    tokens = _split(match)
    i = 0
    negate = False
    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            negate = True
            i += 1
            continue
        if tok == "-m":
            i += 2
            continue
        arg = tokens[i + 1]
        i += 2
        if tok == "--match-set":
            result = _set_match(st, arg, tokens[i])
            i += 1
        elif tok in ("-i", "-o"):
            result = _iface(arg, pkt.in_iface if tok == "-i" else pkt.out_iface)
        elif tok in ("-s", "-d"):
            result = _in_net(pkt.src if tok == "-s" else pkt.dst, arg)
        elif tok == "-p":
            result = _proto_number(pkt.protocol) == _proto_number(arg)
        elif tok == "--ctstate":
            result = pkt.ct_state in arg.split(",")
        elif tok == "--mark":
            value, mask = (int(x, 0) for x in arg.split("/"))
            result = st.mark & mask == value
        elif tok in ("--dports", "--dport"):
            spans = [tuple(int(x) for x in p.split(":")) for p in arg.split(",")]
            result = pkt.dport is not None and any(s[0] <= pkt.dport <= s[-1] for s in spans)
        elif tok == "--comment":
            result = True
        else:
            raise ValueError(f"walker does not understand {tok!r} in {match!r}")
        if result == negate:
            return False
        negate = False
    return True


def _run(st: _State, name: str, depth: int) -> Verdict | None:
    """A chain's verdict, or None when it returns (RETURN or end of chain)."""
    if depth > MAX_DEPTH:
        raise ValueError("chain recursion too deep")
    chain = st.chains.get(name)
    if chain is None:
        raise ValueError(f"jump to missing chain {name}")
    for index, rule in enumerate(chain.rules):
        if not _matches(st, rule.match):
            continue
        st.trace.append(f"{name}[{index}] {rule_body(rule)}")
        verb, target, *rest = _split(rule.action)
        if target in ("ACCEPT", "DROP"):
            return target  # type: ignore[return-value]
        if target == "RETURN":
            return None
        if target == "MARK":
            if rest[0] != "--set-xmark":
                raise ValueError(f"MARK option {rest[0]} not understood")
            value, mask = (int(x, 0) for x in rest[1].split("/"))
            st.mark = (st.mark & ~mask) ^ value
            continue
        if verb == "-g":
            return _run(st, target, depth + 1)
        verdict = _run(st, target, depth + 1)
        if verdict is not None:
            return verdict
    return None


def _kernel_chain(st: _State, rules: HostRules, table: str, chain: str) -> Verdict:
    hooks = tuple(h.rule for h in rules.hooks if h.table == table and h.chain == chain)
    st.chains[chain] = Chain(chain, hooks)
    verdict = _run(st, chain, 0)
    if verdict is None:
        st.trace.append(f"{chain} policy ACCEPT")
        return "ACCEPT"
    return verdict


def walk(rules: HostRules, packet: Packet) -> tuple[Verdict, tuple[str, ...]]:
    """The host's verdict on a packet: raw PREROUTING (if it arrived on an interface), then
    filter FORWARD, INPUT (out_iface None) or OUTPUT (in_iface None)."""
    st = _State(packet, {}, {s.name: s for s in rules.ipsets}, 0, [])
    if packet.in_iface is not None:
        st.chains = {c.name: c for c in rules.raw_chains}
        if _kernel_chain(st, rules, "raw", "PREROUTING") == "DROP":
            return "DROP", tuple(st.trace)
    st.chains = {c.name: c for c in rules.chains}
    if packet.in_iface is None:
        hook = "OUTPUT"
    elif packet.out_iface is None:
        hook = "INPUT"
    else:
        hook = "FORWARD"
    return _kernel_chain(st, rules, "filter", hook), tuple(st.trace)


def rule_count(rules: HostRules) -> int:
    return sum(len(c.rules) for c in rules.chains + rules.raw_chains)


