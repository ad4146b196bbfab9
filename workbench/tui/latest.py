"""Answer the newest request only, off the UI thread: predict as you type.

Each keystroke asks for a prediction. Starting a worker per keystroke (the old way) piled threads
up: a pasted sentence became forty predictions computed one after another, each holding the
interpreter lock for part of its time, so the echo of the typing fell seconds behind. Here one
thread computes; a request that arrives while it works replaces the one waiting (the texts in
between are never computed), and an answer whose request was superseded meanwhile is dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

RequestT = TypeVar("RequestT")

#: Seconds without a newer request before computing (a burst of keys is computed once) ...
SETTLE_SECONDS = 0.06
#: ... but never more than this after the first request of a burst (typing fast still updates).
LONGEST_WAIT_SECONDS = 0.3


class LatestOnly(Generic[RequestT]):
    """Calls ``compute(request)`` in one daemon thread for the newest request, and then
    ``deliver(request, result, error)`` on the UI thread unless a newer request came meanwhile."""

    def __init__(self, app: Any, compute: Callable[[RequestT], Any],
                 deliver: Callable[[RequestT, Any, BaseException | None], None]) -> None:
        self._app = app
        self._compute = compute
        self._deliver = deliver
        self._lock = threading.Condition()
        self._pending: tuple[int, RequestT, float] | None = None
        self._serial = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.computed = 0  # how many requests were computed (tests check stale ones are skipped)

    def submit(self, request: RequestT) -> None:
        with self._lock:
            self._serial += 1
            first = self._pending[2] if self._pending is not None else time.monotonic()
            self._pending = (self._serial, request, first)
            self._lock.notify()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="latest-only", daemon=True)
            self._thread.start()

    def drop(self) -> None:
        """Forget what is waiting and let nothing computed so far be delivered."""
        with self._lock:
            self._serial += 1
            self._pending = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._pending = None
            self._lock.notify()

    def _next(self) -> tuple[int, RequestT] | None:
        """Wait for a request and for the burst it belongs to to settle."""
        with self._lock:
            while self._pending is None and not self._closed:
                self._lock.wait()
            while self._pending is not None and not self._closed:
                serial, request, first = self._pending
                now = time.monotonic()
                wait = min(SETTLE_SECONDS, first + LONGEST_WAIT_SECONDS - now)
                if wait <= 0:
                    break
                self._lock.wait(wait)
                if self._pending is not None and self._pending[0] == serial:
                    break  # nothing newer came while we waited
            if self._closed or self._pending is None:
                return None
            serial, request, _ = self._pending
            self._pending = None
            return serial, request

    def _run(self) -> None:
        while True:
            job = self._next()
            if job is None:
                if self._closed:
                    return
                continue
            serial, request = job
            result: Any = None
            error: BaseException | None = None
            try:
                self.computed += 1
                result = self._compute(request)
            except Exception as exc:  # delivered to the UI, which says what went wrong
                error = exc
            with self._lock:
                if serial != self._serial:
                    continue  # superseded while it was computed: the newer one follows
            try:
                self._app.call_from_thread(self._deliver, request, result, error)
            except RuntimeError:  # the app has closed
                return
