"""The API server's discovery documents, from the registry. Pure.

kubectl and the Python client find every kind through these, before any request for an
object: legacy discovery (``/api``, ``/apis``, then each group-version's
``APIResourceList``) is what every client version understands. A client that asks for
aggregated discovery reads the response's Content-Type and falls back to legacy when it
is plain JSON [client-go discovery/discovery_client.go ``ContentTypeIsGVK``], so the server
serves only these. Group order is resolution order: core first, then the groups in
registry order, as a cluster lists them [client-go restmapper/discovery.go].
Short names and the ``all`` category come only from here [client-go restmapper/shortcut.go].
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from testbed.kube import registry

Value = dict[str, Any]

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
# `kubectl get all` expands this category [k/k pkg/registry/*/storage: ShortNames, Categories].
ALL_CATEGORY = frozenset({"pods", "services", "replicationcontrollers", "daemonsets", "deployments", "replicasets"})
DEFAULT_MINOR = 33  # the server's minor version when the client does not say its own
_USER_AGENT_MINOR = re.compile(r"/v1\.(\d+)\.")


def groups(kinds: Sequence[registry.Kind] = registry.KINDS) -> list[str]:
    """Every API group but the core one, in registry order (first appearance)."""
    return list(dict.fromkeys(k.group for k in kinds if k.group))


def versions_of(group: str, kinds: Sequence[registry.Kind] = registry.KINDS) -> list[str]:
    """The versions served for ``group`` (preferred first): the kinds' preferred versions."""
    return list(dict.fromkeys(k.version for k in kinds if k.group == group))


def api_versions() -> Value:
    """``GET /api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group_list(kinds: Sequence[registry.Kind] = registry.KINDS) -> Value:
    """``GET /apis``: every group with its versions, preferred first (and the authorization
    group, which stores nothing)."""
    listed = [_group(g, kinds) for g in groups(kinds)]
    version = {"groupVersion": f"{AUTHORIZATION_GROUP}/v1", "version": "v1"}
    listed.append({"name": AUTHORIZATION_GROUP, "versions": [version], "preferredVersion": version})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": listed}


def api_group(group: str, kinds: Sequence[registry.Kind] = registry.KINDS) -> Value | None:
    """``GET /apis/<group>``, or None for a group not served."""
    if group not in groups(kinds):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, kinds)}


def _group(group: str, kinds: Sequence[registry.Kind]) -> Value:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions_of(group, kinds)]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def resource_list(
    group: str, version: str, subresources: Mapping[str, Sequence[str]],
    kinds: Sequence[registry.Kind] = registry.KINDS,
) -> Value | None:
    """``GET /api/v1`` or ``/apis/<group>/<version>``: the kinds served there and their
    subresources (``subresources``: plural -> the ones the server serves, e.g. ``status``);
    None for a group-version not served."""
    served = [k for k in kinds if k.group == group and k.version == version]
    if not served:
        return None
    resources: list[Value] = []
    for kind in served:
        entry: Value = {
            "name": kind.plural,
            "singularName": kind.kind.lower(),
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": list(VERBS),
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.plural in ALL_CATEGORY:
            entry["categories"] = ["all"]
        resources.append(entry)
        for sub in subresources.get(kind.plural, ()):
            resources.append(_subresource(kind, sub))
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _subresource(kind: registry.Kind, sub: str) -> Value:
    """A subresource's discovery entry; ``scale`` names its own kind, autoscaling/v1 Scale, which
    is how `kubectl scale` finds it [client-go scale/util.go]."""
    entry: Value = {"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": kind.namespaced,
                    "kind": kind.kind, "verbs": ["get", "patch", "update"]}  # fmt: skip
    if sub == "scale":
        entry.update({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    elif sub == "log":
        entry.update({"kind": "Pod", "verbs": ["get"]})
    elif sub in ("exec", "attach", "portforward"):
        options = {"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}
        entry.update({"kind": options[sub], "verbs": ["create", "get"]})
    return entry


AUTHORIZATION_GROUP = "authorization.k8s.io"


def authorization_resources() -> Value:
    """``/apis/authorization.k8s.io/v1``: SelfSubjectAccessReview, for `kubectl auth can-i`."""
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{AUTHORIZATION_GROUP}/v1", "resources": [
        {"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": False,
         "kind": "SelfSubjectAccessReview", "verbs": ["create"]}]}  # fmt: skip


def client_minor(user_agent: str) -> int:
    """The minor version a client names in its User-Agent (``kubectl/v1.32.4 (linux/amd64)``)."""
    found = _USER_AGENT_MINOR.search(user_agent or "")
    return int(found.group(1)) if found else DEFAULT_MINOR


def version_info(user_agent: str, testbed_version: str) -> Value:
    """``GET /version``. gitVersion must be semver, or `kubectl version` fails ("server
    version error") [kubectl pkg/cmd/version]; it echoes the client's minor version so that
    kubectl's version-skew warning (a gap of more than one minor) stays quiet: a lab is
    whatever Kubernetes its client speaks, within what the server serves."""
    minor = client_minor(user_agent)
    return {
        "major": "1",
        "minor": str(minor),
        "gitVersion": f"v1.{minor}.0+testbed.{testbed_version}",
        "gitCommit": "testbed",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "none (Python)",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }
