"""Issue 13 part 7: the CLI starts fast because it imports heavy modules only in the commands that use them.

Before, every command (``taelio --help`` included) imported pandas, numpy,
pyarrow, DuckDB, scipy and the experiments package: 1.27 s for ``import
taelio_core`` alone. These tests check *which* modules a command loads, never
how long it takes (timings live in ``benchmarks/bench_startup.py``).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from taelio_core.cli import COMMAND_MODULES, COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "numpy", "pyarrow", "scipy", "duckdb", "openai", "anthropic", "google.genai", "streamlit",
         "plotly", "genai_prices", "pydantic", "fastapi", "httpx2")


def _loaded(argv: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> set[str]:
    code = ("import json, sys\nfrom taelio_core.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {sorted({h.split('.')[0] for h in HEAVY})!r}"
            " or m == 'google.genai' or m.startswith('taelio_core.providers.'))), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "TAELIO_MODE": "demo", "PATH": "/usr/bin:/bin", **(env or {})},
                         timeout=120)
    return set(json.loads(out.stderr.strip().splitlines()[-1]))


def test_taelio_help_imports_no_heavy_module(tmp_path):
    assert _loaded(["--help"], tmp_path) == set()


def test_a_command_help_loads_only_that_command(tmp_path):
    assert _loaded(["routes", "--help"], tmp_path) == set()


def test_taelio_routes_needs_no_dataframe_log_or_sdk(tmp_path):
    loaded = _loaded(["routes"], tmp_path)
    assert "pydantic" in loaded                                   # the policy is parsed: the test can fail
    assert loaded.isdisjoint({"pandas", "numpy", "pyarrow", "scipy", "duckdb", "openai", "anthropic", "genai_prices",
                              "google.genai", "streamlit"})


def test_taelio_routes_in_live_mode_builds_the_adapters_without_loading_their_sdks(tmp_path):
    """With keys set the real adapters are built (to say which are configured); their SDKs load on first call."""
    keys = {"TAELIO_MODE": "live", "OPENAI_API_KEY": "sk-test-routes", "ANTHROPIC_API_KEY": "sk-ant-test-routes",
            "GEMINI_API_KEY": "gm-test-routes"}
    loaded = _loaded(["routes"], tmp_path, keys)
    assert "taelio_core.providers.openai" in loaded and "taelio_core.providers.gemini" in loaded   # can fail
    assert loaded.isdisjoint({"openai", "anthropic", "google.genai", "httpx2", "pandas", "duckdb"})


def test_import_taelio_core_loads_no_heavy_module(tmp_path):
    code = ("import sys, taelio_core\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted({h.split('.')[0] for h in HEAVY})!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
    import taelio_core
    assert taelio_core.Taelio.__name__ == "Taelio"                 # the lazy names still resolve


def test_the_command_table_matches_what_the_modules_register():
    """``COMMANDS`` names each command's module and help without importing it: it must not drift."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    registered = {choice.dest: choice.help for choice in subparsers._choices_actions}
    assert registered == {name: help_text for name, (_module, help_text) in COMMANDS.items()}
    assert {module for module, _ in COMMANDS.values()} == set(COMMAND_MODULES)
