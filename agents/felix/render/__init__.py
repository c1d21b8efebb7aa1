"""Pure renderers: (endpoints, namespaces, policies) of one host -> desired chains and ipsets."""
