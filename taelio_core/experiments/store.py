"""Experiments, their cells, votes and judge verdicts, in the call log's database (DuckDB or PostgreSQL).

They live beside ``requests`` (migrations 003 and 007, checks) so one file holds everything
and a cell can point at the request that produced it. All access goes
through ``CallLog.write``/``query``: each operation opens, works and closes,
which lets the dashboard and the CLI share the file.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pandas as pd

from taelio_core.calllog.base import CallLog
from taelio_core.config.policy import RoutingPolicy
from taelio_core.errors import InputError
from taelio_core.experiments.assertions import Assertion, validate
from taelio_core.experiments.dataset import rows_json, validate_set_name
from taelio_core.experiments.model import Cell, Experiment, ExperimentSpec, InputRow, Variant, build_variants
from taelio_core.routing.generation import GenerationSettings

__all__ = ["CHOICES", "ExperimentStore"]

CHOICES = ("left", "right", "tie", "both_bad")
_QUANT = Decimal("1e-10")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(_QUANT)


def _upsert(table: str, columns: str, key: str) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE``: a replace both DuckDB and PostgreSQL read (not INSERT OR REPLACE)."""
    names = [c.strip() for c in columns.split(",")]
    keys = {k.strip() for k in key.split(",")}
    updates = ", ".join(f"{c} = excluded.{c}" for c in names if c not in keys)
    return (f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}")


_CELLS = _upsert("experiment_cells", "experiment_id, input_id, variant_id, status, request_id, output, error, "
                 "latency_ms, input_tokens, output_tokens, cost_usd, simulated, tries, finished_at",
                 "experiment_id, input_id, variant_id")
_JUDGMENTS = _upsert("experiment_judgments", "experiment_id, input_id, variant_a, variant_b, winner_ab, winner_ba, "
                     "consistent, winner, score_a, score_b, cost_usd, request_ids, ts",
                     "experiment_id, input_id, variant_a, variant_b")
_GRADES = _upsert("experiment_grades", "experiment_id, input_id, variant_id, assertion_id, passed, detail, cost_usd, "
                  "request_id, ts", "experiment_id, input_id, variant_id, assertion_id")
_SETS = _upsert("input_sets", "name, created_at, rows", "name")


class ExperimentStore:
    def __init__(self, log: CallLog, policy: RoutingPolicy) -> None:
        self.log = log
        self.policy = policy

    # ---- experiments ---------------------------------------------------------------------
    def create(self, spec: ExperimentSpec, rows: list[dict[str, str]]) -> Experiment:
        """Validate everything, then store the experiment in one transaction."""
        if not rows:
            raise InputError("an experiment needs at least one input", field="inputs")
        columns = set(rows[0]) | {"genre", "tone"}
        variants = build_variants(spec.variants, self.policy, tier=spec.tier, task=spec.task, columns=columns)
        ids = {v.variant_id for v in variants}
        for i, a in enumerate(spec.assertions, start=1):
            validate(a, where=f"check {i}")
            unknown = [v for v in a.variants if v not in ids]
            if unknown:
                raise InputError(f"check {i}: no variant '{unknown[0]}' (variants: {', '.join(sorted(ids))})",
                                 field="checks")
        experiment_id = "exp-" + uuid.uuid4().hex[:10]

        def insert(con: Any) -> None:
            con.execute("INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [experiment_id, spec.name.strip(), _now(), spec.tier, spec.task, spec.concurrency,
                         _money(spec.cost_cap_usd), spec.inputs_kind, spec.notes])
            con.executemany("INSERT INTO experiment_variants VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                [experiment_id, v.variant_id, v.position, v.label, v.provider, v.model, v.system_template,
                 v.user_template, v.settings.max_tokens, v.settings.temperature, v.settings.timeout_s]
                for v in variants])
            con.executemany("INSERT INTO experiment_inputs VALUES (?, ?, ?)",
                            [[experiment_id, i, json.dumps(row, ensure_ascii=False)]
                             for i, row in enumerate(rows, start=1)])
            if spec.assertions:
                con.executemany("INSERT INTO experiment_assertions VALUES (?, ?, ?, ?, ?, ?)",
                                [[experiment_id, f"a{i}", i, a.kind, a.value, json.dumps(a.variants)]
                                 for i, a in enumerate(spec.assertions, start=1)])

        self.log.write(insert)
        return self.load(experiment_id)

    def load(self, experiment_id: str) -> Experiment:
        head = self.log.query("SELECT * FROM experiments WHERE experiment_id = ?", [experiment_id])
        if head.empty:
            raise InputError(f"no experiment '{experiment_id}'", field="experiment")
        h = head.iloc[0]
        vdf = self.log.query("SELECT * FROM experiment_variants WHERE experiment_id = ? ORDER BY position",
                             [experiment_id])
        idf = self.log.query("SELECT input_id, variables FROM experiment_inputs WHERE experiment_id = ? "
                             "ORDER BY input_id", [experiment_id])
        variants = tuple(Variant(
            variant_id=r.variant_id, position=int(r.position), label=r.label, provider=r.provider, model=r.model,
            system_template=r.system_template, user_template=r.user_template,
            settings=GenerationSettings(max_tokens=int(r.max_tokens), temperature=float(r.temperature),
                                        timeout_s=float(r.timeout_s))) for r in vdf.itertuples())
        inputs = tuple(InputRow(input_id=int(r.input_id), variables=json.loads(r.variables)) for r in idf.itertuples())
        adf = self.log.query("SELECT * FROM experiment_assertions WHERE experiment_id = ? ORDER BY position",
                             [experiment_id])
        assertions = tuple(Assertion(assertion_id=r.assertion_id, kind=r.kind, value=r.value,
                                     variants=tuple(json.loads(r.variants))) for r in adf.itertuples())
        cap = h["cost_cap_usd"]
        return Experiment(experiment_id=experiment_id, name=h["name"], tier=h["tier"], task=h["task"],
                          concurrency=int(h["concurrency"]),
                          cost_cap_usd=None if pd.isna(cap) else Decimal(str(cap)),
                          inputs_kind=h["inputs_kind"], notes=h["notes"] or "", variants=variants, inputs=inputs,
                          assertions=assertions)

    def list(self) -> pd.DataFrame:
        return self.log.query("""
            SELECT e.experiment_id, e.name, e.created_at, e.tier, e.task,
                   (SELECT count(*) FROM experiment_variants v WHERE v.experiment_id = e.experiment_id) AS variants,
                   (SELECT count(*) FROM experiment_inputs i WHERE i.experiment_id = e.experiment_id) AS inputs,
                   (SELECT count(*) FROM experiment_cells c WHERE c.experiment_id = e.experiment_id
                        AND c.status = 'ok') AS cells_ok,
                   (SELECT count(*) FROM experiment_votes o WHERE o.experiment_id = e.experiment_id) AS votes
            FROM experiments e ORDER BY e.created_at DESC""")

    def set_cost_cap(self, experiment_id: str, cap: Decimal | None) -> None:
        self.log.write(lambda con: con.execute(
            "UPDATE experiments SET cost_cap_usd = ? WHERE experiment_id = ?", [_money(cap), experiment_id]))

    # ---- cells ---------------------------------------------------------------------------
    def cells(self, experiment_id: str) -> dict[tuple[int, str], Cell]:
        df = self.log.query("SELECT * FROM experiment_cells WHERE experiment_id = ?", [experiment_id])
        out = {}
        for r in df.itertuples():
            cost = r.cost_usd
            out[(int(r.input_id), r.variant_id)] = Cell(
                input_id=int(r.input_id), variant_id=r.variant_id, status=r.status, output=r.output or "",
                error=r.error if isinstance(r.error, str) else None,
                latency_ms=None if pd.isna(r.latency_ms) else float(r.latency_ms),
                input_tokens=int(r.input_tokens), output_tokens=int(r.output_tokens),
                cost_usd=None if pd.isna(cost) else Decimal(str(cost)), request_id=r.request_id,
                tries=int(r.tries))
        return out

    def save_cells(self, experiment_id: str, cells: list[Cell]) -> None:
        if not cells:
            return
        now = _now()
        self.log.write(lambda con: con.executemany(_CELLS, [
            [experiment_id, c.input_id, c.variant_id, c.status, c.request_id, c.output, c.error, c.latency_ms,
             c.input_tokens, c.output_tokens, _money(c.cost_usd), False, c.tries, now] for c in cells]))

    def spent(self, experiment_id: str) -> Decimal:
        """What the experiment's generations and judge calls have cost so far (unpriced calls add nothing)."""
        df = self.log.query("""
            SELECT coalesce((SELECT sum(cost_usd) FROM experiment_cells WHERE experiment_id = $id), 0)
                 + coalesce((SELECT sum(cost_usd) FROM experiment_judgments WHERE experiment_id = $id), 0)
                 + coalesce((SELECT sum(cost_usd) FROM experiment_grades WHERE experiment_id = $id), 0) AS s
            """, {"id": experiment_id})
        return Decimal(str(df["s"].iloc[0]))

    # ---- votes and judge verdicts ----------------------------------------------------------
    def add_vote(self, experiment_id: str, input_id: int, left: str, right: str, choice: str,
                 voter: str | None = None) -> str:
        if choice not in CHOICES:
            raise InputError(f"a vote is one of {', '.join(CHOICES)}, not '{choice}'", field="choice")
        winner = {"left": left, "right": right}.get(choice)
        vote_id = uuid.uuid4().hex
        voter = (voter or "").strip()[:80] or None
        self.log.write(lambda con: con.execute(
            "INSERT INTO experiment_votes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [vote_id, experiment_id, input_id, left, right, choice, winner, voter, _now()]))
        return vote_id

    def votes(self, experiment_id: str) -> pd.DataFrame:
        return self.log.query("SELECT * FROM experiment_votes WHERE experiment_id = ? ORDER BY ts", [experiment_id])

    def judgments(self, experiment_id: str) -> pd.DataFrame:
        return self.log.query("SELECT * FROM experiment_judgments WHERE experiment_id = ?", [experiment_id])

    def save_judgment(self, experiment_id: str, row: dict[str, Any]) -> None:
        cols = ["input_id", "variant_a", "variant_b", "winner_ab", "winner_ba", "consistent", "winner",
                "score_a", "score_b", "cost_usd", "request_ids"]
        values = [experiment_id] + [row[c] for c in cols] + [_now()]
        values[10] = _money(values[10])
        self.log.write(lambda con: con.execute(_JUDGMENTS, values))

    def grades(self, experiment_id: str) -> pd.DataFrame:
        return self.log.query("SELECT * FROM experiment_grades WHERE experiment_id = ?", [experiment_id])

    def save_grade(self, experiment_id: str, input_id: int, variant_id: str, assertion_id: str, *,
                   passed: bool | None, detail: str, cost_usd: Decimal | None, request_id: str | None) -> None:
        self.log.write(lambda con: con.execute(_GRADES, [
            experiment_id, input_id, variant_id, assertion_id, passed, detail[:500], _money(cost_usd), request_id,
            _now()]))

    # ---- saved input sets ------------------------------------------------------------------
    def save_set(self, name: str, rows: list[dict[str, str]]) -> None:
        name = validate_set_name(name)
        self.log.write(lambda con: con.execute(_SETS, [name, _now(), rows_json(rows)]))

    def load_set(self, name: str) -> list[dict[str, str]]:
        df = self.log.query("SELECT rows FROM input_sets WHERE name = ?", [name])
        if df.empty:
            known = ", ".join(self.set_names()) or "none saved yet"
            raise InputError(f"no saved input set '{name}' (sets: {known})", field="set")
        return json.loads(df["rows"].iloc[0])

    def set_names(self) -> list[str]:
        return self.log.query("SELECT name FROM input_sets ORDER BY name")["name"].tolist()
