"""``.streamlit/config.toml``: every option is one the installed Streamlit knows, and the watcher skips ``.venv``."""
from __future__ import annotations

import tomllib
from pathlib import Path

from streamlit import config, file_util

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))


def test_every_option_in_the_config_file_exists_in_the_installed_streamlit() -> None:
    for section, options in CONFIG.items():
        for name in options:
            config.get_option(f"{section}.{name}")    # raises for a name this Streamlit does not define


def test_the_file_watcher_skips_every_file_in_the_projects_venv_and_nothing_of_the_app() -> None:
    globs = CONFIG["server"]["folderWatchBlacklist"]
    own = [g for g in globs if file_util.file_is_in_folder_glob(str(ROOT / ".venv/lib/python3.11/site-packages/x/y.py"), g)]
    assert own, f"no glob of {globs} matches a file in {ROOT / '.venv'}"
    for app_file in ("app.py", "pages/costs.py", "ui/shell.py", "taelio_core/routing/router.py"):
        assert not any(file_util.file_is_in_folder_glob(str(ROOT / app_file), g) for g in globs), app_file
