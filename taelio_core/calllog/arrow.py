"""The call log's Arrow schemas, and fast ways to build their columns from numpy.

Every write to the log is an Arrow batch per table (one ``INSERT ... SELECT``
instead of a row at a time), so the schemas live here, shared by the
writer thread, the bulk ``append_rows`` path and the demo-data generator.

The builders exist because the obvious ways are slow at millions of rows:
``pa.array(list_of_str)`` and ``Decimal`` objects cost a Python call per
value. Money goes in as integer units of 1e-10 USD (the log's
``DECIMAL(18, 10)`` scale), ids as random bytes hex-encoded in numpy, and
repeated text as indices into a small dictionary.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taelio_core.calllog.rows import ATTEMPT_COLUMNS, LATER_DEFAULTS, REQUEST_COLUMNS, sha256, widened

__all__ = ["ATTEMPT_SCHEMA", "COST_SCALE", "COST_TYPE", "REQUEST_SCHEMA", "TS_TYPE", "complete_text", "conform",
           "decimal_from_units", "hex_ids", "rows_to_table", "strings_from_indices"]

COST_SCALE = 10
COST_TYPE = pa.decimal128(18, COST_SCALE)
TS_TYPE = pa.timestamp("us", tz="UTC")

REQUEST_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("parent_id", pa.string()), ("ts", TS_TYPE), ("source", pa.string()),
    ("tier", pa.string()), ("task", pa.string()), ("policy", pa.string()), ("status", pa.string()),
    ("provider", pa.string()), ("model", pa.string()), ("simulated", pa.bool_()), ("latency_ms", pa.float64()),
    ("ttft_ms", pa.float64()), ("input_tokens", pa.int64()), ("output_tokens", pa.int64()),
    ("cached_tokens", pa.int64()), ("cost_usd", COST_TYPE), ("n_attempts", pa.int32()),
    ("fallback_depth", pa.int32()), ("n_skipped", pa.int32()), ("experiment_id", pa.string()),
    ("user_id", pa.string()), ("prompt_sha256", pa.string()), ("prompt", pa.string()), ("output", pa.string()),
    ("output_sha256", pa.string()), ("error", pa.string()), ("routing_reason", pa.string()),
    ("trace", pa.string()), ("retries", pa.int32()), ("pinned_provider", pa.string()),
])
ATTEMPT_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("n", pa.int32()), ("ts", TS_TYPE), ("source", pa.string()), ("tier", pa.string()),
    ("task", pa.string()), ("provider", pa.string()), ("model", pa.string()), ("response_model", pa.string()),
    ("simulated", pa.bool_()), ("status", pa.string()), ("error_type", pa.string()), ("error", pa.string()),
    ("http_status", pa.int32()), ("latency_ms", pa.float64()), ("ttft_ms", pa.float64()),
    ("input_tokens", pa.int64()), ("output_tokens", pa.int64()), ("cached_tokens", pa.int64()),
    ("cost_usd", COST_TYPE), ("price_source", pa.string()), ("finish_reason", pa.string()), ("retry", pa.int32()),
    ("hedge", pa.bool_()), ("wait_ms", pa.float64()), ("sent", pa.bool_()),
])
if REQUEST_SCHEMA.names != REQUEST_COLUMNS or ATTEMPT_SCHEMA.names != ATTEMPT_COLUMNS:  # pragma: no cover
    raise RuntimeError("calllog.arrow schemas and calllog.rows columns disagree")

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_ids(rng: np.random.Generator, n: int, at_ms: np.ndarray | None = None) -> pa.StringArray:
    """``n`` random 128-bit ids as 32 lower-case hex characters (the shape of ``uuid4().hex``).

    With ``at_ms`` (milliseconds since the epoch, one per id) the first 48 bits are that time, as in
    UUIDv7: ids made in time order then sort in time order, which keeps inserts into the primary-key
    index near its right edge (a bulk load of random ids into a large index is several times slower).
    """
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    if at_ms is not None:
        stamp = np.asarray(at_ms, dtype=">u8").view(np.uint8).reshape(n, 8)
        raw[:, :6] = stamp[:, 2:]
    chars = np.empty((n, 32), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 15]
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def decimal_from_units(units: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Int64 amounts in 1e-10 USD -> ``decimal128(18, 10)``, exactly; ``valid=False`` rows are NULL."""
    units = np.ascontiguousarray(units, dtype=np.int64)
    n = len(units)
    words = np.empty((n, 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63  # sign extension to 128 bits
    validity = None
    null_count = 0
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        null_count = int(n - valid.sum())
        if null_count:
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(COST_TYPE, n, [validity, pa.py_buffer(words)], null_count=null_count)


def strings_from_indices(dictionary: Sequence[str | None], indices: np.ndarray) -> pa.Array:
    """``dictionary[i]`` for each index, in C++; a negative index (or a None entry) gives NULL."""
    indices = np.asarray(indices, dtype=np.int32)
    values = pa.array(list(dictionary), type=pa.string())
    if len(values) == 0:
        return pa.nulls(len(indices), type=pa.string())
    mask = indices < 0
    picked = pa.array(np.where(mask, 0, indices), type=pa.int32(), mask=mask if mask.any() else None)
    return values.take(picked)


def conform(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in order, cast where needed.

    A missing column raises ``ValueError`` naming it, so a caller's mistake
    reads as one sentence rather than a DuckDB binder error.
    """
    for name in schema.names:  # a column added later (migration 012) may be left out: its default
        if name in LATER_DEFAULTS and name not in table.column_names:
            field = schema.field(name)
            table = table.append_column(field, pa.array([LATER_DEFAULTS[name]] * table.num_rows, field.type))
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{what} table lacks column(s): {', '.join(missing)}")
    table = table.select(schema.names)
    if table.schema.equals(schema, check_metadata=False):
        return table
    return table.cast(schema)


def rows_to_table(rows: list[tuple[Any, ...]], schema: pa.Schema, *, store_text: bool | None = None) -> pa.Table:
    """Tuples in column order (times in µs, money in 1e-10 USD units) -> an Arrow table, column by column.

    With ``store_text`` (request rows), the text hashes missing from the rows are computed here, in
    bulk in the writer thread (hashlib: a fifth of DuckDB's ``sha256`` per value), and the text
    itself is dropped when the log keeps hashes only.
    """
    if not rows:
        return schema.empty_table()
    rows = widened(rows, schema.names)   # a row journalled before migration 012: later columns' defaults
    columns = list(zip(*rows))
    if store_text is not None:
        _hash_text(columns, schema.names, store_text)
    arrays = []
    for field, values in zip(schema, columns):
        if field.name == "ts":
            arrays.append(pa.array(values, pa.int64()).cast(TS_TYPE))
        elif field.name == "cost_usd":
            valid = np.fromiter((v is not None for v in values), bool, len(values))
            units = np.fromiter((v or 0 for v in values), np.int64, len(values))
            arrays.append(decimal_from_units(units, valid))
        else:
            try:
                arrays.append(pa.array(values, field.type))
            except UnicodeEncodeError:
                # Text with lone surrogates (a provider's broken escape) cannot be UTF-8: store it with
                # U+FFFD in their place rather than lose the row.
                arrays.append(pa.array([v.encode("utf-8", "replace").decode("utf-8") if isinstance(v, str) else v
                                        for v in values], field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _hash_text(columns: list[Any], names: list[str], store_text: bool) -> None:
    at = {name: i for i, name in enumerate(names)}
    prompts, outputs = columns[at["prompt"]], columns[at["output"]]
    columns[at["prompt_sha256"]] = [given if given is not None else None if text is None else sha256(text)
                                    for given, text in zip(columns[at["prompt_sha256"]], prompts)]
    columns[at["output_sha256"]] = [given if given is not None else sha256(text) if text else None
                                    for given, text in zip(columns[at["output_sha256"]], outputs)]
    if not store_text:
        columns[at["prompt"]] = columns[at["output"]] = [None] * len(prompts)


def complete_text(requests: pa.Table, store_text: bool) -> pa.Table:
    """A bulk requests table (already ``conform``-ed) with its missing text hashes filled in, and its text
    dropped in hash-only mode."""
    names = ("prompt", "output", "prompt_sha256", "output_sha256")
    missing = pc.sum(pc.or_(pc.and_(pc.is_null(requests["prompt_sha256"]), pc.is_valid(requests["prompt"])),
                            pc.and_(pc.is_null(requests["output_sha256"]),
                                    pc.not_equal(pc.fill_null(requests["output"], ""), "")))).as_py()
    if not missing and (store_text or requests["prompt"].null_count + requests["output"].null_count
                        == 2 * requests.num_rows):
        return requests
    # ``conform`` has given the table REQUEST_SCHEMA's column order, so a column's index is the schema's.
    columns: list[Any] = [None] * len(REQUEST_SCHEMA.names)
    for n in names:
        columns[REQUEST_SCHEMA.get_field_index(n)] = requests[n].to_pylist()
    _hash_text(columns, REQUEST_SCHEMA.names, store_text)
    for n in names:
        i = REQUEST_SCHEMA.get_field_index(n)
        requests = requests.set_column(i, REQUEST_SCHEMA.field(i), pa.array(columns[i], pa.string()))
    return requests
