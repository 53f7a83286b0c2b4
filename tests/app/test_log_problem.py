"""Issue 13 part 1: a damaged log gives every page a page that says what is wrong, never a raw exception box."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.app.conftest import make_app


@pytest.mark.parametrize("page", ["costs", "health", "calls"])
def test_a_log_with_a_dropped_requests_table_shows_the_file_and_how_to_recover_on_every_page(
        tmp_path: Path, monkeypatch, page):
    db = tmp_path / "damaged.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    con.execute("INSERT INTO _migrations VALUES ('001_requests_and_attempts', now())")
    con.close()
    monkeypatch.setenv("DATABASE_URL", str(db))
    monkeypatch.setenv("TAELIO_MODE", "demo")
    at = make_app()
    at.run()
    if page != "generate":
        at.switch_page(f"pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["The call log cannot be used"]
    assert [e.value for e in at.error] and any(f"the log {db} is damaged: its tables 'attempts', 'requests' are missing" in e.value for e in at.error), [e.value for e in at.error]
    assert any(f"mv {db} {db}.damaged" in c.value for c in at.code)
