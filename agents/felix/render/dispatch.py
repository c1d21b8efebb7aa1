"""Dispatch chains: interface -> endpoint chain, by goto; unknown ``cali*`` interfaces dropped.

Felix splits long dispatch lists into a prefix tree of child chains
(``cali-from-wl-dispatch-a``); we keep one flat chain per direction, which matches the same
packets (the child chains only shorten the linear scan).
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.felix.render.names import FROM_WL_DISPATCH, TO_WL_DISPATCH, endpoint_chain
from agents.felix.render.rules import Chain, Rule


def render_dispatch_chains(interfaces: Sequence[str]) -> tuple[Chain, Chain]:
    ordered = sorted(set(interfaces))
    from_wl = [Rule(f"-i {i}", f"-g {endpoint_chain(i, 'Egress')}") for i in ordered]
    to_wl = [Rule(f"-o {i}", f"-g {endpoint_chain(i, 'Ingress')}") for i in ordered]
    drop = Rule("", "-j DROP", "Unknown interface")
    return (
        Chain(FROM_WL_DISPATCH, tuple(from_wl + [drop])),
        Chain(TO_WL_DISPATCH, tuple(to_wl + [drop])),
    )
