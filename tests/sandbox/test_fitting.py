"""Provider models fitted from the log: error rates by class and counts come from the logged attempts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from taelio_core.calllog import DuckDBCallLog
from taelio_core.sandbox.fitting import MIN_ATTEMPTS, fit_models
from taelio_core.sandbox.models import models_from_policy
from tests.sandbox.conftest import current_policy, fill_log

START = datetime(2026, 11, 10, tzinfo=timezone.utc)  # fixed-date-ok: logged at this date and read back over explicit START-based windows


def test_fitted_models_reproduce_the_logged_error_rates_and_say_what_they_rest_on(tmp_path) -> None:
    db = tmp_path / "log.duckdb"
    fill_log(db, requests=400, start=START, step_s=60)
    log = DuckDBCallLog(db)
    prior = models_from_policy(current_policy())
    fitted = fit_models(log, prior, START, START + timedelta(days=30), sources=("demo",))
    counts = log.query("SELECT provider || ':' || model AS ref, count(*) AS n, "
                       "count(*) FILTER (WHERE error_type = 'rate_limited') AS rl FROM attempts GROUP BY ref")
    assert fitted.source == "log"
    checked = 0
    for row in counts.to_dict(orient="records"):
        model = fitted.models[row["ref"]]
        if row["n"] < MIN_ATTEMPTS:
            assert model.fitted_from == 0 and model == prior.models[row["ref"]]
            continue
        checked += 1
        assert model.fitted_from == row["n"]
        assert abs(model.error_rates.get("rate_limited", 0.0) - row["rl"] / row["n"]) < 1e-4
        assert "idea" in model.tokens_per_task or "story" in model.tokens_per_task
        assert "fitted_rows" in model.as_row() and model.as_row()["fitted_rows"] == row["n"]
    assert checked >= 2
    # Nothing logged in the window: the prior stands.
    empty = fit_models(log, prior, START - timedelta(days=9), START - timedelta(days=8), sources=("demo",))
    assert empty.models == prior.models
    log.close()
