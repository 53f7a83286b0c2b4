"""When the writer takes a batch (``calllog/queued.py``): the gathering window opens when the oldest queued row
arrived, so rows that waited out a slow commit go at once. The writer's clock is a virtual one (``queued.time``
replaced by a fake whose ``monotonic`` the test moves), so nothing here depends on the machine's speed."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from taelio_core.calllog import DuckDBCallLog, queued
from tests.calllog.traffic import finished_results

INTERVAL = 1000.0          # virtual seconds: the old writer would have slept this long in real time


class _Clock:
    """``queued.time`` for the test: ``monotonic`` is virtual, ``sleep`` is real (the failure backoff)."""

    def __init__(self) -> None:
        self.now = 5_000.0

    def monotonic(self) -> float:
        return self.now

    sleep = staticmethod(time.sleep)


class _SlowFirstCommit(DuckDBCallLog):
    """A DuckDB log whose first live commit waits for the test's word, as a slow commit would."""

    def __init__(self, *args: Any, **kw: Any) -> None:  # noqa: ANN401
        self.release_first = threading.Event()
        self.committing = threading.Event()
        self.batches: list[int] = []
        self.second = threading.Event()
        super().__init__(*args, **kw)

    def _commit_rows(self, requests: list, attempts: list, con: Any, *, skip_stored: bool = False) -> int:  # noqa: ANN401
        if not skip_stored:                  # a live batch, not the replay on open
            self.committing.set()
            if not self.batches:
                self.release_first.wait(timeout=60)
        out = super()._commit_rows(requests, attempts, con, skip_stored=skip_stored)
        if not skip_stored:
            self.batches.append(len(requests))
            if len(self.batches) == 2:
                self.second.set()
        return out


def test_rows_that_waited_out_a_slow_commit_go_in_the_next_batch_at_once(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(queued, "time", clock)
    results = finished_results(4, seed=9)
    log = _SlowFirstCommit(tmp_path / "x.duckdb", flush_interval=INTERVAL, max_batch=1)
    log.record(results[0])                                # a full batch (max_batch=1): taken at once
    assert log.committing.wait(timeout=60)
    log.max_batch = 100                                   # no flush() and no full batch from here on
    for result in results[1:]:                            # queued while the first batch commits
        log.record(result)
    clock.now += INTERVAL + 1                             # ...and they have waited a whole interval
    log.release_first.set()
    assert log.second.wait(timeout=60), "the writer sat out another interval with rows already due"
    assert log.batches == [1, 3] and log.count_requests() == 4
    log.close()


def test_a_burst_still_gathers_into_one_batch_behind_its_first_row(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(queued, "time", clock)
    log = _SlowFirstCommit(tmp_path / "x.duckdb", flush_interval=INTERVAL)
    log.release_first.set()
    for result in finished_results(5, seed=8):            # within the window: nothing is committed yet
        log.record(result)
    assert log.batches == [] and log.pending == 5
    log.flush(timeout=60)
    assert log.batches == [5]
    log.close()
