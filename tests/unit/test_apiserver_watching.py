"""Which watch event a store change is, for a watch with or without a selector (pure)."""

from __future__ import annotations

from testbed.apiserver import watching
from testbed.apiserver.selectors import parse_label_selector
from testbed.datastore.base import WatchEvent
from testbed.kube import registry

PODS = registry.BY_KIND["Pod"]


def watch(selector: str | None = None) -> watching.WatchRequest:
    labels = parse_label_selector(selector) if selector else None
    return watching.WatchRequest(PODS, "demo", labels, None, "", False, False, 10.0, False)


def pod(app: str) -> dict:
    return {"metadata": {"name": "p", "namespace": "demo", "labels": {"app": app}}}


def test_creates_updates_and_deletes_are_added_modified_and_deleted() -> None:
    created = WatchEvent("put", "/registry/pods/demo/p", pod("a"), 5, None, False)
    updated = WatchEvent("put", "/registry/pods/demo/p", pod("b"), 6, pod("a"), True)
    deleted = WatchEvent("delete", "/registry/pods/demo/p", None, 7, pod("b"), True)
    assert watching.event_type(watch(), created)[0] == "ADDED"
    assert watching.event_type(watch(), updated)[0] == "MODIFIED"
    kind, shown, _ = watching.event_type(watch(), deleted)
    assert kind == "DELETED" and shown == pod("b")  # a DELETED event shows the object's last state


def test_an_object_moving_out_of_a_selector_is_deleted_for_that_watch_and_into_it_added() -> None:
    into = WatchEvent("put", "/registry/pods/demo/p", pod("a"), 6, pod("b"), True)
    out_of = WatchEvent("put", "/registry/pods/demo/p", pod("b"), 7, pod("a"), True)
    elsewhere = WatchEvent("put", "/registry/pods/demo/p", pod("c"), 8, pod("b"), True)
    assert watching.event_type(watch("app=a"), into)[0] == "ADDED"
    assert watching.event_type(watch("app=a"), out_of)[0] == "DELETED"
    assert watching.event_type(watch("app=a"), elsewhere)[0] == ""


def test_only_the_kinds_own_keys_in_the_namespace_asked_for_count() -> None:
    w = watch()
    assert w.of_kind("/registry/pods/demo/p", pod("a"))
    assert not w.of_kind("/registry/pods/other/p", pod("a"))
    assert not w.of_kind("/registry/pods/demo/p/extra", pod("a"))
