"""A reader that stops early (``taelio routes | head -1``) is not an error: no traceback, no "internal error"."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_closed_stdout_ends_the_command_quietly_with_exit_0(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-m", "taelio_core", "routes"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path,
                            env={"PYTHONPATH": str(ROOT), "TAELIO_MODE": "demo", "PATH": "/usr/bin:/bin"})
    proc.stdout.close()                      # the reader is gone before the command writes its first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "internal error" not in err and "Traceback" not in err and "BrokenPipe" not in err
