from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from crm_web.app import create_app
from tests.crm_web.factories import NOW, Clock, web_settings


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def client(engine: Engine, clock: Clock) -> Iterator[TestClient]:
    """The app on the parametrised engine (SQLite file, then PostgreSQL)."""
    app = create_app(engine, web_settings(), clock=clock)
    with TestClient(app, base_url="https://crm.example.test") as test_client:
        yield test_client
