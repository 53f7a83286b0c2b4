"""Who is calling: HS256 JWTs signed with ``JWT_SECRET``, whose ``tier`` claim picks the routing chain.

The tier comes from the token and nowhere else (never a body or query
field). Claims: ``sub`` (the user), ``tier`` (a tier of the policy), ``exp``
(required); ``iss``/``aud`` are checked when ``JWT_ISSUER``/``JWT_AUDIENCE``
are set. Only HS256 is accepted: ``alg: none`` and every other algorithm are
refused. There is no default secret: without ``JWT_SECRET`` the server does
not start.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jwt

from taelio_core.errors import ConfigError, InputError

__all__ = ["ADMIN_TIER", "AuthSettings", "Caller", "TokenCache", "Unauthorized", "mint_token", "parse_ttl",
           "verify_token"]

ADMIN_TIER = "admin"   # the tier that may test providers and ask about any tier's chain
ALGORITHM = "HS256"
_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Unauthorized(Exception):
    """The token is missing, malformed, expired or badly signed (HTTP 401)."""


@dataclass(frozen=True, kw_only=True)
class Caller:
    sub: str
    tier: str

    @property
    def admin(self) -> bool:
        return self.tier == ADMIN_TIER


@dataclass(frozen=True, kw_only=True)
class AuthSettings:
    secret: str
    issuer: str | None = None
    audience: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthSettings:
        env = os.environ if env is None else env
        secret = env.get("JWT_SECRET", "")
        if not secret.strip():
            raise ConfigError("JWT_SECRET is not set: the API signs and checks tokens with it, "
                              "and there is no default secret")
        return cls(secret=secret, issuer=env.get("JWT_ISSUER") or None, audience=env.get("JWT_AUDIENCE") or None)


def parse_ttl(text: str) -> int:
    """'90', '90s', '15m', '1h' or '7d' as seconds."""
    match = _TTL.match(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise InputError(f"--ttl: '{text}' is not a duration like 90s, 15m, 1h or 7d", field="ttl")
    return int(match.group(1)) * _UNITS[match.group(2)]


def mint_token(settings: AuthSettings, *, sub: str, tier: str, ttl_s: int, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {"sub": sub, "tier": tier, "iat": issued, "exp": issued + ttl_s}
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    return jwt.encode(claims, settings.secret, algorithm=ALGORITHM)


def verify_token(settings: AuthSettings, token: str) -> Caller:
    """The caller named by ``token``; ``Unauthorized`` with one sentence when it cannot be trusted.

    A well-signed token whose tier the policy does not know is returned as is: the caller decides (403).
    """
    return _verify(settings, token)[0]


class TokenCache:
    """Tokens already verified, so a client that sends the same token on every request pays for its signature
    check once (about half the HTTP layer's CPU per request before this cache).

    Only a token that passed ``verify_token`` is kept, with its ``exp``; a hit is served only before that
    time, after which the token is checked again (and refused as expired). Nothing else about a verified
    token can change: the secret, issuer and audience are fixed for the process. At most ``size`` tokens are
    kept (all are dropped when full: a cache that a flood of one-off tokens cannot grow).
    """

    def __init__(self, settings: AuthSettings, *, size: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.size, self.clock = settings, size, clock
        self._verified: dict[str, tuple[Caller, float]] = {}

    def verify(self, token: str) -> Caller:
        hit = self._verified.get(token)
        if hit is not None:
            if self.clock() < hit[1]:
                return hit[0]
            self._verified.pop(token, None)
        caller, expires = _verify(self.settings, token)
        if len(self._verified) >= self.size:
            self._verified.clear()
        self._verified[token] = (caller, expires)
        return caller


def _verify(settings: AuthSettings, token: str) -> tuple[Caller, float]:
    """``verify_token``, and the token's ``exp`` (seconds since the epoch)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("The bearer token is not a well-formed JWT.") from None
    if header.get("alg") != ALGORITHM:
        raise Unauthorized(f"The bearer token must be signed with {ALGORITHM}, not {header.get('alg')!r}.")
    try:
        claims = jwt.decode(token, settings.secret, algorithms=[ALGORITHM], issuer=settings.issuer,
                            audience=settings.audience,
                            options={"require": ["exp", "sub", "tier"], "verify_aud": settings.audience is not None})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The bearer token has expired.") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("The bearer token's signature is not valid.") from None
    except jwt.MissingRequiredClaimError as e:
        raise Unauthorized(f"The bearer token has no '{e.claim}' claim.") from None
    except jwt.InvalidIssuerError:
        raise Unauthorized("The bearer token was issued by someone else (its 'iss' claim).") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized("The bearer token is meant for another audience (its 'aud' claim).") from None
    except jwt.PyJWTError:
        raise Unauthorized("The bearer token is not valid.") from None
    sub, tier = claims.get("sub"), claims.get("tier")
    if not isinstance(sub, str) or not sub or not isinstance(tier, str):
        raise Unauthorized("The bearer token's 'sub' and 'tier' claims must be non-empty strings.")
    return Caller(sub=sub, tier=tier), float(claims["exp"])
