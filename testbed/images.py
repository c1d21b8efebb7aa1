"""The built-in "images": what a pod runs when its topology or manifest names an image.

No containers: an image is a program started inside the pod's netns. The Task 1 issue
adds nginx and a busybox shell; today busybox pods idle (their netns is the pod) and
agnhost pods serve TCP and UDP 80 and 81, as the upstream NetworkPolicy tests expect.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Image:
    name: str
    description: str
    default: Callable[[str, str], tuple[str, ...]]  # (namespace, pod) -> argv; () = nothing runs


def _idle(_namespace: str, _pod: str) -> tuple[str, ...]:
    return ()


def _agnhost(namespace: str, pod: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "agents.apps.serve", "--tcp", "80,81", "--udp", "80,81", "--name", f"{namespace}/{pod}")


IMAGES = {
    image.name: image
    for image in (
        Image("busybox", "no program yet: the pod's netns alone (a shell comes with the Task 1 work)", _idle),
        Image("agnhost", "answers on TCP and UDP ports 80 and 81 with <namespace>/<pod>", _agnhost),
    )
}


class UnknownImage(ValueError):
    pass


def base_name(image: str) -> str:
    """`docker.io/library/busybox:1.36` -> `busybox`."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]


def lookup(image: str) -> Image:
    found = IMAGES.get(base_name(image))
    if found is None:
        raise UnknownImage(f"unknown image {image!r} (known: {', '.join(sorted(IMAGES))})")
    return found


def argv_for(image: str, command: tuple[str, ...], namespace: str, pod: str) -> tuple[str, ...]:
    """What runs in the pod: its own command, else the image's default."""
    return command or lookup(image).default(namespace, pod)
