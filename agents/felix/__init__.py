"""The Felix-like policy agent: one per host netns; Kubernetes NetworkPolicy -> iptables + ipsets."""
