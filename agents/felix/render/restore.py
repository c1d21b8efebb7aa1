"""Chains -> ``iptables-legacy-restore --noflush`` text; ipsets -> ``ipset restore`` text.

Each rule carries Felix's id comment ``cali:<16 chars>``: base64url(SHA-224) over the chain
name, the previous rule's id and this rule's text, so a rule's id changes when anything
before it changes, and a read-back of ``iptables-save`` shows which rules drifted.

Replacing a chain: ``:name - -`` in a restore with ``--noflush`` creates the chain or
flushes it, and the ``-A`` lines refill it, all atomic on COMMIT. Stale chains are the
applier's to remove: ``render_table(..., delete=names)`` flushes and deletes them in the
same transaction, after the chains that referred to them have been rewritten.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agents.felix.render.host import HostRules
from agents.felix.render.ipsets import MAXELEM
from agents.felix.render.rules import Chain, IPSet, Rule
from agents.felix.render.static import Hook

ID_PREFIX = "cali:"
ID_LENGTH = 16
TEMP_SET = "cali4t0"  # Felix's temporary set names are cali4t<n>


MAX_COMMENT = 256  # xt_comment's limit, terminating NUL included


def clean_comment(text: str) -> str:
    """iptables-restore has no reliable escape for quotes inside a quoted argument."""
    return text.replace("\\", "/").replace('"', "'").replace("\n", " ")[: MAX_COMMENT - 1]


def rule_body(rule: Rule) -> str:
    """A rule as iptables sees it after the id comment: human comment, match, action."""
    parts = []
    if rule.comment:
        parts.append(f'-m comment --comment "{clean_comment(rule.comment)}"')
    if rule.match:
        parts.append(rule.match)
    if rule.action:
        parts.append(rule.action)
    return " ".join(parts)


def chained_ids(chain_name: str, rules: Sequence[Rule]) -> list[str]:
    """Felix's rule ids: base64url(SHA-224(chain name + previous id + rule text))[:16]."""
    ids: list[str] = []
    previous = ""
    for rule in rules:
        digest = hashlib.sha224((chain_name + previous + rule_body(rule)).encode()).digest()
        previous = base64.urlsafe_b64encode(digest).decode()[:ID_LENGTH]
        ids.append(previous)
    return ids


def rule_ids(chain: Chain) -> list[str]:
    return chained_ids(chain.name, chain.rules)


def rule_lines(chain: Chain) -> list[str]:
    return [
        f'-A {chain.name} -m comment --comment "{ID_PREFIX}{rid}" {rule_body(rule)}'
        for rule, rid in zip(chain.rules, rule_ids(chain))
    ]


def render_table(table: str, chains: Sequence[Chain], delete: Iterable[str] = ()) -> str:
    """One transaction: declare (create or flush) every chain, refill them, delete stale ones."""
    stale = sorted(set(delete) - {c.name for c in chains})
    lines = [f"*{table}"]
    lines += [f":{c.name} - -" for c in chains]
    lines += [f":{name} - -" for name in stale]
    for chain in chains:
        lines += rule_lines(chain)
    lines += [f"-X {name}" for name in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_chain_deletes(table: str, names: Iterable[str]) -> str:
    return render_table(table, (), delete=names)


def hook_line(hook: Hook) -> str:
    """The insert for a hook; the applier sends it only when the jump is missing."""
    chain = Chain(hook.chain, (hook.rule,))
    return rule_lines(chain)[0].replace(f"-A {hook.chain} ", f"-I {hook.chain} 1 ", 1)


def _create(ipset: IPSet, name: str | None = None) -> str:
    return f"create {name or ipset.name} {ipset.kind} family inet maxelem {MAXELEM} -exist"


def render_ipsets(ipsets: Sequence[IPSet]) -> str:
    """Full form: create (if missing), flush, add every member."""
    lines: list[str] = []
    for ipset in ipsets:
        lines += [_create(ipset), f"flush {ipset.name}"]
        lines += [f"add {ipset.name} {m}" for m in sorted(ipset.members)]
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class IPSetDelta:
    update: str  # before the tables: create, adds, dels, type-change swaps
    destroy: str  # after the tables no longer refer to them

    @property
    def empty(self) -> bool:
        return not self.update and not self.destroy


def render_ipsets_delta(actual: Mapping[str, IPSet], desired: Sequence[IPSet]) -> IPSetDelta:
    """Only what changes. A set whose type changed is rebuilt in a temporary set and swapped."""
    update: list[str] = []
    for ipset in desired:
        old = actual.get(ipset.name)
        if old is None:
            update.append(_create(ipset))
            update += [f"add {ipset.name} {m}" for m in sorted(ipset.members)]
        elif old.kind != ipset.kind:
            update += [_create(ipset, TEMP_SET), f"flush {TEMP_SET}"]
            update += [f"add {TEMP_SET} {m}" for m in sorted(ipset.members)]
            update += [f"swap {TEMP_SET} {ipset.name}", f"destroy {TEMP_SET}"]
        else:
            update += [f"del {ipset.name} {m} -exist" for m in sorted(old.members - ipset.members)]
            update += [f"add {ipset.name} {m} -exist" for m in sorted(ipset.members - old.members)]
    wanted = {s.name for s in desired}
    destroy = [f"destroy {name}" for name in sorted(actual) if name not in wanted]
    return IPSetDelta("".join(x + "\n" for x in update), "".join(x + "\n" for x in destroy))


def render_host_text(rules: HostRules) -> str:
    """Everything of one host, in apply order: ipsets, raw, filter (used by golden tests)."""
    return (
        "# ipset restore\n" + render_ipsets(rules.ipsets)
        + "# iptables-legacy-restore --noflush\n"
        + render_table("raw", rules.raw_chains)
        + render_table("filter", rules.chains)
    )

