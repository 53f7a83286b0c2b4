"""Where keys, base URLs, the log's location and the mode come from.

Keys are read from the environment first, then ``.streamlit/secrets.toml``
(the seed's variable names: ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``,
``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``). They are held in ``Secret``
objects whose ``repr`` and ``str`` never show the value, and registered with
``errors.redact`` so no message can leak them.

``DATABASE_URL=duckdb:///path`` moves the call log (default
``data/taelio.duckdb``); ``DATABASE_URL=postgresql://user:pass@host:5432/db``
(or ``postgres://``) puts it in PostgreSQL, for several processes or machines. ``TAELIO_MODE=live|demo`` forces a mode; otherwise
demo mode is on exactly when no provider key is set at all.
"""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from taelio_core.errors import ConfigError, redact, register_secret
from taelio_core.providers.registry import base_url_variables, find_kind, key_variables
from taelio_core.redaction import register_url_secrets, safe_url

__all__ = ["ACCEPTED_DB_FORMS", "KEY_ENV", "BASE_URL_ENV", "PostgresTarget", "Secret", "Settings", "database_path",
           "database_target", "load_settings"]

# provider kind -> the environment variables that may hold its key, in order; and each SDK's own base-URL
# variable, honoured when the policy sets no base_url. Both are live views of the provider registry.
KEY_ENV = key_variables()
BASE_URL_ENV = base_url_variables()
DEFAULT_DB = Path("data") / "taelio.duckdb"


class Secret:
    """A key that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, kw_only=True)
class Settings:
    env: Mapping[str, str]
    secrets: Mapping[str, str] = field(default_factory=dict)
    secrets_source: str | None = None

    def lookup(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value == "":
            value = self.secrets.get(name)
        return value if value else None

    def key(self, env_names: tuple[str, ...]) -> Secret | None:
        for name in env_names:
            value = self.lookup(name)
            if value:
                return Secret(value.strip())
        return None

    def key_for(self, kind: str, api_key_env: str | None = None) -> Secret | None:
        found = find_kind(kind, discover=False)
        names = found.key_names(api_key_env) if found else ((api_key_env,) if api_key_env else ())
        return self.key(names)

    def base_url_for(self, kind: str) -> str | None:
        found = find_kind(kind, discover=False)
        return self.lookup(found.base_url_env) if found and found.base_url_env else None

    @property
    def any_real_key(self) -> bool:
        return any(self.key(names) for names in KEY_ENV.values())

    @property
    def mode(self) -> str:
        """``live`` or ``demo``."""
        forced = (self.lookup("TAELIO_MODE") or "").strip().lower()
        if forced in ("live", "demo"):
            return forced
        if forced:
            raise ConfigError(f"must be 'live' or 'demo', not '{forced}'", source="TAELIO_MODE")
        return "live" if self.any_real_key else "demo"

    @property
    def database(self) -> Path | PostgresTarget:
        """Where the call log lives: a DuckDB file (the default) or a PostgreSQL database."""
        return database_target(self.lookup("DATABASE_URL"))

    @property
    def database_path(self) -> Path:
        """The DuckDB file, for the commands that work on one (``taelio log repair``)."""
        return database_path(self.lookup("DATABASE_URL"))

    @property
    def redis_url(self) -> str | None:
        """``REDIS_URL`` (``redis://``, ``rediss://`` or ``unix://``): breakers, budgets and rate limits shared
        by every process that sets it; None keeps them per process."""
        value = (self.lookup("REDIS_URL") or "").strip()
        if not value:
            return None
        if not re.match(r"^(redis|rediss|unix)://", value, re.IGNORECASE):
            raise ConfigError(f"'{_shown(value)}' is not a Redis URL; accepted forms: redis://host:6379/0, "
                              "rediss://host:6380/0 (TLS), unix:///path/to/redis.sock", source="REDIS_URL")
        return value

    @property
    def store_text(self) -> bool:
        """False when ``TAELIO_STORE_TEXT=hash``: prompts and outputs are logged as hashes only."""
        value = (self.lookup("TAELIO_STORE_TEXT") or "full").strip().lower()
        if value not in ("full", "hash"):
            raise ConfigError(f"must be 'full' or 'hash', not '{value}'", source="TAELIO_STORE_TEXT")
        return value == "full"

    @property
    def adopt_log(self) -> bool:
        """``TAELIO_ADOPT_LOG=1``: add Taelio's tables to a DuckDB file that already holds other tables."""
        value = (self.lookup("TAELIO_ADOPT_LOG") or "0").strip().lower()
        if value not in ("0", "1", "true", "false", "yes", "no"):
            raise ConfigError(f"must be 1 or 0, not '{value}'", source="TAELIO_ADOPT_LOG")
        return value in ("1", "true", "yes")

    @property
    def journal_mode(self) -> str:
        """``TAELIO_JOURNAL``: ``write`` (default; survives a killed process), ``fsync`` (survives a power
        cut, ~2 ms a request) or ``off`` (a killed process loses its unflushed rows)."""
        value = (self.lookup("TAELIO_JOURNAL") or "write").strip().lower()
        if value not in ("write", "fsync", "off"):
            raise ConfigError(f"must be 'write', 'fsync' or 'off', not '{value}'", source="TAELIO_JOURNAL")
        return value

    @property
    def journal_dir(self) -> Path:
        """``TAELIO_JOURNAL_DIR``: where a PostgreSQL call log keeps its local crash journal (default ``data``,
        relative to the working directory). A replica restarted with the same folder replays a killed one's
        journal, whatever its working directory. Created if missing; refused when it cannot be written."""
        value = (self.lookup("TAELIO_JOURNAL_DIR") or "").strip()
        if not value:
            return Path("data")
        folder = Path(value).expanduser()
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"'{value}' is a file, not a folder: name a folder for the crash journal",
                              source="TAELIO_JOURNAL_DIR")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the crash journal folder '{value}': {e.strerror or e}",
                              source="TAELIO_JOURNAL_DIR") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"the crash journal folder '{value}' is not writable by this user",
                              source="TAELIO_JOURNAL_DIR")
        return folder


ACCEPTED_DB_FORMS = ("duckdb:///relative/path.duckdb, duckdb:////absolute/path.duckdb, "
                     "a path ending in .duckdb, or a postgresql:// URL (user, password, host, port, database)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True, kw_only=True)
class PostgresTarget:
    """A PostgreSQL call log. ``url`` carries the password and goes only to the driver; ``shown`` is safe anywhere."""

    url: str = field(repr=False)
    shown: str

    def __str__(self) -> str:
        return self.shown


def database_target(url: str | None, *, source: str = "DATABASE_URL") -> Path | PostgresTarget:
    """The call log named by ``DATABASE_URL`` (or ``--db``): a DuckDB file, or a PostgreSQL database."""
    text = (url or "").strip()
    scheme = _SCHEME.match(text)
    if scheme and scheme.group(1).lower() in POSTGRES_SCHEMES and text[len(scheme.group(1)):].startswith("://"):
        return _postgres_target(text, source)
    return database_path(url, source=source)


def _postgres_target(text: str, source: str) -> PostgresTarget:
    register_url_secrets(text)
    try:
        from psycopg.conninfo import conninfo_to_dict       # psycopg: only when PostgreSQL is asked for
        conninfo_to_dict(text)
    except ImportError:
        raise ConfigError("names a PostgreSQL database, but the psycopg driver is not installed "
                          "(pip install -r requirements.txt)", source=source) from None
    except Exception as e:  # noqa: BLE001 - psycopg's ProgrammingError; its text may quote the URL
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"'{_shown(text)}' is not a PostgreSQL URL libpq can read ({_scrub(detail, text)}); "
                          f"accepted forms: {ACCEPTED_DB_FORMS}", source=source) from None
    return PostgresTarget(url=text, shown=safe_url(text))


def _scrub(detail: str, url: str) -> str:
    """``detail`` without the URL's password, however short (``redact`` ignores passwords under 6 characters)."""
    from urllib.parse import unquote, urlsplit
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in filter(None, {password, password and unquote(password)}):
        detail = detail.replace(secret, "********")
    return redact(detail)


def database_path(url: str | None, *, source: str = "DATABASE_URL") -> Path:
    """The call log's DuckDB file from ``DATABASE_URL`` (or ``--db``); refuse anything that is not one of the
    accepted forms.

    Never guessed: ``nonsense`` would become a file ``./nonsense``, and ``duckdb:/abs/x.duckdb`` (one
    slash) a folder tree ``./duckdb:/abs/``. As in SQLAlchemy URLs, ``duckdb:///data/x.duckdb`` is
    relative and ``duckdb:////abs/x.duckdb`` absolute. ``--db`` (``source="--db"``) also takes any
    bare path, since the user names a file on purpose there.
    """
    if url is None or url == "":
        return DEFAULT_DB
    text = url.strip()
    if not text:
        raise ConfigError(f"is blank; accepted forms: {ACCEPTED_DB_FORMS}", source=source)
    scheme = _SCHEME.match(text)
    if scheme and "://" in text and text.index("://") == len(scheme.group(1)):
        name, rest = scheme.group(1).lower(), text[len(scheme.group(1)) + 3:]
        if name in POSTGRES_SCHEMES:
            raise ConfigError("names a PostgreSQL database, and this needs a DuckDB file "
                              "(duckdb:///path.duckdb or a path ending in .duckdb)", source=source)
        if name != "duckdb":
            raise ConfigError(f"unsupported scheme '{scheme.group(1)}': Taelio logs to DuckDB or PostgreSQL; "
                              f"accepted forms: {ACCEPTED_DB_FORMS}", source=source)
        if not rest.startswith("/") or rest.strip("/") == "":
            raise ConfigError(f"'{_shown(text)}' names no file; accepted forms: {ACCEPTED_DB_FORMS}", source=source)
        return Path(rest[1:])
    if scheme and len(scheme.group(1)) > 1:       # duckdb:/x, duckdb:x, file:x (one letter: a Windows drive)
        raise ConfigError(f"'{_shown(text)}' is not a URL Taelio reads (a scheme needs '://'); "
                          f"accepted forms: {ACCEPTED_DB_FORMS}", source=source)
    if source == "DATABASE_URL" and not text.lower().endswith(".duckdb"):
        raise ConfigError(f"'{_shown(text)}' is neither a duckdb:/// URL nor a .duckdb file; "
                          f"accepted forms: {ACCEPTED_DB_FORMS}", source=source)
    return Path(text)


def _shown(text: str) -> str:
    """A value safe to echo: no userinfo, no query, at most 80 characters."""
    return safe_url(text)[:80]


def load_settings(env: Mapping[str, str] | None = None, secrets_file: str | os.PathLike[str] | None = None
                  ) -> Settings:
    env = dict(os.environ if env is None else env)
    path = Path(secrets_file) if secrets_file else Path(".streamlit") / "secrets.toml"
    secrets: dict[str, str] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as e:
            raise ConfigError(f"cannot read secrets: {str(e).splitlines()[0]}", source=str(path)) from None
        secrets = {k: str(v) for k, v in raw.items() if isinstance(v, str | int | float)}
    settings = Settings(env=env, secrets=secrets, secrets_source=str(path) if secrets else None)
    for names in KEY_ENV.values():  # register every configured key with redact()
        settings.key(names)
    for name in (*BASE_URL_ENV.values(), "DATABASE_URL", "REDIS_URL"):  # and any password or ?key= in a URL
        register_url_secrets(settings.lookup(name))
    return settings
