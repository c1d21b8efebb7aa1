"""The lab's cluster DNS (kube-dns): answers `<svc>.<ns>.svc.cluster.local` from etcd's Services.

Runs as a pod's program behind the Service kube-system/kube-dns (ClusterIP 10.96.0.10,
port 53 UDP and TCP). Search-list expansion is the client's job: a pod's resolv.conf
says `search <ns>.svc.cluster.local svc.cluster.local cluster.local` and `ndots:5`, so
`nginx` asked in namespace policy-demo arrives here as `nginx.policy-demo.svc.cluster.local.`.

The server is authoritative for cluster.local and for the reverse zone of the service
CIDR (96.10.in-addr.arpa) and nothing else: the lab has no upstream and must never send
a query out of the lab, so names outside those zones are REFUSED, not forwarded.

Split as the agents are: `answer()` and `respond()` are pure (query + services map ->
response), the server only moves bytes; the services map is kept in memory by an etcd
watch on the Services prefix (relist on every change, reconnect when the watch is lost)
so that queries never wait for etcd. Until the first list succeeds every query gets
SERVFAIL, which resolvers do not cache as "no such name".

Usage: python -m agents.apps.dns --lab LAB --etcd-socket PATH [--port 53]

dnspython and the etcd client are imported only when needed, so `--help` stays cheap.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dns.message
    import dns.name

    from testbed.datastore.base import Datastore

LOG = logging.getLogger("agents.apps.dns")

ZONE = "cluster.local"
REVERSE_ZONE = "96.10.in-addr.arpa"  # the service CIDR 10.96.0.0/16 (testbed.addressing.SERVICE_CIDR)
TTL = 5  # seconds, as a small cluster's CoreDNS (`kubernetes ... { ttl 5 }`)
SOA_TIMERS = "1 7200 1800 86400 5"  # serial refresh retry expire minimum (negative TTL = TTL)
UDP_PAYLOAD = 512  # what a query without EDNS may receive over UDP (RFC 1035)
TCP_IDLE_SECONDS = 10.0  # a TCP client silent this long is dropped
RESYNC_SECONDS = 30.0  # relist even without a change, as the other agents resync
RETRY_SECONDS = 0.5

ServiceKey = tuple[str, str]  # (namespace, name)
ServiceIPs = Mapping[ServiceKey, str]  # -> the Service's IPv4 ClusterIP


# --- pure: the stored Services -> the map answered from --------------------------------


def cluster_ip(spec: Mapping[str, Any]) -> str | None:
    """The Service's IPv4 ClusterIP, or None (headless `None`, unset, or IPv6 only).

    `clusterIPs` (dual-stack) wins over `clusterIP`, as the API server keeps
    `clusterIPs[0] == clusterIP`."""
    candidates = [*(spec.get("clusterIPs") or []), spec.get("clusterIP")]
    for text in candidates:
        try:
            address = ipaddress.ip_address(str(text))
        except ValueError:
            continue
        if address.version == 4:
            return str(address)
    return None


def services_from(records: Mapping[str, Mapping[str, Any]], prefix: str = "") -> dict[ServiceKey, str]:
    """Kubernetes Service objects (key -> stored dict) -> {(namespace, name): ClusterIP}.

    Names come from metadata; the key `<prefix><ns>/<name>` fills in what metadata lacks.
    Services without an IPv4 ClusterIP (headless ones) are left out: they have no A record
    here (a headless Service's pod records would need its endpoints)."""
    result: dict[ServiceKey, str] = {}
    for key, obj in records.items():
        metadata = obj.get("metadata") or {}
        key_ns, _, key_name = key[len(prefix) :].rpartition("/") if key.startswith(prefix) else ("", "", "")
        namespace = str(metadata.get("namespace") or key_ns or "default")
        name = str(metadata.get("name") or key_name)
        address = cluster_ip(obj.get("spec") or {})
        if name and address:
            result[(namespace.lower(), name.lower())] = address
    return result


def describe_change(before: ServiceIPs | None, after: ServiceIPs) -> str:
    """One log line: the count and what came, went or moved (`2 services: +ns/a -ns/b`)."""
    old = before or {}
    parts = [f"+{ns}/{n}" for ns, n in sorted(after.keys() - old.keys())]
    parts += [f"-{ns}/{n}" for ns, n in sorted(old.keys() - after.keys())]
    parts += [f"~{ns}/{n}" for ns, n in sorted(k for k in after.keys() & old.keys() if after[k] != old[k])]
    shown = " ".join(parts[:10]) + (f" (+{len(parts) - 10} more)" if len(parts) > 10 else "")
    return f"{len(after)} services" + (f": {shown}" if shown else "")


# --- pure: query -> response -----------------------------------------------------------


def _labels(name: dns.name.Name, zone: dns.name.Name) -> tuple[str, ...]:
    """The labels of ``name`` below ``zone``, lowercased (DNS names are case-insensitive)."""
    return tuple(label.decode("ascii", "replace").lower() for label in name.relativize(zone).labels)


def _forward(labels: tuple[str, ...], services: ServiceIPs) -> dict[str, str] | None:
    """Records (type -> rdata text) at a name under cluster.local; None: no such name.

    `svc` and `<ns>.svc` (for a namespace with Services) exist without records of
    their own (empty non-terminals): NOERROR with no answer, not NXDOMAIN."""
    if labels == ("svc",):
        return {}
    if len(labels) == 2 and labels[1] == "svc":
        return {} if any(ns == labels[0] for ns, _ in services) else None
    if len(labels) == 3 and labels[2] == "svc" and (labels[1], labels[0]) in services:
        return {"A": services[(labels[1], labels[0])]}
    return None


def _reverse(labels: tuple[str, ...], services: ServiceIPs, reverse_zone: str, zone: str) -> dict[str, str] | None:
    """Records at a name under the service CIDR's reverse zone: PTR for a ClusterIP."""
    network = ".".join(reversed(reverse_zone.lower().strip(".").split(".")[:-2]))  # "96.10.in-addr.arpa" -> "10.96"
    wanted = ".".join([network, *reversed(labels)])
    owners = {ip: key for key, ip in services.items()}
    if len(labels) == 2 and wanted in owners:
        ns, name = owners[wanted]
        return {"PTR": f"{name}.{ns}.svc.{zone}."}
    if len(labels) == 1 and any(ip.startswith(wanted + ".") for ip in owners):
        return {}
    return None


def answer(
    query: dns.message.Message, services: ServiceIPs, zone: str = ZONE, reverse_zone: str = REVERSE_ZONE
) -> dns.message.Message:
    """The response to one query, from the services map alone (no I/O).

    - A at `<svc>.<ns>.svc.<zone>.` for a known Service (TTL 5); other types there
      (AAAA, ...) are NOERROR with no answer, so resolvers take the A and do not fail;
    - PTR at the reverse name of a ClusterIP;
    - NXDOMAIN for any other name of the two zones, with the zone's SOA for negative caching;
    - REFUSED outside them (no recursion, no forwarding: the lab has no upstream);
    - FORMERR for not exactly one question, NOTIMP for opcodes other than QUERY.
    """
    import dns.flags
    import dns.message
    import dns.name
    import dns.opcode
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset

    response = dns.message.make_response(query, recursion_available=False)
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    forward, reverse = dns.name.from_text(zone), dns.name.from_text(reverse_zone)
    if question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY) or question.rdtype in (
        dns.rdatatype.AXFR,
        dns.rdatatype.IXFR,
    ):
        response.set_rcode(dns.rcode.REFUSED)
        return response
    if question.name.is_subdomain(forward):
        origin = forward
        labels = _labels(question.name, forward)
        records = _forward(labels, services)
    elif question.name.is_subdomain(reverse):
        origin = reverse
        labels = _labels(question.name, reverse)
        records = _reverse(labels, services, reverse_zone, zone)
    else:
        response.set_rcode(dns.rcode.REFUSED)
        return response
    soa = dns.rrset.from_text(origin, TTL, "IN", "SOA", f"ns.dns.{zone}. hostmaster.{zone}. {SOA_TIMERS}")
    response.flags |= dns.flags.AA
    if not labels:
        records = {"SOA": soa[0].to_text()}
    if records is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(soa)
        return response
    for rdtype, text in records.items():
        if question.rdtype in (dns.rdatatype.from_text(rdtype), dns.rdatatype.ANY):
            response.answer.append(dns.rrset.from_text(question.name, TTL, "IN", rdtype, text))
    if not response.answer:
        response.authority.append(soa)  # NODATA: the name exists, not with this type
    return response


def respond(wire: bytes, services: ServiceIPs | None, max_size: int | None = None) -> bytes | None:
    """Bytes in, bytes out: the response to a query as received, or None to stay silent
    (not a DNS message: garbage, which gets no answer)."""
    import dns.exception
    import dns.message

    try:
        query = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError):
        return None
    return reply_to(query, services, max_size)


def reply_to(query: dns.message.Message, services: ServiceIPs | None, max_size: int | None = None) -> bytes | None:
    """The response's bytes, or None for a message that is itself a response (no loops).

    ``services`` None means not in sync with etcd yet: SERVFAIL. ``max_size`` (UDP) caps
    the client's EDNS payload size (512 without EDNS); a larger answer is truncated (TC)
    so that the client retries over TCP."""
    import dns.flags
    import dns.message
    import dns.rcode

    if query.flags & dns.flags.QR:
        return None
    if services is None:
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.SERVFAIL)
    else:
        response = answer(query, services)
    if max_size is None:
        return response.to_wire()
    limit = max(UDP_PAYLOAD, query.payload) if query.edns >= 0 else UDP_PAYLOAD
    return response.to_wire(max_size=min(limit, max_size), prefer_truncation=True)


# --- the services map, kept current from etcd ------------------------------------------


class ServiceTable:
    """The map answered from; swapped whole, so readers need no lock."""

    def __init__(self) -> None:
        self.current: dict[ServiceKey, str] | None = None  # None until the first list

    def replace(self, services: dict[ServiceKey, str]) -> str | None:
        """Install a new map; a log line if it differs from the current one."""
        before, self.current = self.current, services
        return describe_change(before, services) if before != services else None


def sync_services(store: Datastore, events: queue.SimpleQueue[str], table: ServiceTable,
                  resync: float = RESYNC_SECONDS) -> None:  # fmt: skip
    """Watch the Services prefix, list it, swap the map; again on every change, on the
    resync timer and after a lost watch (re-established first); returns on "stop"."""
    from testbed.datastore import keys
    from testbed.datastore.base import DatastoreError

    cancel: Callable[[], None] | None = None
    failing = False  # warn once per outage, not every retry
    try:
        while True:
            wait = resync
            try:
                if cancel is None:
                    cancel = store.watch_prefix(
                        keys.SERVICES, lambda _e: events.put("change"), on_error=lambda _e: events.put("lost")
                    )
                line = table.replace(services_from(store.list(keys.SERVICES), keys.SERVICES))
                if failing:
                    LOG.info("etcd answers again")
                failing = False
                if line:
                    LOG.info("%s", line)
            except DatastoreError as exc:
                LOG.log(logging.DEBUG if failing else logging.WARNING, "%s; answering from memory, retrying", exc)
                failing, wait = True, RETRY_SECONDS
            items: list[str] = []
            try:
                items.append(events.get(timeout=wait))
                while True:
                    items.append(events.get_nowait())
            except queue.Empty:
                pass
            if "stop" in items:
                return
            if "lost" in items and cancel is not None:
                cancel()
                cancel = None
    finally:
        if cancel is not None:
            cancel()


# --- the server: bytes between sockets and respond() -----------------------------------


def serve_udp(sock: socket.socket, table: ServiceTable) -> None:
    while True:
        try:
            wire, peer = sock.recvfrom(65535)
        except OSError:
            return  # closed at shutdown
        reply = respond(wire, table.current, max_size=65535)
        if reply is not None:
            try:
                sock.sendto(reply, peer)
            except OSError:
                pass


def serve_tcp_client(conn: socket.socket, table: ServiceTable) -> None:
    """Queries one after another on one connection (RFC 7766), until EOF or idle."""
    import dns.exception
    import dns.query

    with conn:
        while True:
            try:
                # dnspython's expirations are time.time() values
                query, _ = dns.query.receive_tcp(conn, time.time() + TCP_IDLE_SECONDS)
                reply = reply_to(query, table.current)
                if reply is None:
                    return
                dns.query.send_tcp(conn, reply, time.time() + TCP_IDLE_SECONDS)
            except (dns.exception.DNSException, OSError, EOFError, ValueError):
                return


def serve_tcp(sock: socket.socket, table: ServiceTable) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=serve_tcp_client, args=(conn, table), daemon=True).start()


def open_sockets(address: str, port: int) -> tuple[socket.socket, socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((address, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, udp.getsockname()[1]))  # port 0: the same port for both
        tcp.listen(64)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


def in_lab_netns(lab: str) -> bool:
    """True inside one of the lab's named namespaces (`<lab>.*`, its pods): the only
    place where listening on every address of port 53 is the lab's business."""
    from testbed.netns import namespaces

    return any(namespaces.is_current(name) for name in namespaces.names_with_prefix(f"{lab}."))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dns", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab", required=True, help="the lab's name (checked against its etcd)")
    parser.add_argument("--etcd-socket", required=True, metavar="PATH", help="the lab's etcd UNIX socket")
    parser.add_argument("--port", type=int, default=53, help="UDP and TCP port (default: 53; 0: any free one)")
    parser.add_argument("--address", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format=f"%(asctime)s kube-dns lab={args.lab} %(levelname)s %(message)s")  # fmt: skip
    if not ipaddress.ip_address(args.address).is_loopback and not in_lab_netns(args.lab):
        LOG.error("refusing to listen on %s outside the lab's namespaces (%s.*): run me in a pod",
                  args.address, args.lab)  # fmt: skip
        return 2
    from testbed.datastore.etcd import EtcdDatastore

    events: queue.SimpleQueue[str] = queue.SimpleQueue()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: events.put("stop"))
    try:
        udp, tcp = open_sockets(args.address, args.port)
    except OSError as exc:
        LOG.error("cannot listen on %s:%d: %s", args.address, args.port, exc.strerror or exc)
        return 1
    table = ServiceTable()
    with udp, tcp, EtcdDatastore.over_unix_socket(args.etcd_socket) as store:
        record = _lab_record(store)
        if record is not None and record.get("name") not in (None, args.lab):
            LOG.error("%s is the etcd of lab %s, not %s", args.etcd_socket, record.get("name"), args.lab)
            return 2
        for target, sock in ((serve_udp, udp), (serve_tcp, tcp)):
            threading.Thread(target=target, args=(sock, table), daemon=True).start()
        LOG.info("serving %s and %s on %s:%d udp+tcp, services from %s",
                 ZONE, REVERSE_ZONE, args.address, udp.getsockname()[1], store.endpoint)  # fmt: skip
        sync_services(store, events, table)
    LOG.info("stopped")
    return 0


def _lab_record(store: Datastore) -> dict[str, Any] | None:
    """The lab's own record, to refuse another lab's etcd; None when etcd does not answer
    yet (the sync loop retries)."""
    from testbed.datastore import keys
    from testbed.datastore.base import DatastoreError

    try:
        return store.get(keys.LAB)
    except DatastoreError:
        return None


if __name__ == "__main__":
    sys.exit(main())
