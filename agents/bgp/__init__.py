"""The BGP side of a host: ExaBGP config rendering, its JSON API and the glue's route table.

Everything in this package so far is pure (no kernel, no subprocesses); the glue process
that wires it to ExaBGP's pipes and to pyroute2 lives beside it.
"""
