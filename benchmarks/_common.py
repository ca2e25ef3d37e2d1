"""Helpers every benchmark script shares: progress output, peak RSS, the final RESULT line.

Benchmarks are scripts, so they write to stdout directly (library code never prints). The
last line of every benchmark is ``RESULT key=value ...``: machine-readable, one line, so CI and
people can compare runs.
"""

from __future__ import annotations

import resource
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def result_line(**fields: object) -> str:
    """``RESULT a=1 b=2.500``, keys in the order given; values must not contain spaces."""
    parts = []
    for key, value in fields.items():
        text = _format(value)
        if " " in text:
            raise ValueError(f"RESULT value for {key!r} contains a space: {text!r}")
        parts.append(f"{key}={text}")
    return "RESULT " + " ".join(parts)


def print_result(**fields: object) -> None:
    """Print the RESULT line (call it last)."""
    say(result_line(**fields))


@contextmanager
def scratch_postgres_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url``; dropped at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
