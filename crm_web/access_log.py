"""Keep link tokens out of the web server's access log.

A token is a bearer credential (anyone holding it can unsubscribe that customer, record a revisit's
outcome, answer a care email or a survey) and its payload names a customer, revisit, email or
invitation id, so the access log shows ``/u/<token>`` (``/r/``, ``/f/``, ``/m/``, ``/s/``)
instead of the token itself.
"""

from __future__ import annotations

import logging
import re

# Every path whose segment after the prefix is a link token: /u/ unsubscribe (and
# /u/<token>/resubscribe), /r/ revisit outcome, /f/ care feedback, /m/ a manager's revisit list,
# /s/ a survey answer page. Later features add their prefixes here.
TOKEN_PATH = re.compile(r"^(/(?:u|r|f|m|s)/)[^/?#]+")


def redact_path(path: str) -> str:
    return TOKEN_PATH.sub(r"\1<token>", path)


class RedactTokensFilter(logging.Filter):
    """For ``uvicorn.access``: its record args are (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def install(logger_name: str = "uvicorn.access") -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactTokensFilter) for f in logger.filters):
        logger.addFilter(RedactTokensFilter())
