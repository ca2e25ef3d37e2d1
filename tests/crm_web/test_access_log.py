"""Tokens never reach the access log."""

from __future__ import annotations

import logging

from crm_web.access_log import RedactTokensFilter, redact_path


def test_redact_path() -> None:
    assert redact_path("/u/eyJjdXN0b21lciI6NDJ9.abc") == "/u/<token>"
    assert redact_path("/u/eyJj.abc?utm_source=mail") == "/u/<token>?utm_source=mail"
    assert redact_path("/f/eyJt.abc?answer=solved") == "/f/<token>?answer=solved"
    assert redact_path("/s/eyJpbnZpdGF0aW9uIjo5fQ.abc?score=9") == "/s/<token>?score=9"
    assert redact_path("/healthz") == "/healthz"
    assert redact_path("/x/u/abc") == "/x/u/abc"


def test_filter_rewrites_uvicorn_access_records() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/u/eyJjdXN0b21lciI6NDJ9.secretmac", "1.1", 200),
        None,
    )
    assert RedactTokensFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "POST /u/<token> HTTP/1.1" 200'
