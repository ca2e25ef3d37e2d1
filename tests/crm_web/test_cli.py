"""``crm web`` as an operator runs it: a real process serving on a real port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import Engine

from crm_db.types import utcnow
from tests.crm_web.factories import SIGNING_KEY, make_customer, unsubscribe_token, unsubscribed_at

CRM = Path(sys.executable).parent / "crm"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(base_url: str, process: subprocess.Popen[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "crm web exited early"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).text == "ok":
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"crm web did not answer on {base_url} within {timeout_s} s")


def test_crm_web_serves_unsubscribe_links_and_keeps_tokens_out_of_the_log(
    sqlite_engine: Engine, sqlite_url: str
) -> None:
    customer = make_customer(sqlite_engine)
    token = unsubscribe_token(customer, issued_at=utcnow())
    port = _free_port()
    env = {
        **os.environ,
        "CRM_DATABASE_URL": sqlite_url,
        "CRM_SECRET_KEY": SIGNING_KEY,
        "CRM_PUBLIC_BASE_URL": "https://crm.example.test",
    }
    process = subprocess.Popen(
        [str(CRM), "web", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base_url, process)
        page = httpx.get(f"{base_url}/u/{token}")
        done = httpx.post(f"{base_url}/u/{token}", content=b"List-Unsubscribe=One-Click")
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)

    assert page.status_code == 200 and "确认退订" in page.text
    assert done.status_code == 200
    assert "server" not in page.headers  # no product banner
    assert unsubscribed_at(sqlite_engine, customer) is not None
    assert f"crm web: listening on {base_url}" in output
    assert '"POST /u/<token> HTTP/1.1" 200' in output
    assert token not in output and token.split(".")[0] not in output
