"""A container with stdin: its placeholder, and the exit code an attach leaves for the kubelet."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.kubelet import containers
from agents.kubelet.podspec import parse_pod


def test_a_container_asking_for_stdin_is_marked_so() -> None:
    value = {"metadata": {"name": "t", "namespace": "demo", "uid": "u"}, "spec": {"nodeName": "host1", "containers": [
        {"name": "t", "image": "busybox", "stdin": True, "tty": True, "args": ["sh"]}]}}  # fmt: skip
    pod = parse_pod("/registry/pods/demo/t", value)
    assert pod.containers[0].stdin and pod.containers[0].command == ("sh",)


def test_the_exit_code_an_attach_left_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_STATE_ROOT", str(tmp_path))
    assert containers.attach_exit("lab", "demo", "t", "t") is None
    marker = containers.attached_file("lab", "demo", "t", "t")
    marker.parent.mkdir(parents=True)
    marker.write_text("3\n")
    assert containers.attach_exit("lab", "demo", "t", "t") == 3
    assert containers.attach_exit("lab", "demo", "t", "t") is None  # taken
