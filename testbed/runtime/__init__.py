"""Topology -> live lab: plan, build, tear down, state folder."""
