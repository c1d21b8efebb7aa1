"""How the topology loader reports bad input: every problem, one line each.

A problem is a field path plus a message. Paths are tuples (``("pods", 2, "host")``) while
the checks run, so that a loader can move them (the Python loader says where a pod was
declared), and become text (``pods[2].host``) only in the final error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PathPart = str | int
FieldPath = tuple[PathPart, ...]

TOP_LEVEL = "(top level)"
# The order of the top-level sections in messages: as they appear in a typical file.
SECTION_ORDER = ("name", "options", "hosts", "namespaces", "pods", "manifests")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class TopologyError(ValueError):
    """A topology that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


@dataclass(frozen=True)
class Problem:
    path: FieldPath
    message: str


def format_path(path: Sequence[PathPart]) -> str:
    """``("pods", 2, "labels")`` -> ``pods[2].labels``; keys that are not plain get quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or TOP_LEVEL


def _sort_key(problem: Problem) -> tuple[int, ...]:
    """Sections in file order, list entries by index; the rest keeps the order found."""
    key: list[int] = []
    for depth, part in enumerate(problem.path):
        if isinstance(part, int):
            key.append(part)
        elif depth == 0 and part in SECTION_ORDER:
            key.append(SECTION_ORDER.index(part))
        else:
            key.append(-1)
    return tuple(key)


def problem_lines(label: str, problems: Iterable[Problem]) -> list[str]:
    """One ``<file>: <field path>: <message>`` line per problem, in document order, deduplicated."""
    ordered = sorted(problems, key=_sort_key)
    lines = (f"{label}: {format_path(p.path)}: {one_line(p.message)}" for p in ordered)
    return list(dict.fromkeys(lines))


def raise_for_problems(label: str, problems: Iterable[Problem]) -> None:
    lines = problem_lines(label, problems)
    if lines:
        raise TopologyError(lines)


def one_line(text: str) -> str:
    """Join the lines of a text with spaces, so that a message stays on one line."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def show(value: object, limit: int = 60) -> str:
    """A value as it appears in a message: repr, cut short when long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
