"""Programs the built-in images run inside pods (servers, probes)."""
