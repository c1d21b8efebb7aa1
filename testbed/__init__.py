"""testbed: Calico networking emulated on one Linux machine with network namespaces."""

__version__ = "0.1.0"
