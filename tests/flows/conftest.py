"""Fixtures for flow tests: a migrated SQLite CRM database and a real SMTP server on 127.0.0.1,
both wired into the settings through ``CRM_*`` environment variables, as in production."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from crm_core.settings import reset_settings_cache


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EhloRecorder:
    """A trivial aiosmtpd handler: it records the EHLO names it was greeted with."""

    ehlo_names: list[str] = field(default_factory=list)

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.ehlo_names.append(hostname)
        return responses


@dataclass(frozen=True)
class SmtpCapture:
    port: int
    handler: EhloRecorder


@pytest.fixture
def smtp_capture() -> Iterator[SmtpCapture]:
    handler = EhloRecorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpCapture(port, handler)
    finally:
        controller.stop()


@pytest.fixture
def crm_env(
    sqlite_url: str, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """Settings point at the migrated SQLite file; SMTP at a closed port until a test says so."""
    monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CRM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CRM_SMTP_PORT", str(free_port()))
    monkeypatch.setenv("CRM_SMTP_TLS", "none")
    reset_settings_cache()
    yield sqlite_engine
    reset_settings_cache()


@pytest.fixture
def flow_db(
    engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """Flows run on the Prefect test API against this test's database, SQLite and PostgreSQL
    (``engine``): CRM_DATABASE_URL points at it, and a signing key is set."""
    from crm_db.session import dispose_shared_engines

    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", "test-secret-key-0123456789abcdef0123")
    reset_settings_cache()
    yield engine
    dispose_shared_engines()


def use_smtp(monkeypatch: pytest.MonkeyPatch, port: int, tls: str = "none") -> None:
    monkeypatch.setenv("CRM_SMTP_PORT", str(port))
    monkeypatch.setenv("CRM_SMTP_TLS", tls)
    reset_settings_cache()
