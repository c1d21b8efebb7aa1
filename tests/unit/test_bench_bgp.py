"""scripts/bench_bgp.py (and its place in scripts/bench.py), the pure parts: percentiles,
session counting, RSS parsing, netlink route dumps, summaries, tables. No root, no labs."""

from __future__ import annotations

import io
import json
import socket
import struct

import pytest
from rich.console import Console

from tests.unit.test_bench import BASE, MACHINE, fake_results, load_bench

bench = load_bench()
bgp = bench.bench_bgp

# `testbed bgp status -o json` of a 3-host full mesh where host3 has not heard from host1 yet.
STATUS = {
    "hosts": [
        {"host": "host1", "ip": "172.18.203.11", "running": True, "updated": 1.0, "peers": [
            {"address": "172.18.203.12", "info": "Established", "since": "12:00:01", "state": "up",
             "type": "node-to-node mesh"},
            {"address": "172.18.203.13", "info": "Established", "since": "12:00:01", "state": "up",
             "type": "node-to-node mesh"}]},
        {"host": "host2", "ip": "172.18.203.12", "running": True, "updated": 1.0, "peers": [
            {"address": "172.18.203.11", "info": "Established", "since": "12:00:01", "state": "up",
             "type": "node-to-node mesh"},
            {"address": "172.18.203.13", "info": "Established", "since": "12:00:01", "state": "up",
             "type": "node-to-node mesh"}]},
        {"host": "host3", "ip": "172.18.203.13", "running": True, "updated": 1.0, "peers": [
            {"address": "172.18.203.11", "info": "Active Socket: Connection refused", "since": "12:00:00",
             "state": "start", "type": "node-to-node mesh"},
            {"address": "172.18.203.12", "info": "Established", "since": "12:00:01", "state": "up",
             "type": "node-to-node mesh"}]},
    ]
}  # fmt: skip


def rr_status(hosts: int, running: bool = True) -> dict:
    return {"hosts": [
        {"host": f"host{i}", "ip": f"172.18.203.{10 + i}", "running": running,
         "peers": [{"address": "172.18.203.254", "info": "Established", "state": "up", "type": "global"}]}
        for i in range(1, hosts + 1)]}  # fmt: skip


# -- percentiles -----------------------------------------------------------------------------


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [50.0, 10.0, 40.0, 20.0, 30.0]  # unsorted on purpose
    assert bgp.percentile(values, 50) == 30.0
    assert bgp.percentile(values, 0) == 10.0
    assert bgp.percentile(values, 100) == 50.0
    assert bgp.percentile(values, 90) == pytest.approx(46.0)  # rank 3.6: 40 + 0.6 * 10
    assert bgp.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5  # the median of an even count


def test_percentile_of_one_value_and_of_none() -> None:
    assert bgp.percentile([7.0], 90) == 7.0
    assert bgp.percentile([], 50) is None
    with pytest.raises(ValueError):
        bgp.percentile([1.0], 101)


def test_distribution_leaves_misses_out_of_the_percentiles_and_counts_them() -> None:
    d = bgp.distribution([100.0, None, 300.0, 200.0])
    assert d == {"n": 4, "missed": 1, "p50_ms": 200.0, "p90_ms": pytest.approx(280.0), "max_ms": 300.0}
    assert bgp.distribution([None]) == {"n": 1, "missed": 1, "p50_ms": None, "p90_ms": None, "max_ms": None}


# -- sessions ----------------------------------------------------------------------------------


def test_sessions_count_only_established_peers_per_host() -> None:
    assert bgp.established_sessions(STATUS) == {"host1": 2, "host2": 2, "host3": 1}
    s = bgp.session_summary(STATUS, "mesh")
    assert (s["expected_per_host"], s["min"], s["max"], s["total"]) == (2, 1, 2, 5)
    assert s["as_expected"] is False and s["not_running"] == []


def test_a_mesh_session_is_counted_once_as_unique_even_when_both_ends_see_it() -> None:
    # host1-host2 (both ends), host1-host3 (host1's end only), host2-host3 (both ends)
    assert bgp.unique_sessions(STATUS) == 3


def test_reflector_sessions_expect_one_per_host() -> None:
    s = bgp.session_summary(rr_status(4), "rr")
    assert (s["per_host"], s["expected_per_host"], s["total"], s["unique"]) == (
        {"host1": 1, "host2": 1, "host3": 1, "host4": 1}, 1, 4, 4)
    assert s["as_expected"] is True


def test_a_speaker_that_is_not_running_is_not_as_expected() -> None:
    s = bgp.session_summary(rr_status(2, running=False), "rr")
    assert s["as_expected"] is False and s["not_running"] == ["host1", "host2"]


def test_an_empty_status_has_no_sessions() -> None:
    s = bgp.session_summary({"hosts": []}, "mesh")
    assert (s["min"], s["max"], s["total"], s["as_expected"]) == (None, None, 0, False)


def test_expected_sessions() -> None:
    assert [bgp.expected_sessions("mesh", n) for n in (4, 16, 50)] == [3, 15, 49]
    assert [bgp.expected_sessions("rr", n) for n in (4, 16, 50)] == [1, 1, 1]


# -- memory ----------------------------------------------------------------------------------

PROC_STATUS = """Name:\texabgp
Umask:\t0022
State:\tS (sleeping)
Pid:\t6971
VmPeak:\t  120000 kB
VmHWM:\t   30000 kB
VmRSS:\t   29460 kB
RssAnon:\t   12000 kB
Threads:\t1
"""


def test_vmrss_is_read_from_proc_status_in_kb() -> None:
    assert bgp.parse_vmrss_kb(PROC_STATUS) == 29460


def test_a_kernel_thread_or_zombie_has_no_vmrss() -> None:
    assert bgp.parse_vmrss_kb("Name:\tkthreadd\nState:\tS (sleeping)\n") is None
    assert bgp.parse_vmrss_kb("") is None


def test_rss_summary_per_host() -> None:
    m = bgp.rss_summary({"host1": 72000, "host2": 70000, "host3": 74000})
    assert (m["median_kb"], m["min_kb"], m["max_kb"], m["total_kb"]) == (72000, 70000, 74000, 216000)
    assert bgp.rss_summary({})["median_kb"] is None


ARP_CACHE = """entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls
00000401 00001c9e 000013a1 00000002   00013c8d 00007fbd 00000000   00000000         00000000         00000000         0000ecbe       00000000            0000ecbb
00000401 00001a0f 00001f0b 00000006   000114ad 00007090 00000000   00000000         00000000         00000118         00010149       00000000            00010148
"""


def test_arp_cache_gives_the_global_entry_count_and_overflows_summed_over_cpus() -> None:
    assert bgp.parse_arp_cache(ARP_CACHE) == {"entries": 1025, "table_fulls": 0xECBB + 0x10148}
    assert bgp.parse_arp_cache("") == {"entries": 0, "table_fulls": 0}


# -- small helpers ---------------------------------------------------------------------------


def test_error_line_picks_testbed_errors_else_the_last_line() -> None:
    stderr = "fabric and etcd: 1/1 done\nhosts: 50/50 done\ntestbed: error: BGP did not converge in 45 s (...)\n"
    assert bgp.error_line(stderr) == "testbed: error: BGP did not converge in 45 s (...)"
    assert bgp.error_line("Traceback ...\nKeyError: 'x'\n\n") == "KeyError: 'x'"
    assert bgp.error_line("testbed: error: a\ntestbed: error: b\n") == "testbed: error: a | testbed: error: b"
    assert bgp.error_line("") == "(no output)"


def test_pinned_addresses_skip_used_ones_and_take_hosts_in_turn() -> None:
    plan = bgp.pinned_addresses("10.65.0.0/26", ["10.65.0.0", "10.65.0.2"], ["host2", "host3"], 3)
    assert plan == [("10.65.0.1", "host2"), ("10.65.0.3", "host3"), ("10.65.0.4", "host2")]
    with pytest.raises(ValueError):
        bgp.pinned_addresses("10.65.0.0/30", [], ["host2"], 5)


def test_lab_names_all_start_with_bench() -> None:
    for name in ("route-latency", "bgp-scale", "bgp-quick"):
        labs = bench.case_labs(name)
        assert labs and all(lab.startswith("bench-") and len(lab) <= 32 for lab in labs)
    assert len(bench.case_labs("bgp-scale")) == 6
    assert bench.case_labs("two-hosts") == ["bench-two-hosts"]


# -- netlink route dumps ---------------------------------------------------------------------


def rta(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def route_msg(dst: str | None, dst_len: int, proto: int, gateway: str | None = None, table: int = 254,
              family: int = socket.AF_INET, rtype: int = 1) -> bytes:  # fmt: skip
    attrs = rta(15, struct.pack("=I", table))
    if dst is not None:
        attrs += rta(1, socket.inet_aton(dst))
    if gateway is not None:
        attrs += rta(5, socket.inet_aton(gateway))
    attrs += rta(4, struct.pack("=I", 2))  # RTA_OIF
    body = struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, min(table, 255), proto, 0, rtype, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), 24, 2, 7, 0) + body


DONE = struct.pack("=IHHII", 20, 3, 2, 7, 0) + struct.pack("=i", 0)


def test_route_dump_keeps_proto_bird_routes_with_a_gateway_in_the_main_table() -> None:
    data = b"".join([
        route_msg(None, 0, 3, "172.18.203.1"),  # default via the fabric (proto boot)
        route_msg("10.65.0.0", 26, 12, rtype=6),  # own block: blackhole proto bird, no gateway
        route_msg("10.65.0.1", 32, 12, "172.18.203.12"),  # a borrowed /32 learned over BGP
        route_msg("10.65.0.64", 26, 12, "172.18.203.12"),
        route_msg("10.65.0.128", 26, 12, "172.18.203.13", table=255),  # local table: not ours
        route_msg("172.18.203.0", 24, 2),  # the fabric (proto kernel)
    ])  # fmt: skip
    routes, done = bgp.parse_route_dump(data)
    assert routes == {"10.65.0.1/32": "172.18.203.12", "10.65.0.64/26": "172.18.203.12"}
    assert done is False
    assert bgp.parse_route_dump(data + DONE) == (routes, True)


def test_route_dump_split_over_two_reads_ends_at_done() -> None:
    assert bgp.parse_route_dump(route_msg("10.65.0.2", 32, 12, "172.18.203.13")) == (
        {"10.65.0.2/32": "172.18.203.13"}, False)
    assert bgp.parse_route_dump(DONE) == ({}, True)


def test_route_dump_error_raises() -> None:
    error = struct.pack("=IHHII", 36, 2, 0, 7, 0) + struct.pack("=i", -1) + b"\0" * 16
    with pytest.raises(OSError):
        bgp.parse_route_dump(error)


def test_route_dump_request_is_an_ipv4_dump() -> None:
    req = bgp.route_dump_request(9)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags & 0x301, seq) == (len(req), 26, 0x301, 9)
    assert req[16] == socket.AF_INET


# -- summaries, report, rendering ------------------------------------------------------------


def latency_run(route: list, withdraw: list | None = None) -> dict:
    return {"route_ms": route, "withdraw_ms": withdraw or [40.0] * len(route), "add_pod_ms": [60.0] * len(route),
            "delete_pod_ms": [25.0] * len(route), "polls_per_s": 150.0, "up_wall_s": 2.5}  # fmt: skip


def scale_run(hosts: int, mode: str, up: float = 3.0) -> dict:
    status = rr_status(hosts) if mode == "rr" else {"hosts": [
        {"host": f"host{i}", "ip": f"172.18.203.{10 + i}", "running": True,
         "peers": [{"address": f"172.18.203.{10 + j}", "info": "Established"} for j in range(1, hosts + 1) if j != i]}
        for i in range(1, hosts + 1)]}  # fmt: skip
    rss = {f"host{i}": 72000 for i in range(1, hosts + 1)}
    return {"ok": True, "up_wall_s": up, "exit_code": 0, "error": None, "up_internal_s": up - 0.7, "down_s": 0.8,
            "sessions": bgp.session_summary(status, mode), "status_wait_s": 0.1, "speaker_rss": bgp.rss_summary(rss),
            "speaker_processes": {h: 2 for h in rss}, "reflector_rss_kb": 4800 if mode == "rr" else None,
            "arp": {"entries": hosts * 3, "table_fulls": 0, "gc_thresh3": 1024}}  # fmt: skip


FAILED_UP = {"ok": False, "up_wall_s": 47.0, "exit_code": 1, "down_s": None,
             "error": "testbed: error: BGP did not converge in 45 s (host1 lacks 10.65.3.0/26)",
             "arp": {"entries": 12, "table_fulls": 6000, "gc_thresh3": 1024}}  # fmt: skip


def bgp_results() -> dict:
    return {
        "route-latency": {"latency": [
            {"mode": "mesh", "hosts": 4, "runs": [latency_run([100.0, 120.0, 110.0]), latency_run([90.0])]},
            {"mode": "rr", "hosts": 4, "runs": [latency_run([350.0, 400.0, 320.0])]},
        ]},
        "bgp-scale": {"scale": [
            {"mode": "mesh", "hosts": 4, "runs": [scale_run(4, "mesh")]},
            {"mode": "rr", "hosts": 4, "runs": [scale_run(4, "rr", up=3.4)]},
            {"mode": "mesh", "hosts": 50, "runs": [FAILED_UP]},
            {"mode": "rr", "hosts": 50, "runs": [scale_run(50, "rr", up=30.0), scale_run(50, "rr", up=34.0)]},
        ]},
    }  # fmt: skip


def test_latency_rows_pool_the_samples_of_every_lab() -> None:
    section = bgp.bgp_section(bgp_results(), 0.002)
    mesh, rr = section["route_latency"]
    assert (mesh["pods"], mesh["labs"], mesh["route"]["p50_ms"], mesh["route"]["max_ms"]) == (4, 2, 105.0, 120.0)
    assert (mesh["withdraw"]["p50_ms"], mesh["add_pod_p50_ms"], mesh["delete_pod_p50_ms"]) == (40.0, 60.0, 25.0)
    assert rr["route"]["p50_ms"] == 350.0


def test_scale_rows_give_sessions_memory_and_the_baseline_ratio() -> None:
    section = bgp.bgp_section(bgp_results(), 0.002)
    mesh4, rr4, mesh50, rr50 = section["scale"]
    assert (mesh4["namespaces"], rr4["namespaces"]) == (5, 6)  # fabric + hosts (+ reflector)
    assert mesh4["baseline_ratio"] == pytest.approx(3.0 / (5 * 0.002))
    assert (mesh4["sessions"]["min"], mesh4["sessions"]["total"], mesh4["sessions"]["unique"]) == (3, 12, 6)
    assert (rr4["sessions"]["max"], rr4["reflector_rss_kb"], rr4["speaker_rss"]["median_kb"]) == (1, 4800, 72000)
    assert rr50["up_wall_s"] == 32.0 and rr50["runs"] == 2
    assert section["up_50_hosts_reflector_s"] == 32.0
    assert section["up_50_hosts_reflector_internal_s"] == pytest.approx(31.3)


def test_a_failed_up_is_a_figure_not_a_crash() -> None:
    mesh50 = bgp.bgp_section(bgp_results(), 0.002)["scale"][2]
    assert (mesh50["ok"], mesh50["exit_code"], mesh50["up_wall_s"], mesh50["up_failed_after_s"]) == (False, 1, None, 47.0)
    assert mesh50["error"].startswith("testbed: error: BGP did not converge")
    assert mesh50["sessions"] is None and mesh50["baseline_ratio"] is None and mesh50["down_s"] is None
    assert (mesh50["neighbour_table_fulls"], mesh50["neighbour_gc_thresh3"], mesh50["neighbour_entries"]) == (
        6000, 1024, None)  # entries after a failed up say nothing: it has torn its lab down


def test_latency_targets_pass_fail_and_a_miss_fails() -> None:
    results = bgp_results()
    results["route-latency"]["latency"].append({"mode": "mesh", "hosts": 4, "runs": [latency_run([100.0, None, 90.0])]})
    report = bench.build_report(MACHINE, BASE, results)
    assert [(t["status"], t["figure"], t["unit"]) for t in report["targets"]] == [
        ("pass", 105.0, "ms"), ("fail", 350.0, "ms"), ("fail", 95.0, "ms")]
    assert report["targets"][0]["target"] == "route latency p50 (route-latency: full mesh, 4 hosts)"


def test_the_report_gets_a_bgp_part_only_when_a_bgp_case_ran() -> None:
    assert "bgp" not in bench.build_report(MACHINE, BASE, fake_results())
    both = bench.build_report(MACHINE, BASE, {**fake_results(), **bgp_results()})
    assert list(both) == ["machine", "baseline", "cases", "linearity", "targets", "bgp"]
    assert [c["case"] for c in both["cases"]] == list(fake_results())  # the BGP cases are not up/down rows
    assert len(both["targets"]) == 3 + 2  # the up/down targets, then one per latency row
    only = bench.build_report(MACHINE, BASE, bgp_results())
    assert only["cases"] == [] and [t["unit"] for t in only["targets"]] == ["ms", "ms"]
    data = json.loads(json.dumps(bench.rounded(only)))
    assert data["bgp"]["scale"][2]["exit_code"] == 1 and data["bgp"]["up_50_hosts_reflector_s"] == 32.0


def render(report: dict) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    for table in bench.render(report):
        console.print(table)
    for line in bench.summary_lines(report):
        console.print(line)
    return console.file.getvalue()


def test_bgp_tables_and_lines_show_the_figures() -> None:
    text = render(bench.build_report(MACHINE, BASE, bgp_results()))
    for expected in ("BGP route latency", "BGP scale", "full mesh", "reflector", "105", "350",
                     "3 (3)", "12 (6)", "1 (1)", "70.3 (70.3-70.3)", "4.7", "FAILED", "300.0x",
                     "bgp-scale full mesh, 50 hosts: up failed (exit 1) after 47.0 s: testbed: error: BGP did not",
                     "up time for 50 hosts with the reflector: 32.00 s (internal 31.30 s)",
                     "12 (0)", "- (6000)", "neighbour (ARP) table, shared by every namespace, was full 6000 times "
                     "during it (gc_thresh3 = 1024)",
                     "PASS    route latency p50 (route-latency: full mesh, 4 hosts): 105 ms (target <= 300 ms)",
                     "FAIL    route latency p50 (route-latency: reflector, 4 hosts): 350 ms (target <= 300 ms)"):  # fmt: skip
        assert expected in text, expected
    assert "testbed up/down" not in text and "linearity" not in text  # no up/down case ran


def test_up_down_output_is_unchanged_by_the_bgp_cases() -> None:
    text = render(bench.build_report(MACHINE, BASE, fake_results()))
    assert "testbed up/down" in text and "BGP" not in text and "ms (target" not in text


def test_quick_runs_the_bgp_smoke_case_and_the_default_does_not() -> None:
    assert bench.parse_args(["--quick"]).cases == ["two-hosts", "pods-10", "bgp-quick", "policy-quick"]
    default = bench.parse_args([]).cases
    assert "bgp-quick" not in default and {"route-latency", "bgp-scale"} <= set(default)
    assert bench.parse_args(["--cases", "route-latency,bgp-scale"]).cases == ["route-latency", "bgp-scale"]
