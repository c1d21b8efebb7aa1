"""Every kind the lab knows, defined once: group, versions, names, scope, storage key,
how a manifest of it is checked, whether it has a status.

kubectl's names for a kind (``deploy``, ``deployments``, ``deployment.apps``,
``deployments.apps``, ``Deployment``) all resolve here; so do the storage prefix the
datastore keeps its objects under and the resource name kubectl prints in result lines
and errors. The CLI, the controllers and (next) the API server's discovery read this
table; nothing else spells a kind's plural or key.

Order matters: it is the order of API discovery, which is how kubectl resolves a short
name that two groups share (the core group first, as a cluster lists it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from testbed.datastore import keys


class UnknownKind(LookupError):
    """A name no kind answers to: kubectl's own line."""

    def __init__(self, name: str) -> None:
        super().__init__(f'error: the server doesn\'t have a resource type "{name}"')
        self.name = name


@dataclass(frozen=True)
class Kind:
    kind: str  # Deployment
    group: str  # apps ("" for the core group)
    version: str  # the preferred version: v1
    plural: str  # deployments
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    prefix: str = ""  # the storage prefix: keys under it are <ns>/<name> or <name>
    versions: tuple[str, ...] = ()  # older apiVersions a manifest may still use
    parser: str | None = None  # "module:function" that checks a manifest (None: stored as given)
    status: bool = False  # has a status that a controller or kubelet writes
    stored_only: bool = False  # kept and listed, with no meaning to the lab's networking

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_versions(self) -> tuple[str, ...]:
        """Every apiVersion a manifest of this kind may carry."""
        return (self.api_version, *(f"{self.group}/{v}" if self.group else v for v in self.versions))

    @property
    def resource(self) -> str:
        """The plural as kubectl prints it in errors: ``deployments.apps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        """One object as kubectl names it in result lines and ``-o name``: ``deployment.apps``."""
        name = self.kind.lower()
        return f"{name}.{self.group}" if self.group else name

    @property
    def names(self) -> tuple[str, ...]:
        """Every name kubectl accepts for the kind (lower case)."""
        plain = (self.kind.lower(), self.plural, *self.short_names)
        qualified = (f"{self.kind.lower()}.{self.group}", f"{self.plural}.{self.group}") if self.group else ()
        return (*plain, *qualified)

    def scope(self, namespace: str | None) -> str:
        """The prefix of one namespace's objects (all of them when ``namespace`` is None)."""
        if not self.namespaced:
            return self.prefix
        return f"{self.prefix}{namespace}/" if namespace else self.prefix

    def key(self, namespace: str | None, name: str) -> str:
        """Where one object lives."""
        if self.namespaced:
            return f"{self.prefix}{namespace or 'default'}/{name}"
        if self.stored_only:
            return f"{self.prefix}_cluster/{name}"
        return f"{self.prefix}{name}"

    def parse(self, obj: Mapping[str, Any], default_namespace: str) -> object:
        """The manifest checked (every problem at once, kubectl's wording) and defaulted."""
        if self.parser is None:
            from testbed.kube.objects import parse_stored  # noqa: PLC0415 - objects imports this module

            return parse_stored(obj, default_namespace)
        module, _, function = self.parser.partition(":")
        parse: Callable[[Mapping[str, Any], str], object] = getattr(importlib.import_module(module), function)
        return parse(obj, default_namespace)


def _other(plural: str, group: str) -> str:
    """Where the lab keeps kinds it only stores: one folder per resource."""
    return f"{keys.OTHER_OBJECTS}{plural}.{group}/" if group else f"{keys.OTHER_OBJECTS}{plural}/"


def _stored(kind: str, group: str, version: str, plural: str, short: tuple[str, ...] = (), namespaced: bool = True,
            versions: tuple[str, ...] = ()) -> Kind:  # fmt: skip
    return Kind(kind, group, version, plural, short, namespaced, _other(plural, group), versions, stored_only=True)


WORKLOAD_PARSER = "testbed.kube.workloads:parse_workload"

KINDS: tuple[Kind, ...] = (
    # core
    Kind("Pod", "", "v1", "pods", ("po",), prefix=keys.PODS, parser=WORKLOAD_PARSER, status=True),
    Kind("Service", "", "v1", "services", ("svc",), prefix=keys.SERVICES,
         parser="testbed.kube.services:parse_service", status=True),
    Kind("Namespace", "", "v1", "namespaces", ("ns",), namespaced=False, prefix=keys.K8S_NAMESPACES,
         parser="testbed.kube.objects:parse_namespace_manifest", status=True),
    Kind("Node", "", "v1", "nodes", ("no",), namespaced=False, prefix=keys.K8S_NODES, status=True),
    Kind("Endpoints", "", "v1", "endpoints", ("ep",), prefix=keys.ENDPOINTS),
    Kind("ReplicationController", "", "v1", "replicationcontrollers", ("rc",), prefix=keys.CONTROLLERS,
         parser=WORKLOAD_PARSER, status=True),
    _stored("ServiceAccount", "", "v1", "serviceaccounts", ("sa",)),
    _stored("ConfigMap", "", "v1", "configmaps", ("cm",)),
    _stored("Secret", "", "v1", "secrets"),
    _stored("Event", "", "v1", "events", ("ev",)),  # listed (describe, `get events`); nothing writes them yet
    _stored("LimitRange", "", "v1", "limitranges", ("limits",)),
    _stored("ResourceQuota", "", "v1", "resourcequotas", ("quota",)),
    # apps
    Kind("Deployment", "apps", "v1", "deployments", ("deploy",), prefix=keys.DEPLOYMENTS,
         versions=("v1beta1", "v1beta2"), parser=WORKLOAD_PARSER, status=True),
    Kind("ReplicaSet", "apps", "v1", "replicasets", ("rs",), prefix=keys.REPLICASETS,
         versions=("v1beta2",), parser=WORKLOAD_PARSER, status=True),
    Kind("DaemonSet", "apps", "v1", "daemonsets", ("ds",), prefix=keys.DAEMONSETS, versions=("v1beta2",),
         parser=WORKLOAD_PARSER, status=True),
    Kind("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", prefix=keys.ENDPOINT_SLICES),
    Kind("Lease", "coordination.k8s.io", "v1", "leases", prefix=keys.LEASES),
    # networking
    Kind("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", ("netpol",), prefix=keys.NETWORK_POLICIES,
         parser="testbed.kube.policy:parse_network_policy"),
    # rbac, policy and the lab's own admission kinds: stored only
    _stored("ClusterRole", "rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False,
            versions=("v1beta1", "v1alpha1")),
    _stored("ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", "clusterrolebindings", namespaced=False,
            versions=("v1beta1", "v1alpha1")),
    _stored("Role", "rbac.authorization.k8s.io", "v1", "roles", versions=("v1beta1", "v1alpha1")),
    _stored("RoleBinding", "rbac.authorization.k8s.io", "v1", "rolebindings", versions=("v1beta1", "v1alpha1")),
    _stored("PodSecurityPolicy", "policy", "v1beta1", "podsecuritypolicies", ("psp",), namespaced=False),
    _stored("CustomResourceDefinition", "apiextensions.k8s.io", "v1", "customresourcedefinitions", ("crd", "crds"),
            namespaced=False),
    _stored("ClusterImagePolicy", "securityenforcement.admission.cloud.ibm.com", "v1beta1", "clusterimagepolicies",
            namespaced=False),
    _stored("ImagePolicy", "securityenforcement.admission.cloud.ibm.com", "v1beta1", "imagepolicies"),
)  # fmt: skip

# Versions older manifests still carry for kinds that moved group (extensions/v1beta1).
LEGACY_VERSIONS: dict[str, tuple[str, ...]] = {
    "Deployment": ("extensions/v1beta1",),
    "ReplicaSet": ("extensions/v1beta1",),
}

BY_KIND: dict[str, Kind] = {k.kind: k for k in KINDS}
_BY_NAME: dict[str, Kind] = {}
for _k in KINDS:  # the first kind to claim a name keeps it (discovery order)
    for _name in _k.names:
        _BY_NAME.setdefault(_name, _k)


def resolve(name: str) -> Kind:
    """The kind a kubectl resource name means (``po``, ``pods``, ``deployment.apps``,
    ``Deployment``); UnknownKind with kubectl's line if none."""
    found = _BY_NAME.get(name.lower())
    if found is None:
        raise UnknownKind(name)
    return found


def of_kind(kind: str) -> Kind | None:
    """The kind a manifest's ``kind:`` names, or None."""
    return BY_KIND.get(kind)


def accepts(kind: Kind, api_version: object) -> bool:
    """Does a manifest's apiVersion belong to the kind?"""
    return api_version in kind.api_versions or api_version in LEGACY_VERSIONS.get(kind.kind, ())


def namespaced_kinds() -> tuple[Kind, ...]:
    """What a namespace holds (what deleting it removes), in discovery order."""
    return tuple(k for k in KINDS if k.namespaced)
