"""An experiment's inputs: one prompt, an uploaded CSV, or a saved set.

A CSV needs a ``prompt`` column; ``genre`` and ``tone`` are optional (they
default to "any", as in the rest of Taelio), and any other column becomes a
template variable (``{audience}``...). Every problem is one ``InputError``
naming the row and column as a spreadsheet shows them (row 1 is the header),
so a product manager can fix the file without guessing. Nothing is stored
until the whole file is valid.
"""
from __future__ import annotations

import csv
import io
import json
import re

from taelio_core.errors import InputError
from taelio_core.routing.inputs import MAX_FIELD_CHARS, MAX_PROMPT_CHARS, check_text

__all__ = ["MAX_ROWS", "parse_csv", "single_prompt", "validate_set_name"]

MAX_ROWS = 2000
MAX_CSV_BYTES = 5_000_000
_COLUMN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DEFAULTS = {"genre": "any", "tone": "any"}


def single_prompt(prompt: str, genre: str = "", tone: str = "") -> list[dict[str, str]]:
    row = {"prompt": check_text(prompt, "prompt", limit=MAX_PROMPT_CHARS, required=True),
           "genre": check_text(genre, "genre", limit=MAX_FIELD_CHARS, required=False) or "any",
           "tone": check_text(tone, "tone", limit=MAX_FIELD_CHARS, required=False) or "any"}
    return [row]


def parse_csv(data: bytes | str, *, source: str = "the CSV") -> list[dict[str, str]]:
    """Rows as ``{column: value}``; raises ``InputError`` naming the row and column at fault."""
    if isinstance(data, bytes):
        if len(data) > MAX_CSV_BYTES:
            raise InputError(f"{source} is {len(data):,} bytes; the limit is {MAX_CSV_BYTES:,}", field="csv")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(f"{source} is not UTF-8 text (byte {e.start + 1}); save it as 'CSV UTF-8'",
                             field="csv") from None
    else:
        text = data.lstrip("\ufeff")
    if not text.strip():
        raise InputError(f"{source} is empty", field="csv")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as e:
        raise InputError(f"{source}: row 1 (the header) cannot be read: {e}", field="csv") from None
    columns = [h.strip().lower() for h in header]
    for i, name in enumerate(columns, start=1):
        if not _COLUMN.match(name):
            raise InputError(f"{source}: row 1, column {i} ('{header[i - 1]}'): a column name is lower-case "
                             "letters, digits and '_', starting with a letter", field="csv")
        if columns.index(name) != i - 1:
            raise InputError(f"{source}: row 1, column {i}: '{name}' appears twice", field="csv")
    if "prompt" not in columns:
        raise InputError(f"{source}: row 1 (the header) has no 'prompt' column (found: {', '.join(columns)})",
                         field="csv")
    rows: list[dict[str, str]] = []
    try:
        for line_no, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue  # blank lines, e.g. a trailing newline in Excel's export
            if len(values) != len(columns):
                raise InputError(f"{source}: row {line_no} has {len(values)} cells; the header has "
                                 f"{len(columns)} (a comma inside a cell needs quotes)", field="csv")
            row: dict[str, str] = {}
            for column, value in zip(columns, values, strict=True):
                where = f"{source}: row {line_no}, column '{column}'"
                limit = MAX_PROMPT_CHARS if column == "prompt" else MAX_FIELD_CHARS * 10
                try:
                    row[column] = check_text(value, column, limit=limit, required=column == "prompt")
                except InputError as e:
                    detail = str(e).removeprefix(f"{column} ")
                    detail = "the cell " + detail if detail.startswith("is ") else detail
                    raise InputError(f"{where}: {detail}", field="csv") from None
            for key, default in DEFAULTS.items():
                row[key] = row.get(key) or default
            rows.append(row)
            if len(rows) > MAX_ROWS:
                raise InputError(f"{source} has more than {MAX_ROWS:,} rows; split it into smaller experiments",
                                 field="csv")
    except csv.Error as e:
        raise InputError(f"{source}: row {reader.line_num}: {e}", field="csv") from None
    if not rows:
        raise InputError(f"{source} has a header but no rows", field="csv")
    return rows


def validate_set_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InputError("a saved set needs a name of 1 to 80 characters", field="set")
    return name


def rows_json(rows: list[dict[str, str]]) -> str:
    return json.dumps(rows, ensure_ascii=False)
