"""Events: their shape, and the same event again counted on one Event (no store, no thread
but the recorder's own)."""

from __future__ import annotations

import threading

from testbed.kube import events

POD = {"metadata": {"name": "web-1", "namespace": "demo", "uid": "u-1"}}


def test_an_event_names_its_object_reason_source_and_times() -> None:
    ref = events.involved(POD, "Pod", "v1")
    assert ref == {"kind": "Pod", "apiVersion": "v1", "name": "web-1", "namespace": "demo", "uid": "u-1"}
    value = events.event_value(ref, "Scheduled", "Successfully assigned demo/web-1 to host1", "Normal",
                               "default-scheduler", None, 0.0, 60.0, 2)  # fmt: skip
    assert value["metadata"]["namespace"] == "demo" and value["metadata"]["name"].startswith("web-1.")
    assert (value["reason"], value["type"], value["count"]) == ("Scheduled", "Normal", 2)
    assert value["source"] == {"component": "default-scheduler"}
    assert (value["firstTimestamp"], value["lastTimestamp"]) == ("1970-01-01T00:00:00Z", "1970-01-01T00:01:00Z")


def test_the_same_event_again_is_one_event_whose_count_grows() -> None:
    written: list[dict] = []
    done = threading.Event()

    def write(batch: dict) -> None:
        written.append(batch)
        done.set()

    recorder = events.Recorder(write, "kubelet", host="host1")
    ref = events.involved(POD, "Pod", "v1")
    for now in (10.0, 20.0, 30.0):
        recorder.emit(ref, "BackOff", "Back-off restarting failed container", "Warning", now=now)
    recorder.emit(ref, "Started", "Started container web", now=31.0)
    assert done.wait(5.0)
    values = {v["reason"]: v for batch in written for v in batch.values()}
    assert values["BackOff"]["count"] == 3 and values["BackOff"]["firstTimestamp"] == "1970-01-01T00:00:10Z"
    assert values["BackOff"]["lastTimestamp"] == "1970-01-01T00:00:30Z" and values["Started"]["count"] == 1
    assert values["Started"]["source"] == {"component": "kubelet", "host": "host1"}


def test_a_process_without_a_recorder_records_nothing() -> None:
    assert events._recorder is None  # noqa: SLF001 - nothing configured one in this process
    events.emit(events.involved(POD, "Pod", "v1"), "Scheduled", "x")
    assert events._recorder is None  # noqa: SLF001 - emitting does not make one
