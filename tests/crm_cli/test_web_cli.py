"""``crm web`` listens where the links in emails point when that is this machine."""

from __future__ import annotations

import pytest

from crm_cli.commands.web import listen_address


@pytest.mark.parametrize(
    ("public_base_url", "expected"),
    [
        ("http://127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("http://127.0.0.1:8123/", ("127.0.0.1", 8123)),
        ("http://localhost:9000", ("127.0.0.1", 9000)),
        ("http://[::1]:8080", ("::1", 8080)),
        ("http://127.0.0.2", ("127.0.0.2", 80)),
        # A public address is a reverse proxy's; it forwards to the local default.
        ("https://crm.example.com", ("127.0.0.1", 8000)),
        ("https://203.0.113.7:8443", ("127.0.0.1", 8000)),
    ],
)
def test_listen_address_follows_a_local_public_base_url(
    public_base_url: str, expected: tuple[str, int]
) -> None:
    assert listen_address(public_base_url) == expected
