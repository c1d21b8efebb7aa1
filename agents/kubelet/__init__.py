"""The kubelet and Calico's CNI plugin of one host, as threads of its host agent.

Not a process of its own: each host's Felix agent (``agents/felix/agent.py``) starts it
(``service.start``), so a host costs one Python interpreter, not two. Shaped like Felix:
pure parts (``podspec``: a stored Pod read; ``desired``: desired against actual per pod
key; ``lifecycle`` and ``backoff``: a container's life and restarts; ``probes``: probe
schedule and thresholds; ``status``: the pod status; ``local``: what it holds, and its
file) apart from thin appliers (``cni``: IPAM and plumbing; ``containers``: programs;
``prober``: probes; ``node``: the Node and its Lease; ``kubelet``: the loop and the
store writes). See docs/control-plane.md, "Pod lifecycle", point 3.
"""
