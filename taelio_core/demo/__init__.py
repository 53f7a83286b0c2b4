"""Demo data: made by the real router in virtual time, kept separable, and removable.

``generate_demo_data`` (``demo.generator``) fills a log with what live
traffic would have logged (``source='demo'``); ``remove_demo_data`` deletes
exactly those rows, so made-up spend never stays mixed with real figures;
``count_demo_requests`` says how many there are. The numpy bulk generator
the benchmarks need for 10M rows lives in ``benchmarks/bulk_log``: nothing a
user sees comes from it.
"""
from __future__ import annotations

from taelio_core.calllog.base import CallLog
from taelio_core.demo.generator import DEFAULT_REQUESTS_PER_DAY, generate_demo_data
from taelio_core.demo.traffic import DemoOutage, demo_outages

__all__ = ["DEFAULT_REQUESTS_PER_DAY", "DemoOutage", "count_demo_requests", "demo_outages", "generate_demo_data",
           "remove_demo_data"]

DEMO_SOURCE = "demo"


def count_demo_requests(log: CallLog) -> int:
    return log.count_requests(DEMO_SOURCE)


def remove_demo_data(log: CallLog) -> int:
    """Delete every demo request and its attempts, in one transaction; return how many requests went."""
    log.flush()  # rows still queued for the writer would otherwise land after the delete

    def work(con) -> int:  # noqa: ANN001 - a DuckDB connection, inside the log's transaction
        from taelio_core.analytics import rollup   # pandas and DuckDB: only once something is removed
        gone = int(con.execute("SELECT count(*) FROM requests WHERE source = ?", [DEMO_SOURCE]).fetchone()[0])
        con.execute("DELETE FROM attempts WHERE source = ?", [DEMO_SOURCE])
        con.execute("DELETE FROM requests WHERE source = ?", [DEMO_SOURCE])
        if gone:
            rollup.invalidate(con)         # no removed row may linger in a chart
        return gone
    return log.write(work)
