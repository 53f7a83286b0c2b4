"""Spend and requests per user: the users behind the HTTP API's tokens (``user_id``, the token's ``sub``).

Read from the daily ``user_rollup`` (migration ``013_user_rollup``, kept
with the other rollups: exact sums and counts; the sidebar's dates are whole
UTC days); only requests that carry a user count. A user stored as a hash
(``TAELIO_STORE_USER=hash``) shows as its hash.
"""
from __future__ import annotations

import pandas as pd

from taelio_core.analytics import rollup
from taelio_core.analytics.filters import Filters
from taelio_core.calllog import CallLog

__all__ = ["top_users"]


def top_users(log: CallLog | rollup.Reader, filters: Filters, *, limit: int = 10) -> pd.DataFrame:
    """The ``limit`` users who spent most: user_id, requests, failed, tokens, unpriced (requests with tokens and
    no price, left out of the cost), cost_usd."""
    where, params = filters.where(time_column="day")
    return rollup.read(log, lambda r: r.query(f"""
        SELECT user_id, sum(requests)::BIGINT AS requests, sum(failed)::BIGINT AS failed,
               (sum(input_tokens) + sum(output_tokens))::BIGINT AS tokens, sum(unpriced)::BIGINT AS unpriced,
               sum(cost_usd)::DOUBLE PRECISION AS cost_usd
        FROM user_rollup {where}
        GROUP BY user_id ORDER BY cost_usd DESC NULLS LAST, requests DESC, user_id LIMIT ?""",
        [*params, int(limit)]))
