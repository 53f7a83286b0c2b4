"""``taelio serve`` and ``taelio token`` as a user types them."""
from __future__ import annotations

import jwt

from tests.api.server import SECRET
from tests.cli.test_cli_demo import taelio


def test_serve_without_jwt_secret_refuses_in_one_sentence_with_exit_2() -> None:
    out = taelio("serve", "--port", "1", env={"JWT_SECRET": ""})
    assert out.returncode == 2
    assert out.stderr.strip() == ("taelio: JWT_SECRET is not set: the API signs and checks tokens with it, "
                                  "and there is no default secret")


def test_token_mints_a_jwt_the_api_accepts() -> None:
    out = taelio("token", "--sub", "alice", "--tier", "pro", "--ttl", "15m", env={"JWT_SECRET": SECRET})
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["tier"], claims["exp"] - claims["iat"]) == ("alice", "pro", 900)


def test_token_names_a_bad_tier_or_ttl() -> None:
    bad_tier = taelio("token", "--sub", "a", "--tier", "gold", env={"JWT_SECRET": SECRET})
    assert bad_tier.returncode == 2 and "--tier: unknown tier 'gold'" in bad_tier.stderr
    bad_ttl = taelio("token", "--sub", "a", "--tier", "pro", "--ttl", "soon", env={"JWT_SECRET": SECRET})
    assert bad_ttl.returncode == 2 and "--ttl: 'soon' is not a duration" in bad_ttl.stderr


def test_serve_runs_uvicorn_on_uvloop_and_httptools_which_requirements_pin() -> None:
    from taelio_core.cli.serve import uvicorn_options
    options = uvicorn_options()
    assert (options["loop"], options["http"]) == ("uvloop", "httptools")
