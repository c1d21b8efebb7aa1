"""`testbed trace`: one marked packet, seen at every hop, with the route, NAT and rule
that handled it on each host (issue 7). Pure parts: ``model`` (what a trace is), ``path``
(where to look, which route matches), ``decide`` (which rule decided, named back to a
policy), ``whatif`` (the same walk from rendered rules), ``render`` (text and JSON).
Impure and thin: ``capture`` (sockets, counters) and ``run`` (reads the lab, ties them).
"""
