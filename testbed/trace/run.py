"""`testbed trace` against a running lab: resolve the parties, compute the what-if, and
(unless asked for the what-if only) send the probe, watch it and read the counters.

Everything the lab knows is read once (status, cluster view, Services, routes); the
pure modules do the rest. Nothing is sent to an address that is not the lab's."""

from __future__ import annotations

import json
import subprocess
import threading

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from testbed import addressing, api, naming
from testbed.datastore import keys
from testbed.kube.services import Endpoint as ServiceEndpoint, Service
from testbed.kube.view import ClusterView, read_view
from testbed.trace import capture, walkmodel, whatif
from testbed.trace.decide import moved, parse_counters
from testbed.trace.model import Leg, Node, Point, Sighting, TraceResult
from testbed.trace.path import hosts_on_path, points

PROTOCOLS = ("tcp", "udp", "icmp")
TIMEOUT = 1.0  # seconds to wait for a packet that may have been dropped


@dataclass(frozen=True)
class Target:
    node: Node  # where the packet ends (a Service's endpoint once translated)
    address: str  # what the probe is sent to (the ClusterIP for a Service)
    port: int | None  # the port the probe is sent to
    endpoints: tuple[tuple[Node, int], ...] = ()  # a Service: every (endpoint, target port)
    service: str = ""


@dataclass
class LabFacts:
    lab: str
    pods: dict[str, Node]
    hosts: dict[str, Node]
    view: ClusterView
    services: list[Service]
    endpoints: dict[tuple[str, str], dict[str, tuple[ServiceEndpoint, ...]]]


def read_facts(lab: str) -> LabFacts:
    from testbed.kube.endpoints import endpoints_by_service
    from testbed.kube.errors import ManifestError
    from testbed.kube.services import service_from_dict

    current = api.status(lab, add_ons=True)
    pods = {f"{p.namespace}/{p.name}": Node("pod", f"{p.namespace}/{p.name}", p.ip, p.host, p.netns, p.interface)
            for p in current.pods}
    hosts = {h.name: Node("host", h.name, h.ip, h.name, h.netns) for h in current.hosts}
    with api.datastore(lab) as store:
        view = read_view(store)
        stored = list(store.list(keys.SERVICES).values())
        # As kube-proxy: a Service's endpoints are its stored Endpoints' ready addresses.
        stored_endpoints = list(store.list(keys.ENDPOINTS).values()) if stored else []
    services = []
    for obj in stored:
        try:
            services.append(service_from_dict(obj))
        except ManifestError:  # a bad stored Service is kube-proxy's problem, not the trace's
            continue
    return LabFacts(lab, pods, hosts, view, services, endpoints_by_service(services, stored_endpoints))


def _party(facts: LabFacts, text: str) -> Node | None:
    if text in facts.pods:
        return facts.pods[text]
    if text in facts.hosts:
        return facts.hosts[text]
    for node in [*facts.pods.values(), *facts.hosts.values()]:
        if node.ip == text:
            return node
    return None


def resolve_source(facts: LabFacts, text: str) -> Node:
    node = _party(facts, text)
    if node is None:
        raise api.LabError(f"source {text!r} is not a pod (NS/POD), host or address of lab {facts.lab!r}")
    return node


def resolve_target(facts: LabFacts, text: str, protocol: str) -> Target:
    name, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        name, port_text = text, ""
    port = int(port_text) if port_text else None
    if protocol != "icmp" and port is None and not any(
        f"{s.namespace}/{s.name}" == name or s.cluster_ip == name for s in facts.services
    ):
        raise api.LabError(f"{text!r}: {protocol} needs a port: DST:PORT")
    node = _party(facts, name)
    if node is not None:
        return Target(node, node.ip, None if protocol == "icmp" else port)
    for svc in facts.services:
        if name not in (f"{svc.namespace}/{svc.name}", svc.cluster_ip) or not svc.cluster_ip:
            continue
        ports = [p for p in svc.ports if p.protocol.lower() == protocol and (port is None or p.port == port)]
        if protocol == "icmp" or not ports:
            raise api.LabError(f"service {svc.namespace}/{svc.name} has no {protocol} port {port or ''}".rstrip())
        chosen = ports[0]
        eps = facts.endpoints.get((svc.namespace, svc.name), {}).get(chosen.name, ())
        nodes = tuple((n, ep.port) for ep in eps for n in facts.pods.values() if n.ip == ep.ip)
        if not nodes:
            raise api.LabError(f"service {svc.namespace}/{svc.name} port {chosen.port} has no endpoints")
        return Target(nodes[0][0], svc.cluster_ip, chosen.port, nodes, f"{svc.namespace}/{svc.name}")
    try:
        addressing.parse_ipv4(name)
    except addressing.AddressError:
        raise api.LabError(f"destination {name!r} is not a pod, Service, host or address of lab {facts.lab!r}") from None
    raise api.LabError(f"{name} is not an address of lab {facts.lab!r}: traces never leave the lab")


def route_tables(lab: str, hosts: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Each host's routes as (destination, text): `ip -json route` in the host's netns.

    `ip` is a few ms a host; a pyroute2 handle forks a child per netns, which cost a
    trace about 70 ms a host, most of the 1 s a trace may take."""
    out = {}
    for host in hosts:
        proc = subprocess.run(
            ["ip", "-n", naming.host_netns(lab, host), "-json", "route", "show"],
            capture_output=True, text=True, check=False, timeout=10,
        )
        if proc.returncode != 0:
            raise api.LabError(f"host {host}: ip route failed: {proc.stderr.strip()}")
        out[host] = [route_row(r) for r in json.loads(proc.stdout or "[]")]
    return out


def route_row(route: Mapping[str, object]) -> tuple[str, str]:
    """(destination, `<dst> [via <gw>] [dev <dev>] proto <proto>`) of one `ip -json` route."""
    dst = str(route.get("dst", ""))
    dst = dst[:-3] if dst.endswith("/32") else dst
    proto = str(route.get("protocol", "boot"))
    words = (dst, f"via {route['gateway']}" if route.get("gateway") else "", f"dev {route['dev']}" if route.get("dev") else "", f"proto {proto}")
    return dst, " ".join(w for w in words if w)


def _detail(protocol: str, leg: str) -> str:
    return {"tcp": ("SYN", "SYN-ACK"), "udp": ("UDP", "UDP"), "icmp": ("echo-request", "echo-reply")}[protocol][leg == "reply"]


def _nat(target: Target, endpoint: Node, ep_port: int | None, src: Node) -> dict[str, str]:
    if not target.service:
        return {}
    return {src.host: f"DNAT {target.address}:{target.port} -> {endpoint.ip}:{ep_port} ({endpoint.name}, "
                      f"service {target.service})"}


def _with_reply(protocol: str) -> bool:
    return protocol in ("tcp", "icmp")


def what_if(facts: LabFacts, src: Node, target: Target, protocol: str, endpoint: Node, ep_port: int | None,
            routes: Mapping[str, Sequence[tuple[str, str]]]) -> TraceResult:
    view = facts.view
    chains = whatif.policy_chains(view.policies)
    args = (view.endpoints, view.namespaces, view.policies)
    result = TraceResult(src.name, target.service or target.node.name, protocol, target.port, True)
    fired = whatif.walked(src, endpoint, protocol, ep_port, *args)
    result.steps = whatif.steps(src, endpoint, "request", fired, routes, chains, _nat(target, endpoint, ep_port, src))
    path = points(facts.lab, src, endpoint)

    def make(leg: Leg, a: Node, b: Node, sport: int | None, dport: int | None) -> Callable[[Point], Sighting]:
        def one(p: Point) -> Sighting:
            at_source = p.netns == src.netns or (src.kind == "pod" and p.iface == src.iface)
            if target.service and at_source:  # the source side sees the Service, not its endpoint
                if leg == "request":
                    return Sighting(p, leg, a.ip, target.address, sport, target.port, _detail(protocol, leg))
                if leg == "reply":
                    return Sighting(p, leg, target.address, b.ip, target.port, dport, _detail(protocol, leg))
            return Sighting(p, leg, a.ip, b.ip, sport, dport, _detail(protocol, leg))
        return one

    sport = None  # a what-if has no real source port
    seen = walkmodel.predicted_sightings(path, "request", result.steps, make("request", src, endpoint, sport, ep_port))
    allowed, _, _ = walkmodel.verdict(path, seen, result.steps)
    if allowed and _with_reply(protocol):
        back = whatif.walked(endpoint, src, protocol, None, *args, established=True)
        reply_steps = whatif.steps(endpoint, src, "reply", back, routes, chains)
        result.steps += reply_steps
        rpath = tuple(reversed(path))
        seen += walkmodel.predicted_sightings(rpath, "reply", reply_steps, make("reply", endpoint, src, ep_port, sport))
    _finish(result, path, seen)
    if result.allowed != whatif.oracle_allows(src, endpoint, protocol, ep_port, *args):
        result.differences.append(f"the oracle says {'allowed' if not result.allowed else 'denied'}: "
                                  "the rendered rules disagree with the policies' meaning")
    return result


def _finish(result: TraceResult, path: Sequence[Point], seen: Sequence[Sighting]) -> None:
    result.hops = walkmodel.leg_hops("request", path, seen, result.steps, 1)
    result.allowed, result.dropped_at, result.dropped_by = walkmodel.verdict(path, seen, result.steps)
    if result.allowed and _with_reply(result.protocol):
        result.hops += walkmodel.leg_hops("reply", tuple(reversed(path)), seen, result.steps, len(path) + 1)


def real(facts: LabFacts, src: Node, target: Target, protocol: str) -> TraceResult:
    candidates = target.endpoints or ((target.node, target.port),)
    union = tuple(dict.fromkeys(p for node, _ in candidates for p in points(facts.lab, src, node)))
    hosts = tuple(dict.fromkeys(h for node, _ in candidates for h in hosts_on_path(src, node)))
    host_ns = [naming.host_netns(facts.lab, h) for h in hosts]
    probe = capture.Probe(src.ip, target.address, protocol, capture.pick_sport(), target.port)
    translated = [node.ip for node, _ in target.endpoints]
    first = union[0]
    ends = {points(facts.lab, src, node)[-1] for node, _ in candidates}

    def done(seen: list[Sighting]) -> bool:
        if _with_reply(protocol):
            return any(s.leg == "reply" and s.point == first for s in seen)
        return any(s.leg == "request" and s.point in ends for s in seen)

    warm = threading.Thread(target=capture.warm_up, daemon=True)
    warm.start()  # scapy's import overlaps the counters' read, not the capture's window
    before = capture.counters(host_ns)
    warm.join()
    seen = capture.capture(union, src.netns, probe, translated, done, TIMEOUT)
    after = capture.counters(host_ns)
    endpoint, ep_port = target.node, target.port
    if target.service:
        landed = next((s.dst for s in seen if s.leg == "request" and s.dst != target.address), None)
        landed = landed or capture.conntrack_dnat(naming.host_netns(facts.lab, src.host), probe)
        for node, port in target.endpoints:
            if node.ip == landed:
                endpoint, ep_port = node, port
    path = points(facts.lab, src, endpoint)
    seen = [s for s in seen if s.point in path]
    fired = {h: moved(parse_counters(before[ns]), parse_counters(after[ns])) for h, ns in zip(hosts, host_ns)}
    view = facts.view
    chains = whatif.policy_chains(view.policies)
    routes = route_tables(facts.lab, hosts)
    result = TraceResult(src.name, target.service or target.node.name, protocol, target.port, False)
    nat = _nat(target, endpoint, ep_port, src)
    result.steps = whatif.steps(src, endpoint, "request", fired, routes, chains, nat)
    if any(s.leg == "reply" for s in seen):
        result.steps += whatif.steps(endpoint, src, "reply", fired, routes, chains)
    _finish(result, path, seen)
    predicted = what_if(facts, src, target, protocol, endpoint, ep_port, routes)
    result.differences = walkmodel.differences(result, predicted) + predicted.differences
    return result


def trace(lab: str, src_text: str, dst_text: str, protocol: str = "tcp", only_what_if: bool = False) -> TraceResult:
    if protocol not in PROTOCOLS:
        raise api.LabError(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    started = time.monotonic()
    facts = read_facts(lab)
    src = resolve_source(facts, src_text)
    target = resolve_target(facts, dst_text, protocol)
    if only_what_if:
        ep_port = target.endpoints[0][1] if target.endpoints else target.port
        routes = route_tables(lab, hosts_on_path(src, target.node))
        result = what_if(facts, src, target, protocol, target.node, ep_port, routes)
    else:
        result = real(facts, src, target, protocol)
    result.seconds = round(time.monotonic() - started, 3)
    return result
