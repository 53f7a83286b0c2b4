"""Charts over time with little data: a sentence where there is nothing to draw, markers for single points."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from taelio_core.analytics import TimeAxis
from tests.app.conftest import make_app, open_page
from tests.seeded_log import clock_now
from tests.test_time_buckets import request_at, write_log
from ui import charts

pytestmark = pytest.mark.timeout(180)


def test_health_with_no_errors_says_so_instead_of_drawing_an_empty_chart(tmp_path, monkeypatch) -> None:
    now = clock_now()
    path = write_log(tmp_path / "ok.duckdb", [request_at(now - timedelta(minutes=m)) for m in range(1, 40, 4)])
    monkeypatch.setenv("DATABASE_URL", str(path))
    at = open_page(make_app(), "health")
    captions = [c.value for c in at.caption]
    assert "No errors in this range: every attempt succeeded." in captions and "No errors in this range." in captions
    assert any("one point per 15 minutes" in c for c in captions)   # ten attempts: 15-minute points
    assert [s.value for s in at.subheader].count("Errors by type") == 1
    assert len(at.get("plotly_chart")) == 3               # latency, fallback rate, availability; no errors chart


def test_a_series_with_one_point_is_drawn_with_markers_and_room_around_it() -> None:
    bucket = pd.Timestamp("2026-11-20 10:00")
    frame = pd.DataFrame({"bucket": [bucket], "provider": ["openai"], "p50_ms": [200.0], "p95_ms": [400.0],
                          "p99_ms": [500.0]})
    fig = charts.latency_lines(frame, axis=TimeAxis(bucket="hour"))
    assert fig.data and all("markers" in trace.mode for trace in fig.data)
    low, high = fig.layout.xaxis.range
    assert pd.Timestamp(low) < bucket < pd.Timestamp(high)
    assert fig.layout.xaxis.tickformat == "%d %b %H:%M"


def test_the_bucket_still_filling_is_shaded_so_far() -> None:
    frame = pd.DataFrame({"bucket": pd.to_datetime(["2026-11-19", "2026-11-20"]), "error_type": ["timeout"] * 2,
                          "provider": ["openai"] * 2, "errors": [9, 2]})
    axis = TimeAxis(bucket="day", partial_from=pd.Timestamp("2026-11-20", tz="UTC").to_pydatetime())
    fig = charts.errors_stacked(frame, axis=axis)
    assert [a.text for a in fig.layout.annotations] == ["so far"]
    assert len(fig.layout.shapes) == 1
