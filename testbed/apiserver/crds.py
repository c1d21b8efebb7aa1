"""CustomResourceDefinitions: a user's CRD makes its kind servable, as the API server's
apiextensions part does [k8s.io/apiextensions-apiserver].

A CRD (apiextensions.k8s.io/v1, stored like the lab's other stored-only kinds) names a
group, its versions (the storage one is served), the kind with its plural, singular, short
names and categories, and Namespaced or Cluster scope. Its objects are kept as the other
stored-only kinds are (``/registry/other/<plural>.<group>/<ns or _cluster>/<name>``),
so deleting a namespace removes them with the rest. The objects are stored as given, with
the API server's fields (uid, creationTimestamp, generation); the CRD's schema is not
applied. A CRD whose kind the lab already serves (ClusterImagePolicy, say) adds nothing:
the built-in kind answers. Pure but for ``CrdCache``, which follows the stored CRDs.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from testbed.datastore import keys
from testbed.datastore.base import Datastore, DatastoreError, WatchEvent
from testbed.kube import registry

Value = dict[str, Any]
CRD = registry.BY_KIND["CustomResourceDefinition"]


def storage_version(spec: Mapping[str, Any]) -> str | None:
    """The version a CRD stores (and this server serves): the one marked storage, else the
    first served."""
    versions = [v for v in spec.get("versions") or [] if isinstance(v, Mapping) and v.get("name")]
    stored = [v for v in versions if v.get("storage")] or [v for v in versions if v.get("served", True)]
    return str(stored[0]["name"]) if stored else (str(spec["version"]) if spec.get("version") else None)


def kind_of(crd: Mapping[str, Any]) -> registry.Kind | None:
    """The kind a CRD defines, or None when it is incomplete (pure)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, kind, plural = spec.get("group"), names.get("kind"), names.get("plural")
    version = storage_version(spec)
    if not (isinstance(group, str) and group and isinstance(kind, str) and kind and isinstance(plural, str) and plural
            and version):  # fmt: skip
        return None
    short = tuple(str(n) for n in names.get("shortNames") or [])
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    return registry.Kind(kind, group, version, plural, short, namespaced, f"{keys.OTHER_OBJECTS}{plural}.{group}/",
                         stored_only=True)  # fmt: skip


def served_kinds(crds: Iterable[Mapping[str, Any]]) -> tuple[registry.Kind, ...]:
    """The built-in kinds, then each CRD's kind that no built-in kind already is (pure)."""
    builtin = {(k.group, k.plural) for k in registry.KINDS} | {(k.group, k.kind) for k in registry.KINDS}
    extra: dict[tuple[str, str], registry.Kind] = {}
    for crd in crds:
        kind = kind_of(crd)
        if kind is not None and (kind.group, kind.plural) not in builtin and (kind.group, kind.kind) not in builtin:
            extra.setdefault((kind.group, kind.plural), kind)
    return (*registry.KINDS, *sorted(extra.values(), key=lambda k: (k.group, k.plural)))


def with_status(crd: Mapping[str, Any]) -> Value:
    """A CRD as stored: its names accepted and Established at once (`kubectl wait
    --for condition=established` returns) (pure)."""
    value = copy.deepcopy(dict(crd))
    names = dict((value.get("spec") or {}).get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stamp = (value.get("metadata") or {}).get("creationTimestamp")
    conditions = [{"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": stamp}
                  for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                  ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]  # fmt: skip
    version = storage_version(value.get("spec") or {})
    value["status"] = {"acceptedNames": names, "conditions": conditions, "storedVersions": [version] if version else []}
    return value


class CrdCache:
    """The served kinds, following the stored CRDs through a watch (re-listed when it ends)."""

    def __init__(self) -> None:
        self._crds: dict[str, Value] = {}
        self._lock = threading.Lock()
        self.kinds: tuple[registry.Kind, ...] = registry.KINDS
        self._cancel: Any = None

    def start(self, store: Datastore) -> None:
        listed, revision = store.list_versioned(CRD.prefix)
        with self._lock:
            self._crds = {k: v.value for k, v in listed.items()}
            self.kinds = served_kinds(self._crds.values())
        self._cancel = store.watch_prefix(CRD.prefix, self._on_event, start_revision=revision + 1,
                                          on_error=lambda _e: self._relist(store))  # fmt: skip

    def _on_event(self, event: WatchEvent) -> None:
        with self._lock:
            if event.kind == "put" and event.value is not None:
                self._crds[event.key] = event.value
            else:
                self._crds.pop(event.key, None)
            self.kinds = served_kinds(self._crds.values())

    def _relist(self, store: Datastore) -> None:
        try:
            self.start(store)
        except DatastoreError:
            pass  # the next request still sees the kinds known so far

    def stop(self) -> None:
        if self._cancel is not None:
            self._cancel()
