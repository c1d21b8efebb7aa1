"""The kubectl subset's core: manifests (dicts) in, model objects out, kubectl-like errors.

Reading YAML files and talking to the datastore belong to the kubectl layer above.
"""

from testbed.kube.errors import ManifestError
from testbed.kube.policy import network_policy_to_dict, parse_network_policy
from testbed.kube.selectors import label_selector_to_dict, parse_label_selector

__all__ = [
    "ManifestError",
    "label_selector_to_dict",
    "network_policy_to_dict",
    "parse_label_selector",
    "parse_network_policy",
]
