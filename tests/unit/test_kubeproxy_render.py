"""kube-proxy's rules: golden nat/filter text, chain-name hashing, and the applier's
decisions against a small fake kernel (no root)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from agents.felix.apply.iptables import RestoreError
from agents.felix.apply.runner import Call, CommandError, FakeRunner
from agents.kubeproxy import desired_rules
from agents.kubeproxy.apply import KubeProxyTables, owned_view
from agents.kubeproxy.render import (
    endpoint_chain,
    external_chain,
    probability,
    render_filter,
    render_nat,
    service_chain,
)
from testbed.kube.services import Endpoint, Service, ServicePort, service_to_dict

WEB = Service("demo", "web", "ClusterIP", (("app", "web"),), (ServicePort("http", "TCP", 80, 8080),), "10.96.0.2")
DNS = Service("demo", "dns", "NodePort", (("app", "dns"),), (ServicePort("", "UDP", 53, 5353, 30053),), "10.96.0.3")
EMPTY = Service("demo", "empty", "NodePort", (("app", "none"),), (ServicePort("", "TCP", 81, 81, 30081),), "10.96.0.4")
HEADLESS = Service("demo", "db", "ClusterIP", (("app", "db"),), (ServicePort("", "TCP", 5432, 5432),), "None")
ENDPOINTS: dict[tuple[str, str], dict[str, tuple[Endpoint, ...]]] = {
    ("demo", "web"): {"http": (Endpoint("10.65.0.1", 8080), Endpoint("10.65.0.64", 8080))},
    ("demo", "dns"): {"": (Endpoint("10.65.0.2", 5353),)},
    ("demo", "empty"): {"": ()},
    ("demo", "db"): {"": (Endpoint("10.65.0.9", 5432),)},
}

HEADER = """\
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
"""
STATIC = """\
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
"""
LAST = (
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
    'this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n'
)


def kube_hash(text: str) -> str:
    """kube-proxy's formula, written out: base32(SHA-256(text)), first 16 characters."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def test_cluster_ip_service_with_two_endpoints() -> None:
    svc, sep1, sep2 = "KUBE-SVC-XRY76EGRC3BSCIIJ", "KUBE-SEP-I7R5TZDYQOIJ3YOJ", "KUBE-SEP-GZNS5OFN36SYK37L"
    assert render_nat([WEB], ENDPOINTS) == HEADER + f"""\
:{svc} - [0:0]
:{sep1} - [0:0]
:{sep2} - [0:0]
""" + STATIC + f"""\
-A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.2 --dport 80 -j {svc}
-A {svc} -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.2 --dport 80 ! -s 10.65.0.0/16 -j KUBE-MARK-MASQ
-A {svc} -m comment --comment "demo/web:http -> 10.65.0.1:8080" -m statistic --mode random --probability 0.5000000000 -j {sep1}
-A {svc} -m comment --comment "demo/web:http -> 10.65.0.64:8080" -j {sep2}
-A {sep1} -m comment --comment demo/web:http -s 10.65.0.1 -j KUBE-MARK-MASQ
-A {sep1} -m comment --comment demo/web:http -m tcp -p tcp -j DNAT --to-destination 10.65.0.1:8080
-A {sep2} -m comment --comment demo/web:http -s 10.65.0.64 -j KUBE-MARK-MASQ
-A {sep2} -m comment --comment demo/web:http -m tcp -p tcp -j DNAT --to-destination 10.65.0.64:8080
""" + LAST + "COMMIT\n"  # fmt: skip


def test_node_port_service() -> None:
    svc, ext, sep = "KUBE-SVC-TJ7R4GGTKLDTUOTY", "KUBE-EXT-TJ7R4GGTKLDTUOTY", "KUBE-SEP-OJWIOSJ3RGAQ736Z"
    assert render_nat([DNS], ENDPOINTS) == HEADER + f"""\
:{ext} - [0:0]
:{svc} - [0:0]
:{sep} - [0:0]
""" + STATIC + f"""\
-A KUBE-SERVICES -m comment --comment "demo/dns cluster IP" -m udp -p udp -d 10.96.0.3 --dport 53 -j {svc}
-A KUBE-NODEPORTS -m comment --comment demo/dns -m udp -p udp --dport 30053 -j {ext}
-A {svc} -m comment --comment "demo/dns cluster IP" -m udp -p udp -d 10.96.0.3 --dport 53 ! -s 10.65.0.0/16 -j KUBE-MARK-MASQ
-A {ext} -m comment --comment "masquerade traffic for demo/dns external destinations" -j KUBE-MARK-MASQ
-A {ext} -j {svc}
-A {svc} -m comment --comment "demo/dns -> 10.65.0.2:5353" -j {sep}
-A {sep} -m comment --comment demo/dns -s 10.65.0.2 -j KUBE-MARK-MASQ
-A {sep} -m comment --comment demo/dns -m udp -p udp -j DNAT --to-destination 10.65.0.2:5353
""" + LAST + "COMMIT\n"  # fmt: skip


def test_node_ips_replace_the_any_local_address_rule() -> None:
    text = render_nat([], {}, node_ips=["172.18.203.11"])
    assert text.splitlines()[-2] == (
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
        'this chain" -d 172.18.203.11 -j KUBE-NODEPORTS'
    )


def test_chain_names_follow_kube_proxys_formula() -> None:
    assert service_chain("demo/web:http", "TCP") == "KUBE-SVC-" + kube_hash("demo/web:httptcp")
    assert external_chain("demo/dns", "UDP") == "KUBE-EXT-" + kube_hash("demo/dnsudp")
    assert endpoint_chain("demo/web:http", "TCP", Endpoint("10.65.0.1", 8080)) == "KUBE-SEP-" + kube_hash(
        "demo/web:httptcp10.65.0.1:8080"
    )
    # The name every cluster shows for the API server's service, and kube-dns's.
    assert service_chain("default/kubernetes:https", "tcp") == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert service_chain("kube-system/kube-dns:dns", "udp") == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert all(len(n) <= 28 for n in (service_chain("x" * 300, "sctp"), endpoint_chain("y", "tcp", "1.2.3.4:5")))


def test_probabilities_spread_evenly() -> None:
    eps = tuple(Endpoint(f"10.65.0.{i}", 80) for i in range(1, 5))
    text = render_nat([WEB], {("demo", "web"): {"http": eps}})
    spread = [line.split("--probability ")[1].split()[0] for line in text.splitlines() if "--probability" in line]
    assert spread == ["0.2500000000", "0.3333333333", "0.5000000000"]  # 1/4, 1/3, 1/2, then the last: none
    assert sum("-> 10.65.0." in line for line in text.splitlines()) == 4
    assert probability(3) == "0.3333333333"


def test_no_endpoints_means_reject_and_no_nat_chains() -> None:
    nat = render_nat([EMPTY, HEADLESS], ENDPOINTS)
    assert "KUBE-SVC-" not in nat and "KUBE-SEP-" not in nat and "10.96.0.4" not in nat
    assert render_filter([WEB, EMPTY, HEADLESS], ENDPOINTS) == """\
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
-A KUBE-SERVICES -m comment --comment "demo/empty has no endpoints" -m tcp -p tcp -d 10.96.0.4 --dport 81 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "demo/empty has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30081 -j REJECT
COMMIT
"""  # fmt: skip


def test_desired_rules_from_stored_objects() -> None:
    named = Service("demo", "web", "ClusterIP", (("app", "web"),), (ServicePort("", "TCP", 80, "http"),), "10.96.0.2")
    empty = Service("demo", "empty", "ClusterIP", (("app", "x"),), (ServicePort("", "TCP", 81, 81),), "10.96.0.4")
    broken = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Bad"}, "spec": {}}
    endpoints = [
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "demo"},
         "subsets": [{"addresses": [{"ip": "10.65.0.7", "targetRef": {"kind": "Pod", "name": "a"}}],
                      "notReadyAddresses": [{"ip": "10.65.0.8"}],
                      "ports": [{"port": 8080, "protocol": "TCP"}]}]},
        # Another namespace's Endpoints of the same name are not this Service's.
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "empty", "namespace": "other"},
         "subsets": [{"addresses": [{"ip": "10.65.0.9"}], "ports": [{"port": 81, "protocol": "TCP"}]}]},
    ]  # fmt: skip
    nat, filter_text = desired_rules([service_to_dict(named), service_to_dict(empty), broken], endpoints)
    assert "-j DNAT --to-destination 10.65.0.7:8080" in nat
    assert "10.65.0.8" not in nat and "10.65.0.9" not in nat  # not ready; not this namespace
    assert "demo/web" not in filter_text and '"demo/empty has no endpoints"' in filter_text
    assert desired_rules([service_to_dict(named)], []) == (render_nat([named], {}), render_filter([named], {}))


# --- the applier, against a fake kernel --------------------------------------------------------


class FakeKernel:
    """Legacy iptables for two tables, as far as the applier uses it: restore lines
    (declare, -A, -I N, -X) and save text. Enough to check decisions, not formats."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {
            "nat": {c: [] for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")},
            "filter": {c: [] for c in ("INPUT", "FORWARD", "OUTPUT")},
        }
        self.fail_next = False

    def save(self, call: Call) -> str:
        table = call.argv[-1]
        chains = self.tables[table]
        lines = [f"# Generated by iptables-save v1.8.9", f"*{table}"]
        lines += [f":{c} {'ACCEPT' if c.isupper() and not c.startswith('KUBE') else '-'} [0:0]" for c in chains]
        lines += [f"-A {c} {rule}" for c, rules in chains.items() for rule in rules]
        return "\n".join([*lines, "COMMIT", ""])

    def restore(self, call: Call) -> str:
        if self.fail_next:
            self.fail_next = False
            raise CommandError(call.argv, 1, "iptables-restore: line 3 failed")
        table = ""
        for line in (call.input or "").splitlines():
            words = line.split()
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                self.tables[table][words[0][1:]] = []
            elif words[:1] == ["-A"]:
                self.tables[table][words[1]].append(" ".join(words[2:]))
            elif words[:1] == ["-I"]:
                self.tables[table][words[1]].insert(int(words[2]) - 1, " ".join(words[3:]))
            elif words[:1] == ["-X"]:
                assert not self.tables[table][words[1]], f"-X of a non-empty chain {words[1]}"
                del self.tables[table][words[1]]
        return ""

    def runner(self) -> FakeRunner:
        runner = FakeRunner()
        runner.set_outputs({
            ("iptables-legacy-save", "-t", "nat"): self.save,
            ("iptables-legacy-save", "-t", "filter"): self.save,
            ("iptables-legacy-restore", "--noflush", "--wait"): self.restore,
        })  # fmt: skip
        return runner


def programs(runner: FakeRunner) -> list[str]:
    return [" ".join(c.argv[:3]) if c.argv[0].endswith("save") else c.argv[0] for c in runner.calls]


@pytest.fixture
def kernel() -> FakeKernel:
    k = FakeKernel()
    k.tables["filter"]["cali-FORWARD"] = ["-j ACCEPT"]
    k.tables["filter"]["FORWARD"] = ['-m comment --comment "cali:abc" -j cali-FORWARD']
    k.tables["nat"]["KUBE-SVC-LEFTOVER"] = ["-j KUBE-SEP-LEFTOVER"]  # from a previous agent
    k.tables["nat"]["KUBE-SEP-LEFTOVER"] = ["-j DNAT --to-destination 10.65.0.9:80"]
    return k


def test_first_apply_reads_back_sweeps_leftovers_and_hooks_in(kernel: FakeKernel) -> None:
    runner = kernel.runner()
    tables = KubeProxyTables(runner)
    nat, filter_text = render_nat([WEB], ENDPOINTS), render_filter([WEB, EMPTY], ENDPOINTS)
    report = tables.apply(nat, filter_text)
    assert report.tables_written == ("nat", "filter") and report.read_back
    assert report.chains_deleted == ("KUBE-SEP-LEFTOVER", "KUBE-SVC-LEFTOVER")
    assert report.hooks_added == 7
    assert programs(runner) == [
        "iptables-legacy-save -t nat", "iptables-legacy-save -t filter", "iptables-legacy-restore",
        "iptables-legacy-save -t nat", "iptables-legacy-save -t filter",
    ]  # fmt: skip
    assert "KUBE-SVC-LEFTOVER" not in kernel.tables["nat"]
    assert kernel.tables["nat"]["PREROUTING"] == ['-m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
    # Felix's jump stays first in FORWARD: kube-proxy's are appended after it.
    assert kernel.tables["filter"]["FORWARD"][0] == '-m comment --comment "cali:abc" -j cali-FORWARD'
    assert kernel.tables["filter"]["FORWARD"][1:] == [
        '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES",
    ]
    assert kernel.tables["filter"]["cali-FORWARD"] == ["-j ACCEPT"]
    assert "cali" not in runner.inputs("iptables-legacy-restore")[0]


def test_unchanged_text_runs_nothing_and_resync_only_reads(kernel: FakeKernel) -> None:
    runner = kernel.runner()
    tables = KubeProxyTables(runner)
    nat, filter_text = render_nat([WEB], ENDPOINTS), render_filter([WEB], ENDPOINTS)
    tables.apply(nat, filter_text)
    runner.calls.clear()
    assert not tables.apply(nat, filter_text).wrote
    assert runner.calls == []
    report = tables.apply(nat, filter_text, resync=True)
    assert not report.wrote and report.read_back
    assert programs(runner) == ["iptables-legacy-save -t nat", "iptables-legacy-save -t filter"]


def test_resync_repairs_drift_in_the_drifted_table_only(kernel: FakeKernel) -> None:
    runner = kernel.runner()
    tables = KubeProxyTables(runner)
    nat, filter_text = render_nat([WEB], ENDPOINTS), render_filter([WEB], ENDPOINTS)
    tables.apply(nat, filter_text)
    good = {t: {c: list(r) for c, r in chains.items()} for t, chains in kernel.tables.items()}
    svc = service_chain("demo/web:http", "tcp")
    del kernel.tables["nat"][svc][1]  # a rule deleted by hand
    kernel.tables["nat"]["OUTPUT"].clear()  # and a hook
    report = tables.apply(nat, filter_text, resync=True)
    assert report.tables_written == ("nat",) and report.hooks_added == 1
    assert kernel.tables == good


def test_a_change_writes_the_changed_table_and_deletes_stale_chains(kernel: FakeKernel) -> None:
    runner = kernel.runner()
    tables = KubeProxyTables(runner)
    tables.apply(render_nat([WEB], ENDPOINTS), render_filter([WEB], ENDPOINTS))
    runner.calls.clear()
    one = {("demo", "web"): {"http": (Endpoint("10.65.0.1", 8080),)}}
    report = tables.apply(render_nat([WEB], one), render_filter([WEB], one))
    gone = endpoint_chain("demo/web:http", "tcp", "10.65.0.64:8080")
    assert report.tables_written == ("nat",) and report.chains_deleted == (gone,)
    assert programs(runner) == ["iptables-legacy-restore", "iptables-legacy-save -t nat"]
    assert gone not in kernel.tables["nat"]
    restore = runner.inputs("iptables-legacy-restore")[0]
    assert restore.startswith("*nat\n") and "*filter" not in restore and f"-X {gone}\n" in restore


def test_a_failed_restore_is_retried_from_a_fresh_read(kernel: FakeKernel) -> None:
    runner = kernel.runner()
    tables = KubeProxyTables(runner)
    nat, filter_text = render_nat([WEB], ENDPOINTS), render_filter([WEB], ENDPOINTS)
    kernel.fail_next = True
    with pytest.raises(RestoreError, match="line 3 failed"):
        tables.apply(nat, filter_text)
    runner.calls.clear()
    assert tables.apply(nat, filter_text).wrote
    assert programs(runner)[:2] == ["iptables-legacy-save -t nat", "iptables-legacy-save -t filter"]


def test_owned_view_ignores_counters_and_other_chains() -> None:
    saved = """\
*nat
:PREROUTING ACCEPT [12:720]
:KUBE-SERVICES - [0:0]
:cali-nat - [0:0]
-A PREROUTING -j cali-nat
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.2/32 -p tcp -j KUBE-SVC-X
COMMIT
"""
    assert owned_view(saved, "nat") == (
        ":KUBE-SERVICES",
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "-A KUBE-SERVICES -d 10.96.0.2/32 -p tcp -j KUBE-SVC-X",
    )
    assert owned_view(saved, "filter") == ()
