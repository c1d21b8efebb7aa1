"""exec's closing Status and frames (pure)."""

from __future__ import annotations

from testbed.apiserver import execute


def test_the_closing_status_carries_the_exit_code_as_its_first_cause() -> None:
    assert execute.exit_status(0) == {"metadata": {}, "status": "Success"}
    failed = execute.exit_status(3)
    assert failed["status"] == "Failure" and failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"][0] == {"reason": "ExitCode", "message": "3"}


def test_a_frame_is_the_channel_byte_then_the_payload() -> None:
    assert execute.frame(execute.STDERR, b"x") == b"\x02x"
    assert execute.PROTOCOLS[0] == "v5.channel.k8s.io"  # kubectl 1.30+ asks for v5 only
