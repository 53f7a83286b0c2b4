"""One process's link to the Redis that holds shared guard state (``REDIS_URL``): up or down, and since when.

Why a link object rather than a client per store: every store that shares
state (breakers, budgets, rate limits) must agree on whether Redis is there,
fall back to per-process state together, and come back together. LiteLLM
#42653 is the failure this avoids: Redis probed once at boot, and a pod that
started while it was down counted budgets alone for its whole life. Here
nothing is decided at boot:

* a call that fails (refused, reset, timed out) marks the link down *since*
  that minute; calls made while it is down fail at once, with no network
  wait, so requests keep flowing on per-process state;
* a background thread probes Redis every ``retry_s`` while it is down, and
  when it answers, runs each store's ``on_up`` hook (re-seed budgets, push
  the spend counted while down, drop holds settled meanwhile) before the
  request path uses it again;
* while up, the same thread refreshes each store's mirror (``on_poll``:
  breaker states, budget snapshot) every ``poll_s`` and sends the writes the
  stores queued (``defer``: settlements, breaker outcomes), so the request
  path pays one round trip per attempt (a budget reservation) at most.

The client is redis-py's synchronous one with a short socket timeout and no
retries of its own: the guards are synchronous (the router calls them
between awaits, and the decision core is synchronous), and one round trip to
a nearby Redis is a fraction of a millisecond.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from taelio_core.redaction import safe_url

__all__ = ["RedisLink", "SharedStateDown"]

log = logging.getLogger("taelio.shared")
T = TypeVar("T")
# What a lost server looks like through redis-py; anything else (a bad script, a wrong type) is our bug.
LOST = (redis.ConnectionError, redis.TimeoutError, OSError)


class SharedStateDown(Exception):
    """Redis cannot be reached now; the caller uses its per-process state."""


class RedisLink:
    """A Redis client that knows whether it is up, and brings the shared state back by itself."""

    def __init__(self, url: str, *, socket_timeout_s: float = 0.5, retry_s: float = 1.0, poll_s: float = 0.25,
                 batch_s: float = 0.01, prefix: str = "taelio:") -> None:
        self.url = url
        self.where = safe_url(url)
        self.prefix = prefix
        self.retry_s, self.poll_s, self.batch_s = retry_s, poll_s, batch_s
        self.client = redis.Redis.from_url(url, socket_timeout=socket_timeout_s,
                                           socket_connect_timeout=socket_timeout_s, retry=Retry(NoBackoff(), 0),
                                           decode_responses=True, health_check_interval=0)
        self._lock = threading.Lock()
        self._down_since: datetime | None = datetime.now(UTC)   # up once the first probe answers
        self._on_up: list[Callable[[], None]] = []
        self._on_down: list[Callable[[], None]] = []
        self._on_poll: list[Callable[[], None]] = []
        self._deferred: list[Callable[[], None]] = []
        self._wake = threading.Condition()
        self._draining = threading.Lock()
        self._closed = False
        self._ever_up = False
        self._thread: threading.Thread | None = None
        self._probe()                     # one try now, so a process that starts with Redis up uses it at once

    # ---- state -------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self._down_since is None

    @property
    def down_since(self) -> datetime | None:
        return self._down_since

    def status(self) -> str:
        """One sentence for Health, ``taelio health`` and ``/readyz``."""
        if self._down_since is None:
            return f"shared state in Redis at {self.where}: connected"
        return f"shared state unavailable since {self._down_since:%H:%M} UTC (Redis at {self.where}); " \
               "each process counts on its own until it is back"

    def subscribe(self, *, on_up: Callable[[], None] | None = None, on_down: Callable[[], None] | None = None,
                  on_poll: Callable[[], None] | None = None) -> None:
        """A store's hooks: on_up runs (in the link's thread) before the request path uses Redis again."""
        if on_up is not None:
            self._on_up.append(on_up)
        if on_down is not None:
            self._on_down.append(on_down)
        if on_poll is not None:
            self._on_poll.append(on_poll)
        self._start()

    # ---- calls -------------------------------------------------------------------------
    def run(self, fn: Callable[[redis.Redis], T]) -> T:
        """``fn(client)``, or ``SharedStateDown`` at once when Redis is known to be down or fails now."""
        if self._down_since is not None:
            raise SharedStateDown(self.status())
        try:
            return fn(self.client)
        except LOST as e:
            self._mark_down(e)
            raise SharedStateDown(self.status()) from e

    def defer(self, write: Callable[[], None]) -> None:
        """Run ``write`` soon on the link's thread (off the request path). It calls ``run`` itself."""
        with self._wake:
            self._deferred.append(write)
            self._wake.notify()

    def flush(self) -> None:
        """Send every deferred write now, in this thread (tests, close, a benchmark's end)."""
        self._drain()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._drain()
        self.client.close()

    # ---- the link's thread ---------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="taelio-redis-link", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        last_poll = 0.0
        while True:
            with self._wake:
                if not self._deferred and not self._closed:
                    self._wake.wait(self.poll_s if self.up else self.retry_s)
                if self._closed:
                    return
            if not self.up:
                self._probe()
                continue
            if self._deferred and self.batch_s:
                time.sleep(self.batch_s)    # let a burst's writes gather: one pipeline, fewer GIL hand-offs
            self._drain()
            if time.monotonic() - last_poll >= self.poll_s:
                last_poll = time.monotonic()
                for poll in list(self._on_poll):
                    self._quietly(poll)

    def _drain(self) -> None:
        with self._draining:             # a flush waits for writes the link's thread already took
            with self._wake:
                writes, self._deferred = self._deferred, []
            for write in writes:
                self._quietly(write)

    def _quietly(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except SharedStateDown:
            pass
        except Exception:  # noqa: BLE001 - the link's thread must outlive a store's bug; it is logged
            log.exception("shared state: a background step failed")

    def _probe(self) -> None:
        try:
            self.client.ping()
        except LOST:
            return
        with self._lock:
            was_down = self._down_since
            if was_down is None:
                return
            # Hooks first, request path after: a re-seed or a replay must not race the first reservation.
            for hook in list(self._on_up):
                try:
                    hook()
                except LOST as e:
                    log.warning("shared state: Redis went away again while catching up (%s)", e)
                    return
                except Exception:  # noqa: BLE001 - e.g. the call log could not be read for a re-seed
                    log.exception("shared state: a store could not catch up; it goes on with Redis as it is")
            self._down_since = None
            first, self._ever_up = not self._ever_up, True
        if first:
            return
        log.warning("shared state: Redis at %s is back (down since %s UTC)", self.where, f"{was_down:%H:%M:%S}")

    def _mark_down(self, error: BaseException) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = datetime.now(UTC)
            hooks = list(self._on_down)
        log.warning("shared state: Redis at %s is unavailable (%s); counting per process until it is back",
                    self.where, type(error).__name__)
        for hook in hooks:
            self._quietly(hook)
