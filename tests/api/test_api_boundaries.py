"""The HTTP API is a shell over the core, like the CLI: only ``taelio_core/api/`` (and ``taelio serve``) know the
web stack, and nothing else pays for importing it."""
from __future__ import annotations

import subprocess
import sys

from tests.test_core_boundaries import CORE, ROOT, _imports

WEB_STACK = {"fastapi", "starlette", "uvicorn", "prometheus_client", "jwt"}


def test_only_the_api_package_and_the_serve_command_import_the_web_stack() -> None:
    offenders = {}
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE)
        if rel.parts[0] == "api" or rel == rel.with_name("serve.py") and rel.parts[0] == "cli":
            continue
        used = _imports(path) & WEB_STACK
        if used:
            offenders[str(rel)] = sorted(used)
    assert offenders == {}


def test_the_core_and_the_cli_load_no_web_framework_until_serve_runs() -> None:
    code = ("import sys, taelio_core, taelio_core.cli, taelio_core.wiring, taelio_core.routing.story_flow\n"
            "taelio_core.cli.build_parser()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{sorted(WEB_STACK)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
