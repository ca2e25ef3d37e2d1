"""``crm mail-sink`` without aiosmtpd (a production install leaves the demo extra out)."""

from __future__ import annotations

import subprocess
import sys

# A None entry in sys.modules makes `import aiosmtpd` raise ModuleNotFoundError, exactly as in an
# environment where the package is not installed.
WITHOUT_AIOSMTPD = (
    "import sys; sys.modules['aiosmtpd'] = None\n"
    "from crm_cli.main import app\n"
    "app(['mail-sink', *sys.argv[1:]])\n"
)


def run_without_aiosmtpd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_AIOSMTPD, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_mail_sink_without_aiosmtpd_names_the_extra_in_one_line() -> None:
    result = run_without_aiosmtpd("--background")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "mail-sink needs aiosmtpd, which is not installed: pip install 'crm-flows[demo]'"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_crm_help_works_without_aiosmtpd() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_AIOSMTPD.replace("'mail-sink', ", ""), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "mail-sink" in result.stdout
