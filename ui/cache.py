"""One engine per configuration, and cached analytics that refresh when the log grows.

``open_engine`` builds ``Taelio.open()`` once per configuration (policy, log
path, mode, keys) with ``st.cache_resource``: one router, one call-log handle
for every session, the Sandbox included. Pages get it through
``ui.shell.get_engine``, which also makes sure the page has its shell. Tests can hand the app an engine of
their own by putting it in ``st.session_state["taelio_engine"]`` before the
first run.

Analytics results are cached with ``st.cache_data`` keyed on the log's
location and its *data version* (the number of requests it holds, read at
most every ``VERSION_TTL_S`` seconds). A request logged by this app, the CLI
or another replica changes the version, so every page shows it on the next
run without a restart. ``bump()`` forces that after this app writes, and tells the sidebar's count
(``on_bump``) so it never lags one interaction behind.
"""
from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from taelio_core.errors import CallLogError, TaelioError
from taelio_core.wiring import Taelio
from ui.log_problem import show_log_problem
from taelio_core.config.settings import KEY_ENV

__all__ = ["ENGINE_KEY", "bump", "cached", "data_version", "on_bump", "open_engine", "rounded_now"]

ENGINE_KEY = "taelio_engine"
VERSION_TTL_S = 2
QUERY_TTL_S = 600
_CONFIG_ENV = ("TAELIO_POLICY", "TAELIO_MODE", "TAELIO_STORE_TEXT", "DATABASE_URL",
               *(name for names in KEY_ENV.values() for name in names))


def _fingerprint() -> str:
    """A digest of everything ``Taelio.open()`` reads (keys hashed, never kept)."""
    h = hashlib.sha256()
    for name in _CONFIG_ENV:
        h.update(f"{name}={os.environ.get(name, '')}\0".encode())
    secrets = Path(".streamlit") / "secrets.toml"
    h.update(f"{Path.cwd()}|{secrets.stat().st_mtime_ns if secrets.exists() else 0}".encode())
    return h.hexdigest()


@st.cache_resource(show_spinner="Opening the call log…")
def _open_engine(fingerprint: str) -> Taelio:
    del fingerprint  # only the cache key
    return Taelio.open()


def open_engine() -> Taelio:
    """The shared engine, or a clear error on the page (never a traceback) when the config is wrong."""
    injected = st.session_state.get(ENGINE_KEY)
    if injected is not None:
        return injected
    try:
        engine = _open_engine(_fingerprint())
    except CallLogError as e:
        show_log_problem(e)
    except TaelioError as e:
        st.error(f"Taelio cannot start: {e}")
        st.stop()
    if engine.log is None:
        st.error("Taelio was opened without a call log.")
        st.stop()
    return engine


@st.cache_data(ttl=VERSION_TTL_S, show_spinner=False)
def _count(_log: Any, location: str) -> int:
    return _log.count_requests()


def data_version(engine: Taelio) -> int:
    """How many requests the log holds (at most ``VERSION_TTL_S`` s old)."""
    try:
        return _count(engine.log, engine.log.location)
    except CallLogError as e:              # damaged since it was opened: a page that says so, not a traceback
        show_log_problem(e)
        raise


# Per script thread: what to redraw after this run logged something (the sidebar's count).
_after_bump = threading.local()


def on_bump(redraw: Callable[[], None]) -> None:
    """Call ``redraw`` when this run logs something (``bump``); set anew by every run's sidebar."""
    _after_bump.redraw = redraw


def bump(engine: Taelio) -> None:
    """After this app logged something: wait for the write, then let every cache see it."""
    try:
        engine.log.flush(timeout=10)
    except TaelioError as e:
        st.warning(f"The request is queued but not yet in the log: {e}")
    _count.clear()
    redraw = getattr(_after_bump, "redraw", None)
    if redraw is not None:
        redraw()


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False, max_entries=512)
def _run(_log: Any, location: str, version: int, module: str, name: str, args: tuple, kwargs: tuple) -> Any:
    del location, version  # only the cache key
    fn = getattr(import_module(module), name)
    return fn(_log, *args, **dict(kwargs))


def cached(engine: Taelio, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(engine.log, *args, **kwargs)``, cached until the log changes."""
    try:
        return _run(engine.log, engine.log.location, data_version(engine), fn.__module__, fn.__name__, args,
                    tuple(sorted(kwargs.items())))
    except CallLogError as e:
        show_log_problem(e)
        raise


NOW_STEP = timedelta(minutes=5)


def rounded_now() -> datetime:
    """Now, rounded up to the next 5 minutes: a "now" for health windows and budget projections that
    includes everything logged so far and keeps their cached results for a few minutes (new requests
    still refresh them at once, through the data version)."""
    now = datetime.now(UTC)
    floor = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    return floor + NOW_STEP
