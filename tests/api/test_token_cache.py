"""The API's cache of verified tokens: the signature is checked once per token, never past the token's ``exp``."""
from __future__ import annotations

import time

import jwt
import pytest

from taelio_core.api import auth
from taelio_core.api.auth import AuthSettings, Caller, TokenCache, Unauthorized, mint_token

SETTINGS = AuthSettings(secret="test-secret-for-the-token-cache-0123456789")


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = auth._verify

    def counted(settings: AuthSettings, token: str) -> tuple[Caller, float]:
        seen.append(token)
        return real(settings, token)

    monkeypatch.setattr(auth, "_verify", counted)
    return seen


def test_a_token_sent_again_is_not_verified_again(verifications: list[str]) -> None:
    cache = TokenCache(SETTINGS)
    token = mint_token(SETTINGS, sub="alice", tier="pro", ttl_s=3600)
    assert [cache.verify(token) for _ in range(3)] == [Caller(sub="alice", tier="pro")] * 3
    assert verifications == [token]


def test_a_cached_token_is_checked_again_at_its_expiry_and_refused_once_expired(verifications: list[str]) -> None:
    now = time.time()
    token = mint_token(SETTINGS, sub="alice", tier="pro", ttl_s=1, now=now)
    cache = TokenCache(SETTINGS, clock=lambda: clock[0])
    clock = [now]
    assert cache.verify(token).sub == "alice"
    clock[0] = now + 1                                   # the cache's clock reaches exp: it checks again
    time.sleep(max(0.0, now + 1.05 - time.time()))        # ...and so does the signature check's (real) clock
    with pytest.raises(Unauthorized, match="expired"):
        cache.verify(token)
    assert verifications == [token, token]


def test_a_token_that_fails_verification_is_never_cached(verifications: list[str]) -> None:
    cache = TokenCache(SETTINGS)
    forged = jwt.encode({"sub": "a", "tier": "admin", "exp": int(time.time()) + 60}, "another-secret-0123456789abc",
                        algorithm="HS256")
    for _ in range(2):
        with pytest.raises(Unauthorized, match="signature"):
            cache.verify(forged)
    assert verifications == [forged, forged]


def test_a_full_cache_starts_again_instead_of_growing(verifications: list[str]) -> None:
    cache = TokenCache(SETTINGS, size=2)
    tokens = [mint_token(SETTINGS, sub=f"u{i}", tier="pro", ttl_s=60) for i in range(3)]
    for token in tokens:
        cache.verify(token)
    assert len(cache._verified) == 1                     # the third emptied it first
    cache.verify(tokens[2])
    assert verifications == tokens
