"""The dashboard shell uses only Streamlit's public API, and its modules do not import each other in a circle.

A page Streamlit runs alone (its ``pages/`` convention, before any ``st.navigation``; every AppTest run of a
page is one) still gets the whole shell: the other AppTest files check that through the sidebar.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = sorted([ROOT / "app.py", *(ROOT / "ui").glob("*.py"), *(ROOT / "pages").glob("*.py")])


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("path", DASHBOARD, ids=lambda p: str(p.relative_to(ROOT)))
def test_dashboard_code_imports_no_streamlit_internals_and_reads_no_stack_frames(path: Path) -> None:
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module in ("streamlit", "streamlit.testing.v1") or not node.module.startswith("streamlit."), \
                f"{path.name}:{node.lineno} imports {node.module}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name == "streamlit" or not alias.name.startswith("streamlit."), \
                    f"{path.name}:{node.lineno} imports {alias.name}"
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("_getframe", "uses_pages_directory"), f"{path.name}:{node.lineno} uses {node.attr}"


@pytest.mark.parametrize("path", sorted((ROOT / "ui").glob("*.py")), ids=lambda p: p.name)
def test_ui_modules_import_each_other_at_the_top_never_inside_a_function(path: Path) -> None:
    for fn in ast.walk(_tree(path)):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ui"):
                    pytest.fail(f"{path.name}:{node.lineno}: {fn.name} imports {node.module} inside the function")
