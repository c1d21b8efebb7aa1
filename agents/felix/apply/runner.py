"""The one seam through which the applier runs commands: a `Runner`.

`SubprocessRunner` runs real commands (argv lists, no shell, check, timeout); an optional
argv prefix such as ``("ip", "netns", "exec", NS)`` runs them in another netns, which
only tests need (the agent itself already lives in its host netns). `FakeRunner` scripts
outputs and records every call, for unit tests that need no root.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class CommandError(RuntimeError):
    """A command exited non-zero (or timed out); carries its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{' '.join(self.argv)} exited {returncode}: {first_lines(stderr)}")


def first_lines(text: str, n: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[:n]) if lines else "(no stderr)"


class Runner(Protocol):
    def run(self, argv: Sequence[str], input: str | None = None) -> str:
        """Run ``argv`` with ``input`` on stdin; return stdout or raise `CommandError`."""
        ...


@dataclass(frozen=True)
class SubprocessRunner:
    prefix: tuple[str, ...] = ()
    timeout: float = 30.0

    def run(self, argv: Sequence[str], input: str | None = None) -> str:
        full = [*self.prefix, *argv]
        try:
            proc = subprocess.run(
                full, input=input, capture_output=True, text=True, timeout=self.timeout, check=True
            )
        except subprocess.CalledProcessError as exc:
            raise CommandError(full, exc.returncode, exc.stderr or "") from None
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise CommandError(full, None, f"timed out after {self.timeout}s {stderr}") from None
        return proc.stdout


@dataclass(frozen=True)
class Call:
    argv: tuple[str, ...]
    input: str | None


Response = str | CommandError | Callable[[Call], str]


@dataclass
class FakeRunner:
    """Answers by argv: ``outputs[argv]`` is the stdout, a `CommandError` to raise, or a
    function of the call. Unknown commands print nothing. ``calls`` records everything."""

    outputs: dict[tuple[str, ...], Response] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def run(self, argv: Sequence[str], input: str | None = None) -> str:
        call = Call(tuple(argv), input)
        self.calls.append(call)
        response = self.outputs.get(call.argv, "")
        if isinstance(response, CommandError):
            raise response
        if callable(response):
            return response(call)
        return response

    def inputs(self, program: str) -> list[str]:
        """The stdin of each call to ``program``, in order."""
        return [c.input or "" for c in self.calls if c.argv and c.argv[0] == program]

    def set_outputs(self, outputs: Mapping[tuple[str, ...], Response]) -> None:
        self.outputs.update(outputs)
