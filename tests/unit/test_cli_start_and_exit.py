"""What the CLI costs around each command: kubectl's machinery is loaded only for kubectl,
and the fast exit keeps every byte of output and the exit status. No root, no labs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from testbed.cli.main import exit_status

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "testbed", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_exit_status_is_what_sys_exit_gives() -> None:
    assert exit_status(None) == 0
    assert exit_status(0) == 0
    assert exit_status(2) == 2


def test_a_message_as_status_is_printed_and_fails(capsys) -> None:  # type: ignore[no-untyped-def]
    assert exit_status("bad things") == 1
    assert capsys.readouterr().err == "bad things\n"


def test_kubectl_is_imported_only_when_used() -> None:
    probe = "import sys, testbed.cli.main; print('testbed.cli.kubectl' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"
    help_text = run("kubectl", "--help")
    assert help_text.returncode == 0 and "Usage: testbed kubectl" in help_text.stdout
    assert "kubectl" in run("--help").stdout


def test_output_and_status_survive_the_fast_exit() -> None:
    listed = run("topologies", "-o", "json")
    assert listed.returncode == 0
    assert "two-hosts" in json.dumps(json.loads(listed.stdout))  # all of it, flushed
    unknown = run("--no-such-option")
    assert unknown.returncode == 2 and "No such option" in unknown.stderr
    refused = run("down", "Not_A_Lab")  # refused before it needs root or a lab
    assert refused.returncode == 1 and refused.stderr.startswith("testbed: error:")
