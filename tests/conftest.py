"""Test-suite wide settings: markers and the root-only skip.

Markers (also declared in setup.cfg [tool:pytest]):
  root  the test needs root and network namespaces; skipped when not root
  slow  the test takes more than a few seconds
"""

import atexit
import os
import shutil
import tempfile

import pytest

MARKERS = {
    "root": "needs root and network namespaces (skipped when not root)",
    "slow": "takes more than a few seconds",
}


def pytest_configure(config):
    # `testbed up` merges each lab's context into the invoking user's kubeconfig, as kind
    # does: the suite's labs go into a file of the run's own, never into ~/.kube/config.
    if "TESTBED_TEST_KUBECONFIG" not in os.environ:
        folder = tempfile.mkdtemp(prefix="testbed-tests-kube-")
        os.environ["TESTBED_TEST_KUBECONFIG"] = os.environ["KUBECONFIG"] = os.path.join(folder, "config")
        os.environ["KUBECACHEDIR"] = os.path.join(folder, "cache")  # kubectl's discovery cache: not in ~/.kube either
        atexit.register(shutil.rmtree, folder, True)
    # Declare the markers even when pytest runs without setup.cfg
    # (e.g. with -c or from another rootdir); skip those already declared.
    declared = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for name, help_text in MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", f"{name}: {help_text}")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip_root = pytest.mark.skip(reason="needs root")
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(skip_root)
