"""Which rule decided, named back to the NetworkPolicy (pure).

Both the real trace (rules whose packet counters moved, from `iptables-legacy-save -c`)
and the what-if (the rules the walker passed) give a list of ``chain[index] text`` lines;
one function reads the verdict out of them, using the renderer's own comments ("ns/name
ingress[0]", "Drop if no policies passed packet", ...) and its chain names, so a rename in
the renderer cannot silently desynchronise the two."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agents.felix.render import names
from testbed.trace.model import Decision

COMMENT = re.compile(r'--comment "?((?:[^"\\]|\\.)*?)"?(?: -|$)')
RULE_REF = re.compile(r"^(?P<policy>[^ ]+/[^ ]+) (?P<direction>ingress|egress)\[(?P<index>\d+)\]$")
SAVE_RULE = re.compile(r"^\[(?P<packets>\d+):(?P<bytes>\d+)\] -A (?P<chain>\S+)(?: (?P<body>.*))?$")
ID_COMMENT = re.compile(r'-m comment --comment "?cali:[A-Za-z0-9_-]+"? ?')


@dataclass(frozen=True)
class Fired:
    chain: str
    index: int
    text: str  # the rule after its chain name, without Felix's id comment

    @property
    def line(self) -> str:
        return f"{self.chain}[{self.index}] {self.text}"


def comments(text: str) -> list[str]:
    return [c for c in COMMENT.findall(text) if not c.startswith("cali:")]


def parse_counters(save: str) -> dict[tuple[str, int], tuple[int, str]]:
    """`iptables-legacy-save -c` text -> {(chain, index): (packets, rule text)}, cali- chains only."""
    out: dict[tuple[str, int], tuple[int, str]] = {}
    position: dict[str, int] = {}
    for line in save.splitlines():
        m = SAVE_RULE.match(line.strip())
        if not m or not m["chain"].startswith(names.CHAIN_PREFIX):
            continue  # only Felix's chains; kernel chains repeat across tables
        chain = m["chain"]
        index = position.get(chain, 0)
        position[chain] = index + 1
        out[(chain, index)] = (int(m["packets"]), ID_COMMENT.sub("", m["body"] or "").strip())
    return out


def moved(before: Mapping[tuple[str, int], tuple[int, str]], after: Mapping[tuple[str, int], tuple[int, str]]) -> list[Fired]:
    """The rules whose packet counter grew, in chain order. A rule whose text changed in
    between (the agent rewrote the chain) is left out: its counter restarted."""
    out = []
    for (chain, index), (packets, text) in sorted(after.items()):
        old = before.get((chain, index))
        if old is not None and old[1] == text and packets > old[0]:
            out.append(Fired(chain, index, text))
    return out


def parse_walk(lines: Iterable[str]) -> list[Fired]:
    """The walker's trace lines ``chain[index] text`` -> Fired."""
    out = []
    for line in lines:
        m = re.match(r"^(\S+)\[(\d+)\] ?(.*)$", line)
        if m:
            out.append(Fired(m[1], int(m[2]), m[3]))
    return out


def _rule_name(comment: str) -> str | None:
    m = RULE_REF.match(comment)
    if not m:
        return None
    return f"{m['policy']} {m['direction']} rule {m['index']}"


def decide(
    fired: Sequence[Fired],
    endpoint_chain: str | None,
    policy_chains: Mapping[str, str],
    established: bool = False,
) -> Decision:
    """The decision of one host on one packet.

    ``fired``: the rules the packet went through on that host (any order within a chain is
    kept); ``endpoint_chain``: the cali-fw-/cali-tw- chain that judges it there (None: no
    workload policy applies, e.g. a packet between hosts); ``policy_chains``: chain name ->
    policy key, for naming a default deny; ``established``: a reply, decided by conntrack.
    """
    for f in fired:  # raw and dispatch drops come before any endpoint chain
        text = " ".join(comments(f.text))
        if f.chain == names.PREROUTING and f.text.endswith("-j DROP"):
            return Decision("DROP", "anti-spoofing (source is not the workload's address)", f.line)
        if f.chain in (names.FROM_WL_DISPATCH, names.TO_WL_DISPATCH) and "Unknown interface" in text:
            return Decision("DROP", "unknown workload interface", f.line)
    if endpoint_chain is None:
        return Decision("ACCEPT", "no workload policy on this hop")
    mine = [f for f in fired if f.chain == endpoint_chain]
    conntrack = [f for f in mine if "RELATED,ESTABLISHED" in f.text]
    if established and conntrack:
        return Decision("ACCEPT", "conntrack (reply of an established connection)", conntrack[0].line)
    for f in mine:
        text = " ".join(comments(f.text))
        if "--ctstate INVALID" in f.text:
            return Decision("DROP", "conntrack INVALID", f.line)
        if "Drop if no policies passed packet" in text:
            isolating = [policy_chains.get(j, j) for j in jumps(mine_chain_rules(fired, endpoint_chain))]
            by = ", ".join(dict.fromkeys(isolating)) or "policy"
            return Decision("DROP", f"default deny ({by})", f.line)
        if "Drop if no profiles matched" in text:
            return Decision("DROP", "no profile matched", f.line)
        if "Return if profile accepted" in text:
            profile = next((p.text.split("-j ")[-1] for p in mine if "-j " + names.PROFILE_IN in p.text
                            or "-j " + names.PROFILE_OUT in p.text), "")
            return Decision("ACCEPT", f"no policy isolates it ({profile or 'profile'} allows all)", f.line)
        if "Return if policy accepted" in text:
            # Only the policies this endpoint's chain jumped to, in its order: a policy chain
            # of another endpoint on the host may have counted concurrent traffic meanwhile.
            order = {chain: i for i, chain in enumerate(jumps(f.text for f in mine))}
            accepted = sorted(
                (a for a in fired if a.chain in order and "--set-xmark 0x10000/0x10000" in a.text),
                key=lambda a: (order[a.chain], a.index),
            )
            for a in accepted:
                for c in comments(a.text):
                    named = _rule_name(c)
                    if named:
                        return Decision("ACCEPT", named, a.line)
            return Decision("ACCEPT", "policy", f.line)
    if conntrack:
        return Decision("ACCEPT", "conntrack (reply of an established connection)", conntrack[0].line)
    return Decision("UNKNOWN", "no rule of " + endpoint_chain + " counted the packet")


def mine_chain_rules(fired: Sequence[Fired], chain: str) -> list[str]:
    return [f.text for f in fired if f.chain == chain]


def jumps(texts: Iterable[str]) -> list[str]:
    """Policy chains jumped to from these rule texts."""
    out = []
    for text in texts:
        m = re.search(r"-j (cali-p[io]-\S+)", text)
        if m:
            out.append(m[1])
    return out
