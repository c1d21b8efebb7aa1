"""Helpers for root integration tests: run the CLI as a user would, snapshot the root netns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NETNS_DIR = Path("/run/netns")


def testbed(*args: str, input: str | None = None, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `testbed ARGS...` (this checkout's code) and return the finished process.
    TESTBED_LAB from the caller's shell is dropped: tests name their labs."""
    env = {k: v for k, v in os.environ.items() if k != "TESTBED_LAB"}
    proc = subprocess.run(
        [sys.executable, "-m", "testbed", *args],
        cwd=REPO,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "PYTHONPATH": str(REPO)},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"testbed {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def unique(prefix: str) -> str:
    """A lab name no other test run uses at the same time."""
    return f"{prefix}-{os.getpid() % 100000}"


@contextmanager
def running_lab(topology: str, prefix: str, *args: str) -> Iterator[str]:
    """A lab up for the duration; afterwards nothing of it, nor any change to the root
    namespace, may remain."""
    before = RootSnapshot.take()
    lab = unique(prefix)
    testbed("up", topology, "--name", lab, *args)
    try:
        yield lab
    finally:
        testbed("down", lab, check=False)
    assert lab_netns(lab) == []
    assert RootSnapshot.take() == before


def status_json(lab: str) -> dict:
    return json.loads(testbed("status", lab, "-o", "json").stdout)


def lab_netns(lab: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(f"{lab}."))
    except FileNotFoundError:
        return []


def in_netns(netns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=timeout)


def _run(*argv: str) -> str:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        return ""


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


@dataclass(frozen=True)
class RootSnapshot:
    """What a lab must never change in the root network namespace."""

    links: str
    addresses: str
    routes: str
    iptables_legacy: str
    iptables_nft: str
    ipsets: str

    @classmethod
    def take(cls) -> RootSnapshot:
        links = re.sub(r"\s+link/\S+ \S+ brd \S+", "", _run("ip", "-o", "link", "show"))
        # Counters and statistics change on their own; keep names and flags.
        links = "\n".join(sorted(re.sub(r"qlen \d+", "", line) for line in links.splitlines()))
        return cls(
            links=links,
            addresses=_run("ip", "-o", "addr", "show"),
            routes=_run("ip", "route", "show", "table", "all"),
            iptables_legacy=_without_comments(_run("iptables-legacy-save")),
            iptables_nft=_without_comments(_run("iptables-nft-save")),
            ipsets=_run("ipset", "list", "-n"),
        )


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Poll ``check`` until it returns something true (returned), failing the test with
    ``what`` after ``timeout`` seconds."""
    import pytest  # noqa: PLC0415 - labs.py is imported by non-test helpers too

    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)
    return result
