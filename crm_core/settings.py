"""The one configuration object (pydantic-settings, env prefix ``CRM_``).

Embedded defaults (SQLite under ``var/``, the local mail capture on 127.0.0.1:8025, a generated
demo secret) make ``make demo`` work on a bare machine; production sets the variables listed in
``.env.example``. Secrets are ``SecretStr`` so they never appear in logs, reprs or artifacts.
"""

from __future__ import annotations

import logging
import re
import secrets
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from crm_core.paths import var_dir
from crm_core.secret_blocks import PrefectSecretSource

# A deployment's job variable `{{ $CRM_X }}` that `prefect deploy` found unset stays that text.
_UNRESOLVED_TEMPLATE = re.compile(r"\{\{\s*\$\w+\s*\}\}")

TlsMode = Literal["starttls", "implicit", "none"]


DEMO_KEY_NOTICE = (
    "CRM_SECRET_KEY is not set: signed links use a generated demo key from var/ (demo mode only)"
)
_demo_key_noticed = False


def _notice_demo_key() -> None:
    """Say once per process that links are signed with the demo key: a log line on the ``crm``
    logger (Prefect shows it in a run's logs, see ``crm_core.prefect_env``), not a Python
    warning, whose text comes with a source line and repeats per call site."""
    global _demo_key_noticed
    if not _demo_key_noticed:
        _demo_key_noticed = True
        logging.getLogger("crm").warning(DEMO_KEY_NOTICE)


def _default_database_url() -> str:
    return f"sqlite:///{var_dir() / 'crm.sqlite3'}"


def _demo_secret() -> str:
    """A per-checkout secret kept in ``var/``, so signed links survive restarts of the demo."""
    path = var_dir() / "demo-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRM_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A validation error must never echo what it was given: the input holds the SMTP
        # password, the secret key and the database URL (with its password).
        hide_input_in_errors=True,
    )

    mode: Literal["demo", "production"] = Field(
        "demo", description="demo allows generated secrets and a plaintext local mail capture"
    )
    database_url: str = Field(default_factory=_default_database_url)
    db_pool_size: int = Field(5, ge=1, le=100)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(8025, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: TlsMode = Field(
        "starttls", description="starttls or implicit TLS; 'none' only for a local capture server"
    )
    smtp_timeout_s: float = Field(
        30.0, gt=0, description="connecting and each command up to the end of DATA"
    )
    # RFC 5321 4.5.3.2.6: after the final dot a client waits 10 minutes for the reply, since a
    # relay may store the message before it answers; giving up earlier resends what it kept.
    smtp_data_timeout_s: float = Field(
        600.0, gt=0, description="wait for the reply after the end of a message's data"
    )
    smtp_concurrency: int = Field(8, ge=1, le=64)
    # The relay's sending limits, honoured by every sender together (tasks.mail.quota): unset
    # means unlimited.
    smtp_max_per_second: int | None = Field(
        None, ge=1, description="messages the relay takes in each second, all senders together"
    )
    smtp_max_per_hour: int | None = Field(
        None, ge=1, description="messages the relay takes in each clock hour, all senders together"
    )
    mail_from: str = "CRM Flows <crm@example.test>"
    company_name: str = Field("CRM Flows", description="shown in email headers and footers")
    smtp_ca_file: str | None = Field(
        None, description="PEM bundle trusted for the relay's certificate (default: system CAs)"
    )

    # Outbox delivery. The lease must outlive one send (smtp_timeout_s) with room to spare, or a
    # slow send could be reclaimed and sent again by another process while still in flight.
    outbox_batch_size: int = Field(1000, ge=1, le=20_000, description="rows claimed per batch")
    outbox_lease_s: float = Field(900.0, gt=0, description="how long a claim holds its rows")
    outbox_max_attempts: int = Field(8, ge=1, le=100, description="tries before a row fails")
    outbox_backoff_base_s: float = Field(60.0, gt=0, description="first retry delay (doubles)")
    outbox_backoff_max_s: float = Field(6 * 3600.0, gt=0, description="longest retry delay")
    outbox_unknown_retry_s: float = Field(
        6 * 3600.0,
        gt=0,
        description="delay before the one retry of a message whose DATA reply never came",
    )
    outbox_alert_age_s: float = Field(
        1800.0, gt=0, description="healthcheck fails when a due message waited longer than this"
    )
    outbox_attachment_max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=0,
        description="total attachment bytes one outbox message may carry (default 10 MiB)",
    )

    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="base of links in emails (unsubscribe, surveys)"
    )
    secret_key: SecretStr | None = Field(None, description="signs links; required in production")
    web_answer_requests_per_minute: int = Field(
        60,
        ge=1,
        le=1_000_000,
        description="requests one client may make to the survey answer page per minute",
    )

    timezone: str = "Asia/Shanghai"
    locale: Literal["zh-CN", "en"] = "zh-CN"

    operator_emails: str = Field(
        "",
        description="comma-separated addresses of the operators, who get failed-run alerts "
        "(notify_failure)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Prefect Secret blocks (crm_core.secret_blocks) come after the environment and .env:
        # a variable set on the machine wins, and no block is read for it.
        already_set = {*init_settings(), *env_settings(), *dotenv_settings()}
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            PrefectSecretSource(settings_cls, already_set),
            file_secret_settings,
        )

    @field_validator("*", mode="before")
    @classmethod
    def _no_unresolved_template(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and _UNRESOLVED_TEMPLATE.search(value):
            raise ValueError(
                "holds an unresolved `{{ $VARIABLE }}` template: the variable was not set where "
                "`prefect deploy` ran; set it there and deploy again"
            )
        return value

    @field_validator("smtp_user", "smtp_ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # A deployment passes every variable it names, an unused one as "" (prefect.yaml).
        return None if value == "" else value

    @property
    def operator_addresses(self) -> list[str]:
        return [part.strip() for part in self.operator_emails.split(",") if part.strip()]

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _parsable_database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except (ArgumentError, ValueError):
            # SQLAlchemy's own message quotes the whole URL, password included: never chain it.
            raise ValueError(
                "not a database URL; expected e.g. postgresql://user@host:5432/crm "
                "or sqlite:///path/crm.sqlite3"
            ) from None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("public_base_url must start with https:// (or http:// for local demo)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> Settings:
        # One send takes at most smtp_timeout_s (connect, MAIL, RCPT, DATA) plus
        # smtp_data_timeout_s (the reply after the final dot). A lane starts a send only if it
        # can end 1 s before the row's lease does (tasks.mail.deliver), and the claims are
        # sized to what can be sent in the rest of the lease; at least 1 s must be left for it.
        needed = self.smtp_timeout_s + self.smtp_data_timeout_s + 2
        if self.outbox_lease_s < needed:
            raise ValueError(
                f"CRM_OUTBOX_LEASE_S={self.outbox_lease_s:g} is too short: it must be at least "
                f"CRM_SMTP_TIMEOUT_S + CRM_SMTP_DATA_TIMEOUT_S + 2 s = {needed:g} s, so a claim "
                "never expires while one of its messages is being sent"
            )
        return self

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        if self.mode == "production":
            if self.secret_key is None or len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("CRM_SECRET_KEY (>= 32 characters) is required in production mode")
            if self.smtp_tls == "none":
                raise ValueError("CRM_SMTP_TLS=none (plaintext SMTP) is not allowed in production")
        return self

    def signing_key(self) -> bytes:
        """The secret for signed links; in demo mode a generated key under ``var/`` (warns)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        _notice_demo_key()
        return _demo_secret().encode()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def safe_summary(self) -> dict[str, object]:
        """Settings fit to log or show in an artifact: secrets reduced to set/unset."""
        return {
            "mode": self.mode,
            "database": self.database_url.split("@")[-1]
            if "@" in self.database_url
            else self.database_url.split("://")[0],
            "smtp": f"{self.smtp_host}:{self.smtp_port} tls={self.smtp_tls}",
            "smtp_auth": "set" if self.smtp_user else "unset",
            "secret_key": "set" if self.secret_key else "demo-generated",
            "timezone": self.timezone,
            "locale": self.locale,
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Tests and the CLI change environment variables; this makes the next call re-read them."""
    get_settings.cache_clear()
