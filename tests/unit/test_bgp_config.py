"""ExaBGP and BIRD config rendering: golden files plus the validation of inputs.

Regenerate the golden files with ``TESTBED_REGEN=1 pytest tests/unit/test_bgp_config.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agents.bgp.config import (
    Peer,
    bird_rr_config,
    exabgp_config,
    exabgp_environment,
    parse_protocol_name,
    protocol_name,
)
from testbed.addressing import AddressError

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "bgp"
GLUE = ["/opt/testbed/.venv/bin/python", "-m", "agents.bgp.glue", "--lab", "lab1"]


def assert_golden(name: str, text: str) -> None:
    """Compare with tests/data/bgp/<name>; with TESTBED_REGEN=1, write it instead."""
    path = GOLDEN / name
    if os.environ.get("TESTBED_REGEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} is missing: run with TESTBED_REGEN=1"
    assert text == path.read_text()


def test_exabgp_full_mesh_of_three_hosts() -> None:
    peers = [Peer("172.18.203.12"), Peer("172.18.203.13")]
    assert_golden("exabgp-3-hosts.conf", exabgp_config("172.18.203.11", peers, process_argv=GLUE))


def test_exabgp_config_shape() -> None:
    text = exabgp_config(
        "172.18.203.11", [Peer("172.18.203.254", "global")], hold_time=3, asn=65000, process_argv=["glue"]
    )
    assert "process glue {\n    run glue;\n    encoder json;\n}" in text
    for line in ("router-id 172.18.203.11;", "local-address 172.18.203.11;", "local-as 65000;",
                 "peer-as 65000;", "hold-time 3;", "group-updates false;", "processes [ glue ];",
                 "neighbor-changes;", "receive { parsed; update; }"):
        assert line in text
    assert text.endswith("neighbor 172.18.203.254 { inherit calico; }\n")


def test_exabgp_without_peers_has_no_neighbour() -> None:
    assert "inherit" not in exabgp_config("172.18.203.11", [], process_argv=["glue"])


@pytest.mark.parametrize(
    ("router_id", "peers", "kwargs", "message"),
    [
        ("172.18.203.11", [Peer("172.18.203.11")], {}, "router itself"),
        ("172.18.203.11", [Peer("172.18.203.12"), Peer("172.18.203.12")], {}, "twice"),
        ("172.18.203.11", [], {"hold_time": 2}, "hold_time"),
        ("172.18.203.11", [], {"asn": 0}, "asn"),
        ("nonsense", [], {}, "not an IPv4"),
    ],
)
def test_exabgp_rejects_bad_input(router_id: str, peers: list[Peer], kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        exabgp_config(router_id, peers, process_argv=["glue"], **kwargs)


@pytest.mark.parametrize("argv", [[], ["python", "a b"], ["x;y"], ["{"], ['"q"'], [""]])
def test_exabgp_rejects_unsafe_process_argv(argv: list[str]) -> None:
    with pytest.raises(ValueError, match="process_argv"):
        exabgp_config("172.18.203.11", [], process_argv=argv)


def test_peer_validates() -> None:
    with pytest.raises(AddressError):
        Peer("172.18.203.300")
    with pytest.raises(ValueError, match="kind"):
        Peer("172.18.203.12", "node")  # type: ignore[arg-type]


def test_exabgp_environment() -> None:
    env = exabgp_environment("172.18.203.11")
    assert env["exabgp_daemon_user"] == "root"
    assert env["exabgp_daemon_drop"] == "false"
    assert env["exabgp_api_cli"] == "false"
    assert env["exabgp_tcp_bind"] == "172.18.203.11"
    assert env["exabgp_log_destination"] == "stdout"
    assert all(isinstance(v, str) for v in env.values())
    with pytest.raises(AddressError):
        exabgp_environment("")


def test_bird_route_reflector() -> None:
    clients = ["172.18.203.11", "172.18.203.12", "172.18.203.13"]
    assert_golden("bird-rr.conf", bird_rr_config("172.18.203.254", clients))


def test_bird_shape() -> None:
    text = bird_rr_config("172.18.203.254", ["172.18.203.11"], hold_time=6)
    assert "export where source = RTS_BGP;" in text and "export all" not in text
    assert "rr client;" in text and "rr cluster id 172.18.203.254;" in text
    assert "hold time 6;" in text and "connect retry time 1;" in text
    assert "protocol bgp Global_172_18_203_11 from rr_client {\n  neighbor 172.18.203.11 as 64512;\n}" in text
    with pytest.raises(ValueError, match="router itself"):
        bird_rr_config("172.18.203.254", ["172.18.203.254"])


def test_protocol_names_round_trip() -> None:
    assert protocol_name("172.18.203.12", "mesh") == "Mesh_172_18_203_12"
    assert protocol_name("172.18.203.254", "global") == "Global_172_18_203_254"
    assert parse_protocol_name("Mesh_172_18_203_12") == ("172.18.203.12", "node-to-node mesh")
    assert parse_protocol_name("Global_172_18_203_254") == ("172.18.203.254", "global")
    assert parse_protocol_name("Node_10_0_0_1") == ("10.0.0.1", "node specific")
    assert parse_protocol_name("device1") is None
    assert parse_protocol_name("Mesh_") is None


def test_only_the_lower_address_dials_in_a_mesh() -> None:
    text = exabgp_config(
        "172.18.203.12",
        [Peer("172.18.203.11"), Peer("172.18.203.13"), Peer("172.18.203.254", "global")],
        process_argv=["glue"],
    )
    assert "neighbor 172.18.203.11 { inherit calico; }" in text
    assert "neighbor 172.18.203.13 { inherit calico; passive true; }" in text
    assert "neighbor 172.18.203.254 { inherit calico; }" in text
