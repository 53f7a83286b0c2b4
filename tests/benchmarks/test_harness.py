"""The benchmark harness's own logic: percentiles, and BENCHMARKS.md updates that keep what was not re-run."""
from __future__ import annotations

from pathlib import Path

from benchmarks.__main__ import table, write_markdown
from benchmarks.harness import Figure, percentile

INFO = {"when": "2026-01-01T00:00:00+00:00", "versions": {"duckdb": "2.0.1"},
        "machine": {"nproc": 2, "cpu": "X", "memory_gb": 8, "os": "Linux", "python": "3.11", "load_avg": [1.0]}}


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0, 1.0, 3.0], 0) == 1.0
    assert percentile([5.0, 1.0, 3.0], 100) == 5.0
    assert abs(percentile(list(range(101)), 99) - 99.0) < 1e-9


def test_table_marks_missed_targets_and_escapes_pipes() -> None:
    text = table([Figure(part="router", name="added p50", value=0.5, unit="ms", baseline="a | b",
                         target="<= 0.25 ms", met=False)])
    assert "| router | added p50 | 0.500 ms | a / b | <= 0.25 ms | MISSED |" in text


def test_markdown_keeps_analysis_and_parts_not_rerun(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    first = {"router": [Figure(part="router", name="added p50", value=1.0, unit="ms")],
             "ingest": [Figure(part="ingest", name="writer", value=9000, unit="req/s", note="why")]}
    write_markdown(first, INFO, "python -m benchmarks", path)
    text = path.read_text()
    text = text.replace("<!-- /header -->\n", "<!-- /header -->\n<!-- analysis -->\nhand notes\n<!-- /analysis -->\n")
    path.write_text(text)

    write_markdown({"router": [Figure(part="router", name="added p50", value=2.0, unit="ms")]}, INFO,
                   "python -m benchmarks --only router", path)
    text = path.read_text()
    assert "hand notes" in text
    assert "2.00 ms" in text and "1.00 ms" not in text          # router replaced
    assert "9,000 req/s" in text and "- writer: why" in text     # ingest kept from the earlier run
    assert text.index("### router") < text.index("### ingest")
