"""The call log's tables, as named, append-only migrations.

Each migration runs once, in order, inside a transaction, and is recorded in
``_migrations``. Opening an older file applies the ones it lacks. Never edit
a migration that has shipped: append a new one.

Columns map onto the OpenTelemetry GenAI semantic conventions:

================  ==================================
column            OpenTelemetry attribute
================  ==================================
provider          gen_ai.provider.name
model             gen_ai.request.model
response_model    gen_ai.response.model
task              gen_ai.operation.name (Taelio task)
input_tokens      gen_ai.usage.input_tokens
output_tokens     gen_ai.usage.output_tokens
cached_tokens     gen_ai.usage.cache_read.input_tokens
finish_reason     gen_ai.response.finish_reasons
error_type        error.type
http_status       http.response.status_code
request_id        gen_ai.response.id is the provider's; ours is the trace's
================  ==================================
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["MIGRATIONS", "migrate"]

MIGRATIONS: list[tuple[str, str]] = [
    ("001_requests_and_attempts", """
CREATE TABLE requests (
    request_id      VARCHAR PRIMARY KEY,
    parent_id       VARCHAR,
    ts              TIMESTAMPTZ NOT NULL,
    source          VARCHAR NOT NULL,       -- live | demo | sandbox | test | experiment
    tier            VARCHAR NOT NULL,
    task            VARCHAR NOT NULL,
    policy          VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,       -- ok | failed | truncated | rejected
    provider        VARCHAR,                -- who served it (NULL when nobody did)
    model           VARCHAR,
    simulated       BOOLEAN NOT NULL DEFAULT false,
    latency_ms      DOUBLE,
    ttft_ms         DOUBLE,
    input_tokens    BIGINT NOT NULL DEFAULT 0,
    output_tokens   BIGINT NOT NULL DEFAULT 0,
    cached_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_usd        DECIMAL(18, 10),        -- NULL: not priced (never 0 for unknown)
    n_attempts      INTEGER NOT NULL DEFAULT 0,
    fallback_depth  INTEGER NOT NULL DEFAULT 0,
    n_skipped       INTEGER NOT NULL DEFAULT 0,
    experiment_id   VARCHAR,
    user_id         VARCHAR,
    prompt_sha256   VARCHAR,
    prompt          VARCHAR,                -- NULL when the log stores hashes only
    output          VARCHAR,
    output_sha256   VARCHAR,
    error           VARCHAR,
    routing_reason  VARCHAR,
    trace           JSON                    -- chain and skipped entries, as the UI shows them
);
CREATE TABLE attempts (
    request_id      VARCHAR NOT NULL,
    n               INTEGER NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    source          VARCHAR NOT NULL,
    tier            VARCHAR NOT NULL,
    task            VARCHAR NOT NULL,
    provider        VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    response_model  VARCHAR,
    simulated       BOOLEAN NOT NULL DEFAULT false,
    status          VARCHAR NOT NULL,       -- ok | error | truncated | cancelled
    error_type      VARCHAR,
    error           VARCHAR,
    http_status     INTEGER,
    latency_ms      DOUBLE,
    ttft_ms         DOUBLE,
    input_tokens    BIGINT NOT NULL DEFAULT 0,
    output_tokens   BIGINT NOT NULL DEFAULT 0,
    cached_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_usd        DECIMAL(18, 10),
    price_source    VARCHAR,
    finish_reason   VARCHAR,
    retry           INTEGER NOT NULL DEFAULT 0,
    hedge           BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (request_id, n)
);
"""),
    ("002_breaker_events", """
CREATE TABLE breaker_events (
    ts              TIMESTAMPTZ NOT NULL,
    provider        VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,       -- '*' for a provider-wide mark (key rejected)
    from_state      VARCHAR NOT NULL,       -- closed | open | half_open
    to_state        VARCHAR NOT NULL,
    reason          VARCHAR,                -- '5 failures in a row', 'key rejected', 'model retired?'...
    until           TIMESTAMPTZ,            -- open: when a trial request may go through
    pid             INTEGER                 -- the process whose breaker moved (state is per process)
);
"""),
    ("003_experiments", """
CREATE TABLE experiments (
    experiment_id   VARCHAR PRIMARY KEY,
    name            VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    tier            VARCHAR NOT NULL,       -- charged to this tier (budgets, analytics)
    task            VARCHAR NOT NULL,       -- the policy task its requests are logged under
    concurrency     INTEGER NOT NULL,       -- inputs in flight at once (all variants of one input run together)
    cost_cap_usd    DECIMAL(18, 10),        -- NULL: no cap
    inputs_kind     VARCHAR NOT NULL,       -- prompt | csv | set
    notes           VARCHAR
);
CREATE TABLE experiment_variants (
    experiment_id   VARCHAR NOT NULL,
    variant_id      VARCHAR NOT NULL,       -- short, stable: v1, v2...
    position        INTEGER NOT NULL,
    label           VARCHAR NOT NULL,
    provider        VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    system_template VARCHAR NOT NULL,
    user_template   VARCHAR NOT NULL,
    max_tokens      INTEGER NOT NULL,
    temperature     DOUBLE NOT NULL,
    timeout_s       DOUBLE NOT NULL,
    PRIMARY KEY (experiment_id, variant_id)
);
CREATE TABLE experiment_inputs (
    experiment_id   VARCHAR NOT NULL,
    input_id        INTEGER NOT NULL,       -- 1-based row number of the dataset
    variables       JSON NOT NULL,          -- column -> value; always has "prompt"
    PRIMARY KEY (experiment_id, input_id)
);
CREATE TABLE experiment_cells (
    experiment_id   VARCHAR NOT NULL,
    input_id        INTEGER NOT NULL,
    variant_id      VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,       -- ok | failed | truncated
    request_id      VARCHAR,                -- the requests row of the last try
    output          VARCHAR,
    error           VARCHAR,
    latency_ms      DOUBLE,
    input_tokens    BIGINT NOT NULL DEFAULT 0,
    output_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_usd        DECIMAL(18, 10),        -- NULL: unpriced
    simulated       BOOLEAN NOT NULL DEFAULT false,
    tries           INTEGER NOT NULL DEFAULT 1,
    finished_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (experiment_id, input_id, variant_id)
);
CREATE TABLE experiment_votes (
    vote_id         VARCHAR PRIMARY KEY,
    experiment_id   VARCHAR NOT NULL,
    input_id        INTEGER NOT NULL,
    left_variant    VARCHAR NOT NULL,       -- shown as "A"
    right_variant   VARCHAR NOT NULL,       -- shown as "B"
    choice          VARCHAR NOT NULL,       -- left | right | tie | both_bad
    winner          VARCHAR,                -- variant id, NULL for tie / both bad
    voter           VARCHAR,
    ts              TIMESTAMPTZ NOT NULL
);
CREATE TABLE experiment_judgments (
    experiment_id   VARCHAR NOT NULL,
    input_id        INTEGER NOT NULL,
    variant_a       VARCHAR NOT NULL,
    variant_b       VARCHAR NOT NULL,
    winner_ab       VARCHAR,                -- variant id the judge preferred with a shown first; NULL = tie
    winner_ba       VARCHAR,                -- ... with b shown first
    consistent      BOOLEAN NOT NULL,       -- both orders agree: only these verdicts count
    winner          VARCHAR,                -- the consistent winner, NULL for a tie or an inconsistent pair
    score_a         DOUBLE,                 -- mean over both orders, 1-10
    score_b         DOUBLE,
    cost_usd        DECIMAL(18, 10),
    request_ids     VARCHAR,
    ts              TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (experiment_id, input_id, variant_a, variant_b)
);
CREATE TABLE input_sets (
    name            VARCHAR PRIMARY KEY,
    created_at      TIMESTAMPTZ NOT NULL,
    rows            JSON NOT NULL           -- list of {column: value}
);
"""),
    ("004_sandbox_runs", """
-- Sandbox runs live in their own tables, never in requests/attempts, so live
-- analytics cannot count simulated traffic by mistake.
CREATE TABLE sandbox_runs (
    run_id          VARCHAR PRIMARY KEY,
    created_at      TIMESTAMPTZ NOT NULL,
    source          VARCHAR NOT NULL DEFAULT 'sandbox',
    policy_a        VARCHAR NOT NULL,
    policy_b        VARCHAR,
    policy_a_toml   VARCHAR NOT NULL,
    policy_b_toml   VARCHAR,
    traffic         VARCHAR NOT NULL,       -- a sentence: what was sent
    traffic_meta    JSON,
    scenario        VARCHAR,
    seeds           INTEGER NOT NULL,
    requests        BIGINT NOT NULL,        -- per arm and seed
    wall_s          DOUBLE,
    requests_per_s  DOUBLE,
    models          JSON                    -- the provider models used, after the scenario
);
CREATE TABLE sandbox_summaries (
    run_id          VARCHAR NOT NULL,
    arm             VARCHAR NOT NULL,       -- A | B
    seed            INTEGER NOT NULL,
    scope           VARCHAR NOT NULL,       -- tier | provider
    key             VARCHAR NOT NULL,       -- tier name, or provider:model
    metric          VARCHAR NOT NULL,
    value           DOUBLE,
    PRIMARY KEY (run_id, arm, seed, scope, key, metric)
);
CREATE TABLE sandbox_series (
    run_id          VARCHAR NOT NULL,
    arm             VARCHAR NOT NULL,
    seed            INTEGER NOT NULL,
    bucket_s        DOUBLE NOT NULL,        -- virtual seconds from the traffic's start
    provider        VARCHAR,
    served          BIGINT,
    availability    DOUBLE,
    fallback_rate   DOUBLE,
    p95_ms          DOUBLE,
    requests        BIGINT
);
CREATE TABLE sandbox_traces (
    run_id          VARCHAR NOT NULL,
    arm             VARCHAR NOT NULL,
    seed            INTEGER NOT NULL,
    i               BIGINT NOT NULL,        -- the request's index in the traffic
    trace           JSON NOT NULL,
    PRIMARY KEY (run_id, arm, seed, i)
);
"""),
    ("005_requests_without_key_indexes", """
-- The primary keys on requests and attempts cost ~5x on every insert (an ART index updated
-- row by row) and only guarded against a journal replayed twice. Replays now skip, by an
-- anti-join on request_id, the requests already stored (``DuckDBCallLog._replay``); live rows
-- carry fresh ids. DuckDB cannot drop a constraint, so both tables are rebuilt as they were,
-- without the keys.
CREATE TABLE requests_005 (
    request_id      VARCHAR NOT NULL,
    parent_id       VARCHAR,
    ts              TIMESTAMPTZ NOT NULL,
    source          VARCHAR NOT NULL,       -- live | demo | sandbox | test | experiment
    tier            VARCHAR NOT NULL,
    task            VARCHAR NOT NULL,
    policy          VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,       -- ok | failed | truncated | rejected
    provider        VARCHAR,                -- who served it (NULL when nobody did)
    model           VARCHAR,
    simulated       BOOLEAN NOT NULL DEFAULT false,
    latency_ms      DOUBLE,
    ttft_ms         DOUBLE,
    input_tokens    BIGINT NOT NULL DEFAULT 0,
    output_tokens   BIGINT NOT NULL DEFAULT 0,
    cached_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_usd        DECIMAL(18, 10),        -- NULL: not priced (never 0 for unknown)
    n_attempts      INTEGER NOT NULL DEFAULT 0,
    fallback_depth  INTEGER NOT NULL DEFAULT 0,
    n_skipped       INTEGER NOT NULL DEFAULT 0,
    experiment_id   VARCHAR,
    user_id         VARCHAR,
    prompt_sha256   VARCHAR,
    prompt          VARCHAR,                -- NULL when the log stores hashes only
    output          VARCHAR,
    output_sha256   VARCHAR,
    error           VARCHAR,
    routing_reason  VARCHAR,
    trace           JSON                    -- chain and skipped entries, as the UI shows them
);
CREATE TABLE attempts_005 (
    request_id      VARCHAR NOT NULL,
    n               INTEGER NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    source          VARCHAR NOT NULL,
    tier            VARCHAR NOT NULL,
    task            VARCHAR NOT NULL,
    provider        VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    response_model  VARCHAR,
    simulated       BOOLEAN NOT NULL DEFAULT false,
    status          VARCHAR NOT NULL,       -- ok | error | truncated | cancelled
    error_type      VARCHAR,
    error           VARCHAR,
    http_status     INTEGER,
    latency_ms      DOUBLE,
    ttft_ms         DOUBLE,
    input_tokens    BIGINT NOT NULL DEFAULT 0,
    output_tokens   BIGINT NOT NULL DEFAULT 0,
    cached_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_usd        DECIMAL(18, 10),
    price_source    VARCHAR,
    finish_reason   VARCHAR,
    retry           INTEGER NOT NULL DEFAULT 0,
    hedge           BOOLEAN NOT NULL DEFAULT false
);
INSERT INTO requests_005 SELECT * FROM requests;
INSERT INTO attempts_005 SELECT * FROM attempts;
DROP TABLE requests;
DROP TABLE attempts;
ALTER TABLE requests_005 RENAME TO requests;
ALTER TABLE attempts_005 RENAME TO attempts;
"""),
    ("006_analytics_rollups", """
-- Hourly (UTC) aggregates of requests and attempts for the dashboard, kept by
-- taelio_core/analytics/rollup.py from a row watermark. Only sums, counts,
-- minima and maxima: every figure they give is exact, except percentiles,
-- which come from log-scale histograms (1/8 octave bins, within 4.4 %).
CREATE TABLE rollup_watermarks (
    source_table    VARCHAR PRIMARY KEY,    -- requests | attempts
    rows_done       BIGINT NOT NULL,        -- how many rows the table held when last folded
    next_rowid      BIGINT NOT NULL,        -- rows with rowid below this are folded in
    refreshed_at    TIMESTAMPTZ
);
CREATE TABLE attempt_rollup (
    hour            TIMESTAMP NOT NULL,     -- UTC, naive
    source          VARCHAR NOT NULL,
    tier            VARCHAR NOT NULL,
    task            VARCHAR NOT NULL,
    provider        VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,
    error_type      VARCHAR,
    attempts        BIGINT NOT NULL,
    first_attempts  BIGINT NOT NULL,        -- n = 1: one per request that was tried
    priced          BIGINT NOT NULL,        -- cost_usd IS NOT NULL
    unpriced        BIGINT NOT NULL,        -- no price although tokens were used
    cost_usd        DECIMAL(38, 10),        -- NULL when nothing in the group was priced
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    last_ts         TIMESTAMPTZ NOT NULL
);
CREATE TABLE request_rollup (
    hour            TIMESTAMP NOT NULL,
    source          VARCHAR NOT NULL,
    tier            VARCHAR NOT NULL,
    task            VARCHAR NOT NULL,
    provider        VARCHAR,
    model           VARCHAR,
    status          VARCHAR NOT NULL,
    fell_back       BOOLEAN NOT NULL,       -- fallback_depth > 0
    requests        BIGINT NOT NULL,
    priced          BIGINT NOT NULL,
    cost_usd        DECIMAL(38, 10),
    cost_min        DECIMAL(18, 10),
    cost_max        DECIMAL(18, 10),
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    last_ts         TIMESTAMPTZ NOT NULL
);
CREATE TABLE latency_histogram (        -- successful attempts
    hour            TIMESTAMP NOT NULL,
    source          VARCHAR NOT NULL,
    tier            VARCHAR NOT NULL,
    task            VARCHAR NOT NULL,
    provider        VARCHAR NOT NULL,
    metric          VARCHAR NOT NULL,       -- latency | ttft
    bin             INTEGER NOT NULL,       -- floor(8 * log2(ms)); -100000 for <= 0
    n               BIGINT NOT NULL,
    lo              DOUBLE NOT NULL,
    hi              DOUBLE NOT NULL
);
CREATE TABLE request_cost_histogram (   -- priced requests; a day grain (its query has no time axis)
    day             TIMESTAMP NOT NULL,
    source          VARCHAR NOT NULL,
    tier            VARCHAR NOT NULL,
    task            VARCHAR NOT NULL,
    provider        VARCHAR,
    model           VARCHAR NOT NULL,
    bin             INTEGER NOT NULL,
    n               BIGINT NOT NULL,
    lo              DOUBLE NOT NULL,
    hi              DOUBLE NOT NULL
);
"""),
    ("007_experiment_assertions", """
-- Checks on every answer of an experiment (taelio_core/experiments/assertions.py). Deterministic checks
-- are evaluated when results are read; a rubric is graded by the judge chain and stored here.
CREATE TABLE experiment_assertions (
    experiment_id   VARCHAR NOT NULL,
    assertion_id    VARCHAR NOT NULL,       -- a1, a2...
    position        INTEGER NOT NULL,
    kind            VARCHAR NOT NULL,       -- contains | not_contains | regex | max_length | json | rubric
    value           VARCHAR NOT NULL,
    variants        JSON NOT NULL,          -- variant ids it applies to; [] for every variant
    PRIMARY KEY (experiment_id, assertion_id)
);
CREATE TABLE experiment_grades (
    experiment_id   VARCHAR NOT NULL,
    input_id        INTEGER NOT NULL,
    variant_id      VARCHAR NOT NULL,
    assertion_id    VARCHAR NOT NULL,
    passed          BOOLEAN,                -- NULL: the grader's reply was unreadable or the call failed
    detail          VARCHAR,
    cost_usd        DECIMAL(18, 10),
    request_id      VARCHAR,
    ts              TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (experiment_id, input_id, variant_id, assertion_id)
);
"""),
    ("008_alerts", """
-- Budget and outage alerts (taelio_core/monitoring/alerts.py). One row per alert key: an alert is delivered
-- once per threshold per period, whoever checks first claims it.
CREATE TABLE alerts (
    alert_key       VARCHAR PRIMARY KEY,    -- kind|subject|period
    kind            VARCHAR NOT NULL,       -- budget_alert | budget_over | budget_projected | provider_outage
    subject         VARCHAR NOT NULL,       -- tier:pro, provider:openai, openai:gpt-4.1
    period          VARCHAR NOT NULL,       -- 2026-12 (a month's budget) or when the outage began
    message         VARCHAR NOT NULL,
    first_seen      TIMESTAMPTZ NOT NULL,
    status          VARCHAR NOT NULL,       -- sending | sent | failed | no_webhook
    sent_at         TIMESTAMPTZ,            -- NULL until the webhook accepted it
    destination     VARCHAR,                -- the webhook's host only: its path is a secret
    http_status     INTEGER,
    error           VARCHAR,
    attempts        INTEGER NOT NULL DEFAULT 0
);
"""),
    ("012_retries_and_pinned_provider", """
-- Retries are not fallbacks: a request's fallback_depth counts only moves to
-- another chain entry from here on (rows logged before this migration count
-- retries too); retries counts the retries of one entry, and each attempt
-- has the backoff (or Retry-After) wait before it. sent: false when the
-- request never left (connect failure), true when it was sent and nothing
-- came back. pinned_provider: the caller chose the provider.
ALTER TABLE requests ADD COLUMN retries INTEGER DEFAULT 0;
ALTER TABLE requests ADD COLUMN pinned_provider VARCHAR;
ALTER TABLE attempts ADD COLUMN wait_ms DOUBLE DEFAULT 0;
ALTER TABLE attempts ADD COLUMN sent BOOLEAN;
"""),
    ("013_user_rollup", """
-- Spend and requests per API user and UTC day (taelio_core/analytics/users.py), kept with the other rollups:
-- the Costs page's top users read thousands of rows instead of every request (the sidebar's dates are whole
-- UTC days). The next read rebuilds every rollup once, so the new one holds the rows already folded.
CREATE TABLE user_rollup (
    day             TIMESTAMP NOT NULL,     -- UTC, naive
    source          VARCHAR NOT NULL,
    tier            VARCHAR NOT NULL,
    task            VARCHAR NOT NULL,
    provider        VARCHAR,
    user_id         VARCHAR NOT NULL,
    requests        BIGINT NOT NULL,
    failed          BIGINT NOT NULL,        -- status <> 'ok'
    unpriced        BIGINT NOT NULL,        -- no price although tokens were used
    cost_usd        DECIMAL(38, 10),        -- NULL when nothing in the group was priced
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    last_ts         TIMESTAMPTZ NOT NULL
);
UPDATE rollup_watermarks SET rows_done = 9223372036854775807;
"""),
    ("014_attempt_rollup_simulated", """
-- Simulated calls never count toward a budget (analytics/budget_burn.py), so the budget spend read the month's
-- raw attempts: ~290 ms at 10M requests on 2 December, ~15x that at the month's end. With ``simulated`` as a key
-- of the attempt rollup it reads whole hours from here. The rows already folded (below the watermark) are
-- grouped again from the raw rows here; the rest are folded by the next read as usual.
ALTER TABLE attempt_rollup ADD COLUMN simulated BOOLEAN DEFAULT false;
DELETE FROM attempt_rollup;
INSERT INTO attempt_rollup BY NAME
SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AS hour, source, tier, task, provider, model, status, error_type,
       simulated, count(*) AS attempts, count(*) FILTER (WHERE n = 1) AS first_attempts,
       count(cost_usd) AS priced,
       count(*) FILTER (WHERE cost_usd IS NULL AND (input_tokens > 0 OR output_tokens > 0)) AS unpriced,
       sum(cost_usd) AS cost_usd, sum(input_tokens)::BIGINT AS input_tokens,
       sum(output_tokens)::BIGINT AS output_tokens, max(ts) AS last_ts
FROM attempts
WHERE rowid < coalesce((SELECT next_rowid FROM rollup_watermarks WHERE source_table = 'attempts'), 0)
GROUP BY ALL;
"""),
]


def migrate(con: Any, migrations: Sequence[tuple[str, str]] | None = None) -> list[str]:
    """Apply the migrations this file lacks, each in its own transaction; return their names."""
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    done = {row[0] for row in con.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for name, sql in (MIGRATIONS if migrations is None else migrations):
        if name in done:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql)
            con.execute("INSERT INTO _migrations VALUES (?, now())", [name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
