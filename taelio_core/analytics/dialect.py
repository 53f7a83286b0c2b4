"""The one place where the analytics SQL differs between DuckDB and PostgreSQL.

Why: the analytics queries are written once, in SQL both engines run
(explicit ``GROUP BY`` positions, ``DOUBLE PRECISION``, ``FILTER``,
``date_trunc('hour', ...)``, window functions, a float cast before every
division of counts). Two things have no common spelling, and each query
that needs one asks its reader's ``dialect`` for the fragment:

* an exact percentile (DuckDB ``quantile_cont``, PostgreSQL ``percentile_cont ... WITHIN GROUP``);
* the last ``n`` values by time, as a list (DuckDB ``arg_max(v, t, n)``, PostgreSQL an ordered ``array_agg``).

Everything else backend-specific (placeholders, result types, the minute-grain
rollups) lives in the reader itself: ``rollup.Reader`` for DuckDB,
``pg_reader.PostgresReader`` for PostgreSQL.

A transpiler (sqlglot 30.30) was measured for this and not used: it left
``GROUP BY ALL``, ``arg_min``/``arg_max`` and ``EXCLUDE`` unchanged or wrong
for PostgreSQL, moved ``QUALIFY``'s ordering into a subquery (order lost),
and cost 1-40 ms per query text before caching.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DUCKDB", "POSTGRES", "Dialect"]


@dataclass(frozen=True, kw_only=True)
class Dialect:
    name: str

    def quantile(self, expr: str, q: float, where: str | None = None) -> str:
        """The exact ``q`` quantile of ``expr`` (linear interpolation), over the rows matching ``where``."""
        q = float(q)
        filt = f" FILTER (WHERE {where})" if where else ""
        if self.name == "postgres":
            return f"percentile_cont({q}) WITHIN GROUP (ORDER BY {expr}){filt}"
        return f"quantile_cont({expr}, {q}){filt}"

    def latest(self, value: str, order: str, n: int) -> str:
        """The ``n`` values of ``value`` with the largest ``order``, newest first, as a list."""
        n = int(n)
        if self.name == "postgres":
            return f"(array_agg({value} ORDER BY {order} DESC))[1:{n}]"
        return f"arg_max({value}, {order}, {n})"


DUCKDB = Dialect(name="duckdb")
POSTGRES = Dialect(name="postgres")
