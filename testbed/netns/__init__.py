"""Kernel adapters: the only code that touches namespaces, links, routes and processes."""
