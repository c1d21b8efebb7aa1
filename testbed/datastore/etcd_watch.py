"""Watching a prefix of etcd through the v3 JSON gateway (``POST /v3/watch``, streamed).

Our own reader, not etcd3gw's ``Watcher`` (which the project no longer uses): that one
read the stream in a thread-pool future, so a stream that broke (etcd restarted,
compacted, unreachable) ended silently and its caller never heard of it. Here each watch
has its own connection (the client's pool is never tied up by a stream that lasts
forever) and its own thread; a broken stream is reported once through ``on_error``; cancel
shuts the stream's socket down (which wakes the blocked read on any socket family), then
joins the thread.

Stream format: one JSON object per message, ``{"result": {...}}`` or ``{"error": {...}}``;
the first result says ``created``; PUT events carry no ``type`` (protobuf default),
DELETE events say ``"type": "DELETE"``; keys and values are base64; revisions strings.
"""

from __future__ import annotations

import base64
import codecs
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from testbed.datastore import keys
from testbed.datastore.base import (
    DatastoreError,
    Value,
    WatchCallback,
    WatchErrorCallback,
    WatchEvent,
    decode_value,
)
from testbed.datastore.etcd_http import API_PREFIX, JSON_HEADERS, Gateway, GatewayError, b64, error_message, reason

MAX_MESSAGE = 16 * 1024 * 1024  # a stream buffering more than this without a message is broken
JOIN_TIMEOUT = 5.0
READ_SIZE = 64 * 1024


def decode_event(raw: dict[str, Any]) -> WatchEvent:
    """One event of a watch response as a WatchEvent (no ``type``: a PUT; ``prev_kv`` only
    on a watch that asked for it)."""
    kv = raw.get("kv", {})
    key = base64.b64decode(kv.get("key", "")).decode()
    revision = int(kv.get("mod_revision", 0))
    prev = raw.get("prev_kv")
    previous = _value(key, prev.get("value", "")) if isinstance(prev, dict) else None
    existed = isinstance(prev, dict)
    if raw.get("type") == "DELETE":
        return WatchEvent("delete", key, None, revision, previous, existed)
    return WatchEvent("put", key, _value(key, kv.get("value", "")), revision, previous, existed)


def _value(key: str, encoded: str) -> Value | None:
    try:
        return decode_value(key, base64.b64decode(encoded))
    except DatastoreError:
        return None


def messages(chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """JSON objects from a byte stream cut anywhere (with or without newlines between)."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer = ""
    for chunk in chunks:
        buffer += text.decode(chunk)
        while True:
            buffer = buffer.lstrip()
            if not buffer:
                break
            try:
                message, end = decoder.raw_decode(buffer)
            except ValueError:
                if len(buffer) > MAX_MESSAGE:
                    raise ValueError("no complete JSON message in 16 MiB of stream") from None
                break  # incomplete: wait for more
            buffer = buffer[end:]
            if isinstance(message, dict):
                yield message


def chunks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The body of a streamed (chunked) response as it arrives, until it ends."""
    while True:
        data = response.read1(READ_SIZE)
        if not data:
            return
        yield data


class EtcdWatch:
    """One running watch. ``start()`` returns once etcd confirmed it; ``cancel()`` ends it."""

    def __init__(
        self,
        gateway: Gateway,
        prefix: str,
        callback: WatchCallback,
        *,
        start_revision: int | None = None,
        on_error: WatchErrorCallback | None = None,
        with_previous: bool = False,
    ) -> None:
        self._gateway = gateway
        self._with_previous = with_previous
        self._prefix = prefix
        self._callback = callback
        self._on_error = on_error
        self._start_revision = start_revision
        self._timeout = gateway.timeout
        self._what = f"etcd at {gateway.endpoint}: watch {prefix or '(all)'}"
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Callable[[], None]:
        request: dict[str, Any] = {"key": b64(self._prefix or "\0"), "range_end": b64(keys.prefix_end(self._prefix))}
        if self._start_revision is not None:
            request["start_revision"] = self._start_revision
        if self._with_previous:
            request["prev_kv"] = True
        body = json.dumps({"create_request": request}).encode()
        try:
            connection = self._gateway.new_connection(self._timeout)
            with self._lock:
                self._connection, self._socket = connection, connection.sock
            connection.request("POST", API_PREFIX + "/watch", body=body, headers=JSON_HEADERS)
            response = connection.getresponse()
            if response.status != 200:
                raise DatastoreError(f"{self._what}: {error_message(response.status, response.read())}")
            stream = messages(chunks(response))
            first = next(stream, None)
            self._check_created(first)
            if self._socket is not None:
                self._socket.settimeout(None)  # a watch may stay quiet for hours
        except GatewayError as exc:
            self.cancel()
            raise DatastoreError(f"{self._what}: {exc}") from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.cancel()
            raise DatastoreError(f"{self._what}: {reason(exc)}") from exc
        except DatastoreError:
            self.cancel()
            raise
        self._thread = threading.Thread(
            target=self._run, args=(stream,), name=f"etcd-watch {self._prefix}", daemon=True
        )
        self._thread.start()
        return self.cancel

    def _check_created(self, first: dict[str, Any] | None) -> None:
        if first is None:
            raise DatastoreError(f"{self._what}: stream ended before the watch was created")
        result = first.get("result")
        if not isinstance(result, dict) or not result.get("created"):
            raise DatastoreError(f"{self._what}: not created ({json.dumps(first)[:200]})")

    def _run(self, stream: Iterator[dict[str, Any]]) -> None:
        error: str
        try:
            for message in stream:
                if self._stopping.is_set():
                    return
                problem = self._handle(message)
                if problem is not None:
                    error = problem
                    break
            else:
                error = "stream ended"
        except Exception as exc:  # noqa: BLE001 - any end of the stream is reported once
            error = reason(exc)
        if self._stopping.is_set():
            return
        self._shutdown()
        self._release()
        if self._on_error is not None:
            self._on_error(DatastoreError(f"{self._what}: {error}"))

    def _handle(self, message: dict[str, Any]) -> str | None:
        """Deliver one message's events; a reason when the watch is over."""
        if "error" in message:
            return f"etcd error {json.dumps(message['error'])[:200]}"
        result = message.get("result", {})
        if result.get("canceled"):
            compacted = result.get("compact_revision")
            why = result.get("cancel_reason") or (f"revision compacted (at {compacted})" if compacted else "")
            return f"canceled by etcd {why}".rstrip()
        for raw in result.get("events", []):
            if self._stopping.is_set():
                return None
            try:
                self._callback(decode_event(raw))
            except Exception as exc:  # noqa: BLE001 - ends the watch, reported via on_error
                return f"callback failed: {exc}"
        return None

    def _shutdown(self) -> None:
        """Shut the stream's socket down: wakes the reader blocked in recv(), any family."""
        with self._lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed or never connected

    def _release(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def cancel(self) -> None:
        """Stop the watch and wait for its thread (not when called from that thread)."""
        self._stopping.set()
        self._shutdown()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT)
        self._release()
