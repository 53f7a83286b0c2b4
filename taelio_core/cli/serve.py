"""``taelio serve`` (the HTTP API on uvicorn) and ``taelio token`` (a development JWT).

FastAPI and uvicorn are imported only when ``serve`` runs, so every other
command starts as fast as before.
"""
from __future__ import annotations

import argparse
import os
import sys

from taelio_core.cli import add_json_flag, emit_json
from taelio_core.errors import InputError

GRACEFUL_S = 30   # how long SIGTERM waits for requests in flight


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP API (needs JWT_SECRET)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.set_defaults(func=run_serve)

    p = subparsers.add_parser("token", help="mint a JWT for the API, signed with JWT_SECRET (development, tests)")
    p.add_argument("--sub", required=True, help="the user")
    p.add_argument("--tier", required=True, help="a tier of the policy")
    p.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 7d (default 1h)")
    add_json_flag(p)
    p.set_defaults(func=run_token)


def run_token(args: argparse.Namespace) -> int:
    from taelio_core.api.auth import AuthSettings, mint_token, parse_ttl
    from taelio_core.config.policy_parser import load_policy

    auth = AuthSettings.from_env()
    ttl = parse_ttl(args.ttl)
    policy = load_policy(args.policy)
    if args.tier not in policy.tiers:
        raise InputError(f"--tier: unknown tier '{args.tier}' (tiers: {', '.join(policy.tiers)})", field="tier")
    if not args.sub.strip():
        raise InputError("--sub: the user is empty", field="sub")
    token = mint_token(auth, sub=args.sub, tier=args.tier, ttl_s=ttl)
    if args.json:
        emit_json({"token": token, "sub": args.sub, "tier": args.tier, "ttl_s": ttl})
    else:
        sys.stdout.write(token + "\n")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from taelio_core.api.auth import AuthSettings
    from taelio_core.config.policy_parser import load_policy

    AuthSettings.from_env()                 # no secret, no server: one sentence, exit 2
    if not 0 < args.port < 65536:
        raise InputError(f"--port: {args.port} is not a port number", field="port")
    if args.workers < 1:
        raise InputError("--workers: must be 1 or more", field="workers")
    load_policy(args.policy)                # a bad policy fails here, once, not in every worker
    # Workers read their configuration from the environment (uvicorn starts them from an import string).
    if args.policy:
        os.environ["TAELIO_POLICY"] = str(args.policy)
    if args.db:
        os.environ["DATABASE_URL"] = str(args.db)

    import signal

    import uvicorn
    # Uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler it found in
    # place; this one makes that a normal end (exit 0) once requests in flight finished and the log flushed.
    signal.signal(signal.SIGTERM, lambda *_: None)
    sys.stderr.write(f"taelio: serving the API on http://{args.host}:{args.port} (docs at /docs)\n")
    uvicorn.run("taelio_core.api.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, **uvicorn_options())
    return 0


def uvicorn_options() -> dict[str, object]:
    """How ``serve`` runs uvicorn (also what ``benchmarks/profile_api.py`` runs).

    uvloop and httptools (both in requirements.txt) are named, not left to uvicorn's "auto", so that the
    choice is visible here; without them it falls back to asyncio's loop and h11, slower but the same API.
    """
    return {"access_log": False, "log_level": "warning", "timeout_graceful_shutdown": GRACEFUL_S, "lifespan": "on",
            "loop": "uvloop" if _installed("uvloop") else "asyncio",
            "http": "httptools" if _installed("httptools") else "h11"}


def _installed(module: str) -> bool:
    """Importable, not merely present: a broken install falls back rather than stopping the server."""
    import importlib
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
