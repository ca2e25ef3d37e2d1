"""The terminal shows a failed run's error in one line; the traceback stays in the run's logs.

Prefect logs a flow's exception with its traceback, to the console and to the API (the UI's
logs). While ``crm run`` runs a flow (and ``--debug`` is off) the console handler's formatter is
wrapped so that *its* output leaves the traceback out; the record itself is untouched, so the
API handler still sends the whole traceback to the run's logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class _WithoutTraceback(logging.Formatter):
    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def _console_handlers() -> list[logging.Handler]:
    from prefect.logging.handlers import PrefectConsoleHandler

    found: list[logging.Handler] = []
    for name in ("prefect", ""):
        found += [
            h for h in logging.getLogger(name).handlers if isinstance(h, PrefectConsoleHandler)
        ]
    return found


@contextmanager
def console_without_tracebacks(*, enabled: bool = True) -> Iterator[None]:
    if not enabled:
        yield
        return
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect's idempotent guard: its handlers exist from here on
    handlers = _console_handlers()
    saved = [(handler, handler.formatter) for handler in handlers]
    for handler, formatter in saved:
        handler.setFormatter(_WithoutTraceback(formatter or logging.Formatter()))
    try:
        yield
    finally:
        for handler, formatter in saved:
            handler.setFormatter(formatter)
