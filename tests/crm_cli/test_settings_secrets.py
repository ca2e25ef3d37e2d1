"""No settings error prints a secret: the real ``crm`` command and a real flow run (Prefect's
ephemeral API, its own database) in subprocesses, each with a unique password, then stdout,
stderr and every file the run produced (Prefect's SQLite database included) are searched for it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

CRM = Path(sys.executable).with_name("crm")


def _secret() -> str:
    return f"Pw-{uuid.uuid4().hex}"


def _environment(var_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "PREFECT_"))}
    env.update({"CRM_VAR_DIR": str(var_dir), **extra})
    return env


def _files_holding(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


# Each kind of settings error, with the secret where a careless message would echo it.
CASES = {
    "missing secret key in production": lambda s: {
        "CRM_MODE": "production",
        "CRM_SMTP_USER": "u",
        "CRM_SMTP_PASSWORD": s,
    },
    "secret key too short": lambda s: {"CRM_MODE": "production", "CRM_SECRET_KEY": s[:20]},
    "plaintext smtp in production": lambda s: {
        "CRM_MODE": "production",
        "CRM_SECRET_KEY": s * 2,
        "CRM_SMTP_TLS": "none",
        "CRM_SMTP_PASSWORD": s,
    },
    "unparsable database url": lambda s: {"CRM_DATABASE_URL": f"postgresql://u:{s}@h:x/db"},
    "bad port next to a password": lambda s: {"CRM_SMTP_PORT": "abc", "CRM_SMTP_PASSWORD": s},
    "bad tls mode next to a database password": lambda s: {
        "CRM_SMTP_TLS": "ssl",
        "CRM_DATABASE_URL": f"postgresql://u:{s}@127.0.0.1:1/db",
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_cli_names_the_setting_in_one_line_and_never_the_secret(
    case: str, tmp_path: Path
) -> None:
    secret = _secret()
    variables = CASES[case](secret)
    result = subprocess.run(
        [str(CRM), "run", "deliver_outbox"],
        env=_environment(tmp_path, variables),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )

    assert result.returncode == 2
    for secret_part in (secret, secret[-22:]):
        assert secret_part not in result.stdout + result.stderr
    assert _files_holding(tmp_path, secret[-22:]) == []
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), result.stderr
    assert "Traceback" not in result.stderr
    assert "CRM_" in result.stderr  # names the variable


def test_debug_shows_the_traceback_still_without_the_secret(tmp_path: Path) -> None:
    secret = _secret()
    result = subprocess.run(
        [str(CRM), "--debug", "run", "deliver_outbox"],
        env=_environment(tmp_path, CASES["missing secret key in production"](secret)),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )

    assert result.returncode != 0
    assert "Traceback" in result.stderr or "ValidationError" in result.stderr
    assert secret not in result.stdout + result.stderr


FLOW_SCRIPT = """
from crm_core.prefect_env import configure_prefect_env
configure_prefect_env()
from flows.deliver_outbox import deliver_outbox
state = deliver_outbox(return_state=True)
print("FINAL", state.name)
"""


def test_a_flow_run_with_bad_settings_leaves_no_secret_in_prefect(tmp_path: Path) -> None:
    """What a worker does: the flow itself reads the settings; its logs and state messages go
    to Prefect's database (here the ephemeral API's SQLite file under the var directory)."""
    secret = _secret()
    variables = CASES["missing secret key in production"](secret)
    variables["CRM_DATABASE_URL"] = f"postgresql://crm:{secret}@127.0.0.1:1/crm"
    result = subprocess.run(
        [sys.executable, "-c", FLOW_SCRIPT],
        env=_environment(tmp_path, variables),
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert "FINAL Failed" in result.stdout, result.stderr[-2000:]
    assert secret not in result.stdout + result.stderr
    prefect_db = list((tmp_path / "prefect").rglob("*.db"))
    assert prefect_db, "the run must have written Prefect's database"
    assert _files_holding(tmp_path, secret) == []
    assert _files_holding(tmp_path, secret[-22:]) == []
