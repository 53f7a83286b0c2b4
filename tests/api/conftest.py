"""One ``taelio serve`` process per test module (starting it per test would make the suite slow)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.server import ApiServer


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer.start(tmp_path_factory.mktemp("api"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _fresh_faults(request: pytest.FixtureRequest) -> None:
    if "api" in request.fixturenames:
        request.getfixturevalue("api").fake.reset()
