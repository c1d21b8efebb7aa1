"""Services -> the nat and filter rules kube-proxy's iptables mode writes (pure).

The text is what kube-proxy hands to ``iptables-restore --noflush``: declare every chain it
owns (which creates or flushes it), then every rule. Shapes, names and comments follow
kube-proxy (calico.md section 7):

nat: PREROUTING, OUTPUT -> KUBE-SERVICES: per service port with endpoints
``-d <clusterIP> --dport <port> -j KUBE-SVC-<hash>``; last rule, addresses of this node ->
KUBE-NODEPORTS: ``--dport <nodePort> -j KUBE-EXT-<hash>`` (mark for masquerade) ->
KUBE-SVC-<hash>. KUBE-SVC: first ``! -s <pod CIDR> -j KUBE-MARK-MASQ`` (off-cluster
sources, here the host itself, are masqueraded so that replies come back through this
host), then endpoint i of n with probability 1/(n-i), the last with none -> KUBE-SEP-<hash>:
hairpin masquerade of the endpoint itself, then DNAT to ``ip:port``. POSTROUTING ->
KUBE-POSTROUTING masquerades marked packets (mark 0x4000) and clears the mark.

filter: a service port without endpoints is refused at once (REJECT, connection refused)
instead of timing out: cluster IP in KUBE-SERVICES (FORWARD, OUTPUT), NodePort in
KUBE-EXTERNAL-SERVICES (INPUT, FORWARD), new connections only.

Chain names: the first 16 characters of base32(SHA-256(``ns/svc:port`` + protocol)),
protocol lower-case; KUBE-SEP also hashes in the endpoint ``ip:port``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from testbed.addressing import POOL
from testbed.kube.services import Endpoint, Service, ServicePort

SERVICES = "KUBE-SERVICES"
EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
NODE_PORTS = "KUBE-NODEPORTS"
POSTROUTING = "KUBE-POSTROUTING"
MARK_MASQ = "KUBE-MARK-MASQ"
SVC_PREFIX = "KUBE-SVC-"
EXT_PREFIX = "KUBE-EXT-"
SEP_PREFIX = "KUBE-SEP-"
# Every per-service prefix kube-proxy uses (SVL and FW are never written here, but a
# chain with one of them is still kube-proxy's and may be swept).
SERVICE_CHAIN_PREFIXES = (SVC_PREFIX, "KUBE-SVL-", EXT_PREFIX, "KUBE-FW-", SEP_PREFIX)
MASQ_MARK = "0x4000"  # kube-proxy's --masquerade-bit 14; Calico's marks live in 0xffff0000
CLUSTER_CIDR = str(POOL)
NODEPORTS_COMMENT = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"

NAT_CHAINS = (SERVICES, NODE_PORTS, POSTROUTING, MARK_MASQ)
FILTER_CHAINS = (SERVICES, EXTERNAL_SERVICES)

EndpointsByService = Mapping[tuple[str, str], Mapping[str, Sequence[Endpoint]]]


@dataclass(frozen=True)
class Hook:
    """A jump from a kernel chain, as ``iptables-legacy-save`` prints it. kube-proxy
    ensures these by existence (``iptables -C``, then insert), never by position."""

    table: str
    chain: str  # the kernel's chain
    rule: str  # matches and target, e.g. '-m comment --comment "..." -j KUBE-SERVICES'
    prepend: bool  # nat: first, as kube-proxy does; filter: appended, Felix's stay on top

    @property
    def line(self) -> str:
        return f"-A {self.chain} {self.rule}"


_PORTALS = '-m comment --comment "kubernetes service portals"'
_NEW = "-m conntrack --ctstate NEW"
_EXTERNAL = '-m comment --comment "kubernetes externally-visible service portals"'
HOOKS: tuple[Hook, ...] = (
    Hook("nat", "PREROUTING", f"{_PORTALS} -j {SERVICES}", prepend=True),
    Hook("nat", "OUTPUT", f"{_PORTALS} -j {SERVICES}", prepend=True),
    Hook("nat", "POSTROUTING", f'-m comment --comment "kubernetes postrouting rules" -j {POSTROUTING}', prepend=True),
    Hook("filter", "INPUT", f"{_NEW} {_EXTERNAL} -j {EXTERNAL_SERVICES}", prepend=False),
    Hook("filter", "FORWARD", f"{_NEW} {_PORTALS} -j {SERVICES}", prepend=False),
    Hook("filter", "FORWARD", f"{_NEW} {_EXTERNAL} -j {EXTERNAL_SERVICES}", prepend=False),
    Hook("filter", "OUTPUT", f"{_NEW} {_PORTALS} -j {SERVICES}", prepend=False),
)


# --- names -----------------------------------------------------------------------------------


def _hash16(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def service_chain(port_name: str, protocol: str) -> str:
    """``KUBE-SVC-`` + hash of ``ns/svc:port`` and the lower-case protocol."""
    return SVC_PREFIX + _hash16(port_name + protocol.lower())


def external_chain(port_name: str, protocol: str) -> str:
    return EXT_PREFIX + _hash16(port_name + protocol.lower())


def endpoint_chain(port_name: str, protocol: str, endpoint: Endpoint | str) -> str:
    """``KUBE-SEP-`` + hash of ``ns/svc:port``, the protocol and the endpoint ``ip:port``."""
    return SEP_PREFIX + _hash16(port_name + protocol.lower() + str(endpoint))


def is_service_chain(name: str) -> bool:
    return name.startswith(SERVICE_CHAIN_PREFIXES)


def probability(n: int) -> str:
    """The chance that the first of ``n`` remaining endpoints is taken, as kube-proxy prints it."""
    return f"{1.0 / n:0.10f}"


# --- rendering ---------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    return f'"{text}"'


def _proto(port: ServicePort) -> str:
    protocol = port.protocol.lower()
    return f"-m {protocol} -p {protocol}"


def _active(services: Sequence[Service]) -> list[tuple[Service, ServicePort]]:
    """Service ports kube-proxy programs: those with a ClusterIP (not headless), in a
    stable order (kube-proxy's is its map's; ours is by namespace, name, then spec order)."""
    out = []
    for service in sorted(services, key=lambda s: (s.namespace, s.name)):
        if service.cluster_ip is None or service.headless:
            continue
        out += [(service, port) for port in service.ports]
    return out


def _endpoints_of(endpoints: EndpointsByService, service: Service, port: ServicePort) -> Sequence[Endpoint]:
    return endpoints.get((service.namespace, service.name), {}).get(port.name, ())


def render_nat(
    services: Sequence[Service], endpoints_by_service: EndpointsByService, node_ips: Sequence[str] = ()
) -> str:
    """The nat table's restore text. ``node_ips``: the addresses NodePorts answer on
    (kube-proxy's ``--nodeport-addresses``); empty: every local address, as by default."""
    chains: list[str] = list(NAT_CHAINS)
    rules: list[str] = [
        f"-A {POSTROUTING} -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A {POSTROUTING} -j MARK --xor-mark {MASQ_MARK}",
        f'-A {POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
        f"-A {MARK_MASQ} -j MARK --or-mark {MASQ_MARK}",
    ]
    for service, port in _active(services):
        eps = _endpoints_of(endpoints_by_service, service, port)
        if not eps:
            continue  # refused in the filter table instead
        name = service.port_name(port)
        svc_chain = service_chain(name, port.protocol)
        proto = _proto(port)
        cluster = f'-m comment --comment "{name} cluster IP" {proto} -d {service.cluster_ip} --dport {port.port}'
        rules.append(f"-A {SERVICES} {cluster} -j {svc_chain}")
        if port.node_port is not None:
            ext_chain = external_chain(name, port.protocol)
            rules.append(f"-A {NODE_PORTS} -m comment --comment {name} {proto} --dport {port.node_port} -j {ext_chain}")
        rules.append(f"-A {svc_chain} {cluster} ! -s {CLUSTER_CIDR} -j {MARK_MASQ}")
        if port.node_port is not None:
            chains.append(ext_chain)
            external = _quoted(f"masquerade traffic for {name} external destinations")
            rules.append(f"-A {ext_chain} -m comment --comment {external} -j {MARK_MASQ}")
            rules.append(f"-A {ext_chain} -j {svc_chain}")
        chains.append(svc_chain)
        for i, endpoint in enumerate(eps):
            sep = endpoint_chain(name, port.protocol, endpoint)
            spread = f" -m statistic --mode random --probability {probability(len(eps) - i)}" if i < len(eps) - 1 else ""
            rules.append(f'-A {svc_chain} -m comment --comment "{name} -> {endpoint}"{spread} -j {sep}')
        for endpoint in eps:
            sep = endpoint_chain(name, port.protocol, endpoint)
            chains.append(sep)
            rules.append(f"-A {sep} -m comment --comment {name} -s {endpoint.ip} -j {MARK_MASQ}")
            rules.append(f"-A {sep} -m comment --comment {name} {proto} -j DNAT --to-destination {endpoint}")
    last = f"-A {SERVICES} -m comment --comment {_quoted(NODEPORTS_COMMENT)}"
    if node_ips:
        rules += [f"{last} -d {ip} -j {NODE_PORTS}" for ip in node_ips]
    else:
        rules.append(f"{last} -m addrtype --dst-type LOCAL -j {NODE_PORTS}")
    return _table("nat", chains, rules)


def render_filter(services: Sequence[Service], endpoints_by_service: EndpointsByService) -> str:
    """The filter table's restore text: REJECT for service ports without endpoints."""
    rules: list[str] = []
    for service, port in _active(services):
        if _endpoints_of(endpoints_by_service, service, port):
            continue
        comment = f'-m comment --comment "{service.port_name(port)} has no endpoints"'
        rules.append(f"-A {SERVICES} {comment} {_proto(port)} -d {service.cluster_ip} --dport {port.port} -j REJECT")
        if port.node_port is not None:
            rules.append(
                f"-A {EXTERNAL_SERVICES} {comment} -m addrtype --dst-type LOCAL {_proto(port)} "
                f"--dport {port.node_port} -j REJECT"
            )
    return _table("filter", list(FILTER_CHAINS), rules)


def _table(name: str, chains: Sequence[str], rules: Sequence[str]) -> str:
    return "\n".join([f"*{name}", *(f":{c} - [0:0]" for c in dict.fromkeys(chains)), *rules, "COMMIT", ""])
