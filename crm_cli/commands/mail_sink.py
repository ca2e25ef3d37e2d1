"""``crm mail-sink``: run the local mail capture in the foreground, or start/stop it detached.

``make demo`` runs ``crm mail-sink --background`` (idempotent: a running sink is left alone), runs
the flows with ``CRM_SMTP_TLS=none``, and either leaves the sink running for the user to browse
``var/mail/index.html`` or calls ``crm mail-sink --stop``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from crm_core.paths import var_dir
from crm_core.settings import get_settings

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def default_pid_file() -> Path:
    return var_dir() / "mail-sink.pid"


def _process_alive(pid: int) -> bool:
    """True while ``pid`` runs. A zombie (exited, not yet reaped by its new parent, which in a
    container may never happen) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): signal 0 succeeding is the best evidence we have
    return stat.rpartition(")")[2].split()[0] != "Z"


def _is_mail_sink(pid: int) -> bool:
    """Guard against a stale pid file whose pid now belongs to some other program."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # cannot tell without /proc; the pid file is ours
    return b"mail-sink" in cmdline


def read_pid_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def running_sink(pid_file: Path) -> dict[str, Any] | None:
    """The pid file's content if that sink is alive; a stale pid file is removed."""
    info = read_pid_file(pid_file)
    if info is None:
        return None
    pid = int(info["pid"])
    if _process_alive(pid) and _is_mail_sink(pid):
        return info
    pid_file.unlink(missing_ok=True)
    return None


def _write_pid_file(path: Path, info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)  # the starter polls for this file: it must never see half of it


def _run_foreground(host: str, port: int, directory: Path, pid_file: Path | None) -> None:
    from tasks.mail.sink import MailSink

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sink = MailSink(directory, host=host, port=port)
    try:
        sink.start()
    except OSError as exc:
        typer.echo(f"mail-sink: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    if pid_file is not None:
        info = {"pid": os.getpid(), "host": host, "port": sink.port, "dir": str(directory)}
        _write_pid_file(pid_file, info)
    typer.echo(f"mail-sink listening on {host}:{sink.port}, saving to {directory}")
    typer.echo(f"browse {directory / 'index.html'}; stop with Ctrl-C")
    typer.echo(
        f"deliver to it with CRM_SMTP_HOST={host} CRM_SMTP_PORT={sink.port} CRM_SMTP_TLS=none"
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        sink.stop()
        if pid_file is not None:
            info_now = read_pid_file(pid_file)
            if info_now is not None and info_now["pid"] == os.getpid():
                pid_file.unlink(missing_ok=True)
        typer.echo(f"mail-sink stopped after {sink.store.count} message(s)")


def _start_background(host: str, port: int, directory: Path, pid_file: Path) -> None:
    info = running_sink(pid_file)
    if info is not None:
        typer.echo(
            f"mail-sink already running (pid {info['pid']}) on {info['host']}:{info['port']}, "
            f"saving to {info['dir']}"
        )
        return
    log_path = pid_file.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "crm_cli.main",
        "mail-sink",
        "--host",
        host,
        "--port",
        str(port),
        "--dir",
        str(directory),
        "--pid-file",
        str(pid_file),
    ]
    with log_path.open("ab") as log:
        # A new session: the sink outlives this command and ignores the terminal's Ctrl-C.
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_pid_file(pid_file)
        if info is not None and info["pid"] == child.pid:
            typer.echo(
                f"mail-sink started in the background (pid {child.pid}) on {host}:{info['port']}, "
                f"saving to {directory}; log {log_path}; stop with `crm mail-sink --stop`"
            )
            return
        if child.poll() is not None:
            typer.echo(f"mail-sink failed to start (exit {child.returncode}); see {log_path}:")
            typer.echo(_tail(log_path), err=True)
            raise typer.Exit(1)
        time.sleep(0.05)
    child.terminate()
    child.wait(STOP_TIMEOUT_S)
    typer.echo(f"mail-sink did not start within {START_TIMEOUT_S:.0f}s; see {log_path}", err=True)
    raise typer.Exit(1)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop_background(pid_file: Path) -> None:
    info = running_sink(pid_file)
    if info is None:
        typer.echo("mail-sink is not running")
        return
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _process_alive(pid):
        os.kill(pid, signal.SIGKILL)  # it ignored SIGTERM for 10 s: do not leave it behind
        while _process_alive(pid):
            time.sleep(0.05)
        typer.echo(f"mail-sink (pid {pid}) did not stop in time and was killed")
    else:
        typer.echo(f"mail-sink (pid {pid}) stopped")
    pid_file.unlink(missing_ok=True)


def mail_sink(
    host: Annotated[str, typer.Option(help="loopback address to listen on")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="port to listen on (default: CRM_SMTP_PORT, 8025)")
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="where to keep messages (default: var/mail)"),
    ] = None,
    background: Annotated[
        bool, typer.Option("--background", help="start detached; no-op if already running")
    ] = False,
    stop: Annotated[bool, typer.Option("--stop", help="stop the background sink")] = False,
    pid_file: Annotated[
        Path | None,
        typer.Option(help="pid file of the background sink (default: var/mail-sink.pid)"),
    ] = None,
) -> None:
    """Capture outgoing mail locally: an SMTP server on 127.0.0.1 that saves each message as
    .eml and lists them in index.html (plain SMTP, for development and the demo only)."""
    try:
        from tasks.mail.sink import NotLoopbackError, require_loopback
    except ModuleNotFoundError as exc:
        # aiosmtpd is in the demo and dev extras only: a production worker has no use for it.
        if (exc.name or "").partition(".")[0] != "aiosmtpd":
            raise
        typer.echo(
            "mail-sink needs aiosmtpd, which is not installed: pip install 'crm-flows[demo]'",
            err=True,
        )
        raise typer.Exit(1) from exc

    if background and stop:
        raise typer.BadParameter("use either --background or --stop")
    try:
        require_loopback(host)
    except NotLoopbackError as exc:
        raise typer.BadParameter(str(exc), param_hint="--host") from exc
    port = get_settings().smtp_port if port is None else port
    directory = (directory or var_dir() / "mail").resolve()
    if stop:
        _stop_background((pid_file or default_pid_file()).resolve())
    elif background:
        _start_background(host, port, directory, (pid_file or default_pid_file()).resolve())
    else:
        _run_foreground(host, port, directory, pid_file.resolve() if pid_file else None)


def register(app: typer.Typer) -> None:
    app.command("mail-sink")(mail_sink)
