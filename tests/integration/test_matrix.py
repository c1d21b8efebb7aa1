"""`testbed matrix` on the upstream policy model: real connections, in parallel, per pod."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.labs import running_lab, testbed

pytestmark = pytest.mark.root

PODS = [f"{ns}/{pod}" for ns in "xyz" for pod in "abc"]


@pytest.fixture
def netpol_model() -> Iterator[str]:
    with running_lab("netpol-model", "itnpm") as lab:
        yield lab


def matrix(lab: str, *args: str) -> dict:
    return json.loads(testbed("matrix", "--lab", lab, *args, "-o", "json").stdout)


def test_without_policy_every_pod_reaches_every_pod(netpol_model: str) -> None:
    for port, protocol in ((80, "tcp"), (81, "udp")):
        result = matrix(netpol_model, "--port", str(port), "--protocol", protocol)
        assert result["pods"] == PODS
        assert result["matrix"] == [[True] * 9 for _ in range(9)], (port, protocol)


def test_a_port_nobody_serves_is_denied_everywhere_and_namespaces_filter(netpol_model: str) -> None:
    result = matrix(netpol_model, "--port", "82", "-n", "x", "-n", "z")
    assert result["pods"] == [p for p in PODS if p[0] in "xz"]
    assert result["matrix"] == [[False] * 6 for _ in range(6)]
    table = testbed("matrix", "--lab", netpol_model, "--port", "82", "-n", "y").stdout
    assert "TCP/82" in table and "y/a  X  X  X" in table
