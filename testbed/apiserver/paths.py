"""Which object a request's path names. Pure.

The Kubernetes REST paths [k8s.io/apiserver pkg/endpoints/request/requestinfo.go]:

    /api/v1/<plural>[/<name>[/<subresource>]]                      cluster-scoped, or all namespaces
    /api/v1/namespaces/<ns>/<plural>[/<name>[/<subresource>]]      namespaced
    /apis/<group>/<version>/...                                    the same under a group

``/api/v1/namespaces/<name>/<x>`` is the namespace's subresource ``x`` (``status``,
``finalize``) unless ``x`` is a namespaced kind's plural.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from testbed.kube import registry


@dataclass(frozen=True)
class Target:
    """A resource path: a collection (``name`` None) or one object, maybe a subresource."""

    kind: registry.Kind
    namespace: str | None  # None: cluster-scoped, or every namespace of a namespaced kind
    name: str | None = None
    subresource: str | None = None


class NoRoute(LookupError):
    """A path that names no served resource (the server answers 404)."""


def served_kind(group: str, version: str, plural: str, kinds: Sequence[registry.Kind] = registry.KINDS,
                ) -> registry.Kind | None:  # fmt: skip
    """The kind served at ``group/version`` under ``plural`` (its preferred version only)."""
    for kind in kinds:
        if kind.group == group and kind.version == version and kind.plural == plural:
            return kind
    return None


def group_version(parts: list[str]) -> tuple[str, str, list[str]] | None:
    """(group, version, the rest) of a split path, or None for one outside the API."""
    if len(parts) >= 2 and parts[0] == "api":
        return "", parts[1], parts[2:]
    if len(parts) >= 3 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def resolve(path: str, kinds: Sequence[registry.Kind] = registry.KINDS) -> Target:
    """The target of a resource path among ``kinds`` (the built-in ones and the CRDs');
    NoRoute if it names none."""
    parts = [p for p in path.split("/") if p]
    found = group_version(parts)
    if found is None or not found[2]:
        raise NoRoute(path)
    group, version, rest = found
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespaced = served_kind(group, version, rest[2], kinds)
        if namespaced is not None and namespaced.namespaced:
            namespace, rest = rest[1], rest[2:]
        elif group:  # under a group, /namespaces/<ns>/<x> can only be a namespaced kind
            raise NoRoute(path)
        # else: the core group's namespace object and a subresource of it (/namespaces/x/finalize)
    kind = served_kind(group, version, rest[0], kinds)
    if kind is None or len(rest) > 3:
        raise NoRoute(path)
    if kind.namespaced is False and namespace is not None:
        raise NoRoute(path)
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else None
    return Target(kind, namespace, name, subresource)
