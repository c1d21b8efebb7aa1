"""Per-policy chains ``cali-pi-`` / ``cali-po-`` and namespace profile chains (calico.md §3, §5).

Every Kubernetes rule becomes Allow rules: one per peer × port block, each setting the
accept mark and followed by "return if accepted". A port block is one protocol with
either every port, up to 15 multiport slots of numbers and ranges, or one named port
(an ``hash:ip,port`` set matched ``dst,dst``).

ipBlock ``except``: iptables allows one ``-s`` per rule, so excepts cannot sit beside the
cidr. We do what Felix does for several negated CIDRs, with separate rules: clear scratch0,
set it for each excepted CIDR, and require scratch0 clear in the allow rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.felix.render import marks
from agents.felix.render.ipsets import SetRequests
from agents.felix.render.names import policy_chain, profile_chain
from agents.felix.render.rules import Chain, Rule
from agents.felix.render.selectors import ALL_PODS, Selector, peer_selector, policy_selector
from testbed.model.policy import Direction, NetworkPolicy, Peer, PolicyPort, PolicyRule, Protocol

MULTIPORT_SLOTS = 15
PROTOCOL_ORDER: tuple[Protocol, ...] = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class PortBlock:
    match: str  # "" (any protocol and port), "-p tcp", "-p tcp -m multiport --dports 80,81:90"
    named_set: str = ""  # with a named port: the set, matched "dst,dst"


def allow_rules(match: str, comment: str = "") -> list[Rule]:
    return [
        Rule(match, marks.xmark(marks.ACCEPT, marks.ACCEPT), comment),
        Rule(marks.match(marks.ACCEPT, marks.ACCEPT), "-j RETURN"),
    ]


def _numeric_chunks(ports: list[PolicyPort]) -> list[list[str]]:
    spans = sorted({(int(p.port or 0), p.end_port or int(p.port or 0)) for p in ports})
    chunks: list[list[str]] = [[]]
    used = 0
    for lo, hi in spans:
        text, cost = (str(lo), 1) if lo == hi else (f"{lo}:{hi}", 2)
        if used + cost > MULTIPORT_SLOTS:
            chunks.append([])
            used = 0
        chunks[-1].append(text)
        used += cost
    return chunks


def port_blocks(
    ports: tuple[PolicyPort, ...], named_selector: Selector, sets: SetRequests
) -> list[PortBlock]:
    if not ports:
        return [PortBlock("")]
    blocks: list[PortBlock] = []
    for protocol in PROTOCOL_ORDER:
        mine = [p for p in ports if p.protocol == protocol]
        if not mine:
            continue
        proto = f"-p {protocol.lower()}"
        if any(p.port is None for p in mine):
            blocks.append(PortBlock(proto))
            continue
        numeric = [p for p in mine if isinstance(p.port, int)]
        if numeric:
            for chunk in _numeric_chunks(numeric):
                blocks.append(PortBlock(f"{proto} -m multiport --dports {','.join(chunk)}"))
        for name in sorted({p.port for p in mine if isinstance(p.port, str)}):
            set_name = sets.named_port(named_selector, protocol, name)
            blocks.append(PortBlock(proto, set_name))
    return blocks


def _peer_rules(
    policy: NetworkPolicy, rule: PolicyRule, peer: Peer | None, direction: Direction,
    sets: SetRequests, comment: str,
) -> list[Rule]:
    side, flag = ("src", "-s") if direction == "Ingress" else ("dst", "-d")
    parts: list[str] = []
    out: list[Rule] = []
    selector = peer_selector(policy.namespace, peer) if peer is not None else None
    if selector is not None:
        parts.append(f"-m set --match-set {sets.selector(selector)} {side}")
    if peer is not None and peer.ip_block is not None:
        block = peer.ip_block
        if block.excepts:
            out.append(Rule("", marks.xmark(0, marks.SCRATCH0), "Clear ipBlock except mark"))
            for cidr in block.excepts:
                out.append(Rule(f"{flag} {cidr}", marks.xmark(marks.SCRATCH0, marks.SCRATCH0),
                                "ipBlock except"))
            parts.append(marks.match(0, marks.SCRATCH0))
        if block.cidr != "0.0.0.0/0":
            parts.append(f"{flag} {block.cidr}")
    if direction == "Ingress":
        named_selector = policy_selector(policy)  # the port is the selected pod's own
    else:
        named_selector = selector if selector is not None else ALL_PODS
    for pb in port_blocks(rule.ports, named_selector, sets):
        match = [pb.match] if pb.match else []
        if pb.named_set:
            match.append(f"-m set --match-set {pb.named_set} dst,dst")
        out.extend(allow_rules(" ".join(parts + match), comment))
    return out


def render_policy_chain(policy: NetworkPolicy, direction: Direction, sets: SetRequests) -> Chain:
    """A chain that sets the accept mark when some rule of the policy allows the packet;
    a policy with no rules in this direction gives an empty chain (deny)."""
    rules = policy.ingress if direction == "Ingress" else policy.egress
    out: list[Rule] = []
    for index, rule in enumerate(rules):
        comment = f"{policy.key} {direction.lower()}[{index}]"
        for peer in rule.peers or (None,):
            out.extend(_peer_rules(policy, rule, peer, direction, sets, comment))
    return Chain(policy_chain(policy, direction), tuple(out))


def render_profile_chain(namespace: str, direction: Direction) -> Chain:
    """Profile kns.<ns>: allow everything."""
    return Chain(profile_chain(namespace, direction), tuple(allow_rules("")))
