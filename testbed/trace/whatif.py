"""Each host's steps for a packet (pure): the route it matches and the rule that decides.

The rules that fired come either from the walker over what the renderer would write
(``--what-if``: nothing sent) or from the kernel's packet counters (a real trace); the
same ``steps`` turns either into HostSteps, so the two can be compared hop by hop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agents.felix.render.host import render_host
from agents.felix.render.names import endpoint_chain, policy_chain
from agents.felix.render.walk import Packet, walk
from testbed import oracle
from testbed.model.policy import Endpoint, Namespace, NetworkPolicy
from testbed.trace.decide import Fired, decide, parse_walk
from testbed.trace.model import HostStep, Leg, Node
from testbed.trace.path import hosts_on_path, interfaces_at, route_lookup

Routes = Mapping[str, Sequence[tuple[str, str]]]  # host -> (prefix, `ip route` line)


def policy_chains(policies: Sequence[NetworkPolicy]) -> dict[str, str]:
    """Chain name -> policy key, both directions (to name what a default deny came from)."""
    return {policy_chain(p, d): p.key for p in policies for d in ("Ingress", "Egress")}


def judging_chains(host: str, src: Node, dst: Node) -> list[tuple[str, str]]:
    """(what, chain) of the workload chains that judge src -> dst on ``host``."""
    out = []
    if src.kind == "pod" and src.host == host and src.iface:
        out.append((f"egress of {src.name}", endpoint_chain(src.iface, "Egress")))
    if dst.kind == "pod" and dst.host == host and dst.iface:
        out.append((f"ingress of {dst.name}", endpoint_chain(dst.iface, "Ingress")))
    return out


def route_on(host: str, dst: Node, routes: Routes) -> str:
    if dst.kind == "host" and dst.host == host:
        return f"local {dst.ip} (this host)"
    return route_lookup(routes.get(host, ()), dst.ip)


def steps(
    src: Node, dst: Node, leg: Leg, fired_by_host: Mapping[str, Sequence[Fired]], routes: Routes,
    chains_to_policy: Mapping[str, str], nat: Mapping[str, str] | None = None,
) -> list[HostStep]:
    out = []
    for host in hosts_on_path(src, dst):
        fired = fired_by_host.get(host, ())
        route = route_on(host, dst, routes)
        judging = judging_chains(host, src, dst) or [("", None)]
        for i, (_, chain) in enumerate(judging):
            decision = decide(fired, chain, chains_to_policy, established=leg == "reply")
            out.append(HostStep(host, leg, route if i == 0 else "", decision, (nat or {}).get(host, "") if i == 0 else ""))
            if decision.verdict == "DROP" or decision.rule.endswith("-j ACCEPT"):
                break  # ACCEPT and DROP end the table's walk: a later chain never sees the packet
    return out


def walked(
    src: Node, dst: Node, protocol: str, port: int | None, endpoints: Sequence[Endpoint],
    namespaces: Mapping[str, Namespace], policies: Sequence[NetworkPolicy], established: bool = False,
) -> dict[str, list[Fired]]:
    """host -> the rules the walker passes on that host, over the rules it would render."""
    out: dict[str, list[Fired]] = {}
    for host in hosts_on_path(src, dst):
        rules = render_host(host, endpoints, namespaces, policies)
        in_iface, out_iface = interfaces_at(host, src, dst)
        packet = Packet(src.ip, dst.ip, protocol, port, in_iface, out_iface, "ESTABLISHED" if established else "NEW")
        _, trace = walk(rules, packet)
        out[host] = parse_walk(trace)
    return out


def oracle_allows(
    src: Node, dst: Node, protocol: str, port: int | None, endpoints: Sequence[Endpoint],
    namespaces: Mapping[str, Namespace], policies: Sequence[NetworkPolicy],
) -> bool:
    """The oracle's verdict (policy meaning, independent of the renderer)."""
    by_ip = {ep.ip: ep for ep in endpoints}
    parties = [by_ip.get(n.ip, n.ip) if n.kind == "pod" else n.ip for n in (src, dst)]
    if protocol == "icmp":  # Kubernetes policy ports are TCP/UDP/SCTP: ICMP passes only port-less rules
        protocol, port = "ICMP", 0
    return oracle.evaluate(parties[0], parties[1], port or 0, protocol, policies, namespaces).allowed
