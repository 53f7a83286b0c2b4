"""The engine stays free of the UI, and each vendor SDK is imported in exactly one module."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "taelio_core"
SDKS = {"openai": "providers/openai.py", "anthropic": "providers/anthropic.py", "google": "providers/gemini.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_streamlit() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in CORE.rglob("*.py") if "streamlit" in _imports(p)]
    assert offenders == []


def test_each_sdk_is_imported_in_one_module_only() -> None:
    for sdk, home in SDKS.items():
        users = sorted(str(p.relative_to(CORE)) for p in CORE.rglob("*.py") if sdk in _imports(p))
        assert users in ([], [home]), f"{sdk} imported in {users}"
