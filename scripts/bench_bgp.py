"""The BGP cases of scripts/bench.py: route latency, and sessions and memory at scale.

- route-latency: a 4-host lab (full mesh, then with the reflector); pods are created one
  after another in this process (``testbed.api.add_pod``), each pinned to an address from
  host1's block but placed on another host, so that host must announce a new /32; the
  figure is the time from just before ``add_pod`` to the moment the /32 is a ``proto bird``
  route (via the pod's host) on every other host. Deleting them times the withdraw.
  One thread of this process polls every host's routing table over netlink sockets
  opened inside the host namespaces (a dump every ~5 ms), so no process is forked per poll.
- bgp-scale: 4, 16 and 50 hosts without pods, full mesh and reflector: `testbed up` time,
  Established sessions per host (``testbed bgp status -o json``), VmRSS of each host's
  speaker (ExaBGP + glue, the processes living in the host netns) and of the reflector's
  BIRD, and the kernel's neighbour (ARP) table: one for the whole machine, so 50 hosts in
  full mesh (~50 x 50 entries) overflow its default gc_thresh3 of 1024 and that `up` fails.
  An `up` that fails is a figure too: its exit code and error line.
- bgp-quick: a small lab for smoke runs (--quick): 3 hosts with the reflector, a few pods'
  route latency, sessions and memory.

The live parts use bench.py's helpers (``h``: the bench module, passed in by bench.py).
The pure parts (percentiles, session counting, RSS parsing, netlink route dumps, summaries,
tables) are tested in tests/unit/test_bench_bgp.py.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from rich.table import Table

LATENCY_LIMIT_MS = 300.0  # p50 target from the issue
LATENCY_PODS = 20
LATENCY_HOSTS = 4
ROUTE_TIMEOUT_S = 5.0  # a route not seen on every host by then is counted as missed
POLL_INTERVAL_S = 0.005
SCALE_HOSTS = (4, 16, 50)
STATUS_WAIT_S = 10.0  # after `up`, how long sessions may take to show Established
QUICK_HOSTS, QUICK_PODS = 3, 5
POD_NAMESPACE = "bench"
MODES = {"mesh": "full mesh", "rr": "reflector"}
ESTABLISHED = "Established"
PROTO_BIRD = 12

# -- pure: statistics ------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default); None if empty."""
    data = sorted(values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def distribution(values: list[float | None]) -> dict[str, Any]:
    """p50/p90/max of the values that arrived; ``missed`` counts the Nones (timeouts)."""
    got = [v for v in values if v is not None]
    return {
        "n": len(values), "missed": len(values) - len(got),
        "p50_ms": percentile(got, 50), "p90_ms": percentile(got, 90), "max_ms": max(got) if got else None,
    }  # fmt: skip


# -- pure: sessions, memory ------------------------------------------------------------------


def expected_sessions(mode: str, hosts: int) -> int:
    """Sessions each host should have: every other host in a full mesh, the reflector alone."""
    return 1 if mode == "rr" else hosts - 1


def established_sessions(status: Mapping[str, Any]) -> dict[str, int]:
    """Established peers per host, from `testbed bgp status -o json`."""
    return {
        str(h["host"]): sum(1 for p in h.get("peers", []) if p.get("info") == ESTABLISHED)
        for h in status.get("hosts", [])
    }


def unique_sessions(status: Mapping[str, Any]) -> int:
    """Distinct BGP sessions seen Established from at least one end (a mesh session has two)."""
    pairs = {
        frozenset((str(h["ip"]), str(p["address"])))
        for h in status.get("hosts", [])
        for p in h.get("peers", [])
        if p.get("info") == ESTABLISHED
    }
    return len(pairs)


def session_summary(status: Mapping[str, Any], mode: str) -> dict[str, Any]:
    per_host = established_sessions(status)
    counts = list(per_host.values())
    expected = expected_sessions(mode, len(per_host))
    not_running = [str(h["host"]) for h in status.get("hosts", []) if not h.get("running", False)]
    return {
        "per_host": per_host, "expected_per_host": expected,
        "min": min(counts) if counts else None, "max": max(counts) if counts else None,
        "total": sum(counts), "unique": unique_sessions(status),
        "as_expected": bool(counts) and all(c == expected for c in counts) and not not_running,
        "not_running": not_running,
    }  # fmt: skip


def parse_vmrss_kb(status_text: str) -> int | None:
    """VmRSS (kB) from a /proc/<pid>/status text; None when absent (kernel thread, zombie)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                factor = {"kB": 1, "mB": 1024, "gB": 1024 * 1024}.get(fields[2] if len(fields) > 2 else "kB", 1)
                return int(fields[1]) * factor
            return None
    return None


def rss_summary(per_host_kb: Mapping[str, int]) -> dict[str, Any]:
    values = list(per_host_kb.values())
    return {
        "per_host_kb": dict(per_host_kb),
        "median_kb": statistics.median(values) if values else None,
        "min_kb": min(values) if values else None, "max_kb": max(values) if values else None,
        "total_kb": sum(values),
    }  # fmt: skip


def parse_arp_cache(text: str) -> dict[str, int]:
    """/proc/net/stat/arp_cache (one hex line per CPU): the IPv4 neighbour entries (one count
    for the whole kernel: every namespace shares the table and its gc_thresh3 limit) and how
    often the table was full (summed over CPUs)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return {"entries": 0, "table_fulls": 0}
    header, rows = lines[0], [[int(v, 16) for v in row] for row in lines[1:]]
    column = {name: i for i, name in enumerate(header)}
    return {
        "entries": rows[0][column["entries"]],
        "table_fulls": sum(row[column["table_fulls"]] for row in rows) if "table_fulls" in column else 0,
    }


def error_line(stderr: str) -> str:
    """The error `testbed` printed (its "testbed: error:" lines, joined), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("testbed: error:")]
    if errors:
        return " | ".join(errors)
    return lines[-1] if lines else "(no output)"


def pinned_addresses(block: str, used: Iterable[str], hosts: list[str], count: int) -> list[tuple[str, str]]:
    """``count`` free addresses of ``block`` as (address, host), the hosts taken in turn."""
    taken = set(used)
    free = [str(a) for a in ipaddress.IPv4Network(block) if str(a) not in taken]
    if len(free) < count or not hosts:
        raise ValueError(f"{block} has {len(free)} free addresses for {count} pods on {len(hosts)} hosts")
    return [(free[i], hosts[i % len(hosts)]) for i in range(count)]


# -- pure: netlink route dumps ---------------------------------------------------------------

NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTATTR = struct.Struct("=HH")  # length, type
NLMSG_ERROR, NLMSG_DONE, RTM_NEWROUTE, RTM_GETROUTE = 2, 3, 24, 26
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
MAIN_TABLE = 254


def _align(n: int) -> int:
    return (n + 3) & ~3


def route_dump_request(seq: int) -> bytes:
    """RTM_GETROUTE dump of the IPv4 routes (what `ip route show` sends)."""
    body = RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
    return NLMSG.pack(NLMSG.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_route_dump(data: bytes, proto: int = PROTO_BIRD) -> tuple[dict[str, str], bool]:
    """Routes of ``proto`` with a gateway in the main table, as {"a.b.c.d/n": gateway}, from
    one recv of a dump; and whether the dump ended in it (NLMSG_DONE). Raises OSError on an
    NLMSG_ERROR with an error code."""
    routes: dict[str, str] = {}
    offset, done = 0, False
    while offset + NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG.unpack_from(data, offset)
        if length < NLMSG.size or offset + length > len(data):
            break
        body = offset + NLMSG.size
        if kind == NLMSG_DONE:
            done = True
        elif kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", data, body)[0]
            if code:
                raise OSError(-code, f"netlink route dump: {os.strerror(-code)}")
            done = True
        elif kind == RTM_NEWROUTE:
            family, dst_len, _src, _tos, table, rproto, _scope, _type, _flags = RTMSG.unpack_from(data, body)
            attrs = _attributes(data, body + RTMSG.size, offset + length)
            table = int.from_bytes(attrs[RTA_TABLE][:4], "little") if RTA_TABLE in attrs else table
            if family == socket.AF_INET and rproto == proto and table == MAIN_TABLE and RTA_GATEWAY in attrs:
                dst = socket.inet_ntoa(attrs[RTA_DST][:4]) if RTA_DST in attrs else "0.0.0.0"
                routes[f"{dst}/{dst_len}"] = socket.inet_ntoa(attrs[RTA_GATEWAY][:4])
        offset += _align(length)
    return routes, done


def _attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    attrs, offset = {}, start
    while offset + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            break
        attrs[kind] = data[offset + RTATTR.size : offset + length]
        offset += _align(length)
    return attrs


# -- pure: summaries, tables, targets --------------------------------------------------------


def latency_row(case: str, mode: str, hosts: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row from the runs (labs) of one mode: their samples pooled."""
    route = [s for r in runs for s in r["route_ms"]]
    withdraw = [s for r in runs for s in r["withdraw_ms"]]
    return {
        "case": case, "mode": mode, "hosts": hosts, "labs": len(runs), "pods": len(route),
        "route": distribution(route), "withdraw": distribution(withdraw),
        "add_pod_p50_ms": percentile([s for r in runs for s in r["add_pod_ms"]], 50),
        "delete_pod_p50_ms": percentile([s for r in runs for s in r["delete_pod_ms"]], 50),
        "polls_per_s": statistics.median(r["polls_per_s"] for r in runs) if runs else None,
        "samples": runs,
    }  # fmt: skip


def scale_row(case: str, mode: str, hosts: int, runs: list[dict[str, Any]], netns_add_s: float) -> dict[str, Any]:
    """One configuration (mode, hosts): medians over the `up`s that worked, the failures as figures;
    sessions and memory from the last `up` that worked."""
    ok = [r for r in runs if r["ok"]]
    failed = [r for r in runs if not r["ok"]]
    namespaces = 1 + hosts + (1 if mode == "rr" else 0)
    up = statistics.median(r["up_wall_s"] for r in ok) if ok else None
    last = ok[-1] if ok else {}
    return {
        "case": case, "mode": mode, "hosts": hosts, "namespaces": namespaces, "runs": len(runs),
        "ok": bool(ok) and not failed, "failures": len(failed),
        "exit_code": failed[-1]["exit_code"] if failed else 0, "error": failed[-1]["error"] if failed else None,
        "up_wall_s": up, "up_failed_after_s": failed[-1]["up_wall_s"] if failed else None,
        "up_internal_s": statistics.median(r["up_internal_s"] for r in ok) if ok else None,
        "down_s": statistics.median(downs) if (downs := [r["down_s"] for r in ok if r["down_s"] is not None]) else None,
        "baseline_ratio": up / (namespaces * netns_add_s) if up is not None and netns_add_s > 0 else None,
        "sessions": last.get("sessions"), "status_wait_s": last.get("status_wait_s"),
        "speaker_rss": last.get("speaker_rss"), "speaker_processes": last.get("speaker_processes"),
        "reflector_rss_kb": last.get("reflector_rss_kb"),
        "neighbour_entries": last.get("arp", {}).get("entries"),
        "neighbour_table_fulls": runs[-1].get("arp", {}).get("table_fulls") if runs else None,
        "neighbour_gc_thresh3": runs[-1].get("arp", {}).get("gc_thresh3") if runs else None,
        "samples": runs,
    }  # fmt: skip


def bgp_section(results: Mapping[str, Mapping[str, Any]], netns_add_s: float) -> dict[str, Any]:
    """The report's "bgp" part from the BGP cases' raw results (see run_route_latency/run_scale)."""
    latency, scale = [], []
    for name, result in results.items():
        for mode_runs in result.get("latency", []):
            latency.append(latency_row(name, mode_runs["mode"], mode_runs["hosts"], mode_runs["runs"]))
        for config in result.get("scale", []):
            scale.append(scale_row(name, config["mode"], config["hosts"], config["runs"], netns_add_s))
    rr50 = next((s for s in scale if s["mode"] == "rr" and s["hosts"] == 50), None)
    return {
        "route_latency": latency,
        "scale": scale,
        "up_50_hosts_reflector_s": rr50["up_wall_s"] if rr50 else None,
        "up_50_hosts_reflector_internal_s": rr50["up_internal_s"] if rr50 else None,
    }


def mode_label(row: Mapping[str, Any]) -> str:
    return f"{MODES.get(row['mode'], row['mode'])}, {row['hosts']} hosts"


def bgp_targets(section: Mapping[str, Any], target: Any) -> list[dict[str, Any]]:
    """p50 route latency per row; a row with a missed route fails whatever its p50."""
    found = []
    for row in section["route_latency"]:
        t = target(f"route latency p50 ({row['case']}: {mode_label(row)})", row["route"]["p50_ms"], LATENCY_LIMIT_MS, "ms")
        if row["route"]["missed"] and t["status"] == "pass":
            t["status"] = "fail"
        found.append(t)
    return found


def _f(value: float | None, spec: str = ".0f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _mb(kb: float | None, spec: str = ".1f") -> str:
    return "-" if kb is None else f"{kb / 1024:{spec}}"


def render_latency_table(section: Mapping[str, Any]) -> Table:
    table = Table(title="BGP route latency (ms): add_pod -> its /32 proto bird on every other host; "
                  "wd = withdraw: delete_pod -> gone everywhere")  # fmt: skip
    for col in ("case", "mode", "hosts", "pods", "p50", "p90", "max", "missed", "add_pod p50",
                "wd p50", "wd p90", "wd max", "wd missed", "polls/s"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("case", "mode") else "right", no_wrap=True)
    for r in section["route_latency"]:
        a, w = r["route"], r["withdraw"]
        table.add_row(r["case"], MODES.get(r["mode"], r["mode"]), str(r["hosts"]), str(r["pods"]), _f(a["p50_ms"]),
                      _f(a["p90_ms"]), _f(a["max_ms"]), str(a["missed"]), _f(r["add_pod_p50_ms"]), _f(w["p50_ms"]),
                      _f(w["p90_ms"]), _f(w["max_ms"]), str(w["missed"]), _f(r["polls_per_s"]))  # fmt: skip
    return table


def render_scale_table(section: Mapping[str, Any]) -> Table:
    table = Table(
        title="BGP scale (s; sess: Established peers per host, from `testbed bgp status`; "
        "MB: VmRSS of ExaBGP + glue per host (median), of all speakers, of BIRD)"
    )
    for col in ("case", "mode", "hosts", "netns", "up", "up int", "down", "x baseline", "sess/host (exp)",
                "sess total (uniq)", "MB/speaker (min-max)", "MB all", "MB BIRD", "ARP (full)"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("case", "mode") else "right", no_wrap=True)
    for r in section["scale"]:
        s, m = r["sessions"] or {}, r["speaker_rss"] or {}
        up = _f(r["up_wall_s"], ".2f") if r["up_wall_s"] is not None else "FAILED"
        if s:
            span = f"{s['min']}" if s["min"] == s["max"] else f"{s['min']}-{s['max']}"
            sessions, total = f"{span} ({s['expected_per_host']})", f"{s['total']} ({s['unique']})"
        else:
            sessions = total = "-"
        table.add_row(
            r["case"], MODES.get(r["mode"], r["mode"]), str(r["hosts"]), str(r["namespaces"]), up,
            _f(r["up_internal_s"], ".2f"), _f(r["down_s"], ".2f"), _f(r["baseline_ratio"], ".1f", "x"), sessions, total,
            "-" if not m else f"{_mb(m['median_kb'])} ({_mb(m['min_kb'])}-{_mb(m['max_kb'])})",
            "-" if not m else _mb(m["total_kb"], ".0f"), _mb(r["reflector_rss_kb"]),
            f"{_f(r['neighbour_entries'])} ({_f(r['neighbour_table_fulls'])})",
        )  # fmt: skip
    return table


def summary_lines(section: Mapping[str, Any]) -> list[str]:
    lines = []
    for r in section["scale"]:
        s = r["sessions"]
        if r["error"]:
            error = r["error"] if len(r["error"]) <= 240 else r["error"][:240] + "..."
            lines.append(f"{r['case']} {mode_label(r)}: up failed (exit {r['exit_code']}) after "
                         f"{_f(r['up_failed_after_s'], '.1f')} s: {error}")  # fmt: skip
        if r["neighbour_table_fulls"]:
            lines.append(f"{r['case']} {mode_label(r)}: the kernel's neighbour (ARP) table, shared by every "
                         f"namespace, was full {r['neighbour_table_fulls']} times during it "
                         f"(gc_thresh3 = {r['neighbour_gc_thresh3']}); while it is full, no new neighbour (a peer, "
                         "etcd's address) can be resolved in any namespace")
        if s and not s["as_expected"]:
            lines.append(f"{r['case']} {mode_label(r)}: sessions not as expected: {s['min']}-{s['max']} per host "
                         f"(expected {s['expected_per_host']})"
                         + (f"; speaker not running on {', '.join(s['not_running'])}" if s["not_running"] else ""))
    if any(r["mode"] == "rr" and r["hosts"] == 50 for r in section["scale"]):
        lines.append(f"up time for 50 hosts with the reflector: {_f(section['up_50_hosts_reflector_s'], '.2f', ' s')} "
                     f"(internal {_f(section['up_50_hosts_reflector_internal_s'], '.2f', ' s')})")  # fmt: skip
    return lines


# -- live: route polling ---------------------------------------------------------------------


def open_route_socket(netns: str) -> socket.socket:
    """A NETLINK_ROUTE socket of netns (made by a thread that joined it; the socket stays there)."""
    from testbed.netns import namespaces

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        sock.bind((0, 0))
        return sock

    return namespaces.run_inside(netns, make)


def dump_routes(sock: socket.socket, seq: int) -> dict[str, str]:
    sock.send(route_dump_request(seq))
    routes: dict[str, str] = {}
    while True:
        part, done = parse_route_dump(sock.recv(1 << 16))
        routes.update(part)
        if done:
            return routes


class RoutePoller:
    """One thread dumping every host's proto bird routes every ``interval`` s; it remembers when
    each route was first seen (and first missed), so the caller can wait for a state on many hosts."""

    def __init__(self, netns_by_host: Mapping[str, str], interval: float = POLL_INTERVAL_S) -> None:
        self.interval = interval
        self.socks = {h: open_route_socket(ns) for h, ns in netns_by_host.items()}
        self.present: dict[str, dict[str, str]] = {h: {} for h in self.socks}
        self.seen_at: dict[str, dict[str, float]] = {h: {} for h in self.socks}
        self.gone_at: dict[str, dict[str, float]] = {h: {} for h in self.socks}
        self.rounds = 0
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="route-poller", daemon=True)
        self._started = time.perf_counter()

    def __enter__(self) -> RoutePoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks.values():
            sock.close()

    def polls_per_s(self) -> float:
        return self.rounds / max(1e-9, time.perf_counter() - self._started)

    def _run(self) -> None:
        seq = 0
        try:
            while not self._stop.is_set():
                for host, sock in self.socks.items():
                    seq += 1
                    routes = dump_routes(sock, seq)
                    now = time.perf_counter()
                    with self._cond:
                        old = self.present[host]
                        for prefix in routes.keys() - old.keys():
                            self.seen_at[host][prefix] = now
                        for prefix in old.keys() - routes.keys():
                            self.gone_at[host][prefix] = now
                        self.present[host] = routes
                with self._cond:
                    self.rounds += 1
                    self._cond.notify_all()
                self._stop.wait(self.interval)
        except BaseException as exc:  # handed to the waiter
            with self._cond:
                self.error = exc
                self._cond.notify_all()

    def wait(self, prefix: str, hosts: list[str], gateway: str | None, present: bool, since: float,
             timeout: float = ROUTE_TIMEOUT_S) -> float | None:  # fmt: skip
        """Seconds from ``since`` until ``prefix`` (via ``gateway``) is present (or absent) on every
        one of ``hosts``, as first observed; None on timeout."""
        deadline = since + timeout

        def there(host: str) -> bool:
            got = self.present[host].get(prefix)
            return got is not None and (gateway is None or got == gateway)

        with self._cond:
            while True:
                if self.error is not None:
                    raise RuntimeError(f"route poller failed: {self.error}")
                if all(there(h) == present for h in hosts):
                    table = self.seen_at if present else self.gone_at
                    return max(table[h].get(prefix, since) for h in hosts) - since
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)


# -- live: labs ------------------------------------------------------------------------------


def ensure_absent(h: ModuleType, lab: str) -> None:
    """Refuse to touch a lab that exists (state folder or any of its namespaces)."""
    from testbed.runtime import state

    if lab in state.labs() or h.bench_netns(f"{lab}."):
        raise h.BenchError(f"lab {lab} already exists (remove it first: sudo testbed down {lab})")


def lab_gone(h: ModuleType, lab: str) -> None:
    if left := h.bench_netns(f"{lab}."):
        raise h.BenchError(f"lab {lab}: namespaces left behind: {' '.join(left)}")


def up_argv(h: ModuleType, lab: str, mode: str, hosts: int, pods_per_host: int) -> list[str]:
    rr = ["--route-reflector"] if mode == "rr" else []
    return h.testbed("up", "scale", "--hosts", str(hosts), "--pods-per-host", str(pods_per_host), *rr,
                     "--name", lab, "-o", "json")  # fmt: skip


def measure_latency(h: ModuleType, lab: str, data: dict[str, Any], pods: int) -> dict[str, Any]:
    """Add ``pods`` borrowed-address pods one by one, then delete them, timing their /32s."""
    from testbed import api
    from testbed.model.topology import PodSpec

    hosts = sorted(data["hosts"], key=lambda x: ipaddress.IPv4Address(x["ip"]))
    owner, others = hosts[0], [x["name"] for x in hosts[1:]]
    ip_of = {x["name"]: x["ip"] for x in hosts}
    plan = pinned_addresses(owner["blocks"][0], (p["ip"] for p in data["pods"]), others, pods)
    result: dict[str, Any] = {"route_ms": [], "withdraw_ms": [], "add_pod_ms": [], "delete_pod_ms": []}
    created: list[tuple[str, str, str]] = []
    with RoutePoller({x["name"]: x["netns"] for x in hosts}) as poller:
        try:
            for i, (address, host) in enumerate(plan, 1):
                name, watchers = f"lat-{i}", [x["name"] for x in hosts if x["name"] != host]
                t0 = time.perf_counter()
                api.add_pod(lab, PodSpec(name=name, namespace=POD_NAMESPACE, host=host, ip=address))
                added = time.perf_counter()
                created.append((name, address, host))
                got = poller.wait(f"{address}/32", watchers, ip_of[host], True, t0)
                result["add_pod_ms"].append(1000 * (added - t0))
                result["route_ms"].append(None if got is None else 1000 * got)
            for name, address, host in created[:]:
                watchers = [x["name"] for x in hosts if x["name"] != host]
                t0 = time.perf_counter()
                api.delete_pod(lab, f"{POD_NAMESPACE}/{name}")
                deleted = time.perf_counter()
                created.remove((name, address, host))
                got = poller.wait(f"{address}/32", watchers, None, False, t0)
                result["delete_pod_ms"].append(1000 * (deleted - t0))
                result["withdraw_ms"].append(None if got is None else 1000 * got)
        except Exception as exc:  # a pod or etcd error: one line, and the lab still goes down
            raise h.BenchError(f"{lab}: {type(exc).__name__}: {exc}") from exc
        result["polls_per_s"] = poller.polls_per_s()
    return result


def latency_runs(h: ModuleType, case: str, mode: str, hosts: int, pods: int, repeat: int) -> dict[str, Any]:
    lab, runs = f"{h.PREFIX}{case}-{mode}", []
    for i in range(1, repeat + 1):
        ensure_absent(h, lab)
        built = False
        try:
            wall, proc = h.timed(up_argv(h, lab, mode, hosts, 1))
            if proc.returncode != 0:
                raise h.BenchError(f"testbed up {lab} failed: {error_line(proc.stderr)}")
            built, data = True, json.loads(proc.stdout)
            run = measure_latency(h, lab, data, pods)
            run["up_wall_s"] = wall
        finally:
            h.lab_down(lab, must=built)
        lab_gone(h, lab)
        runs.append(run)
        d, w = distribution(run["route_ms"]), distribution(run["withdraw_ms"])
        h.progress(f"{case} {MODES[mode]} {i}/{repeat}: route p50 {_f(d['p50_ms'])} ms, max {_f(d['max_ms'])} ms, "
                   f"missed {d['missed']}; withdraw p50 {_f(w['p50_ms'])} ms")  # fmt: skip
    return {"mode": mode, "hosts": hosts, "runs": runs}


def bgp_status_json(h: ModuleType, lab: str) -> dict[str, Any]:
    _, proc = h.timed(h.testbed("bgp", "status", "--lab", lab, "-o", "json"), timeout=120)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise h.BenchError(f"testbed bgp status --lab {lab} failed: {error_line(proc.stderr)}") from None


def read_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return parse_vmrss_kb(handle.read())
    except OSError:  # gone meanwhile
        return None


def memory(data: dict[str, Any], lab: str, mode: str) -> dict[str, Any]:
    """VmRSS of the processes in each host netns (ExaBGP + glue) and in the reflector's."""
    from testbed import naming
    from testbed.netns import namespaces

    netns = {x["name"]: x["netns"] for x in data["hosts"]}
    rr = naming.reflector_netns(lab)
    pids = namespaces.pids_by_netns([*netns.values(), *([rr] if mode == "rr" else [])])
    per_host = {host: sum(read_rss_kb(p) or 0 for p in pids.get(ns, [])) for host, ns in netns.items()}
    return {
        "speaker_rss": rss_summary(per_host),
        "speaker_processes": {host: len(pids.get(ns, [])) for host, ns in netns.items()},
        "reflector_rss_kb": sum(read_rss_kb(p) or 0 for p in pids.get(rr, [])) if mode == "rr" else None,
    }


def wait_sessions(h: ModuleType, lab: str, mode: str) -> tuple[dict[str, Any], float]:
    """Sessions as `testbed bgp status` reports them, once as expected (or after STATUS_WAIT_S:
    the glue writes its status a moment after the routes `up` waits for); and the seconds waited."""
    started = time.monotonic()
    while True:
        sessions = session_summary(bgp_status_json(h, lab), mode)
        waited = time.monotonic() - started
        if sessions["as_expected"] or waited > STATUS_WAIT_S:
            return sessions, waited
        time.sleep(0.2)


def read_arp() -> dict[str, int]:
    try:
        with open("/proc/net/stat/arp_cache") as handle:
            found = parse_arp_cache(handle.read())
        with open("/proc/sys/net/ipv4/neigh/default/gc_thresh3") as handle:
            found["gc_thresh3"] = int(handle.read())
        return found
    except (OSError, ValueError, KeyError):
        return {}


def arp_during(before: dict[str, int]) -> dict[str, int]:
    """Neighbour entries now, and table overflows since ``before`` (all of the machine's labs)."""
    now = read_arp()
    if not now or not before:
        return {}
    return {"entries": now["entries"], "table_fulls": now["table_fulls"] - before["table_fulls"],
            "gc_thresh3": now.get("gc_thresh3", 0)}  # fmt: skip


def measure_scale(h: ModuleType, lab: str, mode: str, hosts: int, pods_per_host: int = 0) -> dict[str, Any]:
    """One `up` of (mode, hosts): its time or its failure, then sessions and memory; always down."""
    ensure_absent(h, lab)
    built, run = False, {"ok": False, "down_s": None}
    try:
        arp = read_arp()
        wall, proc = h.timed(up_argv(h, lab, mode, hosts, pods_per_host))
        run["up_wall_s"], run["exit_code"] = wall, proc.returncode
        if proc.returncode != 0:
            run["error"] = error_line(proc.stderr)
            run["arp"] = arp_during(arp)
        else:
            built, data = True, json.loads(proc.stdout)
            run.update(ok=True, up_internal_s=float(data["seconds"]), error=None)
            run["sessions"], run["status_wait_s"] = wait_sessions(h, lab, mode)
            run.update(memory(data, lab, mode))
            run["arp"] = arp_during(arp)
    finally:
        down = h.lab_down(lab, must=built)
        run["down_s"] = down if built else None
    lab_gone(h, lab)
    return run


def scale_runs(h: ModuleType, case: str, mode: str, hosts: int, repeat: int) -> dict[str, Any]:
    lab, runs = f"{h.PREFIX}bgp-{mode}-{hosts}", []
    for i in range(1, repeat + 1):
        run = measure_scale(h, lab, mode, hosts)
        runs.append(run)
        if run["ok"]:
            s, m = run["sessions"], run["speaker_rss"]
            h.progress(f"{case} {MODES[mode]} {hosts} hosts {i}/{repeat}: up {run['up_wall_s']:.2f} s, "
                       f"sessions/host {s['min']}-{s['max']} (expected {s['expected_per_host']}), "
                       f"speaker RSS {_mb(m['median_kb'])} MB, down {run['down_s']:.2f} s")  # fmt: skip
        else:
            h.progress(f"{case} {MODES[mode]} {hosts} hosts {i}/{repeat}: up FAILED (exit {run['exit_code']}) "
                       f"after {run['up_wall_s']:.1f} s: {run['error'][:200]}")  # fmt: skip
    return {"mode": mode, "hosts": hosts, "runs": runs}


# -- the cases (registered by bench.py; ``h`` is the bench module) -----------------------------


def lab_names(case: str) -> list[str]:
    """Every lab a case may build, for bench.py's pre-flight check."""
    if case == "route-latency":
        return [f"bench-{case}-{m}" for m in MODES]
    if case == "bgp-scale":
        return [f"bench-bgp-{m}-{n}" for n in SCALE_HOSTS for m in MODES]
    if case == "bgp-quick":
        return [f"bench-{case}-rr"]
    return []


def route_latency(h: ModuleType, repeat: int) -> dict[str, Any]:
    return {"latency": [latency_runs(h, "route-latency", m, LATENCY_HOSTS, LATENCY_PODS, repeat) for m in MODES]}


def bgp_scale(h: ModuleType, repeat: int) -> dict[str, Any]:
    return {"scale": [scale_runs(h, "bgp-scale", m, n, repeat) for n in SCALE_HOSTS for m in MODES]}


def bgp_quick(h: ModuleType, repeat: int) -> dict[str, Any]:
    """Smoke: 3 hosts with the reflector, 1 pod each: latency of a few pods, then sessions and memory."""
    lab, mode, latency, scale = f"{h.PREFIX}bgp-quick-rr", "rr", [], []
    for _ in range(repeat):
        ensure_absent(h, lab)
        built, run = False, {"ok": False, "down_s": None}
        try:
            arp = read_arp()
            wall, proc = h.timed(up_argv(h, lab, mode, QUICK_HOSTS, 1))
            run["up_wall_s"], run["exit_code"] = wall, proc.returncode
            if proc.returncode != 0:
                raise h.BenchError(f"testbed up {lab} failed: {error_line(proc.stderr)}")
            built, data = True, json.loads(proc.stdout)
            run.update(ok=True, up_internal_s=float(data["seconds"]), error=None)
            run["sessions"], run["status_wait_s"] = wait_sessions(h, lab, mode)
            run.update(memory(data, lab, mode))
            run["arp"] = arp_during(arp)
            lat = measure_latency(h, lab, data, QUICK_PODS)
            lat["up_wall_s"] = wall
            latency.append(lat)
        finally:
            down = h.lab_down(lab, must=built)
            run["down_s"] = down if built else None
        lab_gone(h, lab)
        scale.append(run)
        d = distribution(lat["route_ms"])
        h.progress(f"bgp-quick: up {wall:.2f} s, route p50 {_f(d['p50_ms'])} ms (missed {d['missed']}), "
                   f"sessions/host {run['sessions']['min']}-{run['sessions']['max']}")  # fmt: skip
    return {
        "latency": [{"mode": mode, "hosts": QUICK_HOSTS, "runs": latency}],
        "scale": [{"mode": mode, "hosts": QUICK_HOSTS, "runs": scale}],
    }
