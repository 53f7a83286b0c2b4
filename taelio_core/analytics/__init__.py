"""Read-only analytics over the call log, as DataFrames, for the dashboard and the CLI.

Every function takes a ``CallLog`` and a ``Filters`` value (date range,
sources, tiers, tasks, providers) and does its aggregation in DuckDB with
bound parameters; pandas only receives the small result. No Streamlit here.

* ``spend``: cost by provider x tier over time, usage, headline totals, cost spread per model, top spend.
* ``reliability``: latency percentiles, fallback rate, errors by type, success rate, provider health.
* ``budget_burn``: month-to-date spend against the policy's budgets, projection, run-out date, alerts.
* ``calls``: the searchable request list and one request's attempts and trace.
* ``search_window``: which newest slice of the range a Calls search covers first (sized from the rollup).
* ``users``: spend and requests per user (the HTTP API's callers).
* ``views``: all of the Costs page's or the Health page's figures, read on one connection.
* ``rollup``: the hourly rollups every aggregate reads (exact sums and counts; percentiles within 4.4 %).
"""
from __future__ import annotations

from taelio_core.analytics.budget_burn import LEVELS, budget_burndown, budget_status, month_bounds
from taelio_core.analytics.calls import (
    EXPORT_COLUMNS,
    LIST_COLUMNS,
    SEARCH_MATCHES,
    RequestDetail,
    export_requests,
    list_requests,
    request_detail,
    requests_by_source,
)
from taelio_core.analytics.rollup import QUANTILE_ERROR
from taelio_core.analytics.search_window import SEARCH_STEP_REQUESTS, SearchWindow, search_window
from taelio_core.analytics.filters import BUCKETS, SOURCES, Filters, bucket_for
from taelio_core.analytics.reliability import (
    DOWN_BELOW,
    DOWN_STREAK,
    HEALTHY_MIN,
    availability_over_time,
    errors_by_type,
    errors_over_time,
    fallback_rate,
    fallback_rate_over_time,
    latency_by_provider,
    latency_over_time,
    provider_health,
    success_by_provider,
)
from taelio_core.analytics.time_buckets import TimeAxis, choose_bucket
from taelio_core.analytics.users import top_users
from taelio_core.analytics.views import CostsView, HealthView, costs_view, health_view
from taelio_core.analytics.spend import (
    Headline,
    cost_by_provider_tier,
    cost_distribution_by_model,
    headline,
    spend_by,
    usage_over_time,
)

__all__ = [
    "BUCKETS", "DOWN_BELOW", "DOWN_STREAK", "HEALTHY_MIN", "TimeAxis", "choose_bucket", "CostsView", "EXPORT_COLUMNS", "HealthView", "LEVELS", "LIST_COLUMNS", "QUANTILE_ERROR", "SEARCH_MATCHES", "SEARCH_STEP_REQUESTS", "SOURCES", "SearchWindow", "Filters", "Headline", "RequestDetail",
    "availability_over_time", "bucket_for", "budget_burndown", "budget_status", "cost_by_provider_tier",
    "cost_distribution_by_model", "costs_view", "errors_by_type", "errors_over_time", "fallback_rate",
    "export_requests", "fallback_rate_over_time", "headline", "health_view", "latency_by_provider", "latency_over_time", "list_requests",
    "month_bounds", "provider_health", "request_detail", "requests_by_source", "search_window", "spend_by", "success_by_provider", "top_users",
    "usage_over_time",
]
