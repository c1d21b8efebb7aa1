"""The cluster DNS: answers computed from a services map (pure), and the server over loopback."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from agents.apps.dns import (
    ServiceTable,
    answer,
    cluster_ip,
    describe_change,
    open_sockets,
    respond,
    serve_tcp,
    serve_udp,
    services_from,
)

SERVICES = {
    ("policy-demo", "nginx"): "10.96.0.20",
    ("kube-system", "kube-dns"): "10.96.0.10",
    ("stars", "backend"): "10.96.1.7",
}


def ask(name: str, rdtype: str = "A", services=SERVICES) -> dns.message.Message:
    return answer(dns.message.make_query(name, rdtype), services)


def addresses(response: dns.message.Message) -> list[str]:
    return [rd.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset]


def test_a_record_of_a_service_with_ttl_5_authoritative() -> None:
    response = ask("nginx.policy-demo.svc.cluster.local.")
    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == ["10.96.0.20"]
    assert response.answer[0].ttl == 5
    assert response.answer[0].name.to_text() == "nginx.policy-demo.svc.cluster.local."
    assert response.flags & dns.flags.AA and response.flags & dns.flags.QR
    assert not response.flags & dns.flags.RA  # no recursion here


def test_each_service_answers_its_own_address() -> None:
    assert addresses(ask("backend.stars.svc.cluster.local.")) == ["10.96.1.7"]
    assert addresses(ask("kube-dns.kube-system.svc.cluster.local.")) == ["10.96.0.10"]
    # the same name in another namespace is another Service
    assert ask("nginx.stars.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN


def test_names_are_case_insensitive_and_the_question_is_echoed() -> None:
    response = ask("NGINX.Policy-Demo.SVC.Cluster.Local.")
    assert addresses(response) == ["10.96.0.20"]
    assert response.question[0].name.to_text() == "NGINX.Policy-Demo.SVC.Cluster.Local."


@pytest.mark.parametrize(
    "name",
    [
        "unknown.policy-demo.svc.cluster.local.",
        "nginx.policy-demo.cluster.local.",  # no "svc" label
        "a.nginx.policy-demo.svc.cluster.local.",
        "unknown-ns.svc.cluster.local.",
        "nginx.policy-demo.pod.cluster.local.",
    ],
)
def test_unknown_names_in_the_zone_are_nxdomain_with_the_soa(name: str) -> None:
    response = ask(name)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.answer == []
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]
    assert response.authority[0].name.to_text() == "cluster.local."
    assert response.flags & dns.flags.AA


def test_aaaa_of_a_known_name_is_noerror_without_answers() -> None:
    response = ask("nginx.policy-demo.svc.cluster.local.", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


def test_aaaa_of_an_unknown_name_is_still_nxdomain() -> None:
    assert ask("unknown.policy-demo.svc.cluster.local.", "AAAA").rcode() == dns.rcode.NXDOMAIN


def test_namespace_and_svc_levels_exist_without_records() -> None:
    for name in ("policy-demo.svc.cluster.local.", "svc.cluster.local."):
        response = ask(name)
        assert (response.rcode(), response.answer) == (dns.rcode.NOERROR, [])


def test_zone_apex_has_an_soa() -> None:
    response = ask("cluster.local.", "SOA")
    assert response.rcode() == dns.rcode.NOERROR
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.SOA]


@pytest.mark.parametrize("name", ["example.com.", "nginx.", "localhost.", "cluster.local.example.com.", "nginx.policy-demo."])
def test_names_outside_the_zone_are_refused_never_forwarded(name: str) -> None:
    response = ask(name)
    assert response.rcode() == dns.rcode.REFUSED
    assert response.answer == [] and not response.flags & dns.flags.AA


def test_ptr_of_a_cluster_ip() -> None:
    response = ask("10.0.96.10.in-addr.arpa.", "PTR")
    assert [rd.target.to_text() for rd in response.answer[0]] == ["kube-dns.kube-system.svc.cluster.local."]
    assert ask("99.0.96.10.in-addr.arpa.", "PTR").rcode() == dns.rcode.NXDOMAIN
    assert ask("1.1.168.192.in-addr.arpa.", "PTR").rcode() == dns.rcode.REFUSED


def test_any_returns_the_a_record() -> None:
    assert addresses(ask("nginx.policy-demo.svc.cluster.local.", "ANY")) == ["10.96.0.20"]


def test_a_service_that_goes_away_is_nxdomain() -> None:
    without = {k: v for k, v in SERVICES.items() if k != ("policy-demo", "nginx")}
    assert ask("nginx.policy-demo.svc.cluster.local.", services=without).rcode() == dns.rcode.NXDOMAIN


def test_other_opcodes_are_not_implemented_and_transfers_refused() -> None:
    import dns.opcode

    query = dns.message.make_query("cluster.local.", "SOA")
    query.set_opcode(dns.opcode.NOTIFY)
    assert answer(query, SERVICES).rcode() == dns.rcode.NOTIMP
    assert ask("cluster.local.", "AXFR").rcode() == dns.rcode.REFUSED


# --- bytes in, bytes out --------------------------------------------------------------------


def test_respond_round_trips_bytes_and_keeps_the_id() -> None:
    query = dns.message.make_query("nginx.policy-demo.svc.cluster.local.", "A")
    reply = respond(query.to_wire(), SERVICES)
    assert reply is not None
    response = dns.message.from_wire(reply)
    assert response.id == query.id and addresses(response) == ["10.96.0.20"]


def test_respond_is_silent_for_garbage_and_for_responses() -> None:
    assert respond(b"\x00\x01garbage", SERVICES) is None
    response = answer(dns.message.make_query("nginx.policy-demo.svc.cluster.local.", "A"), SERVICES)
    assert respond(response.to_wire(), SERVICES) is None  # never answer an answer


def test_respond_before_the_first_sync_is_servfail() -> None:
    reply = respond(dns.message.make_query("nginx.policy-demo.svc.cluster.local.", "A").to_wire(), None)
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.SERVFAIL


def test_respond_answers_edns_with_edns() -> None:
    query = dns.message.make_query("nginx.policy-demo.svc.cluster.local.", "A", use_edns=0, payload=1232)
    reply = respond(query.to_wire(), SERVICES, max_size=65535)
    assert reply is not None
    response = dns.message.from_wire(reply)
    assert response.edns == 0 and addresses(response) == ["10.96.0.20"]
    plain = respond(dns.message.make_query("nginx.policy-demo.svc.cluster.local.", "A").to_wire(), SERVICES, 65535)
    assert plain is not None and dns.message.from_wire(plain).edns == -1


# --- the stored Services -> the map ---------------------------------------------------------


def service(ns: str, name: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def test_services_from_stored_objects() -> None:
    prefix = "/registry/services/specs/"
    records = {
        prefix + "policy-demo/nginx": service("policy-demo", "nginx", clusterIP="10.96.0.20", clusterIPs=["10.96.0.20"]),
        prefix + "stars/headless": service("stars", "headless", clusterIP="None"),
        prefix + "stars/dual": service("stars", "dual", clusterIPs=["fd00::1", "10.96.3.3"], clusterIP="fd00::1"),
        prefix + "stars/from-key": {"spec": {"clusterIP": "10.96.4.4"}},
    }
    assert services_from(records, prefix) == {
        ("policy-demo", "nginx"): "10.96.0.20",
        ("stars", "dual"): "10.96.3.3",
        ("stars", "from-key"): "10.96.4.4",
    }


def test_cluster_ip_prefers_ipv4_and_skips_headless() -> None:
    assert cluster_ip({"clusterIP": "10.96.0.1"}) == "10.96.0.1"
    assert cluster_ip({"clusterIP": "None"}) is None
    assert cluster_ip({}) is None
    assert cluster_ip({"clusterIPs": ["fd00::1"], "clusterIP": "fd00::1"}) is None


def test_describe_change_names_what_changed() -> None:
    assert describe_change(None, {}) == "0 services"
    before = {("a", "x"): "10.96.0.1", ("a", "y"): "10.96.0.2"}
    after = {("a", "x"): "10.96.0.9", ("b", "z"): "10.96.0.3"}
    assert describe_change(before, after) == "2 services: +b/z -a/y ~a/x"


def test_service_table_reports_only_changes() -> None:
    table = ServiceTable()
    assert table.current is None
    assert table.replace({("a", "x"): "10.96.0.1"}) == "1 services: +a/x"
    assert table.replace({("a", "x"): "10.96.0.1"}) is None
    assert table.current == {("a", "x"): "10.96.0.1"}


# --- the server over loopback (no root) -----------------------------------------------------


def test_server_answers_over_udp_and_tcp_from_the_current_table() -> None:
    table = ServiceTable()
    udp, tcp = open_sockets("127.0.0.1", 0)
    port = udp.getsockname()[1]
    with udp, tcp:
        for target, sock in ((serve_udp, udp), (serve_tcp, tcp)):
            threading.Thread(target=target, args=(sock, table), daemon=True).start()
        query = dns.message.make_query("nginx.policy-demo.svc.cluster.local.", "A")
        assert dns.query.udp(query, "127.0.0.1", port=port, timeout=2).rcode() == dns.rcode.SERVFAIL
        table.replace(dict(SERVICES))
        assert addresses(dns.query.udp(query, "127.0.0.1", port=port, timeout=2)) == ["10.96.0.20"]
        assert addresses(dns.query.tcp(query, "127.0.0.1", port=port, timeout=2)) == ["10.96.0.20"]
        # several queries on one TCP connection (RFC 7766)
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            for name, want in (("nginx.policy-demo", "10.96.0.20"), ("backend.stars", "10.96.1.7")):
                dns.query.send_tcp(conn, dns.message.make_query(f"{name}.svc.cluster.local.", "A"))
                response, _ = dns.query.receive_tcp(conn)
                assert addresses(response) == [want]
        table.replace({})
        assert dns.query.udp(query, "127.0.0.1", port=port, timeout=2).rcode() == dns.rcode.NXDOMAIN


# --- the services map kept current from a store ----------------------------------------------


def wait_for(check, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sync_follows_the_store_survives_a_lost_watch_and_stops() -> None:
    import queue

    from agents.apps.dns import sync_services
    from testbed.datastore import MemoryDatastore, keys

    store = MemoryDatastore()
    store.put(keys.service("policy-demo", "nginx"), service("policy-demo", "nginx", clusterIP="10.96.0.20"))
    events: queue.SimpleQueue[str] = queue.SimpleQueue()
    table = ServiceTable()
    worker = threading.Thread(target=sync_services, args=(store, events, table), kwargs={"resync": 60}, daemon=True)
    worker.start()
    wait_for(lambda: table.current == {("policy-demo", "nginx"): "10.96.0.20"})
    store.put(keys.service("stars", "backend"), service("stars", "backend", clusterIP="10.96.1.7"))
    wait_for(lambda: table.current is not None and ("stars", "backend") in table.current)
    events.put("lost")  # as the watch's on_error does: the watch is set up again
    store.delete(keys.service("policy-demo", "nginx"))
    wait_for(lambda: table.current == {("stars", "backend"): "10.96.1.7"})
    events.put("stop")
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert store._watchers == []  # the watch was cancelled on the way out
