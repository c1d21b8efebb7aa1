"""The vocabulary every renderer and applier shares: a rule, a chain, an ipset. Data only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One iptables rule: ``match`` and ``action`` as iptables-restore text, e.g.
    match "-m set --match-set cali40s:abc src -p tcp --dport 80", action "-j ACCEPT"."""

    match: str
    action: str
    comment: str = ""  # a human comment; the applier adds Felix's "cali:<hash>" id beside it


@dataclass(frozen=True)
class Chain:
    name: str  # <= 28 characters (naming.check_length("chain", ...))
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class IPSet:
    name: str  # <= 31 characters
    kind: str  # "hash:net" or "hash:ip,port"
    members: frozenset[str]
