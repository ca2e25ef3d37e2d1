"""The local mail capture: a real aiosmtpd server on 127.0.0.1, fed by aiosmtplib."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from crm_cli.commands.mail_sink import _process_alive, read_pid_file
from tasks.mail.sink import INDEX_NAME, MailSink, NotLoopbackError, preview_document

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CRM = [sys.executable, "-m", "crm_cli.main"]


def make_message(subject: str, *, html: str | None = "<p>Hello</p>", to: str = "") -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "CRM Flows <crm@example.test>"
    message["To"] = to or "Zhang San <zhang.san@example.test>"
    message["Subject"] = subject
    message["Date"] = "Mon, 02 Mar 2026 09:00:00 +0800"
    message["Message-ID"] = "<test-1@example.test>"
    # A line starting with a dot exercises SMTP dot-stuffing on the way in and out.
    message.set_content("Thanks for your visit.\n.leading dot line\n")
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def send(port: int, raw: bytes, recipients: list[str] | None = None) -> None:
    asyncio.run(
        aiosmtplib.send(
            raw,
            sender="crm@example.test",
            recipients=recipients or ["zhang.san@example.test"],
            hostname="127.0.0.1",
            port=port,
            start_tls=False,
            use_tls=False,
        )
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "mail", port=0) as running:
        yield running


def eml_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.eml"))


def test_eml_holds_the_exact_bytes_sent(sink: MailSink) -> None:
    raw = make_message("Exact bytes 你好")
    assert b"\r\n.leading dot line" in raw  # really exercises dot-stuffing

    send(sink.port, raw)

    files = eml_files(sink.directory)
    assert len(files) == 1
    assert files[0].read_bytes() == raw
    assert not list(sink.directory.glob(".*.tmp"))


def test_index_lists_message_with_escaped_subject_and_recipient(sink: MailSink) -> None:
    send(sink.port, make_message('<script>alert("x")</script> & 回访', to="Li <li@example.test>"))

    index = (sink.directory / INDEX_NAME).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 回访" in index
    assert "<script" not in index
    assert "Li &lt;li@example.test&gt;" in index
    assert "Mon, 02 Mar 2026 09:00:00 +0800" in index
    stem = eml_files(sink.directory)[0].stem
    assert f'href="{stem}.eml"' in index
    assert f'href="{stem}.html"' in index


def test_html_part_saved_as_preview_with_scripts_blocked(sink: MailSink) -> None:
    body = '<p>Was the issue solved?</p><script>steal()</script><img src="https://t.example/x">'
    send(sink.port, make_message("Preview", html=body))

    stem = eml_files(sink.directory)[0].stem
    preview = (sink.directory / f"{stem}.html").read_text(encoding="utf-8")
    assert body in preview
    csp_at = preview.index('http-equiv="Content-Security-Policy"')
    assert csp_at < preview.index(body)
    assert "default-src 'none'" in preview[: preview.index(body)]


def test_preview_keeps_a_leading_doctype_first() -> None:
    page = preview_document("  <!DOCTYPE html>\n<html><body><p>x</p></body></html>")

    assert page.startswith("  <!DOCTYPE html>\n<meta charset")
    assert page.index("Content-Security-Policy") < page.index("<html>")
    assert preview_document("<p>x</p>").startswith('<meta charset="utf-8">')


def test_text_only_message_has_no_preview_but_is_indexed(sink: MailSink) -> None:
    send(sink.port, make_message("Plain only", html=None))

    stem = eml_files(sink.directory)[0].stem
    assert not (sink.directory / f"{stem}.html").exists()
    index = (sink.directory / INDEX_NAME).read_text(encoding="utf-8")
    assert "Plain only" in index
    assert f'href="{stem}.html"' not in index


def test_names_sort_by_arrival_even_when_the_clock_stands_still(tmp_path: Path) -> None:
    fixed = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    with MailSink(tmp_path / "mail", port=0, clock=lambda: fixed) as running:
        for n in range(12):
            send(running.port, make_message(f"message {n:02d}"))
        files = eml_files(running.directory)

    assert len(files) == 12
    subjects = [f.read_bytes().split(b"Subject: ")[1].split(b"\r\n")[0] for f in files]
    assert subjects == [f"message {n:02d}".encode() for n in range(12)]
    assert all(f.name.startswith("20260302-010000-000000-") for f in files)


def test_restart_appends_to_index_and_rebuilds_a_deleted_one(tmp_path: Path) -> None:
    directory = tmp_path / "mail"
    with MailSink(directory, port=0) as first:
        send(first.port, make_message("first"))
    with MailSink(directory, port=0) as second:
        send(second.port, make_message("second"))
    index = (directory / INDEX_NAME).read_text(encoding="utf-8")
    assert index.count("<tr><td>") == 2
    assert index.index("first") < index.index("second")
    assert "<tr><td>2</td>" in index

    (directory / INDEX_NAME).unlink()
    with MailSink(directory, port=0) as third:
        send(third.port, make_message("third"))
    rebuilt = (directory / INDEX_NAME).read_text(encoding="utf-8")
    assert rebuilt.count("<tr><td>") == 3
    assert rebuilt.index("first") < rebuilt.index("second") < rebuilt.index("third")
    assert rebuilt.count('.html" target="_blank"') == 3


def test_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    with pytest.raises(NotLoopbackError):
        MailSink(tmp_path, host="0.0.0.0", port=0)
    result = subprocess.run(
        [*CRM, "mail-sink", "--host", "0.0.0.0", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert result.returncode != 0
    assert "loopback" in result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_background_start_stop_leaves_no_process(tmp_path: Path) -> None:
    env = {**os.environ, "CRM_VAR_DIR": str(tmp_path / "var")}
    port = free_port()
    pid_file = tmp_path / "var" / "mail-sink.pid"
    directory = tmp_path / "var" / "mail"

    def crm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CRM, "mail-sink", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
            timeout=60,
        )

    started = crm("--background", "--port", str(port))
    assert started.returncode == 0, started.stdout + started.stderr
    info = read_pid_file(pid_file)
    assert info is not None and info["port"] == port and info["dir"] == str(directory)
    pid = int(info["pid"])
    try:
        assert _process_alive(pid)
        again = crm("--background", "--port", str(port))
        assert again.returncode == 0 and "already running" in again.stdout
        assert read_pid_file(pid_file) == info

        send(port, make_message("via background sink"))
        assert len(eml_files(directory)) == 1

        stopped = crm("--stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert not _process_alive(pid)
        assert not pid_file.exists()
        with pytest.raises(ConnectionRefusedError):  # nothing is left listening on the port
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert "not running" in crm("--stop").stdout
    finally:
        if _process_alive(pid):
            os.kill(pid, 9)
            time.sleep(0.1)


RESULT_LINE = re.compile(
    r"^RESULT msgs_per_s=(\d+) ceiling_msgs_per_s=(\d+) latency_ms=(\d+) "
    r"ratio_to_ceiling=(\d+\.\d+) "
    r"vs_prefect_email=(\d+\.\d+) vs_smtplib=(\d+\.\d+) peak_rss_mb=(\d+)$"
)


def test_delivery_benchmark_small_run_prints_result_line() -> None:
    """The benchmark end to end at a tiny size: real outbox, delivery, sink process and peers
    (prefect-email included, on a temporary Prefect API), with its own exactness checks."""
    result = subprocess.run(
        [sys.executable, "benchmarks/delivery.py", "--n", "200", "--peer-sample", "20"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert "verified: 200 rows sent, sink got exactly 200 distinct matching Message-IDs" in (
        result.stdout
    )
    match = RESULT_LINE.match(lines[-1])
    assert match is not None, lines[-1]
    msgs_per_s, ceiling, latency_ms, ratio, vs_prefect, vs_smtplib, rss = match.groups()
    assert latency_ms == "0"  # no --latency-ms: the sink replies at once
    assert int(msgs_per_s) > 0 and int(ceiling) > 0 and int(rss) > 0
    assert float(vs_prefect) > 0 and float(vs_smtplib) > 0
    assert float(ratio) == pytest.approx(int(msgs_per_s) / int(ceiling), abs=0.01)
    assert sum(line.startswith("RESULT") for line in lines) == 1
