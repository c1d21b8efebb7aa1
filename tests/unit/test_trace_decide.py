"""Which rule decided (testbed.trace.decide): counters read from `iptables-legacy-save -c`
text, the rules that moved, and the verdict named back to the policy."""

from __future__ import annotations

from testbed.trace.decide import Fired, decide, moved, parse_counters

FW = "cali-fw-cali456b416f2bf"
TW = "cali-tw-cali08041ab898a"
PI = "cali-pi-_9uPdfzyv25gKIfezgGy"
POLICIES = {PI: "x/allow-from-y", "cali-pi-_deny": "x/default-deny"}


def save(counts: dict[str, int]) -> str:
    """A filter table as iptables-legacy-save -c prints it, with the given TW counters."""
    return "\n".join([
        "*filter",
        ":FORWARD ACCEPT [0:0]",
        f":{TW} - [0:0]",
        "[5:300] -A FORWARD -m comment --comment \"cali:x\" -j cali-FORWARD",
        f"[{counts.get('est', 0)}:0] -A {TW} -m comment --comment \"cali:aaaa\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"[0:0] -A {TW} -m comment --comment \"cali:bbbb\" -m conntrack --ctstate INVALID -j DROP",
        f"[{counts.get('clear', 0)}:0] -A {TW} -m comment --comment \"cali:cccc\" -j MARK --set-xmark 0x0/0x30000",
        f"[{counts.get('jump', 0)}:0] -A {TW} -m comment --comment \"cali:dddd\" -m mark --mark 0x0/0x20000 -j {PI}",
        f"[0:0] -A {TW} -m comment --comment \"cali:eeee\" -m comment --comment \"Return if policy accepted\" -m mark --mark 0x10000/0x10000 -j RETURN",
        f"[{counts.get('drop', 0)}:0] -A {TW} -m comment --comment \"cali:ffff\" -m comment --comment \"Drop if no policies passed packet\" -m mark --mark 0x0/0x20000 -j DROP",
        "COMMIT",
    ])


def test_parse_counters_keeps_felix_chains_indexed_and_strips_ids() -> None:
    table = parse_counters(save({"est": 3}))
    assert (TW, 0) in table and ("FORWARD", 0) not in table
    assert table[(TW, 0)] == (3, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    assert table[(TW, 5)][1].startswith('-m comment --comment "Drop if no policies')


def test_moved_lists_only_rules_whose_counter_grew() -> None:
    before = parse_counters(save({"est": 3}))
    after = parse_counters(save({"est": 3, "clear": 1, "jump": 1, "drop": 1}))
    assert [(f.chain, f.index) for f in moved(before, after)] == [(TW, 2), (TW, 3), (TW, 5)]
    assert moved(after, after) == []


def test_default_deny_names_the_isolating_policy() -> None:
    before = parse_counters(save({}))
    after = parse_counters(save({"clear": 1, "jump": 1, "drop": 1}))
    d = decide(moved(before, after), TW, POLICIES)
    assert (d.verdict, d.by) == ("DROP", "default deny (x/allow-from-y)")
    assert d.rule.startswith(f"{TW}[5] ")


def test_accept_names_policy_and_rule_index() -> None:
    fired = [
        Fired(TW, 2, "-j MARK --set-xmark 0x0/0x30000"),
        Fired(TW, 3, f"-m mark --mark 0x0/0x20000 -j {PI}"),
        Fired(PI, 2, '-m comment --comment "x/allow-from-y ingress[1]" -p tcp -j MARK --set-xmark 0x10000/0x10000'),
        Fired(PI, 3, "-m mark --mark 0x10000/0x10000 -j RETURN"),
        Fired(TW, 4, '-m comment --comment "Return if policy accepted" -m mark --mark 0x10000/0x10000 -j RETURN'),
    ]
    d = decide(fired, TW, POLICIES)
    assert (d.verdict, d.by) == ("ACCEPT", "x/allow-from-y ingress rule 1")
    assert d.rule.startswith(f"{PI}[2] ")


def test_no_policy_profile_and_conntrack_and_other_chains() -> None:
    profile = [Fired(FW, 5, "-j cali-pro-kns.x"),
               Fired(FW, 6, '-m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 -j RETURN')]
    assert decide(profile, FW, POLICIES).by == "no policy isolates it (cali-pro-kns.x allows all)"
    est = [Fired(FW, 0, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")]
    assert decide(est, FW, POLICIES, established=True).verdict == "ACCEPT"
    # A conntrack hit of another packet (the source's RST) does not decide a new connection.
    assert decide(est + profile, FW, POLICIES).by.startswith("no policy isolates")
    assert decide(profile, TW, POLICIES).verdict == "UNKNOWN"  # nothing counted in the judging chain
    assert decide([], None, POLICIES).verdict == "ACCEPT"


def test_raw_anti_spoofing_and_unknown_interface_drops() -> None:
    spoof = [Fired("cali-PREROUTING", 0, '-m comment --comment "Anti-spoofing" -i cali1 ! -s 10.65.0.0/32 -j DROP')]
    assert decide(spoof, FW, POLICIES).by.startswith("anti-spoofing")
    unknown = [Fired("cali-from-wl-dispatch", 4, '-m comment --comment "Unknown interface" -j DROP')]
    assert decide(unknown, FW, POLICIES).verdict == "DROP"


def test_a_policy_of_another_endpoint_that_counted_concurrent_traffic_is_not_named() -> None:
    """The stars lab's probes keep hitting the client's allow-ui policy on the same host while
    a trace of client -> frontend runs: only the policies the judging endpoint's chain jumped
    to may decide (seen once in a CI run: 'ACCEPT by client/allow-ui')."""
    other = "cali-pi-_aaa"  # sorts before PI: it was named first
    policies = {**POLICIES, other: "client/allow-ui"}
    fired = [
        Fired(other, 0, '-m comment --comment "client/allow-ui ingress[0]" -j MARK --set-xmark 0x10000/0x10000'),
        Fired(TW, 2, "-j MARK --set-xmark 0x0/0x30000"),
        Fired(TW, 3, f"-m mark --mark 0x0/0x20000 -j {PI}"),
        Fired(PI, 0, '-m comment --comment "x/allow-from-y ingress[0]" -j MARK --set-xmark 0x10000/0x10000'),
        Fired(TW, 4, '-m comment --comment "Return if policy accepted" -m mark --mark 0x10000/0x10000 -j RETURN'),
    ]
    d = decide(fired, TW, policies)
    assert (d.verdict, d.by) == ("ACCEPT", "x/allow-from-y ingress rule 0")
