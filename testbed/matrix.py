"""Real reachability between pods, measured from inside their namespaces.

One probe process per source pod (in parallel) tries every destination at once with a
short timeout; the result is a truth table whose rows are sources, as policy-assistant
prints it: '.' allowed, 'X' denied.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from testbed.netns.processes import netns_exec_argv

PROBE_TIMEOUT = 1.0  # seconds per connection attempt


@dataclass(frozen=True)
class PodRef:
    key: str  # namespace/name
    ip: str
    netns: str


@dataclass(frozen=True)
class Matrix:
    port: int
    protocol: str
    pods: tuple[str, ...]
    cells: tuple[tuple[bool, ...], ...]  # cells[i][j]: pods[i] reached pods[j]

    def to_json(self) -> dict[str, object]:
        return {"port": self.port, "protocol": self.protocol, "pods": list(self.pods), "matrix": [list(r) for r in self.cells]}


def probe_from(source: PodRef, targets: Sequence[PodRef], port: int, protocol: str) -> tuple[bool, ...]:
    argv = [
        sys.executable, "-m", "agents.apps.connect", str(port),
        "--protocol", protocol, "--timeout", str(PROBE_TIMEOUT),
        "--many", ",".join(t.ip for t in targets),
    ]  # fmt: skip
    out = subprocess.run(
        netns_exec_argv(source.netns, argv), capture_output=True, text=True, timeout=30, check=True
    ).stdout
    answers = json.loads(out)
    return tuple(answers.get(t.ip) is not None for t in targets)


def measure_sctp(pods: Sequence[PodRef], port: int, listen_seconds: float = 60.0) -> Matrix:
    """SCTP: a listener in every pod counts the INITs that arrive; every pod sends one INIT
    to every other pod. A pod reaching itself never leaves its netns: counted as reached."""
    probe = [sys.executable, "-m", "agents.apps.sctp_probe"]
    listeners = [
        subprocess.Popen(
            netns_exec_argv(p.netns, [*probe, "listen", "--port", str(port), "--seconds", str(listen_seconds)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for p in pods
    ]  # fmt: skip
    try:
        for listener in listeners:  # each says "listening" once its socket is bound
            if listener.stdout is None or listener.stdout.readline().strip() != "listening":
                raise RuntimeError("an SCTP listener did not start")

        def send(src: PodRef) -> None:
            targets = ",".join(p.ip for p in pods if p.ip != src.ip)
            argv = [*probe, "send", "--src", src.ip, "--port", str(port), "--to", targets]
            subprocess.run(netns_exec_argv(src.netns, argv), check=True, timeout=30, capture_output=True)

        with ThreadPoolExecutor(max_workers=min(16, max(1, len(pods)))) as pool:
            list(pool.map(send, pods))
        # Every INIT has been sent: closing stdin tells each listener to report.
        seen = [json.loads(listener.communicate(input="", timeout=30)[0] or "{}") for listener in listeners]
    finally:
        for listener in listeners:
            if listener.poll() is None:
                listener.kill()
                listener.wait()
    rows = tuple(tuple(src.ip == dst.ip or src.ip in seen[j] for j, dst in enumerate(pods)) for src in pods)
    return Matrix(port, "sctp", tuple(p.key for p in pods), rows)


def measure(pods: Sequence[PodRef], port: int, protocol: str) -> Matrix:
    if protocol == "sctp":
        return measure_sctp(pods, port)
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(pods)))) as pool:
        rows = list(pool.map(lambda src: probe_from(src, pods, port, protocol), pods))
    return Matrix(port, protocol, tuple(p.key for p in pods), tuple(rows))


def render(matrix: Matrix, expected: Matrix | None = None) -> str:
    """The truth table; with ``expected``, wrong cells are marked and counted."""
    names = list(matrix.pods)
    width = max((len(n) for n in names), default=1)
    header = " " * (width + 1) + " ".join(f"{i:>2}" for i in range(len(names)))
    lines = [f"{matrix.protocol.upper()}/{matrix.port}  ('.' allowed, 'X' denied, rows are sources)", header]
    wrong = 0
    for i, name in enumerate(names):
        cells = []
        for j in range(len(names)):
            mark = "." if matrix.cells[i][j] else "X"
            if expected is not None and expected.cells[i][j] != matrix.cells[i][j]:
                mark, wrong = mark + "!", wrong + 1
            cells.append(f"{mark:>2}")
        lines.append(f"{name:<{width}} " + " ".join(cells))
    lines += [f"{i:>2} = {name}" for i, name in enumerate(names)]
    if expected is not None:
        lines.append(f"{wrong} wrong cells (marked !)")
    return "\n".join(lines)
