"""The endpoints and EndpointSlice controllers: each Service with a selector gets the
Endpoints and EndpointSlices of the pods it selects (``testbed.kube.endpoints`` says what
they hold); they are written only when they differ from what is stored and deleted when
the Service goes.

Work-queue keys: a Service's registry key (a change to the Service, its Endpoints or one
of its slices), or ``ns:<namespace>`` (a pod changed, or a slice was deleted: every
Service of that namespace is looked at again, from one listing of its pods; keys_for
cannot read the store to find which Services select the pod).

As Kubernetes does: a Service without a selector is left alone (its Endpoints are
someone else's); a slice carrying the Service's name but not the
``endpointslice-controller.k8s.io`` managed-by label is not touched; managed slices owned
by an older Service of the same name (another uid) are replaced. Each Service's writes are
one conditional transaction against the revisions read (a lost race: read again, retry).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from testbed.datastore import keys
from testbed.datastore.records import timestamp
from testbed.datastore.base import MAX_TXN_OPS, Datastore, Value, Versioned, WatchEvent
from testbed.kube import endpoints as model
from testbed.kube.errors import ManifestError
from testbed.kube.services import PodInfo, Service, service_from_dict
from testbed.kube.workloads import NAME_ALPHABET

log = logging.getLogger(__name__)

NAMESPACE_KEY = "ns:"
RETRIES = 3  # conflicting writes re-read and retried this often before backing off
RETRY_AFTER = 0.5  # seconds, after the retries were used up


def namespace_key(namespace: str) -> str:
    return f"{NAMESPACE_KEY}{namespace}"


@dataclass
class _Namespace:
    """One namespace's inputs, read at once."""

    services: dict[str, Versioned]  # name -> stored Service
    endpoints: dict[str, Versioned]  # name -> stored Endpoints
    slices: dict[str, dict[str, Versioned]] = field(default_factory=dict)  # service -> slice key -> slice
    slice_keys: set[str] = field(default_factory=set)  # every slice key of the namespace (names taken)
    pods: list[PodInfo] = field(default_factory=list)


def _read(store: Datastore, namespace: str, with_pods: bool = True) -> _Namespace:
    services, _ = store.list_versioned(keys.services_in(namespace))
    endpoints, _ = store.list_versioned(keys.endpoints_in(namespace))
    slices, _ = store.list_versioned(keys.endpoint_slices_in(namespace))
    state = _Namespace(
        services={keys.name_of(k): v for k, v in services.items()},
        endpoints={keys.name_of(k): v for k, v in endpoints.items()},
        slice_keys=set(slices),
    )
    for key, item in slices.items():
        owner = model.managed_slice_of(item.value)
        if owner is not None:
            state.slices.setdefault(owner, {})[key] = item
    if with_pods and state.services:
        state.pods = [PodInfo.from_record(v) for v in store.list(keys.pods_in(namespace)).values()]
    return state


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _stamped(desired: Value, current: Versioned | None, now: float) -> Value:
    """``desired`` with the metadata the store keeps: uid and creationTimestamp, kept
    from the current object, new otherwise."""
    old = (current.value.get("metadata") or {}) if current else {}
    desired["metadata"]["uid"] = old.get("uid") or str(uuid.uuid4())
    desired["metadata"]["creationTimestamp"] = old.get("creationTimestamp") or timestamp(now)
    return desired


@dataclass
class _Writes:
    puts: dict[str, Value] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    expect: dict[str, int] = field(default_factory=dict)

    def put(self, key: str, value: Value, revision: int) -> None:
        self.puts[key] = value
        self.expect[key] = revision

    def delete(self, key: str, revision: int) -> None:
        self.deletes.append(key)
        self.expect[key] = revision

    def commit(self, store: Datastore) -> bool:
        """One transaction when it fits etcd's limit, else one per key (each still
        conditional: a lost race shows in the result all the same)."""
        if not self.puts and not self.deletes:
            return True
        if len(self.puts) + len(self.deletes) + len(self.expect) <= MAX_TXN_OPS:
            return store.commit(self.puts, self.deletes, self.expect)
        puts = [store.commit({k: v}, expect={k: self.expect[k]}) for k, v in self.puts.items()]
        deletes = [store.commit({}, [k], expect={k: self.expect[k]}) for k in self.deletes]
        return all(puts) and all(deletes)


class EndpointsController:
    name = "endpoints"
    prefixes: Sequence[str] = (keys.SERVICES, keys.PODS, keys.ENDPOINTS, keys.ENDPOINT_SLICES)

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    # --- the queue ---------------------------------------------------------------------

    def keys_for(self, event: WatchEvent) -> Iterable[str]:
        if keys.namespace_of(event.key, keys.SERVICES) is not None:
            return [event.key]
        if (ns := keys.namespace_of(event.key, keys.ENDPOINTS)) is not None:
            return [keys.service(ns, keys.name_of(event.key))]
        if (ns := keys.namespace_of(event.key, keys.ENDPOINT_SLICES)) is not None:
            owner = model.managed_slice_of(event.value) if event.value is not None else None
            return [keys.service(ns, owner)] if owner else [namespace_key(ns)]
        if (ns := keys.namespace_of(event.key, keys.PODS)) is not None:
            return [namespace_key(ns)]
        return []

    def resync_keys(self, store: Datastore) -> Iterable[str]:
        """Every namespace holding a Service, an Endpoints or a slice."""
        found: set[str] = set()
        for prefix in (keys.SERVICES, keys.ENDPOINTS, keys.ENDPOINT_SLICES):
            found.update(ns for k in store.list(prefix) if (ns := keys.namespace_of(k, prefix)) is not None)
        return [namespace_key(ns) for ns in sorted(found)]

    # --- reconciling ---------------------------------------------------------------------

    def reconcile(self, store: Datastore, key: str, now: float) -> float | None:
        if key.startswith(NAMESPACE_KEY):
            namespace, only = key[len(NAMESPACE_KEY) :], None
        elif (namespace := keys.namespace_of(key, keys.SERVICES)) is not None:
            only = keys.name_of(key)
        else:
            return None
        names = [only] if only is not None else None
        for _ in range(RETRIES):
            state = _read(store, namespace)
            todo = names if names is not None else sorted({*state.services, *state.endpoints, *state.slices})
            lost = [name for name in todo if not self._sync(store, namespace, name, state, now)]
            if not lost:
                return None
            names = lost
        log.info("endpoints in %s: lost races for %s %d times, retrying in %.1f s",
                 namespace, ", ".join(names or ()), RETRIES, RETRY_AFTER)  # fmt: skip
        return RETRY_AFTER

    def _sync(self, store: Datastore, namespace: str, name: str, state: _Namespace, now: float) -> bool:
        """Bring one Service's Endpoints and slices to what it asks; False if a write lost
        a race (nothing written then)."""
        stored = state.services.get(name)
        current_eps = state.endpoints.get(name)
        current_slices = state.slices.get(name, {})
        writes = _Writes()
        service: Service | None = None
        if stored is not None:
            try:
                service = service_from_dict(stored.value)
            except ManifestError as exc:
                log.warning("service %s/%s: stored object does not parse, endpoints left as they are: %s",
                            namespace, name, exc)  # fmt: skip
                return True
            if not service.selector:
                return True  # endpoints of a selector-less Service are managed by hand
        if service is None:
            if current_eps is not None:
                writes.delete(keys.endpoints(namespace, name), current_eps.revision)
            for key, item in current_slices.items():
                writes.delete(key, item.revision)
            return writes.commit(store)
        pods = state.pods
        desired = model.desired_endpoints(service, pods)
        if current_eps is None or model.endpoints_differ(current_eps.value, desired):
            key = keys.endpoints(namespace, name)
            writes.put(key, _stamped(desired, current_eps, now), current_eps.revision if current_eps else 0)
        self._plan_slices(service, _uid(stored.value) if stored else "", pods, current_slices, state, writes, now)
        done = writes.commit(store)
        if done and (writes.puts or writes.deletes):
            log.info("endpoints of %s/%s: %d written, %d deleted", namespace, name, len(writes.puts), len(writes.deletes))
        return done

    def _plan_slices(
        self, service: Service, uid: str, pods: Sequence[PodInfo], current: Mapping[str, Versioned],
        state: _Namespace, writes: _Writes, now: float,
    ) -> None:  # fmt: skip
        """Reuse the current slices (same ports first, then any), create what is missing,
        delete what is left over or owned by another Service of the same name."""
        ours = {k: v for k, v in current.items() if _owner_uid(v.value) in (uid, None)}
        for key, item in current.items():
            if key not in ours:
                writes.delete(key, item.revision)
        free = dict(sorted(ours.items()))
        for ports, items in model.desired_slice_contents(service, pods):
            match = next((k for k, v in free.items() if model.slice_ports(v.value) == ports), None)
            match = match or next(iter(free), None)
            if match is not None:
                item = free.pop(match)
                desired = model.slice_object(service, uid, keys.name_of(match), ports, items)
                if model.slice_differs(item.value, desired):
                    writes.put(match, _stamped(desired, item, now), item.revision)
            else:
                name = self._new_slice_name(service, state)
                key = keys.endpoint_slice(service.namespace, name)
                state.slice_keys.add(key)
                writes.put(key, _stamped(model.slice_object(service, uid, name, ports, items), None, now), 0)
        for key, item in free.items():
            writes.delete(key, item.revision)

    def _new_slice_name(self, service: Service, state: _Namespace) -> str:
        base = model.slice_base(service.name)
        while True:
            name = base + "".join(self.rng.choice(NAME_ALPHABET) for _ in range(5))
            if keys.endpoint_slice(service.namespace, name) not in state.slice_keys:
                return name


def _owner_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of the Service a slice names as its controller (None: it names none)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Service":
            return str(ref.get("uid") or "")
    return None


def build(**options: Any) -> EndpointsController:
    """The controller, for the manager. Options: ``rng`` (a random.Random, for slice
    names); the others (meant for other controllers) are ignored."""
    rng = options.get("rng")
    return EndpointsController(rng if isinstance(rng, random.Random) else None)


def reconcile_all(store: Datastore, now: float) -> int:
    """One pass over every namespace with Services, Endpoints or slices (what the
    manager's first resync does), for callers that run no manager; returns how many
    namespaces it looked at."""
    controller = EndpointsController()
    looked = 0
    for key in controller.resync_keys(store):
        controller.reconcile(store, key, now)
        looked += 1
    return looked
