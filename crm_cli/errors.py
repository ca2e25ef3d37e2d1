"""One line for an error that ends a command: what went wrong and, where we know it, what to do.

Errors an operator can fix are explained by the module that knows them (``crm_db.setup_errors``
for the database); anything else is its type and first line (its message may be long, e.g. an
SQL statement; the traceback is for ``--debug``).
"""

from __future__ import annotations

from crm_db.setup_errors import explain as explain_database


def explained(exc: BaseException) -> str | None:
    """The line for an error an operator can fix, or ``None`` for one we did not foresee."""
    from crm_core.settings import get_settings

    try:
        url: str | None = get_settings().database_url
    except Exception:  # the settings themselves may be what is wrong
        url = None
    return explain_database(exc, url)


def one_line(exc: BaseException) -> str:
    known = explained(exc)
    if known is not None:
        return known
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


__all__ = ["explained", "one_line"]
