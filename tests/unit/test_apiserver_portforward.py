"""port-forward's frames and ports (pure)."""

from __future__ import annotations

import pytest

from testbed.apiserver import portforward, status


def test_a_channels_first_frame_is_its_number_then_the_port_little_endian() -> None:
    assert portforward.initial_frame(0, 80) == bytes([0, 80, 0])
    assert portforward.initial_frame(3, 8080) == bytes([3, 0x90, 0x1F])


def test_ports_are_numbers_in_range() -> None:
    assert portforward.parse_ports("80,8080") == [80, 8080]
    with pytest.raises(status.ApiError, match="invalid port"):
        portforward.parse_ports("80,http")
    with pytest.raises(status.ApiError):
        portforward.parse_ports("70000")
